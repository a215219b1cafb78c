# SPDX-License-Identifier: LGPL-2.1-or-later
"""Stress and deadlock proofing: memory stays flat over a million
operations; the GIL kept busy (by Python threads, by the loop itself, by C
code) while the runtime thread needs it; C awaiting Python while Python
awaits C, 20 levels deep, with the runtime thread and with C worker
threads; and the watchdog that turns any hang here into a failure with
every thread's stack (Python's, and native ones through gdb).

This file is the meson suite 'stress' (also in 'python'); it takes about
a minute. GAB_STRESS_OPS sets the operation count of the memory test
(default 1,000,000 per loop kind).
"""
import asyncio
import gc
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import gasyncbridge
import _gab_faultmod as fm
import _gab_testmod as tm
from conftest import GI_MISSING, NO_GI

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("GAB_SOURCE_DIR") or os.path.dirname(HERE)
TOOLS = os.path.join(SOURCE_DIR, "tools")
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)
import watchdog  # noqa: E402

MODULE = __name__   # gab_call_async imports this module by name
DEPTH = 20


@pytest.fixture(autouse=True)
def _watchdog(request):
    with watchdog.for_pytest(request, 150):
        yield


async def runtime_sync():
    await gasyncbridge.run_in_runtime(lambda: None)


async def echo(value):
    await asyncio.sleep(0)
    return value


def spin(stop):
    """Pure Python that keeps the GIL busy until `stop` is set."""
    n = 0
    while not stop.is_set():
        for i in range(1000):
            n += i
    return n


class Spinners:
    """Python threads that keep the GIL busy while the block runs."""

    def __init__(self, n=2):
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=spin, args=(self.stop,)) for _ in range(n)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()
        return False


# ---- memory: RSS stays flat over a million operations ------------------------

def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def operations(n):
    """n operations, one after the other or in batches, of every kind:
    C operations, sleeps, runtime calls, C awaiting Python (runtime thread
    and loop thread), cancelled and failing ones."""
    gate = fm.gate_new()
    done = 0
    while done < n:
        # 1000 C operations at once
        values = await asyncio.gather(*[tm.ready(i) for i in range(1000)])
        assert values[-1] == 999
        # 200 one after the other
        for i in range(200):
            assert await tm.ready(i) == i
        # 100 sleeps and 50 runtime calls at once, 20 each one by one
        await asyncio.gather(*[gasyncbridge.sleep(0) for _ in range(100)],
                             *[gasyncbridge.run_in_runtime(int) for _ in range(50)])
        for _ in range(20):
            await gasyncbridge.sleep(0)
            await gasyncbridge.run_in_runtime(int)
        # C awaits Python: 50 from the runtime thread, 50 from the loop thread
        await asyncio.gather(*[tm.await_py(echo(i)) for i in range(50)],
                             *[tm.into_future_here(echo(i)) for i in range(50)])
        # 50 cancelled while pending, 20 failing
        futs = [fm.gated(gate, i) for i in range(50)]
        for f in futs:
            f.cancel()
        outcomes = await asyncio.gather(*futs, *[tm.fail("my-domain", 1, "no")
                                                 for _ in range(20)],
                                        return_exceptions=True)
        assert len(outcomes) == 70
        done += 1000 + 200 + 150 + 40 + 100 + 70
    await runtime_sync()
    return done


def test_rss_stable_over_a_million_operations(run):
    total = int(os.environ.get("GAB_STRESS_OPS", "1000000"))

    async def main():
        before = fm.stats()
        await operations(100_000)            # warm up: pools, caches, arenas
        gc.collect()
        rss0, objects0 = rss_bytes(), len(gc.get_objects())
        t0 = time.monotonic()
        n = await operations(total)
        took = time.monotonic() - t0
        await tm.ready(None)
        gc.collect()
        rss1, objects1 = rss_bytes(), len(gc.get_objects())
        after = fm.stats()
        return n, took, rss1 - rss0, objects1 - objects0, after["freed"] - before["freed"], \
            after["started"] - before["started"]

    n, took, grown, objects, freed, started = run(main)
    print(f"\n{run.kind}: {n} operations in {took:.1f} s ({n / took:.0f}/s); "
          f"RSS grew by {grown / 1024:.0f} KiB; Python objects by {objects}")
    assert n >= total
    # A leak of 8 bytes per operation would be 8 MB here.
    assert grown < 4 * 1024 * 1024, f"RSS grew by {grown} bytes over {n} operations"
    assert objects < 1000, f"{objects} more Python objects after {n} operations"
    assert freed == started      # every gated operation's data was freed


# ---- the GIL kept busy while the runtime thread needs it ---------------------

@pytest.mark.skipif(NO_GI, reason=GI_MISSING)
def test_gil_busy_in_python_threads_while_the_runtime_needs_it(run):
    """Threads spin in Python (holding the GIL but for the switch interval)
    while the loop asks the runtime thread to run Python (run_in_runtime,
    call_gio) and C awaits Python both ways."""
    from gi.repository import Gio, GLib

    async def main():
        f = Gio.File.new_for_path(__file__)
        with Spinners(2):
            for i in range(100):
                assert await gasyncbridge.run_in_runtime(lambda: i) == i
            values = await asyncio.gather(*[gasyncbridge.run_in_runtime(lambda i=i: i)
                                            for i in range(500)])
            assert values == list(range(500))
            infos = await asyncio.gather(*[
                gasyncbridge.call_gio(f.query_info_async, "standard::size",
                                      Gio.FileQueryInfoFlags.NONE, GLib.PRIORITY_DEFAULT)
                for _ in range(100)])
            assert {i.get_size() for i in infos} == {os.path.getsize(__file__)}
            assert await asyncio.gather(*[tm.await_py(echo(i)) for i in range(300)]) \
                == list(range(300))
            assert await asyncio.gather(*[tm.call(MODULE, "echo", (i,)) for i in range(100)]) \
                == list(range(100))

    run(main)


def test_gil_busy_on_the_loop_thread_while_the_runtime_needs_it(run):
    """The loop thread itself computes in Python right after asking the
    runtime thread for work that needs the GIL: the runtime thread gets the
    GIL in between (it is not starved until the loop yields), and all
    completes."""
    async def main():
        ran_at = []
        futs = [gasyncbridge.run_in_runtime(lambda: ran_at.append(time.monotonic()))
                for _ in range(200)]
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < 0.3:     # busy, no await
            for i in range(1000):
                n += i
        t1 = time.monotonic()
        await asyncio.gather(*futs)
        return sum(t0 <= t <= t1 for t in ran_at)

    ran_while_busy = run(main)
    assert ran_while_busy > 0, "the runtime thread never got the GIL from a busy loop"


def test_c_code_holding_the_gil_while_the_runtime_needs_it(run):
    """C code keeps the GIL without ever releasing it (a badly behaved
    extension): the runtime thread waits for it, nothing deadlocks, all
    completes once the GIL is free. Also around gab_shutdown()."""
    async def main():
        loop = asyncio.get_running_loop()
        futs = [gasyncbridge.run_in_runtime(lambda i=i: i) for i in range(50)]
        futs += [tm.await_py(echo(i)) for i in range(50)]
        fm.hold_gil(0.2)
        assert await asyncio.gather(*futs) == list(range(50)) * 2
        # a thread holds the GIL in C while another shuts the runtime down
        holder = threading.Thread(target=fm.hold_gil, args=(0.2,))
        pending = [gasyncbridge.run_in_runtime(lambda: 1) for _ in range(20)]
        holder.start()
        await loop.run_in_executor(None, gasyncbridge.shutdown)
        await loop.run_in_executor(None, holder.join)
        outcomes = await asyncio.gather(*pending, return_exceptions=True)
        assert all(o == 1 or isinstance(o, gasyncbridge.GLibError) for o in outcomes)
        gasyncbridge.init()
        assert await gasyncbridge.run_in_runtime(lambda: "again") == "again"

    run(main)


def test_runtime_function_waiting_for_the_loop(run):
    """A function on the runtime thread blocks until the loop thread has
    done something for it: no lock of the bridge is held meanwhile."""
    async def main():
        loop = asyncio.get_running_loop()

        async def on_loop(i):
            await asyncio.sleep(0)
            return await tm.into_future_here(echo(i))

        def on_runtime(i):
            # blocks the runtime thread; the loop thread is free
            return asyncio.run_coroutine_threadsafe(on_loop(i), loop).result(30)

        for i in range(50):
            assert await gasyncbridge.run_in_runtime(on_runtime, i) == i

    run(main)


# ---- C awaits Python while Python awaits C, 20 deep ------------------------------

async def nest_runtime(n):
    """Python awaits C (await_py, started on the runtime thread), which
    awaits Python (the next level), DEPTH times."""
    if n == 0:
        return await tm.ready("bottom")
    return await tm.await_py(nest_runtime(n - 1))


async def nest_threads(n):
    """Python awaits C, which awaits Python from a C worker thread of its
    own (gab_call_async, blocked in its own GMainContext until done)."""
    if n == 0:
        return await tm.ready("bottom")
    return await fm.call_in_thread(MODULE, "nest_threads", (n - 1,))


async def nest_mixed(n):
    """Every topology in turn: runtime thread, C thread, gab_call_async from
    the runtime thread, C on the loop thread."""
    if n == 0:
        return await tm.ready("bottom")
    how = n % 4
    if how == 0:
        return await tm.await_py(nest_mixed(n - 1))
    if how == 1:
        return await fm.call_in_thread(MODULE, "nest_mixed", (n - 1,))
    if how == 2:
        return await tm.call(MODULE, "nest_mixed", (n - 1,))
    return await tm.into_future_here(nest_mixed(n - 1))


@pytest.mark.parametrize("nest,width", [(nest_runtime, 50), (nest_threads, 4), (nest_mixed, 8)],
                         ids=["runtime-thread", "c-worker-threads", "mixed"])
def test_chain_20_deep(run, nest, width):
    async def main():
        for busy in (False, True):
            with Spinners(2 if busy else 0):
                results = await asyncio.gather(*[nest(DEPTH) for _ in range(width)])
            assert results == ["bottom"] * width

    run(main)


_chain = {}


async def nest_cancellable(n, how):
    """Like the chains above; the bottom waits forever, and every level
    records that it saw the cancellation come down."""
    try:
        if n == 0:
            _chain["bottom_started"].set()
            await asyncio.get_running_loop().create_future()
        elif how == "runtime" or (how == "mixed" and n % 2 == 0):
            await tm.await_py(nest_cancellable(n - 1, how))
        else:
            await fm.call_in_thread(MODULE, "nest_cancellable", (n - 1, how))
    except asyncio.CancelledError:
        _chain["cancelled"].add(n)
        raise


@pytest.mark.parametrize("how", ["runtime", "threads", "mixed"])
def test_cancel_reaches_the_bottom_of_a_20_deep_chain(run, how):
    async def main():
        _chain["bottom_started"] = asyncio.Event()
        _chain["cancelled"] = set()
        top = asyncio.ensure_future(nest_cancellable(DEPTH, how))
        await _chain["bottom_started"].wait()
        top.cancel()
        with pytest.raises(asyncio.CancelledError):
            await top
        while len(_chain["cancelled"]) < DEPTH + 1:
            await runtime_sync()
        return _chain["cancelled"]

    assert run(main) == set(range(DEPTH + 1))


# ---- the watchdog itself ----------------------------------------------------------

HANG_SCRIPT = """
import sys, threading
sys.path.insert(0, sys.argv[1])
import watchdog, _gab_faultmod as fm, gasyncbridge, asyncio
async def warm():
    return await gasyncbridge.run_in_runtime(lambda: 1)
asyncio.run(warm())               # a runtime thread exists
watchdog.Watchdog(1, label="deliberate hang").arm()
# every thread stuck: one in C holding the GIL, the main one waiting for it
threading.Thread(target=fm.hold_gil, args=(3600.0,), name="gil-hog", daemon=True).start()
threading.Event().wait()
"""


def test_watchdog_turns_a_hang_into_a_failure_with_all_stacks():
    env = dict(os.environ)
    t0 = time.monotonic()
    proc = watchdog.run([sys.executable, "-c", textwrap.dedent(HANG_SCRIPT), TOOLS], 120,
                        env=env)
    took = time.monotonic() - t0
    assert proc.returncode == -6, (proc.returncode, proc.stderr)   # SIGABRT
    assert took < 90
    err = proc.stderr
    # Python stacks of every thread, from faulthandler, without the GIL
    assert "Timeout (0:00:01)!" in err
    assert err.count("Thread 0x") >= 2
    assert "threading.py" in err             # the hog thread's Python frames
    assert "deliberate hang did not finish in time" in err
    if watchdog.gdb_available():
        # native stacks: the hog in C, and the runtime thread in GLib
        assert "f_hold_gil" in err, err[-3000:]
        assert '"gab-runtime"' in err
        assert "g_main_loop_run" in err or "g_main_context" in err
