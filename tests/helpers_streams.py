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
