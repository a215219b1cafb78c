#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""gasyncbridge benchmark suite: the bridge against plain asyncio and its peers.

Run it from the source tree, after `ninja -C build`, with the interpreter the
module was built for:

    /usr/bin/python3 bench/bench.py --build-dir build            # full run
    /usr/bin/python3 bench/bench.py --build-dir build --quick    # smoke, small N
    /usr/bin/python3 bench/bench.py --build-dir build --json out.json
    /usr/bin/python3 bench/bench.py --build-dir build --callgrind [--cg-annotate 20]
    ninja -C build bench                                          # the full run

Every figure is a median over repeated runs in this one process (memory
figures: in fresh child processes), so that ratios between the bridge and the
baselines compare work done on the same machine at the same time. What each
line measures is written next to it in the tables and in bench/README.md.
The callgrind mode counts instructions per operation instead of time: a
figure that stays put on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import glob
import json
import os
import platform
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(HERE)

# Filled by import_modules(): the bridge, its test and bench modules, and
# the optional peers (None when not installed).
gasyncbridge = None
testmod = None
benchmod = None
targets = None
uvloop = None
gbulb = None
GLib = None
Gio = None

# query_info asks for the same four fields everywhere: gasyncbridge.gio's
# dict keys, and the GIO attributes the PyGObject baselines query.
GIO_ATTRIBUTES = ("standard::name,standard::size,standard::type,"
                  "time::modified,time::modified-usec")
GIO_KEYS = ["name", "size", "type", "mtime"]


def import_modules(build_dir):
    """Make the build tree importable and import what the benchmarks use."""
    global gasyncbridge, testmod, benchmod, targets, uvloop, gbulb, GLib, Gio
    build_dir = os.path.abspath(build_dir)
    for sub in ("bench", "tests/testmod", "gasyncbridge/module"):
        path = os.path.join(build_dir, sub)
        if path not in sys.path:
            sys.path.insert(0, path)
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    try:
        import gasyncbridge as _gab
        import gasyncbridge.gio  # noqa: F401
        import _gab_testmod
        import _gab_bench
    except ImportError as e:
        sys.exit(f"bench: cannot import the built modules from {build_dir} ({e}).\n"
                 f"Build first (ninja -C {build_dir}) and run with the interpreter the "
                 f"module was built for (/usr/bin/python3, running {sys.executable}).")
    import gab_bench_targets
    gasyncbridge, testmod, benchmod, targets = _gab, _gab_testmod, _gab_bench, gab_bench_targets
    try:
        import uvloop as _uvloop
        uvloop = _uvloop
    except ImportError:
        uvloop = None
    try:
        import gi
        gi.require_version("Gio", "2.0")
        from gi.repository import Gio as _Gio, GLib as _GLib
        GLib, Gio = _GLib, _Gio
    except (ImportError, ValueError):
        GLib = Gio = None
    try:
        import gbulb as _gbulb
        gbulb = _gbulb if GLib is not None else None
    except ImportError:
        gbulb = None


# ---------------------------------------------------------------------------
# Sizes

@dataclass
class Sizes:
    """How much work each measurement does; --quick makes everything small."""
    seq_n: int = 5000            # sequential awaits per run
    seq_repeats: int = 7
    conc_ns: tuple = (10_000, 100_000)
    conc_repeats: dict = field(default_factory=lambda: {10_000: 5, 100_000: 3})
    c2py_seq_n: int = 2000
    c2py_conc_n: int = 10_000
    c2py_repeats: int = 7
    gio_seq_n: int = 1000
    gio_conc_n: int = 5000
    gio_repeats: int = 5
    completion_n: int = 20_000
    completion_repeats: int = 7
    mem_n: int = 100_000
    mem_repeats: int = 3
    handoff_n: int = 20_000
    handoff_repeats: int = 7
    events_n: int = 100_000      # signal emissions into `async for` (group 9)
    dbus_n: int = 10_000         # D-Bus calls served (group 9)
    events_repeats: int = 5

    @classmethod
    def quick(cls):
        return cls(seq_n=300, seq_repeats=3, conc_ns=(2000,), conc_repeats={2000: 3},
                   c2py_seq_n=200, c2py_conc_n=1000, c2py_repeats=3,
                   gio_seq_n=100, gio_conc_n=500, gio_repeats=3,
                   completion_n=2000, completion_repeats=3,
                   mem_n=5000, mem_repeats=1, handoff_n=2000, handoff_repeats=3,
                   events_n=2000, dbus_n=300, events_repeats=2)

    def conc_repeat(self, n):
        return self.conc_repeats.get(n, 3)


# ---------------------------------------------------------------------------
# Event loops

LOOP_KINDS = ("asyncio", "uvloop", "gbulb")


def loop_available(kind):
    """None if a loop of `kind` can be made here, else why not."""
    if kind == "uvloop" and uvloop is None:
        return "uvloop is not installed"
    if kind == "gbulb" and gbulb is None:
        return "gbulb (python3-gbulb) is not installed"
    return None


def new_loop(kind):
    if kind == "asyncio":
        return asyncio.new_event_loop()
    if kind == "uvloop":
        return uvloop.new_event_loop()
    if kind == "gbulb":
        # gbulb's loop on GLib's default context, as gbulb.install() makes it
        # for the main thread: PyGObject's GIO callbacks come back there.
        return gbulb.GLibEventLoop(context=GLib.MainContext.default())
    raise ValueError(kind)


def run_on(kind, coro_fn, *args):
    """Run coro_fn(*args) to completion on a fresh loop of `kind`."""
    loop = new_loop(kind)
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(coro_fn(*args))
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
            asyncio.set_event_loop(None)


# ---------------------------------------------------------------------------
# Workloads: one way each of doing "an operation" that a future reports.
#
# A workload is opened on a running loop, then op(i) starts one operation
# and returns an awaitable (always an asyncio future here, so that gather()
# treats every workload the same), and close() releases what open() made.

def _identity(value):
    return value


class Workload:
    key = ""
    label = ""
    baseline = False
    loops = ("asyncio",)

    def available(self):
        """None if this workload can run here, else why not."""
        return None

    async def open(self, loop):
        self.loop = loop

    async def close(self):
        pass


class GabReady(Workload):
    key, label = "gab.ready", "gasyncbridge: await _gab_testmod.ready(i)"
    loops = ("asyncio", "uvloop")

    async def open(self, loop):
        await super().open(loop)
        self.op = testmod.ready


class GabSleep0(Workload):
    key, label = "gab.sleep0", "gasyncbridge: await gasyncbridge.sleep(0)"
    loops = ("asyncio", "uvloop")

    async def open(self, loop):
        await super().open(loop)
        sleep = gasyncbridge.sleep
        self.op = lambda i: sleep(0)


class CallSoon(Workload):
    key, label, baseline = "call_soon", "asyncio: future resolved by loop.call_soon", True
    loops = ("asyncio", "uvloop")

    def op(self, i):
        fut = self.loop.create_future()
        self.loop.call_soon(fut.set_result, i)
        return fut


class PlainThread(Workload):
    key, label, baseline = ("thread", "Python thread + SimpleQueue + call_soon_threadsafe",
                            True)
    loops = ("asyncio", "uvloop")

    async def open(self, loop):
        await super().open(loop)
        self.requests = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._serve, name="bench-worker", daemon=True)
        self.thread.start()

    def _serve(self):
        get, loop = self.requests.get, self.loop
        while True:
            item = get()
            if item is None:
                return
            fut, value = item
            loop.call_soon_threadsafe(fut.set_result, value)

    def op(self, i):
        fut = self.loop.create_future()
        self.requests.put((fut, i))
        return fut

    async def close(self):
        self.requests.put(None)
        self.thread.join()


class Executor(Workload):
    key, label, baseline = "executor", "loop.run_in_executor(None, f)", True

    def op(self, i):
        return self.loop.run_in_executor(None, _identity, i)


class GbulbIdle(Workload):
    key, label, baseline = "gbulb", "gbulb loop: GLib.idle_add resolves the future", True
    loops = ("gbulb",)

    def op(self, i):
        fut = self.loop.create_future()
        GLib.idle_add(fut.set_result, i)
        return fut


class GLibThread:
    """A PyGObject GLib.MainLoop on a thread of its own, with its own context."""

    def __init__(self):
        self.context = GLib.MainContext.new()
        self.mainloop = GLib.MainLoop.new(self.context, False)
        self.thread = threading.Thread(target=self._run, name="bench-glib", daemon=True)
        self.thread.start()

    def _run(self):
        self.context.push_thread_default()
        try:
            self.mainloop.run()
        finally:
            self.context.pop_thread_default()

    def invoke(self, func, data):
        """Call func(data) on the GLib thread (an idle source from other threads)."""
        self.context.invoke_full(GLib.PRIORITY_DEFAULT, func, data)

    def stop(self):
        self.mainloop.quit()
        self.thread.join()


class GLibThreadReady(Workload):
    key, label, baseline = ("glib-thread",
                            "PyGObject GLib thread completes the future by hand", True)

    def available(self):
        return None if GLib is not None else "PyGObject is not installed"

    async def open(self, loop):
        await super().open(loop)
        self.glib = GLibThread()

    def _complete(self, data):
        fut, value = data
        self.loop.call_soon_threadsafe(fut.set_result, value)
        return False

    def op(self, i):
        fut = self.loop.create_future()
        self.glib.invoke(self._complete, (fut, i))
        return fut

    async def close(self):
        self.glib.stop()


READY_WORKLOADS = [GabReady, GabSleep0, CallSoon, PlainThread, Executor, GbulbIdle,
                   GLibThreadReady]


# ---- real GIO work --------------------------------------------------------

def gio_mode():
    """'query_info' once gasyncbridge.gio has it, else 'load_contents'."""
    return "query_info" if hasattr(gasyncbridge.gio, "query_info") else "load_contents"


def info_to_dict(info):
    """What the PyGObject baselines hand to Python: the dict that
    gasyncbridge.gio.query_info(path, GIO_KEYS) returns."""
    mtime = info.get_modification_date_time()
    return {"name": info.get_name(), "size": info.get_size(),
            "type": info.get_file_type().value_nick,
            "mtime": (mtime.to_unix() + mtime.get_microsecond() / 1e6
                      if mtime is not None else None)}


class GioWorkload(Workload):
    """Base for the GIO workloads: query_info (or load_contents) of one small file."""
    path = None

    def available(self):
        return None if Gio is not None else "PyGObject is not installed"

    async def open(self, loop):
        await super().open(loop)
        self.mode = gio_mode()
        self.gfile = Gio.File.new_for_path(self.path) if Gio is not None else None

    # PyGObject: start the call and say how to finish it.
    def start_async(self, callback, data):
        if self.mode == "query_info":
            self.gfile.query_info_async(GIO_ATTRIBUTES, Gio.FileQueryInfoFlags.NONE,
                                        GLib.PRIORITY_DEFAULT, None, callback, data)
        else:
            self.gfile.load_contents_async(None, callback, data)

    def finish(self, source, result):
        if self.mode == "query_info":
            return info_to_dict(source.query_info_finish(result))
        return source.load_contents_finish(result)[1]

    def run_sync(self, _i):
        if self.mode == "query_info":
            return info_to_dict(self.gfile.query_info(GIO_ATTRIBUTES,
                                                      Gio.FileQueryInfoFlags.NONE, None))
        return self.gfile.load_contents(None)[1]


class GabGio(GioWorkload):
    key, label = "gab.gio", "gasyncbridge.gio.{mode}(path)"
    loops = ("asyncio", "uvloop")

    def available(self):
        return None

    async def open(self, loop):
        await super().open(loop)
        func = getattr(gasyncbridge.gio, self.mode)
        path = self.path
        if self.mode == "query_info":
            self.op = lambda i: func(path, GIO_KEYS)
        else:
            self.op = lambda i: func(path)


class GabCallGio(GioWorkload):
    key, label = "gab.call_gio", "gasyncbridge.call_gio(Gio.File.{mode}_async, ...)"

    async def open(self, loop):
        await super().open(loop)
        if self.mode == "query_info":
            self.args = (self.gfile.query_info_async, GIO_ATTRIBUTES,
                         Gio.FileQueryInfoFlags.NONE, GLib.PRIORITY_DEFAULT)
        else:
            self.args = (self.gfile.load_contents_async,)
        # call_gio is being written: a run that cannot use it says why.
        try:
            await asyncio.wait_for(gasyncbridge.call_gio(*self.args), 10)
        except Exception as e:   # noqa: BLE001 - any failure means "skip"
            raise Skip(f"call_gio does not work yet ({type(e).__name__}: {e})") from None

    def op(self, i):
        return gasyncbridge.call_gio(*self.args)


class GbulbGio(GioWorkload):
    key, label, baseline = ("gbulb.gio",
                            "gbulb loop + PyGObject {mode}_async, callback sets the future",
                            True)
    loops = ("gbulb",)

    def _done(self, source, result, fut):
        try:
            fut.set_result(self.finish(source, result))
        except Exception as e:   # noqa: BLE001
            fut.set_exception(e)

    def op(self, i):
        fut = self.loop.create_future()
        self.start_async(self._done, fut)
        return fut


class GLibThreadGio(GioWorkload):
    key, label, baseline = ("glib-thread.gio",
                            "PyGObject GLib thread runs {mode}_async, call_soon_threadsafe",
                            True)

    async def open(self, loop):
        await super().open(loop)
        self.glib = GLibThread()

    def _done(self, source, result, fut):
        try:
            value = self.finish(source, result)
            self.loop.call_soon_threadsafe(fut.set_result, value)
        except Exception as e:   # noqa: BLE001
            self.loop.call_soon_threadsafe(fut.set_exception, e)

    def _start(self, fut):
        self.start_async(self._done, fut)
        return False

    def op(self, i):
        fut = self.loop.create_future()
        self.glib.invoke(self._start, fut)
        return fut

    async def close(self):
        self.glib.stop()


class ExecutorGio(GioWorkload):
    key, label, baseline = ("executor.gio",
                            "loop.run_in_executor(None, blocking Gio {mode})", True)

    def op(self, i):
        return self.loop.run_in_executor(None, self.run_sync, i)


GIO_WORKLOADS = [GabGio, GabCallGio, GbulbGio, GLibThreadGio, ExecutorGio]


class Skip(Exception):
    """A measurement that cannot run on this machine or at this point of the project."""


# ---------------------------------------------------------------------------
# Timing
#
# The machine is shared and noisy, so the lines of one table are measured in
# rounds: every line runs once per round, on a loop of its own that stays
# open, before any line runs again. Slow spells then hit all lines alike, a
# line's figure is the median of its rounds, and a ratio between two lines is
# the median of their per-round ratios.

async def time_seq(op, n):
    """Seconds for n awaits, one after the other."""
    t0 = time.perf_counter()
    for i in range(n):
        await op(i)
    return time.perf_counter() - t0


async def time_conc(op, n):
    """Seconds to start n operations and gather them all."""
    t0 = time.perf_counter()
    await asyncio.gather(*[op(i) for i in range(n)])
    return time.perf_counter() - t0


@dataclass
class Result:
    group: str
    key: str
    label: str
    loop: str
    unit: str            # "us/op", "ops/s", "ns/op", "B/op"
    value: float | None  # the median, in `unit`
    n: int = 0
    runs: list = field(default_factory=list)   # one value per round, in `unit`
    baseline: bool = False
    skipped: str | None = None
    cpu: float | None = None     # median CPU time of the process (all threads), us/op
    cpu_runs: list = field(default_factory=list)

    @property
    def id(self):
        return f"{self.group}/{self.key}/{self.loop}" + (f"/{self.n}" if self.n else "")


def paired_ratio(a, b):
    """a / b: the median of per-round ratios when both lines ran in the same
    rounds, else the ratio of their medians."""
    if a.value is None or b.value is None:
        return None
    k = min(len(a.runs), len(b.runs))
    if k:
        return statistics.median(x / y for x, y in zip(a.runs[:k], b.runs[:k]))
    return a.value / b.value


class Cell:
    """One line of a table: `body(n)` (seconds) run on a loop of its own.

    `convert(seconds, n)` turns a run into the line's unit. `workload`, if
    given, is opened on the loop first and closed at the end.
    """

    def __init__(self, group, key, label, kind, unit, n, body, convert,
                 baseline=False, repeats=None, workload=None, table_n=0):
        self.result = Result(group, key, label, kind, unit, None, table_n,
                             baseline=baseline)
        self.kind, self.n, self.body, self.convert = kind, n, body, convert
        self.repeats, self.workload, self.loop = repeats, workload, None

    def run(self, coro):
        asyncio.set_event_loop(self.loop)
        return self.loop.run_until_complete(coro)

    def open(self):
        self.loop = new_loop(self.kind)
        if self.workload is not None:
            self.run(self.workload.open(self.loop))
        self.run(self.body(max(1, self.n // 10)))     # warm-up

    def close(self):
        if self.loop is None:
            return
        try:
            if self.workload is not None:
                self.run(self.workload.close())
            self.run(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()
            asyncio.set_event_loop(None)
            self.loop = None


def us_per_op(seconds, n):
    return seconds / n * 1e6


def ops_per_s(seconds, n):
    return n / seconds


def ns_per_op(seconds, n):
    return seconds / n * 1e9


# ---------------------------------------------------------------------------
# The suite

GROUPS = {
    "seq": "1. Sequential await of an operation that completes at once",
    "conc": "2. Concurrent: asyncio.gather over N operations that complete at once",
    "mem": "2b. Memory per in-flight operation",
    "c2py": "3. C awaits a Python coroutine that returns at once",
    "gio": "4. Real GIO work",
    "completion": "5. The completion path alone (operation done -> future resolved)",
    "handoff": "6. Cross-thread hand-off in C, no Python (bench-handoff)",
    "spin": "7. Experiment: spinning before sleeping (rt: GAB_RUNTIME_SPIN_USEC; "
            "loop: a loop-side spin, emulated)",
    "costs": "8. Costs of single pieces of per-operation Python work",
    "events": "9. Events into asyncio (bench_events.py)",
    "workloads": "10. Workloads: real GIO work, each line in its own process "
                 "(bench/workloads.py)",
}


GROUPS_ORDER = ["seq", "conc", "mem", "c2py", "gio", "completion", "handoff", "spin",
                "costs", "events", "workloads"]


class Suite:
    def __init__(self, args):
        self.args = args
        self.sizes = Sizes.quick() if args.quick else Sizes()
        self.results: list[Result] = []
        self.workloads = None        # group 9: bench/workloads.py's results
        self.failures: list[str] = []
        self.tmpdir = tempfile.mkdtemp(prefix="gab-bench-")
        self.small_file = os.path.join(self.tmpdir, "small.txt")
        with open(self.small_file, "wb") as f:
            f.write(b"gasyncbridge benchmark\n" * 4)
        GioWorkload.path = self.small_file

    def log(self, message):
        if not self.args.json_only:
            print(message, file=sys.stderr, flush=True)

    def add(self, result):
        self.results.append(result)
        if result.skipped:
            self.log(f"  skip {result.id}: {result.skipped}")
        else:
            self.log(f"  {result.id:<44} {fmt(result.value, result.unit)}")

    def selected(self, group):
        if group in (self.args.skip or ()):
            return False
        return not self.args.only or group in self.args.only

    def wanted(self, kind):
        """None if lines on loops of `kind` run, else why not."""
        if kind == "uvloop" and self.args.no_uvloop:
            return "--no-uvloop"
        return loop_available(kind)

    def fail(self, what, error):
        message = f"{what}: {type(error).__name__}: {error}"
        self.failures.append(message)
        self.log(f"  FAILED {message}")

    def run_cells(self, cells, repeats):
        """Open every cell, run them in `repeats` rounds, record the medians."""
        live = []
        for cell in cells:
            if cell.result.skipped:
                self.add(cell.result)
                continue
            try:
                cell.open()
                live.append(cell)
            except Skip as e:
                cell.result.skipped = str(e)
                cell.close()
                self.add(cell.result)
            except Exception as e:   # noqa: BLE001 - reported, fails the run
                self.fail(cell.result.id, e)
                cell.close()
        try:
            for r in range(repeats):
                for cell in list(live):
                    if r >= (cell.repeats or repeats):
                        continue
                    gc.collect()
                    try:
                        cpu = time.process_time()
                        seconds = cell.run(cell.body(cell.n))
                        cpu = time.process_time() - cpu
                    except Exception as e:   # noqa: BLE001
                        self.fail(cell.result.id, e)
                        live.remove(cell)
                        cell.close()
                        continue
                    cell.result.runs.append(cell.convert(seconds, cell.n))
                    cell.result.cpu_runs.append(cpu / cell.n * 1e6)
        finally:
            for cell in live:
                cell.close()
        for cell in live:
            cell.result.value = statistics.median(cell.result.runs)
            cell.result.cpu = statistics.median(cell.result.cpu_runs)
            self.add(cell.result)

    # ---- groups 1, 2 and 4: workloads on loops ----------------------------

    def workload_cells(self, group, classes, mode, n, table_n=0, repeats=None):
        """A cell per workload and loop; mode is time_seq or time_conc."""
        cells = []
        unit, convert = (("us/op", us_per_op) if mode is time_seq
                         else ("ops/s", ops_per_s))
        for cls in classes:
            for kind in cls.loops:
                workload = cls()
                label = workload.label.format(mode=gio_mode())

                async def body(k, workload=workload):
                    return await mode(workload.op, k)

                cell = Cell(group, cls.key, label, kind, unit, n, body, convert,
                            cls.baseline, repeats=repeats(cls) if repeats else None,
                            workload=workload, table_n=table_n)
                why = self.wanted(kind) or workload.available()
                if why == "--no-uvloop":
                    continue
                cell.result.skipped = why
                cells.append(cell)
        return cells

    def bench_ready(self):
        s = self.sizes
        if self.selected("seq"):
            self.log("# 1. sequential await of a ready operation")
            self.run_cells(self.workload_cells("seq", READY_WORKLOADS, time_seq, s.seq_n),
                           s.seq_repeats)
        if self.selected("conc"):
            for n in s.conc_ns:
                self.log(f"# 2. concurrent, N = {n}")
                # run_in_executor at 100k takes ~10 s a run and tells nothing new.
                slow = lambda cls: 1 if (cls is Executor and n > 20_000) else None
                self.run_cells(self.workload_cells("conc", READY_WORKLOADS, time_conc, n,
                                                   table_n=n, repeats=slow),
                               s.conc_repeat(n))

    def bench_gio(self):
        s = self.sizes
        self.log(f"# 4. real GIO work: {gio_mode()} on a small file")
        self.run_cells(self.workload_cells("gio-seq", GIO_WORKLOADS, time_seq, s.gio_seq_n),
                       s.gio_repeats)
        self.run_cells(self.workload_cells("gio-conc", GIO_WORKLOADS, time_conc,
                                           s.gio_conc_n, table_n=s.gio_conc_n),
                       s.gio_repeats)

    # ---- group 3: C awaits Python -----------------------------------------

    def bench_c2py(self):
        s = self.sizes
        self.log("# 3. C awaits Python")
        nop = targets.nop

        def rct(func):
            async def body(k):
                return await in_thread(func, asyncio.get_running_loop(), nop, k)
            return body

        # The C drivers time themselves: their awaitable resolves to seconds.
        rows = [
            ("gab.c-await", "C on the runtime thread: gab_into_future_async(coro) chain",
             ("asyncio", "uvloop"), False,
             lambda k: benchmod.await_seq(nop, k),
             lambda k: benchmod.await_conc(nop, k)),
            ("gab.c-call", "C on the runtime thread: gab_call_async(module, function)",
             ("asyncio",), False,
             lambda k: benchmod.call_seq("gab_bench_targets", "nop", k),
             lambda k: benchmod.call_conc("gab_bench_targets", "nop", k)),
            ("gab.await_py", "Python awaits C awaiting Python: _gab_testmod.await_py(coro)",
             ("asyncio",), False,
             lambda k: time_seq(lambda i: testmod.await_py(nop()), k),
             lambda k: time_conc(lambda i: testmod.await_py(nop()), k)),
            ("rct", "Python thread: run_coroutine_threadsafe(coro, loop).result()",
             ("asyncio", "uvloop"), True, rct(rct_seq), rct(rct_conc)),
        ]
        for group, n, index, unit, convert in (
                ("c2py-seq", s.c2py_seq_n, 4, "us/op", us_per_op),
                ("c2py-conc", s.c2py_conc_n, 5, "ops/s", ops_per_s)):
            cells = []
            for row in rows:
                key, label, loops, baseline = row[:4]
                for kind in loops:
                    why = self.wanted(kind)
                    if why == "--no-uvloop":
                        continue
                    body = row[index]

                    async def run_body(k, body=body):
                        return await body(k)

                    cell = Cell(group, key, label, kind, unit, n, run_body, convert,
                                baseline, table_n=n if group == "c2py-conc" else 0)
                    cell.result.skipped = why
                    cells.append(cell)
            self.run_cells(cells, s.c2py_repeats)

    # ---- group 5: the completion path -------------------------------------

    def bench_completion(self):
        s = self.sizes
        self.log("# 5. the completion path")
        rows = [
            ("gab.fire", "gasyncbridge: runtime completes N parked ops -> loop queue",
             ("asyncio", "uvloop"), False, completion_gab),
            ("thread.csts", "Python thread: call_soon_threadsafe(set_result) for N futures",
             ("asyncio", "uvloop"), True, completion_thread),
            ("call_soon", "loop thread: call_soon(set_result) for N futures",
             ("asyncio",), True, completion_call_soon),
        ]
        cells = []
        for key, label, loops, baseline, body in rows:
            for kind in loops:
                why = self.wanted(kind)
                if why == "--no-uvloop":
                    continue
                cell = Cell("completion", key, label, kind, "ns/op", s.completion_n, body,
                            ns_per_op, baseline, table_n=s.completion_n)
                cell.result.skipped = why
                cells.append(cell)
        self.run_cells(cells, s.completion_repeats)

    # ---- group 7: experiments, what core changes would gain ---------------

    def bench_spin(self):
        """Sequential awaits with the runtime thread spinning for different
        times before it sleeps (GAB_RUNTIME_SPIN_USEC, read when the runtime
        starts: one child process per setting, in rounds)."""
        s = self.sizes
        self.log("# 7. experiment: how long the runtime thread spins before sleeping")
        # (runtime spin, loop spin) in microseconds; a loop spin is the
        # experiment of loop_spinning(), on the stock asyncio loop.
        settings = ((0, 0), (20, 0), (100, 0), (500, 0), (100, 10), (100, 20))
        results = {}
        for r in range(s.seq_repeats if not self.args.quick else 1):
            for spin, loop_spin in settings:
                env = {"GAB_RUNTIME_SPIN_USEC": str(spin)}
                if loop_spin:
                    env["GAB_BENCH_LOOP_SPIN"] = str(loop_spin)
                setting = f"rt={spin}" + (f",loop={loop_spin}" if loop_spin else "")
                try:
                    data = self._child(["--spin-child", "--seq-n", str(s.seq_n),
                                        "--c2py-n", str(s.c2py_seq_n)], env)
                except Exception as e:   # noqa: BLE001
                    self.fail(f"spin child ({setting})", e)
                    return
                for key, (label, wall, cpu) in data.items():
                    if loop_spin and key not in ("gab.ready+loopspin", "thread"):
                        continue
                    # The "loop" column holds the setting, so that each line
                    # is compared with the baselines of the same processes.
                    result = results.setdefault(
                        (key, setting), Result("spin", key, label, setting, "us/op",
                                               None, baseline=key in ("thread", "rct")))
                    result.runs.append(wall)
                    result.cpu_runs.append(cpu)
        for result in results.values():
            result.value = statistics.median(result.runs)
            result.cpu = statistics.median(result.cpu_runs)
            self.add(result)

    def bench_costs(self):
        """What single pieces of the per-operation Python work cost, measured
        alone: the expected gain of removing each from the bridge's path."""
        s = self.sizes
        self.log("# 8. costs of single pieces of per-operation work")
        import contextvars
        import weakref
        nop = targets.nop
        n = s.completion_n

        def noop(*_):
            return None

        async def copy_context(k):
            t0 = time.perf_counter()
            for _ in range(k):
                contextvars.copy_context()
            return time.perf_counter() - t0

        async def weak(k):
            loop = asyncio.get_running_loop()
            futures = [loop.create_future() for _ in range(k)]
            t0 = time.perf_counter()
            for f in futures:
                weakref.ref(f, noop)
            return time.perf_counter() - t0

        async def create_future(k):
            loop = asyncio.get_running_loop()
            t0 = time.perf_counter()
            for _ in range(k):
                loop.create_future()
            return time.perf_counter() - t0

        async def future_type(k):
            loop = asyncio.get_running_loop()
            future = asyncio.Future
            t0 = time.perf_counter()
            for _ in range(k):
                future(loop=loop)
            return time.perf_counter() - t0

        def resolved(with_callback):
            async def body(k):
                loop = asyncio.get_running_loop()
                t0 = time.perf_counter()
                futures = []
                for i in range(k):
                    f = loop.create_future()
                    if with_callback:
                        f.add_done_callback(noop)
                    loop.call_soon(f.set_result, i)
                    futures.append(f)
                await futures[-1]
                await asyncio.sleep(0)     # the last done callbacks run
                return time.perf_counter() - t0
            return body

        async def task_await(k):
            ensure = asyncio.ensure_future
            t0 = time.perf_counter()
            for _ in range(k):
                await ensure(nop())
            return time.perf_counter() - t0

        async def eager_send(k):
            t0 = time.perf_counter()
            for _ in range(k):
                coro = nop()
                try:
                    coro.send(None)
                except StopIteration:
                    pass
            return time.perf_counter() - t0

        rows = [
            ("copy_context", "contextvars.copy_context()", copy_context),
            ("weakref", "weakref.ref(future, callback), made and dropped", weak),
            ("create_future", "loop.create_future() (a Python method on asyncio)",
             create_future),
            ("Future", "asyncio.Future(loop=loop) (the C type, called directly)",
             future_type),
            ("resolved", "future + call_soon(set_result), run", resolved(False)),
            ("resolved+cb", "the same + one add_done_callback, run", resolved(True)),
            ("task", "await ensure_future(coro) (Task: 2 loop iterations)", task_await),
            ("eager", "coro.send(None) -> StopIteration (no Task)", eager_send),
        ]
        cells = [Cell("costs", key, label, "asyncio", "ns/op", n, body, ns_per_op)
                 for key, label, body in rows]
        self.run_cells(cells, s.completion_repeats)

    # ---- group 2b: memory, in child processes -----------------------------

    def bench_memory(self):
        s = self.sizes
        self.log("# 2b. memory per in-flight operation (child processes)")
        rows = [
            ("future", "bare asyncio Future (loop.create_future), pending", True),
            ("gab.pending", "gasyncbridge op pending in C (_gab_bench.park: GTask waits)",
             False),
            ("gtask", "the GIO side alone: a pending GTask + GCancellable, no Python",
             True),
            ("call_soon.gather", "peak of gather over N call_soon futures", True),
            ("thread.gather", "peak of gather over N plain-thread futures", True),
            ("gab.gather", "peak of gather over N _gab_testmod.ready()", False),
        ]
        results = {}
        for metric in ("rss", "py"):
            for key, label, baseline in rows:
                results[metric, key] = Result("mem-" + metric, key, label, "asyncio", "B/op",
                                              None, s.mem_n, baseline=baseline)
        # In rounds, like the timed lines; the Python-heap figure is exact: once.
        for r in range(s.mem_repeats):
            for metric in ("rss", "py") if r == 0 else ("rss",):
                for key, _label, _baseline in rows:
                    result = results[metric, key]
                    if result.skipped or (metric == "py" and key == "gtask"):
                        continue
                    try:
                        result.runs.append(self._memory_child(key, s.mem_n, metric))
                    except Exception as e:   # noqa: BLE001
                        result.skipped = "failed"
                        self.fail(f"memory {key} ({metric})", e)
        for result in results.values():
            if result.runs:
                result.value = statistics.median(result.runs)
                self.add(result)

    def _child(self, args, env=None):
        """Run bench.py in a fresh process with `args`; its last line, as JSON."""
        cmd = [sys.executable, os.path.abspath(__file__), "--build-dir",
               self.args.build_dir, *args]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                             env=dict(os.environ, **(env or {})))
        if out.returncode != 0:
            raise RuntimeError(f"child {' '.join(args)} failed:\n{out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def _memory_child(self, kind, n, metric):
        return self._child(["--memory-child", kind, "--memory-n", str(n),
                            "--memory-metric", metric])["bytes_per_op"]

    # ---- group 9: workloads, each line in a child process -----------------

    def bench_workloads(self):
        import workloads
        self.log("# 9. workloads (bench/workloads.py)")
        peers = {"uvloop": uvloop is not None, "gbulb": gbulb is not None,
                 "gi": Gio is not None,
                 "dbus_call": hasattr(gasyncbridge.gio, "dbus_call")}
        self.workloads = workloads.run_group(self, peers)

    # ---- group 6: the C hand-off program ------------------------------------

    def bench_handoff(self):
        s = self.sizes
        self.log("# 6. C hand-off micro benchmark")
        exe = os.path.join(self.args.build_dir, "bench", "bench-handoff")
        labels = {
            "eventfd-pingpong": "two C threads, eventfd round trip (the floor)",
            "glib-invoke-rt": "g_main_context_invoke to a GLib thread + eventfd back",
            "gab-invoke-rt": "gab_invoke to the runtime thread + eventfd back",
            "glib-invoke-batch": "burst of g_main_context_invoke: per item",
            "gab-invoke-batch": "burst of gab_invoke (runtime inbox): per item",
        }
        if not os.access(exe, os.X_OK):
            self.failures.append(f"{exe} is not built")
            return
        out = subprocess.run([exe, "--json", "--n", str(s.handoff_n),
                              "--repeats", str(s.handoff_repeats)],
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            self.failures.append(f"bench-handoff failed: {out.stderr[-1000:]}")
            return
        data = json.loads(out.stdout)
        for key, runs in data.items():
            self.add(Result("handoff", key, labels.get(key, key), "C", "ns/op",
                            statistics.median(runs), runs=runs,
                            baseline=not key.startswith("gab")))

    # ---- running, printing, targets -----------------------------------------

    def run(self):
        steps = [("seq", self.bench_ready), ("c2py", self.bench_c2py),
                 ("gio", self.bench_gio), ("completion", self.bench_completion),
                 ("mem", self.bench_memory), ("handoff", self.bench_handoff),
                 ("spin", self.bench_spin), ("costs", self.bench_costs),
                 ("events", self.bench_events),
                 ("workloads", self.bench_workloads)]
        for name, step in steps:
            if name == "seq" and not (self.selected("seq") or self.selected("conc")):
                continue
            if name != "seq" and not self.selected(name):
                continue
            step()
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def bench_events(self):
        import bench_events
        bench_events.run(sys.modules[__name__], self)

    def find(self, group, key, loop="asyncio", n=0):
        """The measured Result of a line, or None."""
        for r in self.results:
            if (r.group, r.key, r.loop, r.n) == (group, key, loop, n) and r.value is not None:
                return r
        return None

    def targets(self):
        """The targets of issue 6, each as a dict with its figures and verdict."""
        out = []

        def target(name, line, reference, limit, higher_is_better):
            if line is None or reference is None:
                out.append({"target": name, "ratio": None, "limit": limit, "met": None})
                return
            ratio = paired_ratio(line, reference)
            met = ratio >= limit if higher_is_better else ratio <= limit
            out.append({"target": name, "line": line.id, "value": line.value,
                        "reference": reference.id, "reference_value": reference.value,
                        "unit": line.unit, "ratio": ratio, "limit": limit,
                        "direction": ">=" if higher_is_better else "<=", "met": met})

        for loop in ("asyncio", "uvloop"):
            target(f"seq ready C op <= 0.75x plain thread ({loop})",
                   self.find("seq", "gab.ready", loop), self.find("seq", "thread", loop),
                   0.75, False)
        for loop in ("asyncio", "uvloop"):
            target(f"C awaits Python <= 0.6x run_coroutine_threadsafe ({loop})",
                   self.find("c2py-seq", "gab.c-await", loop),
                   self.find("c2py-seq", "rct", loop), 0.6, False)
        target("(info) the same through gab_call_async (no GIL in C) (asyncio)",
               self.find("c2py-seq", "gab.c-call"), self.find("c2py-seq", "rct"),
               0.6, False)
        for n in self.sizes.conc_ns:
            target(f"concurrent {n} >= 0.5x call_soon futures",
                   self.find("conc", "gab.ready", n=n), self.find("conc", "call_soon", n=n),
                   0.5, True)
            target(f"concurrent {n} >= 2x plain thread",
                   self.find("conc", "gab.ready", n=n), self.find("conc", "thread", n=n),
                   2.0, True)
        target(f"GIO {gio_mode()} concurrent >= gbulb",
               self.find("gio-conc", "gab.gio", n=self.sizes.gio_conc_n),
               self.find("gio-conc", "gbulb.gio", "gbulb", n=self.sizes.gio_conc_n),
               1.0, True)
        pending = self.find("mem-rss", "gab.pending", n=self.sizes.mem_n)
        future = self.find("mem-rss", "future", n=self.sizes.mem_n)
        gtask = self.find("mem-rss", "gtask", n=self.sizes.mem_n)
        target("memory per in-flight op <= 1.3x bare Future (RSS)", pending, future,
               1.3, False)
        if pending and future and gtask:
            # Informational: the bridge's own share, without the GTask and
            # GCancellable that the GIO operation holds in any case.
            share = Result("mem-rss", "gab.share", "pending op minus GTask+GCancellable",
                           "asyncio", "B/op", pending.value - gtask.value, self.sizes.mem_n,
                           runs=[p - g for p, g in zip(pending.runs, gtask.runs)])
            target("(info) memory: bridge share without the GTask <= 1.3x bare Future",
                   share, future, 1.3, False)
        if self.selected("events"):
            import bench_events
            bench_events.targets(self, target)
        return out

    def report(self):
        lines = []
        order = [("seq", "us/op", "lower is better"),
                 ("conc", "ops/s", "higher is better"),
                 ("mem-rss", "B/op", "RSS growth / N, lower is better"),
                 ("mem-py", "B/op", "tracemalloc (Python allocators only) / N"),
                 ("c2py-seq", "us/op", "lower is better"),
                 ("c2py-conc", "ops/s", "higher is better"),
                 ("gio-seq", "us/op", "lower is better"),
                 ("gio-conc", "ops/s", "higher is better"),
                 ("completion", "ns/op", "per item, lower is better"),
                 ("handoff", "ns/op", "per round trip / item, lower is better"),
                 ("spin", "us/op", "lower is better"),
                 ("costs", "ns/op", "per op, measured alone"),
                 ("events-signals", "ops/s", "emissions per second, higher is better"),
                 ("events-dbus", "ops/s", "calls per second, higher is better")]
        titles = {"seq": GROUPS["seq"], "conc": GROUPS["conc"],
                  "mem-rss": GROUPS["mem"] + " (RSS)",
                  "mem-py": GROUPS["mem"] + " (Python heap)",
                  "c2py-seq": GROUPS["c2py"] + ": sequential",
                  "c2py-conc": GROUPS["c2py"] + ": concurrent",
                  "gio-seq": GROUPS["gio"] + f": {gio_mode()}, sequential",
                  "gio-conc": GROUPS["gio"] + f": {gio_mode()}, concurrent",
                  "completion": GROUPS["completion"], "handoff": GROUPS["handoff"],
                  "spin": GROUPS["spin"], "costs": GROUPS["costs"],
                  "events-signals": GROUPS["events"] + ": GObject signal emissions "
                                    "from a GLib thread into async for",
                  "events-dbus": GROUPS["events"] + ": D-Bus method calls served by an "
                                 "async handler (peer-to-peer, 64 in flight)"}
        for group, unit, note in order:
            rows = [r for r in self.results if r.group == group]
            if not rows:
                continue
            lines.append("")
            lines.append(f"## {titles[group]}  [{unit}; {note}]")
            for n in sorted({r.n for r in rows}):
                sub = [r for r in rows if r.n == n]
                if n and group not in ("completion", "mem-rss", "mem-py", "spin", "costs",
                                       "events-signals", "events-dbus"):
                    lines.append(f"   N = {n}")
                lines.extend(self._table(sub, unit))
        if self.workloads is not None:
            import workloads
            lines.append(workloads.report(self.workloads))
        lines.append("")
        lines.append("## Targets (issues 6 and 13)")
        for t in self.targets():
            if t["ratio"] is None:
                lines.append(f"   {'n/a':>7}  {t['target']}: not measured")
                continue
            verdict = "met" if t["met"] else "NOT MET"
            lines.append(f"   {verdict:>7}  {t['target']}: ratio {t['ratio']:.2f} "
                         f"(limit {t['direction']} {t['limit']})")
        if self.failures:
            lines.append("")
            lines.append("## Failures")
            lines.extend(f"   {f}" for f in self.failures)
        return "\n".join(lines)

    def _table(self, rows, unit):
        """Rows with their value and the ratio to each baseline of the group
        (the median of per-round ratios). A ratio compares with the baseline
        on the same loop if it has run there, else with its line on the
        stock asyncio loop (or on its own loop: gbulb, a GLib thread)."""
        baselines = []
        for r in rows:
            if r.baseline and r.value is not None and r.key not in baselines:
                baselines.append(r.key)
        with_cpu = any(r.cpu is not None for r in rows)
        head = f"   {'what':<62} {'loop':<8} {unit:>11}"
        if with_cpu:
            head += f" {'cpu us/op':>10}"
        head += "".join(f" {'/' + b:>12}" for b in baselines)
        out = [head]
        for r in rows:
            line = f"   {r.label[:62]:<62} {r.loop:<8} "
            if r.value is None:
                out.append(line + f"{'skipped':>11}  ({r.skipped})")
                continue
            line += f"{fmt_num(r.value, unit):>11}"
            if with_cpu:
                line += f" {(f'{r.cpu:.1f}' if r.cpu is not None else '-'):>10}"
            for b in baselines:
                ref = self._baseline_line(rows, b, r.loop)
                ratio = paired_ratio(r, ref) if ref is not None else None
                line += f" {(f'{ratio:.2f}x' if ratio else '-'):>12}"
            out.append(line)
        return out

    @staticmethod
    def _baseline_line(rows, key, loop):
        same = [r for r in rows if r.key == key and r.loop == loop and r.value is not None]
        if same:
            return same[0]
        other = [r for r in rows if r.key == key and r.value is not None
                 and (r.loop == "asyncio" or r.loop not in ("asyncio", "uvloop"))]
        return other[0] if other else None

    def to_json(self):
        return {
            "meta": machine_meta(self.args),
            "gio_mode": gio_mode(),
            "results": [dict(asdict(r), id=r.id) for r in self.results],
            "targets": self.targets(),
            "workloads": self.workloads,
            "failures": self.failures,
        }


def fmt_num(value, unit):
    if unit == "ops/s":
        return f"{value:,.0f}"
    if unit == "B/op":
        return f"{value:,.0f}"
    if unit == "ns/op":
        return f"{value:,.0f}"
    return f"{value:.2f}"


def fmt(value, unit):
    return "skipped" if value is None else f"{fmt_num(value, unit)} {unit}"


def git_describe():
    """The source commit, with '+dirty' if the library's sources differ from it."""
    def git(*argv):
        return subprocess.run(["git", "-C", SOURCE_ROOT, *argv], capture_output=True,
                              text=True).stdout.strip()
    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "gasyncbridge", "include")
    except OSError:
        return None
    return (commit + ("+dirty" if dirty else "")) or None


def machine_meta(args):
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), platform.machine())
    except OSError:
        model = platform.machine()
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "commit": git_describe(),
            "host": platform.node(), "cpu": model, "cpus": os.cpu_count(),
            "loadavg": load, "python": sys.version.split()[0],
            "executable": sys.executable, "quick": args.quick,
            "uvloop": getattr(uvloop, "__version__", None),
            "gbulb": getattr(gbulb, "__version__", None)}


# ---------------------------------------------------------------------------
# Bodies that do not fit a workload

async def in_thread(func, *args):
    """Run func(*args) on a new plain thread; its return value, awaited."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def main():
        try:
            value = func(*args)
        except BaseException as e:   # noqa: BLE001 - handed to the awaiting task
            loop.call_soon_threadsafe(fut.set_exception, e)
        else:
            loop.call_soon_threadsafe(fut.set_result, value)

    threading.Thread(target=main, name="bench-client", daemon=True).start()
    return await fut


def rct_seq(loop, coro_fn, n):
    """On a plain thread: n run_coroutine_threadsafe round trips, in seconds."""
    run = asyncio.run_coroutine_threadsafe
    t0 = time.perf_counter()
    for _ in range(n):
        run(coro_fn(), loop).result()
    return time.perf_counter() - t0


def rct_conc(loop, coro_fn, n):
    """On a plain thread: submit n coroutines, then wait for all, in seconds."""
    run = asyncio.run_coroutine_threadsafe
    t0 = time.perf_counter()
    futures = [run(coro_fn(), loop) for _ in range(n)]
    for f in futures:
        f.result()
    return time.perf_counter() - t0


async def completion_gab(n):
    """Seconds from the runtime thread completing n parked operations to the
    last future resolved on the loop: loop queue, wakeup, finish, set_result."""
    futures = benchmod.park(n)
    # The starts run on the runtime thread before this ready() completes
    # (the inbox is FIFO); then fire() completes them in a later iteration.
    await testmod.ready(None)
    t_fire = await benchmod.fire()
    t_end = time.perf_counter_ns()
    assert all(f.done() for f in futures)
    return (t_end - t_fire) / 1e9


async def completion_thread(n):
    """The same from a plain Python thread with call_soon_threadsafe."""
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(n)]
    start = []

    def fire():
        start.append(time.perf_counter_ns())
        call = loop.call_soon_threadsafe
        for f in futures:
            call(f.set_result, None)

    threading.Thread(target=fire, daemon=True).start()
    await futures[-1]
    t_end = time.perf_counter_ns()
    return (t_end - start[0]) / 1e9


async def completion_call_soon(n):
    """The same on the loop thread itself with call_soon (no thread crossing)."""
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(n)]
    t0 = time.perf_counter_ns()
    for f in futures:
        loop.call_soon(f.set_result, None)
    await futures[-1]
    return (time.perf_counter_ns() - t0) / 1e9


# ---------------------------------------------------------------------------
# Memory child: one measurement in a fresh process

def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss():
    """Reset the kernel's high-water mark of RSS; False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return rss_bytes()


async def memory_measure(kind, n, metric):
    """Bytes per operation while n operations are in flight (pending kinds),
    or at the peak of a gather over n of them (gather kinds)."""
    import tracemalloc
    loop = asyncio.get_running_loop()
    plain = PlainThread()
    await plain.open(loop)

    def call_soon_op(i):
        fut = loop.create_future()
        loop.call_soon(fut.set_result, i)
        return fut

    gather_ops = {"call_soon.gather": call_soon_op, "thread.gather": plain.op,
                  "gab.gather": testmod.ready}

    async def once(count):
        """Create count in-flight ops; return (bytes at the peak, cleanup)."""
        if kind == "future":
            held = [loop.create_future() for _ in range(count)]
            return measure(), held
        if kind == "gtask":
            benchmod.hold_gtasks(count)
            value = measure()
            benchmod.release_gtasks()
            return value, None
        if kind == "gab.pending":
            held = benchmod.park(count)
            await testmod.ready(None)          # all their starts have run
            value = measure()
            await benchmod.fire()
            return value, held
        op = gather_ops[kind]
        start_peak()
        await asyncio.gather(*[op(i) for i in range(count)])
        return measure(peak=True), None

    def start_peak():
        if metric == "py":
            tracemalloc.reset_peak()
        else:
            reset_peak_rss()

    def measure(peak=False):
        if metric == "py":
            current, top = tracemalloc.get_traced_memory()
            return top if peak else current
        return peak_rss_bytes() if peak else rss_bytes()

    # Warm up: first use of the runtime, the loop queue, the allocators.
    await once(min(1000, n))
    gc.collect()
    if metric == "py":
        tracemalloc.start()
    base = measure()
    value, held = await once(n)
    del held
    await plain.close()
    return {"kind": kind, "n": n, "metric": metric, "bytes_per_op": (value - base) / n}


# ---------------------------------------------------------------------------
# Spin child: sequential lines under one GAB_RUNTIME_SPIN_USEC

def gab_loop_reader(loop):
    """(fd, callback) of the bridge's loop queue on a selector loop, or None.

    Experiment only: it reads asyncio's private selector map to find the
    eventfd reader that gasyncbridge registered with add_reader()."""
    selector = getattr(loop, "_selector", None)
    if selector is None:
        return None
    for key in selector.get_map().values():
        reader = key.data[0] if isinstance(key.data, tuple) else None
        callback = getattr(reader, "_callback", None)
        if type(callback).__name__ == "_LoopQueue":
            return key.fd, callback
    return None


def loop_spinning(loop, reader, usec, op):
    """op, plus a callback scheduled after it that spins on the loop queue's
    eventfd (GIL released) and drains it when it becomes readable: what a
    loop-side spin in the bridge would do when the loop has nothing else to
    run. The awaiting task then resumes without the loop ever sleeping."""
    fd, drain = reader
    spin_fd = benchmod.spin_fd

    def spin():
        if spin_fd(fd, usec):
            drain()

    def spinning_op(i):
        fut = op(i)
        loop.call_soon(spin)
        return fut
    return spinning_op


async def spin_measure(seq_n, c2py_n):
    """{key: (label, wall us/op, cpu us/op)}: medians of 3 interleaved runs."""
    loop = asyncio.get_running_loop()
    nop = targets.nop
    thread = PlainThread()
    await thread.open(loop)
    lines = {
        "gab.ready": ("await _gab_testmod.ready(i)", seq_n,
                      lambda k: time_seq(testmod.ready, k)),
        "gab.c-await": ("C awaits coro (gab_into_future_async chain)", c2py_n,
                        lambda k: benchmod.await_seq(nop, k)),
        "gab.c-call": ("C awaits coro (gab_call_async)", c2py_n,
                       lambda k: benchmod.call_seq("gab_bench_targets", "nop", k)),
        "thread": ("plain thread + SimpleQueue + call_soon_threadsafe", seq_n,
                   lambda k: time_seq(thread.op, k)),
        "rct": ("thread: run_coroutine_threadsafe(coro, loop).result()", c2py_n,
                lambda k: in_thread(rct_seq, loop, nop, k)),
    }
    await testmod.ready(None)      # the loop queue exists from the first operation on
    reader = gab_loop_reader(loop)
    if reader is not None and os.environ.get("GAB_BENCH_LOOP_SPIN"):
        usec = int(os.environ["GAB_BENCH_LOOP_SPIN"])
        lines["gab.ready+loopspin"] = (
            f"await ready(i), the loop spins {usec} us before sleeping", seq_n,
            lambda k: time_seq(loop_spinning(loop, reader, usec, testmod.ready), k))
    runs = {key: [] for key in lines}
    for _label, n, body in lines.values():
        await body(max(1, n // 10))
    for _ in range(3):
        for key, (_label, n, body) in lines.items():
            gc.collect()
            cpu = time.process_time()
            seconds = await body(n)
            runs[key].append((seconds / n * 1e6, (time.process_time() - cpu) / n * 1e6))
    await thread.close()
    return {key: (lines[key][0], statistics.median(w for w, _ in r),
                  statistics.median(c for _, c in r)) for key, r in runs.items()}


# ---------------------------------------------------------------------------
# Callgrind mode

CG_PHASES = [
    # name, what, ops per phase (fraction of --cg-n)
    ("gab.ready seq", "await _gab_testmod.ready(i), one after the other", 1.0),
    ("gab.ready conc", "gather over N _gab_testmod.ready(i)", 1.0),
    ("gab.sleep0 seq", "await gasyncbridge.sleep(0)", 1.0),
    ("call_soon seq", "asyncio future resolved by call_soon", 1.0),
    ("call_soon conc", "gather over N call_soon futures", 1.0),
    ("thread seq", "plain thread + SimpleQueue + call_soon_threadsafe", 1.0),
    ("thread conc", "gather over N plain-thread futures", 1.0),
    ("gab.fire completion", "runtime completes N parked ops -> loop", 1.0),
    ("thread.csts completion", "thread call_soon_threadsafe for N futures", 1.0),
    ("gab.c-await seq", "C driver: gab_into_future_async chain", 0.5),
    ("gab.c-await conc", "C driver: N gab_into_future_async at once", 0.5),
    ("rct seq", "thread: run_coroutine_threadsafe(...).result()", 0.5),
    ("gab.gio seq", "gasyncbridge.gio (query_info or load_contents)", 0.25),
]


async def callgrind_child(n):
    """Run each phase under callgrind: zero the counters, run, dump."""
    loop = asyncio.get_running_loop()
    plain = PlainThread()
    await plain.open(loop)
    call_soon = CallSoon()
    await call_soon.open(loop)
    tmp = tempfile.NamedTemporaryFile(prefix="gab-bench-", suffix=".txt")
    tmp.write(b"gasyncbridge benchmark\n" * 4)
    tmp.flush()
    GioWorkload.path = tmp.name
    gio = GabGio()
    await gio.open(loop)
    nop = targets.nop

    bodies = {
        "gab.ready seq": lambda k: time_seq(testmod.ready, k),
        "gab.ready conc": lambda k: time_conc(testmod.ready, k),
        "gab.sleep0 seq": lambda k: time_seq(lambda i: gasyncbridge.sleep(0), k),
        "call_soon seq": lambda k: time_seq(call_soon.op, k),
        "call_soon conc": lambda k: time_conc(call_soon.op, k),
        "thread seq": lambda k: time_seq(plain.op, k),
        "thread conc": lambda k: time_conc(plain.op, k),
        "gab.fire completion": completion_gab,
        "thread.csts completion": completion_thread,
        "gab.c-await seq": lambda k: benchmod.await_seq(nop, k),
        "gab.c-await conc": lambda k: benchmod.await_conc(nop, k),
        "rct seq": lambda k: in_thread(rct_seq, loop, nop, k),
        "gab.gio seq": lambda k: time_seq(gio.op, k),
    }
    for name, _what, share in CG_PHASES:
        k = max(1, int(n * share))
        await bodies[name](max(1, k // 10))   # warm-up
        gc.collect()
        benchmod.cg_zero()
        await bodies[name](k)
        benchmod.cg_dump(f"{name} n={k}")
    await plain.close()
    tmp.close()


def parse_callgrind_dumps(pattern):
    """{phase name: (n, instructions)} from the dump files of a run."""
    out = {}
    for path in sorted(glob.glob(pattern)):
        desc = total = None
        with open(path, errors="replace") as f:
            for line in f:
                if line.startswith("desc: Trigger: Client Request: "):
                    desc = line.split(": ", 3)[-1].strip()
                elif line.startswith(("summary:", "totals:")) and total is None:
                    total = int(line.split()[1])
        if desc and total is not None:
            m = re.match(r"(.*) n=(\d+)$", desc)
            if m:
                out[m.group(1)] = (int(m.group(2)), total, path)
    return out


def callgrind_functions(path):
    """{function: (own Ir, inclusive Ir)} of one callgrind dump.

    A small reader of the callgrind format (name compression, relative
    positions, one event): a cost line right after `calls=` is the cost of
    that call, counted as inclusive only; every other cost line is the
    function's own. (callgrind_annotate 3.19 mis-sums dumps made by client
    requests in the middle of a run.)
    """
    names = {}
    funcs = {}
    current = None
    after_call = False
    obj = None

    def define(kind, value):
        m = re.match(r"\((\d+)\)(?: (.*))?$", value)
        if not m:
            return value
        key = (kind, m.group(1))
        if m.group(2) is not None:
            names[key] = m.group(2)
        return names.get(key, value)

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            head, _, value = line.partition("=")
            if head in ("ob", "cob"):
                name = define("ob", value)
                if head == "ob":
                    obj = os.path.basename(name)
                continue
            if head in ("fl", "fi", "fe", "cfi", "cfl"):
                define("fl", value)
                continue
            if head == "fn":
                name = define("fn", value)
                current = funcs.setdefault(f"{name} [{obj}]" if obj else name, [0, 0])
                continue
            if head == "cfn":
                define("fn", value)
                continue
            if head == "calls":
                after_call = True
                continue
            if current is None or not (line[0].isdigit() or line[0] in "+-*"):
                continue
            parts = line.split()
            if len(parts) < 2:
                continue
            cost = int(parts[1])
            current[1] += cost
            if after_call:
                after_call = False
            else:
                current[0] += cost
    return {name.split(" [")[0] if name.startswith(("gab_", "op_", "await_", "queue_",
                                                    "inbox_")) else name: tuple(c)
            for name, c in funcs.items()}


def run_callgrind(args):
    """Run the phases (and bench-handoff) under callgrind; print Ir per op."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        sys.exit("bench: --callgrind needs valgrind")
    outdir = args.cg_dir or os.path.join(args.build_dir, "bench", "callgrind")
    os.makedirs(outdir, exist_ok=True)
    for old in glob.glob(os.path.join(outdir, "*.out*")):
        os.unlink(old)
    common = [valgrind, "--tool=callgrind", "--dump-instr=no"]
    n = args.cg_n if args.cg_n else (200 if args.quick else 2000)
    py_out = os.path.join(outdir, "python.out")
    cmd = common + [f"--callgrind-out-file={py_out}", sys.executable,
                    os.path.abspath(__file__), "--build-dir", args.build_dir,
                    "--callgrind-child", "--cg-n", str(n)]
    print(f"bench: running {len(CG_PHASES)} phases under callgrind (n={n}) ...",
          file=sys.stderr, flush=True)
    # The runtime's spin before sleeping (GAB_RUNTIME_SPIN_USEC) executes
    # instructions for as long as it waits: off, so that counts are the work.
    env = dict(os.environ, GAB_RUNTIME_SPIN_USEC=os.environ.get("GAB_RUNTIME_SPIN_USEC", "0"))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"bench: the callgrind run failed:\n{proc.stderr[-3000:]}")
    phases = parse_callgrind_dumps(py_out + "*")

    handoff = {}
    exe = os.path.join(args.build_dir, "bench", "bench-handoff")
    if os.access(exe, os.X_OK):
        c_out = os.path.join(outdir, "handoff.out")
        hn = max(100, n // 2)
        proc = subprocess.run(common + [f"--callgrind-out-file={c_out}", exe, "--n", str(hn),
                                        "--repeats", "1", "--batch-factor", "10"],
                              capture_output=True, text=True, env=env)
        if proc.returncode == 0:
            handoff = parse_callgrind_dumps(c_out + "*")

    rows = []
    print("\n## Instructions per operation (callgrind, all threads; n per phase)")
    print(f"   {'phase':<26} {'n':>6} {'Ir/op':>12}   what")
    whats = {name: what for name, what, _ in CG_PHASES}
    for name, (k, total, path) in list(phases.items()) + list(handoff.items()):
        per = total / k
        rows.append({"phase": name, "n": k, "instructions": total, "per_op": per,
                     "file": path})
        print(f"   {name:<26} {k:>6} {per:>12,.0f}   {whats.get(name, 'C, no Python')}")
    missing = [name for name, _, _ in CG_PHASES if name not in phases]
    if missing:
        print(f"   (no dump for: {', '.join(missing)})")
    if args.cg_annotate:
        for row in rows:
            funcs = callgrind_functions(row["file"])
            for title, index in (("own", 0), ("inclusive", 1)):
                top = sorted(funcs.items(), key=lambda kv: -kv[1][index])
                if index == 1:
                    # Inclusive costs of the bridge's own functions: where its
                    # share of an operation goes.
                    top = [kv for kv in top if kv[0].startswith(("gab_", "op_", "await_",
                                                                 "queue_", "inbox_"))]
                print(f"\n### {row['phase']}: top {args.cg_annotate} functions, "
                      f"{title} cost, Ir per op")
                for name, costs in top[:args.cg_annotate]:
                    print(f"   {costs[index] / row['n']:>10,.0f}  {name}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": machine_meta(args), "callgrind": rows}, f, indent=1)
    return 0 if not missing else 1


# ---------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(
        description="gasyncbridge benchmarks against plain asyncio and the peers.")
    parser.add_argument("--build-dir", default=os.path.join(SOURCE_ROOT, "build"),
                        help="the meson build directory (default: build)")
    parser.add_argument("--quick", "--smoke", action="store_true",
                        help="small N and few repeats: a smoke run of every line")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--json-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="+", metavar="GROUP",
                        choices=GROUPS_ORDER, help="run only these groups")
    parser.add_argument("--skip", nargs="+", metavar="GROUP", choices=GROUPS_ORDER,
                        help="run every group but these")
    parser.add_argument("--workload-repeats", type=int, metavar="R",
                        help="rounds of the workloads group (default 3, --quick 1)")
    parser.add_argument("--workloads", nargs="+", metavar="W",
                        choices=["load", "replace", "query", "mixed", "communicate",
                                 "socket", "dbus"],
                        help="in the workloads group, only these workloads")
    parser.add_argument("--no-uvloop", action="store_true", help="skip the uvloop lines")
    parser.add_argument("--wait-load", type=float, metavar="L",
                        help="first wait (up to 15 min) until the 1-minute load average "
                             "is below L: the machine is shared")
    parser.add_argument("--callgrind", action="store_true",
                        help="count instructions per operation under callgrind instead")
    parser.add_argument("--cg-n", type=int, default=0, help="ops per callgrind phase")
    parser.add_argument("--cg-dir", help="where callgrind dumps go "
                        "(default: BUILD/bench/callgrind)")
    parser.add_argument("--cg-annotate", type=int, default=0, metavar="K",
                        help="with --callgrind: print the top K functions of each phase")
    parser.add_argument("--callgrind-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--spin-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seq-n", type=int, default=5000, help=argparse.SUPPRESS)
    parser.add_argument("--c2py-n", type=int, default=2000, help=argparse.SUPPRESS)
    parser.add_argument("--memory-n", type=int, default=100_000, help=argparse.SUPPRESS)
    parser.add_argument("--memory-metric", default="rss", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.build_dir = os.path.abspath(args.build_dir)

    import_modules(args.build_dir)

    if args.memory_child:
        result = run_on("asyncio", memory_measure, args.memory_child, args.memory_n,
                        args.memory_metric)
        print(json.dumps(result))
        return 0
    if args.spin_child:
        print(json.dumps(run_on("asyncio", spin_measure, args.seq_n, args.c2py_n)))
        return 0
    if args.callgrind_child:
        run_on("asyncio", callgrind_child, args.cg_n or 2000)
        return 0
    if args.callgrind:
        return run_callgrind(args)

    if args.wait_load:
        deadline = time.monotonic() + 900
        while os.getloadavg()[0] >= args.wait_load and time.monotonic() < deadline:
            time.sleep(10)
    load_at_start = os.getloadavg()[0]
    suite = Suite(args)
    t0 = time.monotonic()
    suite.run()
    report = suite.report()
    print(report)
    meta = machine_meta(args)
    print(f"\n(ran {time.monotonic() - t0:.0f} s on {meta['cpus']} CPUs, {meta['cpu']}; "
          f"1-min load average {load_at_start:.1f} at start, {os.getloadavg()[0]:.1f} at end; "
          f"commit {meta['commit']}; {meta['date']})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(suite.to_json(), f, indent=1)
    return 1 if suite.failures else 0


if __name__ == "__main__":
    sys.exit(main())
