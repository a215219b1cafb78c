# SPDX-License-Identifier: LGPL-2.1-or-later
"""gasyncbridge.signals() and wait_signal(): GObject signals from any thread
into asyncio, on both loops."""
import asyncio
import errno
import gc
import os
import threading
import tracemalloc
import warnings

import pytest

gi = pytest.importorskip("gi")
gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib, GObject  # noqa: E402

import gasyncbridge  # noqa: E402
from gasyncbridge import signals, wait_signal  # noqa: E402


class Emitter(GObject.Object):
    __gsignals__ = {
        "tick": (GObject.SignalFlags.RUN_LAST, None, (int, int)),
        "named": (GObject.SignalFlags.RUN_LAST, None, (str, GObject.Object)),
        "asked": (GObject.SignalFlags.RUN_LAST, bool, ()),
    }
    level = GObject.Property(type=int, default=0)


def pending(obj, name):
    """Whether obj has a handler connected for name."""
    signal_id, detail = GObject.signal_parse_name(name, obj, True)
    return GObject.signal_has_handler_pending(obj, signal_id, detail, True)


def test_emissions_from_several_threads_in_order(run):
    async def main():
        obj = Emitter()
        threads, per_thread = 4, 2000
        async with signals(obj, "tick", maxsize=threads * per_thread) as events:
            workers = [threading.Thread(target=lambda t=t: [obj.emit("tick", t, i)
                                                            for i in range(per_thread)])
                       for t in range(threads)]
            for w in workers:
                w.start()
            last = [-1] * threads
            n = 0
            async for event in events:
                assert event.signal == "tick"
                t, i = event.args
                assert i == last[t] + 1, "emissions of one thread out of order"
                last[t] = i
                n += 1
                if n == threads * per_thread:
                    break
            for w in workers:
                w.join()
            assert events.dropped == 0 and events.pending == 0
        assert not events.connected and not pending(obj, "tick")

    run(main)


def test_several_signals_details_and_object_arguments(run):
    async def main():
        obj, other = Emitter(), Emitter()
        async with signals(obj, "named", "notify::level") as events:
            obj.emit("named", "hello", other)
            obj.props.level = 5
            first = await events.__anext__()
            assert first.signal == "named" and first.args[0] == "hello"
            assert first.args[1] is other           # the same Python wrapper
            second = await events.__anext__()
            assert second.signal == "notify::level"
            assert second.args[0].name == "level"   # the GParamSpec
            signal, args = second                   # a named tuple
            assert signal == "notify::level"

    run(main)


def test_a_signal_with_a_return_value_gets_the_default(run):
    async def main():
        obj = Emitter()
        async with signals(obj, "asked") as events:
            assert obj.emit("asked") is False
            assert (await events.__anext__()).args == ()

    run(main)


def test_simple_action(run):
    async def main():
        action = Gio.SimpleAction.new_stateful("volume", GLib.VariantType.new("i"),
                                               GLib.Variant("i", 0))
        async with signals(action, "activate", "change-state") as events:
            action.activate(GLib.Variant("i", 3))
            action.change_state(GLib.Variant("i", 7))
            a = await events.__anext__()
            b = await events.__anext__()
        assert (a.signal, a.args[0].unpack()) == ("activate", 3)
        assert (b.signal, b.args[0].unpack()) == ("change-state", 7)
        assert await asyncio.wait_for(_activate_later(action), 5) == (11,)

    run(main)


async def _activate_later(action):
    future = wait_signal(action, "activate")
    threading.Thread(target=action.activate, args=(GLib.Variant("i", 11),)).start()
    (parameter,) = await future
    return (parameter.unpack(),)


def test_file_monitor_made_on_the_runtime_thread(run, tmp_path):
    async def main():
        directory = Gio.File.new_for_path(str(tmp_path))
        monitor = await gasyncbridge.run_in_runtime(
            directory.monitor_directory, Gio.FileMonitorFlags.NONE, None)
        monitor.set_rate_limit(10)
        with warnings.catch_warnings():
            warnings.simplefilter("error", gasyncbridge.ContextWarning)
            events = signals(monitor, "changed")
        async with events:
            (tmp_path / "new.txt").write_text("hello")
            async with asyncio.timeout(10) if hasattr(asyncio, "timeout") else _nothing():
                async for event in events:
                    file, other, kind = event.args
                    if file.get_basename() == "new.txt" and kind in (
                            Gio.FileMonitorEvent.CREATED,
                            Gio.FileMonitorEvent.CHANGES_DONE_HINT):
                        break
        monitor.cancel()

    run(main)


class _nothing:
    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False


def test_a_file_monitor_made_on_the_loop_thread_is_reported(run, tmp_path):
    async def main():
        monitor = Gio.File.new_for_path(str(tmp_path)).monitor_directory(
            Gio.FileMonitorFlags.NONE, None)
        with pytest.warns(gasyncbridge.ContextWarning, match="run_in_runtime"):
            events = signals(monitor, "changed")
        events.close()
        with pytest.warns(gasyncbridge.ContextWarning):
            future = wait_signal(monitor, "changed")
        future.cancel()
        monitor.cancel()

    run(main)


def test_wait_signal_result_timeout_and_cancel_disconnect_at_once(run):
    async def main():
        obj = Emitter()
        future = wait_signal(obj, "tick")
        assert pending(obj, "tick")
        obj.emit("tick", 1, 2)
        obj.emit("tick", 3, 4)            # after the first: not seen
        assert await future == (1, 2)
        assert not pending(obj, "tick")

        with pytest.raises(asyncio.TimeoutError, match="no 'tick' emission"):
            await wait_signal(obj, "tick", timeout=0.01)
        assert not pending(obj, "tick")

        future = wait_signal(obj, "tick")
        assert future.cancel()
        assert not pending(obj, "tick")    # at once, not at the next loop turn
        with pytest.raises(asyncio.CancelledError):
            await future

        # The awaiting task cancelled: the same.
        task = asyncio.ensure_future(wait_signal(obj, "tick", timeout=30))
        await asyncio.sleep(0)
        assert pending(obj, "tick")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not pending(obj, "tick")

    run(main)


def test_cancellation_at_every_await(run):
    """Cancelled inside __aenter__, waiting in __anext__, or in the body:
    the handlers go."""
    async def main():
        obj = Emitter()

        async def consume(stage):
            async with signals(obj, "tick") as events:
                if stage == "body":
                    await asyncio.sleep(30)
                async for _ in events:
                    if stage == "after-one":
                        await asyncio.sleep(30)

        for stage in ("waiting", "body", "after-one"):
            task = asyncio.ensure_future(consume(stage))
            await asyncio.sleep(0.01)
            assert pending(obj, "tick"), stage
            obj.emit("tick", 0, 0)
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not pending(obj, "tick"), stage

    run(main)


def test_the_body_raising_disconnects(run):
    async def main():
        obj = Emitter()
        with pytest.raises(KeyError):
            async with signals(obj, "tick") as events:
                obj.emit("tick", 1, 1)
                async for _ in events:
                    raise KeyError("stop")
        assert not pending(obj, "tick")

    run(main)


@pytest.mark.parametrize("overflow", ["raise", "drop-oldest", "drop-newest"])
def test_a_slow_consumer(run, overflow):
    """The emitter never waits: 100 emissions into maxsize 10."""
    async def main():
        obj = Emitter()
        async with signals(obj, "tick", maxsize=10, overflow=overflow) as events:
            for i in range(100):
                obj.emit("tick", 0, i)
            got = []
            if overflow == "raise":
                with pytest.raises(OSError) as info:
                    async for event in events:
                        got.append(event.args[1])
                assert info.value.errno == errno.ENOSPC
                assert got == list(range(10))
            else:
                while events.pending:
                    got.append((await events.__anext__()).args[1])
                assert events.dropped == 90
                assert got == (list(range(90, 100)) if overflow == "drop-oldest"
                               else list(range(10)))

    run(main)


def test_bad_arguments(run):
    async def main():
        obj = Emitter()
        with pytest.raises(ValueError, match="no signal 'nope'"):
            signals(obj, "nope")
        with pytest.raises(TypeError):
            signals(obj)
        with pytest.raises(TypeError, match="GObject"):
            signals(object(), "tick")
        with pytest.raises(ValueError, match="overflow"):
            signals(obj, "tick", overflow="block")
        with pytest.raises(ValueError, match="maxsize"):
            signals(obj, "tick", maxsize=0)
        assert not pending(obj, "tick")

    run(main)


def test_dropped_without_closing_disconnects(run):
    async def main():
        obj = Emitter()
        events = signals(obj, "tick")
        assert pending(obj, "tick")
        del events
        gc.collect()
        assert not pending(obj, "tick")
        # A plain `async for` that breaks, with nothing left holding it.
        async for _ in _first(signals(obj, "tick"), obj):
            pass
        gc.collect()
        assert not pending(obj, "tick")

    run(main)


async def _first(events, obj):
    obj.emit("tick", 0, 0)
    async for event in events:
        yield event
        break


@pytest.mark.parametrize("kind", ["asyncio", "uvloop"])
def test_the_loop_closing_with_signals_open(kind):
    if kind == "uvloop":
        loop = pytest.importorskip("uvloop").new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    obj = Emitter()

    async def start():
        events = signals(obj, "tick")
        obj.emit("tick", 0, 0)
        return events

    events = loop.run_until_complete(start())
    loop.close()
    # Emissions after the loop closed are dropped in C, from any thread.
    obj.emit("tick", 1, 1)
    t = threading.Thread(target=obj.emit, args=("tick", 2, 2))
    t.start()
    t.join()
    assert events.pending == 0
    events.close()
    assert not pending(obj, "tick")


def test_a_thousand_cycles_leak_nothing(run):
    async def main():
        obj = Emitter()

        async def cycle(i):
            async with signals(obj, "tick", "notify::level") as events:
                obj.emit("tick", i, i)
                await events.__anext__()
            future = wait_signal(obj, "tick")
            obj.emit("tick", i, i)
            await future

        for i in range(50):                  # warm up caches
            await cycle(i)
        gc.collect()
        refs = _refcount(obj)
        tracemalloc.start()
        grown = []
        for _ in range(2):     # the first thousand may still fill caches
            before = tracemalloc.get_traced_memory()[0]
            for i in range(1000):
                await cycle(i)
            gc.collect()
            grown.append(tracemalloc.get_traced_memory()[0] - before)
        tracemalloc.stop()
        grown = grown[1]
        assert _refcount(obj) == refs
        assert not pending(obj, "tick")
        assert grown < 64 * 1024, f"{grown} bytes more after 1000 cycles"

    run(main)


def _refcount(obj):
    import sys
    return sys.getrefcount(obj)


@pytest.mark.skipif(os.environ.get("GAB_UNDER_VALGRIND") == "1", reason="timing")
def test_a_burst_wakes_the_loop_in_few_slices(run):
    """10 000 emissions in a burst reach the loop in a few wakeups: the
    loop runs few iterations while it takes them all."""
    async def main():
        loop = asyncio.get_running_loop()
        obj = Emitter()
        turns = 0

        def turn():
            nonlocal turns
            turns += 1
            if running:
                loop.call_soon(turn)

        running = True
        async with signals(obj, "tick", maxsize=20000) as events:
            t = threading.Thread(target=lambda: [obj.emit("tick", 0, i) for i in range(10000)])
            t.start()
            t.join()
            loop.call_soon(turn)
            n = 0
            async for _ in events:
                n += 1
                if n == 10000:
                    break
        running = False
        # 10 000 events in slices of at most 256: about 40 loop turns, not 10 000.
        assert turns <= 100, turns

    run(main)
