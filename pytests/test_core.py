# SPDX-License-Identifier: LGPL-2.1-or-later
"""The core bridge, end to end: Python awaits C, C awaits Python, cancel both
ways, task locals, loops and threads, process exit."""
import asyncio
import contextvars
import gc
import os
import subprocess
import sys
import textwrap
import threading
import warnings
import weakref

import pytest

import gasyncbridge
import _gab_testmod as tm
import helpers_mod

_TOOLS = os.path.join(os.environ.get("GAB_SOURCE_DIR")
                      or os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")
if _TOOLS not in sys.path:
    sys.path.insert(0, _TOOLS)
import watchdog  # noqa: E402  (every child: a time limit and a stack dump)


# ---- Python awaits C -------------------------------------------------------

def test_await_ready_c_operation(run):
    async def main():
        value = object()
        assert await tm.ready(value) is value
        return [await tm.ready(i) for i in range(100)]

    assert run(main) == list(range(100))


def test_sleep_returns_result_and_waits(run):
    async def main():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        result = await gasyncbridge.sleep(0.05, result="done")
        return result, loop.time() - t0

    result, elapsed = run(main)
    assert result == "done"
    assert elapsed >= 0.04  # a GLib timeout, not an immediate return


def test_run_in_runtime_runs_on_the_runtime_thread(run):
    async def main():
        name = await gasyncbridge.run_in_runtime(lambda: threading.current_thread().name)
        ident = await gasyncbridge.run_in_runtime(threading.get_ident)
        return name, ident

    name, ident = run(main)
    assert ident != threading.get_ident()
    assert name  # a thread Python knows about only as a dummy thread


def test_run_in_runtime_reraises_the_same_exception(run):
    err = KeyError("k")

    def boom():
        raise err

    async def main():
        with pytest.raises(KeyError) as info:
            await gasyncbridge.run_in_runtime(boom)
        assert info.value is err
        assert info.value.__traceback__ is not None
        # an OSError subclass keeps its identity too: no GError trip
        oserr = FileNotFoundError(2, "nope")

        def boom2():
            raise oserr

        with pytest.raises(FileNotFoundError) as info2:
            await gasyncbridge.run_in_runtime(boom2)
        assert info2.value is oserr

    run(main)


def test_c_error_becomes_mapped_exception(run):
    async def main():
        with pytest.raises(FileNotFoundError) as info:
            await tm.fail("g-io-error-quark", 1, "no such thing")  # G_IO_ERROR_NOT_FOUND
        assert info.value.domain == "g-io-error-quark"
        assert info.value.code == 1
        with pytest.raises(gasyncbridge.GLibError) as info:
            await tm.fail("my-domain", 7, "custom")
        assert (info.value.domain, info.value.code, info.value.message) == ("my-domain", 7, "custom")

    run(main)


def test_finish_raising_gives_that_exception(run):
    async def main():
        exc = RuntimeError("from finish")
        with pytest.raises(RuntimeError) as info:
            await tm.finish_raises(exc)
        assert info.value is exc

    run(main)


# ---- C awaits Python -------------------------------------------------------

def test_python_sleep_awaited_from_c(run):
    async def main():
        return await tm.await_py(asyncio.sleep(0.01, "slept"))

    assert run(main) == "slept"


def test_c_future_handed_to_python_and_awaited_back_in_c(run):
    async def coro():
        return await tm.ready(41) + 1

    async def main():
        return await tm.await_py(coro())

    assert run(main) == 42


def test_c_awaits_non_coroutine_awaitables(run):
    class Awaitable:
        def __await__(self):
            yield from asyncio.sleep(0).__await__()
            return "custom"

    async def main():
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(None, lambda: "executor")
        plain = loop.create_future()
        loop.call_soon(plain.set_result, "future")
        task = asyncio.ensure_future(asyncio.sleep(0, "task"))
        return (await tm.await_py(fut), await tm.await_py(plain),
                await tm.await_py(task), await tm.await_py(Awaitable()))

    assert run(main) == ("executor", "future", "task", "custom")


def test_c_awaits_python_exception_same_object(run):
    class MyError(Exception):
        pass

    err = MyError("deep")

    async def raiser():
        raise err

    async def main():
        with pytest.raises(MyError) as info:
            await tm.await_py(raiser())
        assert info.value is err

    run(main)


def test_gab_call_with_variants(run):
    async def main():
        assert await tm.call("helpers_mod", "add", (2, 3)) == 5
        assert await tm.call("helpers_mod", "add_sync", ("a", "b")) == "ab"
        assert await tm.call("helpers_mod", "echo", ({"k": [1, 2]},)) == {"k": [1, 2]}
        assert await tm.call("helpers_mod", "nothing") is None
        with pytest.raises(ValueError, match="bad"):
            await tm.call("helpers_mod", "fail", ("bad",))
        with pytest.raises(gasyncbridge.GLibError, match="set") as info:
            await tm.call("helpers_mod", "unconvertible")
        assert info.value.domain == "gab-error-quark"
        with pytest.raises(ModuleNotFoundError):
            await tm.call("no_such_module_here", "f")
        with pytest.raises(AttributeError):
            await tm.call("helpers_mod", "no_such_function")
        # and it all still works afterwards
        assert await tm.call("helpers_mod", "add", (1, 1)) == 2

    run(main)


def test_into_future_and_call_from_the_loop_thread(run):
    async def coro():
        await asyncio.sleep(0)
        return "here"

    async def main():
        assert await tm.into_future_here(coro()) == "here"
        assert await tm.call_here("helpers_mod", "nothing") is None
        with pytest.raises(gasyncbridge.GLibError) as info:
            await tm.into_future_here(5)
        assert info.value.domain == "gab-error-quark"
        assert "not awaitable" in str(info.value)
        assert await tm.into_future_here(coro()) == "here"

    run(main)


# ---- cancellation ----------------------------------------------------------

async def _runtime_sync_point():
    # The runtime runs work in FIFO order: once this returns, everything
    # queued for the runtime thread before it has run.
    await gasyncbridge.run_in_runtime(lambda: None)


def test_cancel_python_side_cancels_c_on_runtime_thread(run):
    async def main():
        before = tm.stats()
        task = asyncio.ensure_future(tm.never())
        await _runtime_sync_point()  # started
        assert tm.stats()["never_started"] == before["never_started"] + 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(1000):
            await _runtime_sync_point()
            if tm.stats()["never_finished"] == before["never_finished"] + 1:
                break
        stats = tm.stats()
        assert stats["never_finished"] == before["never_finished"] + 1
        assert stats["never_cancel_thread"] == "gab-runtime"

    run(main)


def test_dropped_future_cancels_its_operation(run):
    """Python drops a pending future: the bridge notices on its next sweep
    (every 0.1 s) and cancels the operation."""
    async def main():
        loop = asyncio.get_running_loop()
        before = tm.stats()
        fut = tm.never()
        await _runtime_sync_point()
        del fut
        assert await loop.run_in_executor(None, tm.wait_never_finished,
                                          before["never_finished"] + 1, 10)
        # a future someone still listens to is not dropped
        seen = []
        fut = tm.never()
        fut.add_done_callback(seen.append)
        alive = weakref.ref(fut)
        del fut
        await _runtime_sync_point()
        assert not await loop.run_in_executor(None, tm.wait_never_finished,
                                              before["never_finished"] + 2, 0.3)
        assert seen == [] and alive() is not None
        alive().cancel()
        assert await loop.run_in_executor(None, tm.wait_never_finished,
                                          before["never_finished"] + 2, 10)
        await asyncio.sleep(0)
        assert len(seen) == 1 and seen[0].cancelled()

    run(main)


# ---- GAB_FUTURE_CANCEL_WAITS: futures whose cancel() waits for GIO ----------

WAITS = tm.FUTURE_CANCEL_WAITS


def test_cancel_waits_until_the_operation_reports_back(run):
    """cancel() returns True, asks GIO to stop (on the runtime thread), and
    the future stays pending until the operation has reported back; then
    it is cancelled with cancel()'s message, whatever GIO came to."""
    async def main():
        loop = asyncio.get_running_loop()
        fut = tm.gated(WAITS)
        assert isinstance(fut, asyncio.Future)
        assert isinstance(fut, gasyncbridge.gio.Operation)
        assert await loop.run_in_executor(None, tm.gated_wait, False, 10)
        assert fut.cancel("enough") is True
        assert await loop.run_in_executor(None, tm.gated_wait, True, 10)
        assert not fut.done()            # GIO was asked, has not answered
        assert fut.cancel("again") is True
        assert tm.gated_finish(False)    # GIO succeeded after all: still a cancel
        with pytest.raises(asyncio.CancelledError) as excinfo:
            await fut
        assert excinfo.value.args == ("enough",)
        assert fut.cancelled()
        # A message that is a tuple stays one argument.
        fut = tm.gated(WAITS)
        assert await loop.run_in_executor(None, tm.gated_wait, False, 10)
        assert fut.cancel(("a", "b")) is True
        assert await loop.run_in_executor(None, tm.gated_wait, True, 10)
        assert tm.gated_finish(False)
        with pytest.raises(asyncio.CancelledError) as excinfo:
            await fut
        assert excinfo.value.args == (("a", "b"),)
        assert await tm.ready("still works") == "still works"

    run(main)


def test_without_cancel_waits_cancel_is_at_once(run):
    """The flags-0 future is a plain one: cancel() completes it at once."""
    async def main():
        loop = asyncio.get_running_loop()
        fut = tm.gated(0)
        assert not isinstance(fut, gasyncbridge.gio.Operation)
        assert await loop.run_in_executor(None, tm.gated_wait, False, 10)
        assert fut.cancel() is True
        assert fut.cancelled()
        assert await loop.run_in_executor(None, tm.gated_wait, True, 10)
        assert tm.gated_finish(False)

    run(main)


def test_cancel_waits_gio_cancelled_is_a_cancel(run):
    """G_IO_ERROR_CANCELLED without cancel() cancels the future too."""
    async def main():
        loop = asyncio.get_running_loop()
        fut = tm.gated(WAITS)
        assert await loop.run_in_executor(None, tm.gated_wait, False, 10)
        assert tm.gated_finish(True)
        with pytest.raises(asyncio.CancelledError):
            await fut
        assert fut.cancelled()

    run(main)


def test_cancel_waits_finished_cancel_is_false(run):
    """cancel() of a finished operation returns False and changes nothing."""
    async def main():
        fut = tm.ready_flags("done", WAITS)
        assert await fut == "done"
        assert fut.cancel() is False
        assert fut.result() == "done" and not fut.cancelled()

    run(main)


def test_cancel_waits_dropped_future_cancels_its_operation(run):
    """A pending Operation that Python drops still cancels its operation."""
    async def main():
        loop = asyncio.get_running_loop()
        before = tm.stats()
        fut = tm.never_flags(WAITS)
        alive = weakref.ref(fut)
        del fut
        assert await loop.run_in_executor(None, tm.wait_never_finished,
                                          before["never_finished"] + 1, 10)
        await _runtime_sync_point()
        gc.collect()
        assert alive() is None
        assert await tm.ready("still works") == "still works"

    run(main)


def test_cancel_waits_unreferenced_task_completes(run):
    """A task that nobody references, awaiting an Operation, is kept alive
    by the bridge and completes (gc.collect() meanwhile)."""
    async def main():
        loop = asyncio.get_running_loop()
        finished = asyncio.Event()
        results = []

        async def waiter():
            results.append(await tm.gated(WAITS))
            finished.set()

        task = loop.create_task(waiter())
        alive = weakref.ref(task)
        del task
        assert await loop.run_in_executor(None, tm.gated_wait, False, 10)
        gc.collect()
        assert alive() is not None
        assert tm.gated_finish(False)
        await finished.wait()
        assert results == [None]

    run(main)


def test_cancel_waits_bad_flags(run):
    """Unknown flags: a ValueError naming them; the bridge stays usable."""
    async def main():
        with pytest.raises(ValueError, match="unknown flags 0x80"):
            tm.ready_flags("x", 1 << 7)
        assert await tm.ready_flags("ok", WAITS) == "ok"

    run(main)


def test_c_cancels_python_task_and_it_stops(run):
    state = {}

    async def victim(started):
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            state["finally"] = True

    async def main():
        started = asyncio.Event()
        cancellable = tm.cancellable_new()
        fut = tm.into_future_here(victim(started), cancellable)
        await started.wait()
        tm.cancellable_cancel(cancellable)
        with pytest.raises(asyncio.CancelledError):
            await fut
        assert state["finally"]  # the Python side really stopped first

    run(main)


def test_c_cancels_python_at_or_before_its_first_step(run):
    """C (the runtime thread) starts awaiting coroutines and is cancelled at
    once, 200 times: the start and the cancel often reach the loop in one
    batch, so the task is cancelled before its first step and the
    coroutine never runs. Every await ends cancelled, and no coroutine is
    left 'never awaited'."""
    started = []

    async def maybe_runs(i):
        started.append(i)
        await asyncio.sleep(0)

    async def main():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            futs = []
            for i in range(200):
                fut = tm.await_py(maybe_runs(i))
                fut.cancel()
                futs.append(fut)
            outcomes = await asyncio.gather(*futs, return_exceptions=True)
            gc.collect()
        assert all(isinstance(o, asyncio.CancelledError) for o in outcomes), outcomes
        assert [w for w in caught if "never awaited" in str(w.message)] == []
        assert await tm.await_py(asyncio.sleep(0, "after")) == "after"
        return len(started)

    assert run(main) <= 200


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout and TaskGroup: 3.11")
def test_python_awaited_by_c_is_a_real_task(run):
    """A coroutine C awaits runs as the body of a task: current_task() is
    set, asyncio.timeout() and TaskGroup work inside it, and a timeout
    there reaches C as TimeoutError."""
    async def uses_task_features(tag):
        assert asyncio.current_task() is not None
        async with asyncio.timeout(5):
            async with asyncio.TaskGroup() as group:
                child = group.create_task(asyncio.sleep(0, tag))
        return child.result()

    async def times_out():
        async with asyncio.timeout(0.01):
            await asyncio.sleep(3600)

    async def main():
        assert await tm.into_future_here(uses_task_features("here")) == "here"
        assert await tm.await_py(uses_task_features("runtime")) == "runtime"
        with pytest.raises(TimeoutError):
            await tm.await_py(times_out())

    run(main)


def test_cancel_from_python_through_c_to_python(run):
    state = {}

    async def inner(started):
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            state["inner_finally"] = True

    async def main():
        started = asyncio.Event()
        task = asyncio.ensure_future(tm.await_py(inner(started)))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(1000):
            if state.get("inner_finally"):
                break
            await _runtime_sync_point()
        assert state.get("inner_finally")

    run(main)


def test_cancel_near_completion_race(run):
    async def main():
        loop = asyncio.get_running_loop()
        outcomes = {"result": 0, "cancelled": 0}
        for i in range(300):
            fut = tm.ready(i)
            # cancel at a different point relative to the completion each time
            for _ in range(i % 4):
                await asyncio.sleep(0)
            if i % 3 == 0:
                loop.call_soon(fut.cancel)
            else:
                fut.cancel()
            try:
                assert await fut == i
                outcomes["result"] += 1
            except asyncio.CancelledError:
                outcomes["cancelled"] += 1
        await _runtime_sync_point()
        return outcomes

    outcomes = run(main)
    assert outcomes["result"] + outcomes["cancelled"] == 300
    assert outcomes["cancelled"] > 0


# ---- task locals, loops, threads -------------------------------------------

def test_contextvars_survive_python_c_python_twice(run):
    cv = helpers_mod.var

    async def innermost():
        return cv.get()

    async def middle():
        first = cv.get()
        second = await tm.await_py(innermost())
        via_call = await tm.call("helpers_mod", "read_var")
        return first, second, via_call

    async def main():
        cv.set("caller")
        return await tm.await_py(middle())

    assert run(main) == ("caller", "caller", "caller")


def test_run_in_runtime_sees_callers_contextvars(run):
    cv = contextvars.ContextVar("cv")

    async def main():
        cv.set(17)
        return await gasyncbridge.run_in_runtime(cv.get)

    assert run(main) == 17


def test_two_asyncio_runs_in_a_row_on_a_non_main_thread():
    results = []

    async def main(i):
        return await tm.ready(i) + await tm.await_py(asyncio.sleep(0, i))

    def worker():
        results.append(asyncio.run(main(1)))
        results.append(asyncio.run(main(2)))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert results == [2, 4]


def test_two_loops_in_two_threads_get_only_their_own_results():
    results = {}
    barrier = threading.Barrier(2)

    async def main(tag):
        barrier.wait()
        values = await asyncio.gather(*[tm.ready((tag, i)) for i in range(2000)])
        values += await asyncio.gather(*[tm.await_py(asyncio.sleep(0, (tag, i)))
                                         for i in range(200)])
        return values

    def worker(tag):
        results[tag] = asyncio.run(main(tag))

    threads = [threading.Thread(target=worker, args=(tag,)) for tag in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for tag in "ab":
        assert [v[0] for v in results[tag]] == [tag] * 2200
        assert [v[1] for v in results[tag]] == list(range(2000)) + list(range(200))


def test_many_concurrent_operations(run):
    async def main():
        return await asyncio.gather(*[tm.ready(i) for i in range(20000)])

    assert run(main) == list(range(20000))


# ---- bad input ---------------------------------------------------------------

def test_no_running_loop_raises_runtime_error_at_the_call():
    with pytest.raises(RuntimeError, match="no running asyncio event loop"):
        gasyncbridge.sleep(0)
    with pytest.raises(RuntimeError, match="no running asyncio event loop"):
        tm.ready(1)
    with pytest.raises(RuntimeError):
        gasyncbridge.run_in_runtime(print)
    # and the bridge still works

    async def main():
        return await tm.ready(3)

    assert asyncio.run(main()) == 3


def test_bad_arguments(run):
    async def main():
        for bad in ["1", None, [], object()]:
            with pytest.raises(TypeError):
                gasyncbridge.sleep(bad)
        with pytest.raises(ValueError):
            gasyncbridge.sleep(float("nan"))
        with pytest.raises(TypeError):
            gasyncbridge.sleep()
        with pytest.raises(TypeError):
            gasyncbridge.run_in_runtime()
        with pytest.raises(TypeError):
            gasyncbridge.run_in_runtime(42)
        with pytest.raises(OverflowError):
            gasyncbridge.sleep(10 ** 400)
        assert await gasyncbridge.sleep(-5, "negative is zero") == "negative is zero"
        # await_py of a non-awaitable: a clear GError from C
        with pytest.raises(gasyncbridge.GLibError, match="not awaitable"):
            await tm.await_py(42)
        assert await gasyncbridge.sleep(0, "still works") == "still works"

    run(main)


def test_huge_and_infinite_sleeps_cancel_cleanly(run):
    async def main():
        for seconds in (float("inf"), 1e12, 5e6):
            task = asyncio.ensure_future(gasyncbridge.sleep(seconds))
            await _runtime_sync_point()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        return await gasyncbridge.sleep(0, 1)

    assert run(main) == 1




# ---- process-level behaviour ----------------------------------------------------

def run_script(source, timeout=60):
    env = dict(os.environ)
    return watchdog.run([sys.executable, "-c", textwrap.dedent(source)], timeout, env=env)


def test_process_exit_with_pending_operations():
    proc = run_script("""
        import asyncio, gasyncbridge, _gab_testmod as tm
        async def forever():
            await asyncio.sleep(3600)
        async def main():
            keep = [tm.never() for _ in range(100)]
            keep += [gasyncbridge.sleep(3600) for _ in range(100)]
            keep += [asyncio.ensure_future(tm.await_py(forever())) for _ in range(100)]
            await gasyncbridge.run_in_runtime(lambda: None)
            print("pending", len(keep), flush=True)
            return keep
        loop = asyncio.new_event_loop()
        keep = loop.run_until_complete(main())
        # exit with all of them pending and the loop still open
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "pending 300"
    assert proc.stderr == ""


def test_completion_after_loop_close_is_dropped_quietly():
    proc = run_script("""
        import asyncio, gc, gasyncbridge, _gab_testmod as tm
        async def start():
            return [gasyncbridge.sleep(0.05, i) for i in range(50)] + [tm.ready(i) for i in range(50)]
        loop = asyncio.new_event_loop()
        futs = loop.run_until_complete(start())
        loop.close()
        # the completions arrive now, for a closed loop
        asyncio.run(asyncio.sleep(0.2))
        del futs, loop
        gc.collect()
        async def alive():
            return await tm.ready("alive")
        print(asyncio.run(alive()))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "alive"
    assert proc.stderr == ""


def test_shutdown_fails_pending_with_closed_and_restarts(run):
    async def main():
        fut = gasyncbridge.sleep(3600)
        await _runtime_sync_point()
        await asyncio.get_running_loop().run_in_executor(None, gasyncbridge.shutdown)
        with pytest.raises(gasyncbridge.GLibError) as info:
            await fut
        assert info.value.code == 18  # G_IO_ERROR_CLOSED
        with pytest.raises(gasyncbridge.GLibError):
            gasyncbridge.sleep(0)  # implicit use after shutdown: closed
        gasyncbridge.init()
        return await gasyncbridge.sleep(0, "restarted")

    assert run(main) == "restarted"


def test_fork_child_fails_clearly_and_can_init_again():
    proc = run_script("""
        import asyncio, os, gasyncbridge, _gab_testmod as tm
        loop = asyncio.new_event_loop()
        async def start():
            return [tm.never() for _ in range(3)] + [gasyncbridge.sleep(3600)]
        pending = loop.run_until_complete(start())   # runtime busy with them
        pid = os.fork()
        if pid == 0:
            import faulthandler
            faulthandler.dump_traceback_later(30, exit=True)   # its own limit
            # the parent's operations can never complete here: they failed
            print("child pending:", sorted({type(f.exception()).__name__ for f in pending}))
            async def m():
                return await gasyncbridge.sleep(0, "child ok")
            try:
                asyncio.run(m())
            except gasyncbridge.GLibError as e:
                print("child without init:", "fork" in str(e))
            gasyncbridge.init()
            print("child after init:", asyncio.run(m()))
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print("child exit:", os.waitstatus_to_exitcode(status))
        async def p():
            return await gasyncbridge.sleep(0, "parent ok")
        print(loop.run_until_complete(p()))
        for f in pending:
            f.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
    """, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "child pending: ['RuntimeError']",
        "child without init: True",
        "child after init: child ok",
        "child exit: 0",
        "parent ok",
    ]


def test_fork_inside_a_running_loop_child_sees_no_running_loop():
    """asyncio says that a child of fork() has no running loop, even on the
    thread whose coroutine forked (the loop belongs to the parent); so does
    every bridge call, which finds the running loop without asking asyncio
    on Python 3.9 to 3.11 (gab_py_running_loop)."""
    proc = run_script("""
        import asyncio, os, gasyncbridge, _gab_testmod as tm
        async def m():
            return await gasyncbridge.sleep(0, "child ok")
        async def main():
            assert await tm.ready(1) == 1           # the bridge knows this loop
            pid = os.fork()
            if pid == 0:
                import faulthandler
                faulthandler.dump_traceback_later(30, exit=True)   # its own limit
                gasyncbridge.init()
                print("asyncio in child:", asyncio._get_running_loop())
                try:
                    tm.ready(2)
                except RuntimeError as e:
                    print("bridge in child:", "no running asyncio event loop" in str(e))
                print("child, new loop:", asyncio.run(m()))
                os._exit(0)
            status = await asyncio.get_running_loop().run_in_executor(
                None, lambda: os.waitpid(pid, 0)[1])
            print("child exit:", os.waitstatus_to_exitcode(status))
            return await tm.ready("parent ok")
        print(asyncio.run(main()))
    """, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "asyncio in child: None",
        "bridge in child: True",
        "child, new loop: child ok",
        "child exit: 0",
        "parent ok",
    ]


def test_completions_are_delivered_in_bounded_slices(run):
    """A batch of completions never holds the loop for much longer than the
    delivery budget (GAB_LOOP_BUDGET_USEC_DEFAULT, 1 ms): each completion
    here costs 300 us of loop time, so at most four run per loop iteration,
    in order, and the loop's own callbacks run between the slices. A
    preempted thread only makes slices smaller, never larger."""
    n, cost_usec, budget_usec = 40, 300, 1000
    per_slice_max = -(-budget_usec // cost_usec) + 1

    async def main():
        loop = asyncio.get_running_loop()
        ticks = 0
        seen = []

        def tick():
            nonlocal ticks
            ticks += 1
            if len(seen) < n:
                loop.call_soon(tick)

        def recorder(i):
            return lambda: seen.append((i, ticks)) or i

        futures = [tm.slow(recorder(i), cost_usec) for i in range(n)]
        # The whole batch is in the loop's queue before the loop looks.
        assert tm.wait_slow_queued(n, 10.0)
        loop.call_soon(tick)
        assert await asyncio.gather(*futures) == list(range(n))
        return seen

    seen = run(main)
    assert [i for i, _ in seen] == list(range(n)), "completions out of order"
    per_tick = {}
    for _, tick in seen:
        per_tick[tick] = per_tick.get(tick, 0) + 1
    assert max(per_tick.values()) <= per_slice_max, per_tick
    assert len(per_tick) >= n // per_slice_max, per_tick
    # The bridge still works afterwards.
    async def again():
        return await tm.ready(7)

    assert run(again) == 7
