# SPDX-License-Identifier: LGPL-2.1-or-later
"""Python side of tests/test-streams.c: generators and scenarios that C consumes.

`_streams_c` is a module the test program makes: its functions start a C
consumer (on a worker thread with its own GMainContext, unless said
otherwise) and return an asyncio future of what the consumer saw.
"""
import asyncio
import os
import tempfile

import _streams_c as c


class Log:
    def __init__(self):
        self.produced = 0
        self.finally_ran = asyncio.Event()
        self.events = []


async def numbers(n, log=None, fail_at=None, awaits=False):
    try:
        for i in range(n):
            if fail_at is not None and i == fail_at:
                raise LookupError(f"failed at {i}")
            if awaits:
                await asyncio.sleep(0)
            if log is not None:
                log.produced += 1
            yield i
    finally:
        if log is not None:
            log.events.append("finally")
            log.finally_ran.set()


# ---- async iterator ------------------------------------------------------

async def thousand_items(read_ahead, mode):
    items, error, _ = await c.consume(numbers(1000), read_ahead, mode, -1)
    assert error is None, error
    assert items == list(range(1000)), items[:10]


async def thousand_items_on_loop(read_ahead):
    items, error = await c.consume_on_loop(numbers(1000), read_ahead)
    assert error is None, error
    assert items == list(range(1000)), items[:10]


async def error_at_k(read_ahead, mode):
    items, error, _ = await c.consume(numbers(100, fail_at=37), read_ahead, mode, -1)
    assert items == list(range(37)), items
    assert isinstance(error, LookupError), repr(error)
    assert str(error) == "failed at 37"
    assert error.__traceback__ is not None


async def backpressure(read_ahead):
    """The producer runs at most read_ahead (+1 being fetched) ahead."""
    log = Log()
    seen = []

    async def gen():
        for i in range(200):
            log.produced += 1
            # the consumer has taken `len(seen)` items; never more than
            # read_ahead + 1 items beyond them
            seen.append(log.produced - c.consumed_count())
            yield i

    items, error, _ = await c.consume(gen(), read_ahead, "variant", -1)
    assert error is None
    assert items == list(range(200))
    assert max(seen) <= read_ahead + 1, (max(seen), read_ahead)


async def cancel_midway(read_ahead, awaits):
    log = Log()
    items, error, close_error = await c.consume(numbers(10**9, log, awaits=awaits),
                                                read_ahead, "variant", 50)
    assert items == list(range(50)), items[-3:]
    assert isinstance(error, asyncio.CancelledError), repr(error)
    assert close_error is None
    # close_async completed only after aclose(): the finally has run
    assert log.events == ["finally"], log.events


async def cancel_while_fetching():
    """The generator is inside an await when C cancels: CancelledError is
    thrown in there, then its finally runs."""
    log = Log()
    started = asyncio.Event()

    async def gen():
        try:
            yield 0
            started.set()
            await asyncio.Future()   # forever
            yield 1
        except asyncio.CancelledError:
            log.events.append("cancelled")
            raise
        finally:
            log.events.append("finally")

    fut = c.consume(gen(), 0, "object", 1, True)
    await started.wait()
    c.open_gate()
    items, error, close_error = await fut
    assert items == [0]
    assert isinstance(error, asyncio.CancelledError)
    assert log.events == ["cancelled", "finally"], log.events


async def dropped_early():
    log = Log()
    await c.drop_after(numbers(10**9, log), 3)
    # dropping the last reference closes on the loop: wait for it
    await asyncio.wait_for(log.finally_ran.wait(), 10)
    assert log.events == ["finally"]


async def none_and_unconvertible():
    async def gen():
        yield None
        yield 1
        yield object()
        yield "after"

    items, error, _ = await c.consume(gen(), 0, "variant-all", -1)
    assert items[0] == ("mv", None), items
    assert items[1] == ("x", 1)
    assert items[2][0] == "error" and "object" in items[2][1], items[2]
    assert items[3] == ("s", "after")
    assert error is None


class NoAclose:
    def __init__(self, n):
        self.i = 0
        self.n = n

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.i >= self.n:
            raise StopAsyncIteration
        self.i += 1
        return self.i


class BadAclose(NoAclose):
    async def aclose(self):
        raise RuntimeError("aclose failed")


async def iterator_classes():
    items, error, close_error = await c.consume(NoAclose(5), 2, "object", -1)
    assert (items, error, close_error) == ([1, 2, 3, 4, 5], None, None)
    items, error, close_error = await c.consume(BadAclose(3), 0, "object", -1)
    assert items == [1, 2, 3] and error is None
    assert isinstance(close_error, RuntimeError), close_error


async def bad_input():
    for bad, text in [(1, "'int'"), ([1, 2], "'list'"), (None, "'NoneType'")]:
        try:
            c.consume(bad, 0, "object", -1)
        except ValueError as exc:
            assert "not an async iterable" in str(exc) and text in str(exc), exc
        else:
            raise AssertionError("no error")

    class BadAiter:
        def __aiter__(self):
            return 42

    try:
        c.consume(BadAiter(), 0, "object", -1)
    except ValueError as exc:
        assert "not an async iterator" in str(exc)
    else:
        raise AssertionError("no error")

    class RaisingAiter:
        def __aiter__(self):
            raise KeyError("nope")

    try:
        c.consume(RaisingAiter(), 0, "object", -1)
    except KeyError:
        pass
    else:
        raise AssertionError("no error")
    # and it still works
    await thousand_items(0, "object")


async def context_is_kept():
    import contextvars
    var = contextvars.ContextVar("v", default="unset")
    var.set("caller")

    async def gen():
        yield var.get()
        var.set("inside")
        yield var.get()
        yield var.get()

    items, error, _ = await c.consume(gen(), 0, "object", -1)
    assert items == ["caller", "inside", "inside"], items
    assert var.get() == "caller"


# ---- GabInputStream ---------------------------------------------------------

MIB = 1 << 20
UNDER_VALGRIND = bool(os.environ.get("GAB_UNDER_VALGRIND"))
UNDER_SANITIZER = bool(os.environ.get("GAB_UNDER_SANITIZER"))


def pattern_chunks(total, chunk_size, log=None):
    """Fresh chunks (so that anything holding them would show in RSS); chunk
    i is filled with the byte i % 251."""
    async def gen():
        for i in range(total // chunk_size):
            if log is not None:
                log.produced += 1
            yield bytes([i % 251]) * chunk_size
    return gen()


async def input_gigabyte():
    total = (16 if UNDER_VALGRIND else 256 if UNDER_SANITIZER else 1024) * MIB
    # ASan keeps up to 256 MiB of freed memory in quarantine (tools/sanitize)
    limit = (64 + (320 if UNDER_SANITIZER else 0)) * MIB
    # spliced to /dev/null by GIO (8 KiB reads: the slow consumer)
    base = c.rss_reset()
    n, error = await c.splice_to(pattern_chunks(total, MIB), None)
    peak = c.rss_peak()
    assert error is None, error
    assert n == total
    print(f"# 1 GiB through GabInputStream spliced to /dev/null: peak RSS "
          f"+{(peak - base) / MIB:.1f} MiB over {base / MIB:.1f} MiB", flush=True)
    assert peak - base < limit, (peak - base) / MIB
    # read by C: sync reads from a worker thread, then async reads
    for sync in (True, False):
        base = c.rss_reset()
        (got, reads, bad), error = await c.read_all(pattern_chunks(total, MIB), 256 * 1024,
                                                    sync, MIB)
        peak = c.rss_peak()
        assert error is None, error
        assert (got, bad) == (total, -1)
        assert reads == total // (256 * 1024)
        print(f"# 1 GiB read by C ({'sync' if sync else 'async'} 256 KiB reads): "
              f"peak RSS +{(peak - base) / MIB:.1f} MiB", flush=True)
        assert peak - base < limit, (peak - base) / MIB


async def input_to_file_and_back():
    import hashlib
    import gasyncbridge.gio  # noqa: F401  (reading back through the reader API)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "spliced.bin")
        pieces = [os.urandom(n) for n in (1, 0, 4096, 100_000, 7, 3 * MIB + 5, 0, 65536)]

        async def gen():
            for p in pieces:
                yield p
            yield bytearray(b"tail")
            yield memoryview(b"0123456789")[::2]   # not contiguous: copied

        n, error = await c.splice_to(gen(), path)
        expected = b"".join(pieces) + b"tail" + b"02468"
        assert error is None, error
        assert n == len(expected)
        with open(path, "rb") as f:
            assert f.read() == expected
        reader = await gasyncbridge.gio.open_read(path)
        got = bytearray()
        async for chunk in reader.iter_chunks(50_000):
            got += chunk
        assert hashlib.sha256(got).digest() == hashlib.sha256(expected).digest()


async def input_read_sizes():
    """Chunks bigger and smaller than the read buffer, sync and async."""
    async def gen():
        for i in range(300):
            yield bytes([i % 251]) * 1000
    for sync in (True, False):
        for bufsize in (1, 7, 1000, 4096, 1 << 20):
            if bufsize == 1 and not sync:
                continue  # 300k async reads: slow for no new coverage
            (got, reads, bad), error = await c.read_all(gen(), bufsize, sync, 1000)
            assert error is None and got == 300_000 and bad == -1, (bufsize, got, bad)
            assert reads >= 300_000 // bufsize


async def input_lines():
    async def gen():
        yield b"first li"
        yield b"ne\nsecond line\nthi"
        yield b""
        yield b"rd"
        yield b"\n\nlast, no newline"
    lines, error = await c.read_lines(gen())
    assert error is None, error
    assert lines == [b"first line", b"second line", b"third", b"", b"last, no newline"], lines


async def input_subprocess():
    data = os.urandom(300_000)   # more than a pipe holds

    async def gen():
        for i in range(0, len(data), 10_000):
            await asyncio.sleep(0)
            yield data[i:i + 10_000]
    out, error = await c.subprocess_cat(gen())
    assert error is None, error
    assert out == data


async def input_errors():
    # not bytes: a clear error from the read that meets it, after the data before
    async def gen():
        yield b"abc"
        yield "text"

    (got, reads, bad), error = await c.read_all(gen(), 2, False, 0)
    assert got == 3
    assert isinstance(error, gasyncbridge_glib_error()), repr(error)
    assert "bytes-like object, not 'str'" in str(error)

    async def gen2():
        yield b"x" * 10
        raise PermissionError(13, "no way")

    (got, reads, bad), error = await c.read_all(gen2(), 4, True, 0)
    assert got == 10 and isinstance(error, PermissionError), (got, error)

    for bad in (None, 3, b"bytes are not async"):
        try:
            c.read_all(bad, 10, False, 0)
        except ValueError as exc:
            assert "not an async iterable" in str(exc)
        else:
            raise AssertionError("no error")
    # the bridge still works
    (got, reads, bad), error = await c.read_all(pattern_chunks(10 * 4096, 4096), 4096, False, 4096)
    assert (got, bad, error) == (10 * 4096, -1, None)


def gasyncbridge_glib_error():
    return c.classes()[0]


async def input_close_runs_aclose():
    log = Log()
    data, error = await c.read_then_close(numbers_bytes(log), 5)
    assert error is None, error
    assert data == b"01234"
    assert log.events == ["finally"], log.events

    class Failing:
        def __aiter__(self):
            return self

        async def __anext__(self):
            return b"z"

        async def aclose(self):
            raise OSError(5, "aclose I/O error")

    data, error = await c.read_then_close(Failing(), 3)
    assert data == b"zzz"
    assert isinstance(error, OSError) and error.errno == 5, repr(error)


async def numbers_bytes(log):
    try:
        i = 0
        while True:
            yield str(i % 10).encode()
            i += 1
    finally:
        log.events.append("finally")


async def input_sync_read_refused():
    message = c.sync_read_here(numbers_bytes(Log()))
    assert "deadlock" in message and "read_async" in message, message
    message = await c.sync_read_on_runtime(numbers_bytes(Log()))
    assert "runtime thread" in message and "read_async" in message, message


# ---- GabChannel ---------------------------------------------------------------

async def channel_many_producers(threads, per_thread, capacity):
    receiver = c.channel_producers(threads, per_thread, capacity, None)
    got = []
    worst = 0
    async for item in receiver:
        got.append(tuple(item))
        # sends completed minus items taken: never more than the capacity
        worst = max(worst, c.sent_count() - len(got))
    assert len(got) == threads * per_thread, len(got)
    assert len(set(got)) == len(got), "duplicates"
    for t in range(threads):
        mine = [i for (tid, i) in got if tid == t]
        assert mine == list(range(per_thread)), (t, mine[:10])
    assert worst <= capacity, (worst, capacity)
    assert "closed" in repr(receiver)


async def channel_slow_consumer():
    receiver = c.channel_producers(3, 100, 4, None)
    got = []
    worst = 0
    async for item in receiver:
        got.append(item)
        worst = max(worst, c.sent_count() - len(got))
        for _ in range(3):
            await asyncio.sleep(0)   # slow: let producers pile up
    assert len(got) == 300 and worst <= 4, (len(got), worst)


async def channel_close_with_error():
    receiver = c.channel_producers(2, 10, 3, "producers gave up")
    got = []
    try:
        async for item in receiver:
            got.append(item)
    except TimeoutError as exc:
        assert "producers gave up" in str(exc)
    else:
        raise AssertionError("no error after the items")
    assert sorted(got) == sorted((t, i) for t in range(2) for i in range(10))
    # after the error, the end
    try:
        await receiver.__anext__()
    except StopAsyncIteration:
        pass
    else:
        raise AssertionError("not at the end")


async def channel_refused_sends():
    receiver, future = c.channel_refusals()
    outcomes, error = await future
    assert error is None
    assert outcomes[0] is None and outcomes[1] is None
    assert isinstance(outcomes[2], asyncio.CancelledError), outcomes
    assert "closed" in str(outcomes[3]), outcomes
    assert [item async for item in receiver] == [0, 1]

    receiver, capsule = c.channel_pair()
    await receiver.aclose()
    _, error = await c.channel_send_one(capsule)
    assert isinstance(error, BrokenPipeError), repr(error)
    del receiver


# ---- StreamReader / StreamWriter made by C ------------------------------------

async def round_trip_through_gio():
    _, StreamReader, StreamWriter = c.classes()
    lines = [b"line %d\n" % i for i in range(2000)]

    async def gen():
        # lines cut at odd places, with empty chunks: the reader must not care
        data = b"".join(lines) + b"last"
        for i in range(0, len(data), 777):
            yield data[i:i + 777]
            if i % 7 == 0:
                yield b""
    reader = c.reader_over_input(gen(), 0)
    assert isinstance(reader, StreamReader)
    got = [line async for line in reader]
    assert got == lines + [b"last"], got[-3:]
    await reader.wait_closed()

    # a generator's exception reaches the reader as itself
    async def failing():
        yield b"partial line"
        raise KeyError("from the generator")
    reader = c.reader_over_input(failing(), 100)
    try:
        await reader.readline()
    except KeyError as exc:
        assert exc.args == ("from the generator",)
    else:
        raise AssertionError("no error")

    writer, contents = c.writer_to_memory()
    assert isinstance(writer, StreamWriter)
    for line in lines:
        writer.write(line)
        await writer.drain()
    await writer.wait_closed()
    assert contents() == b"".join(lines)


async def input_read_on_loop():
    data = os.urandom(25_000)

    async def gen():
        for i in range(0, len(data), 3000):
            yield data[i:i + 3000]
    assert await c.read_on_loop(gen()) == data
