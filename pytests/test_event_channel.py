# SPDX-License-Identifier: LGPL-2.1-or-later
"""GabEventChannel, the library's primitive under signals() and dbus: C
threads push events that never wait; Python takes them with `async for` or
a callback, in batches and slices. (_gab_eventmod is a test-only module of
C producers written against the public API.)"""
import asyncio
import errno
import gc

import pytest

import gasyncbridge
import _gab_eventmod as ev


@pytest.fixture(autouse=True)
def no_event_leaks():
    yield
    gc.collect()
    assert ev.alive() == 0, "an event was never freed"


def test_producer_threads_keep_order_and_lose_nothing(run):
    async def main():
        receiver = ev.producers(4, 5000, 20000, "drop-newest")
        last = {}
        n = 0
        async for producer, seq in receiver:
            assert seq == last.get(producer, -1) + 1, "out of order"
            last[producer] = seq
            n += 1
        assert n == 20000 and receiver.dropped == 0
        assert receiver.closed

    run(main)


def test_a_small_channel_raises_when_the_consumer_falls_behind(run):
    async def main():
        receiver = ev.producers(2, 1000, 8, "close", None, True)
        got = []
        with pytest.raises(OSError) as info:
            async for item in receiver:
                got.append(item)
        assert info.value.errno == errno.ENOSPC
        assert "8 events behind" in str(info.value)
        assert len(got) == 8 and receiver.dropped >= 1
        with pytest.raises(StopAsyncIteration):   # raised once, then the end
            await receiver.__anext__()

    run(main)


@pytest.mark.parametrize("overflow, expect", [("drop-newest", range(0, 10)),
                                              ("drop-oldest", range(90, 100))])
def test_drop_policies(run, overflow, expect):
    async def main():
        receiver, pushed, dropped = ev.burst(100, 10, overflow, None)
        assert dropped == 90 and receiver.dropped == 90 and receiver.pending == 10
        assert pushed == (10 if overflow == "drop-newest" else 100)
        got = []
        while receiver.pending:
            got.append((await receiver.__anext__())[1])
        assert got == list(expect)
        assert "10/10" not in repr(receiver) and "90 dropped" in repr(receiver)

    run(main)


def test_a_callback_gets_a_burst_in_bounded_slices(run):
    """1000 events pushed while the loop is busy: one wakeup, and at most
    256 callbacks before the loop runs something else."""
    async def main():
        loop = asyncio.get_running_loop()
        ticks = 0
        seen = []
        done = loop.create_future()

        def tick():
            nonlocal ticks
            ticks += 1
            if not done.done():
                loop.call_soon(tick)

        def callback(item):
            seen.append((item[1], ticks))
            if len(seen) == 1000:
                done.set_result(None)

        receiver, pushed, dropped = ev.burst(1000, 2000, "drop-newest", callback)
        loop.call_soon(tick)
        await done
        assert [s for s, _ in seen] == list(range(1000))
        slices = {}
        for _, t in seen:
            slices[t] = slices.get(t, 0) + 1
        assert max(slices.values()) <= 256
        assert len(slices) <= 8      # a handful of slices, not one wakeup per event
        receiver.close()

    run(main)


def test_callback_errors_go_to_the_exception_handler(run):
    async def main():
        loop = asyncio.get_running_loop()
        errors = []
        previous = loop.get_exception_handler()
        loop.set_exception_handler(lambda loop, context: errors.append(context))
        got = []
        done = loop.create_future()

        def callback(item):
            got.append(item[1])
            if item[1] == 3:
                raise KeyError("three")
            if item[1] == 9 and not done.done():
                done.set_result(None)

        receiver, _, _ = ev.burst(10, 20, "drop-newest", callback, 5)   # event 5 fails
        await done
        loop.set_exception_handler(previous)
        assert got == [0, 1, 2, 3, 4, 6, 7, 8, 9]
        kinds = sorted(type(e["exception"]).__name__ for e in errors)
        assert kinds == ["KeyError", "ValueError"]
        with pytest.raises(TypeError):
            receiver.__aiter__()
        receiver.close()

    run(main)


def test_a_conversion_error_is_raised_by_the_iterator(run):
    async def main():
        receiver, _, _ = ev.burst(3, 5, "drop-newest", None, 1)
        assert await receiver.__anext__() == (0, 0)
        with pytest.raises(ValueError, match="event -1"):
            await receiver.__anext__()
        assert await receiver.__anext__() == (0, 2)
        receiver.close()

    run(main)


def test_close_with_an_error_after_the_events(run):
    async def main():
        receiver = ev.closed_with("the producer failed")
        assert [x async for x in _until(receiver, 2)] == [(0, 0), (0, 1)]
        with pytest.raises(gasyncbridge.GLibError, match="the producer failed"):
            await receiver.__anext__()
        with pytest.raises(StopAsyncIteration):
            await receiver.__anext__()

    run(main)


async def _until(receiver, n):
    for _ in range(n):
        yield await receiver.__anext__()


def test_close_drops_what_waits_and_what_comes(run):
    async def main():
        receiver, _, _ = ev.burst(5, 10, "drop-newest", None)
        assert receiver.pending == 5
        await receiver.aclose()
        assert receiver.pending == 0 and receiver.closed
        with pytest.raises(StopAsyncIteration):
            await receiver.__anext__()

    run(main)


def test_the_consumer_waits_across_batches(run):
    async def main():
        receiver = ev.producers(1, 3000, 64, "drop-newest", None, False)
        n = 0
        async for _ in receiver:
            n += 1
        assert n + receiver.dropped == 3000

    run(main)


@pytest.mark.parametrize("kind", ["asyncio", "uvloop"])
def test_the_loop_closing_stops_the_consumer(kind):
    if kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()

    async def make():
        return ev.burst(5, 10, "drop-newest", None)[0]

    receiver = loop.run_until_complete(make())
    assert receiver.pending == 5
    loop.close()
    assert receiver.closed and receiver.pending == 0
    del receiver
