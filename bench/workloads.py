#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The `workloads` group of bench/bench.py: real GIO work, as a user does it.

Seven workloads (issue 12), each done several ways:

  gab        gasyncbridge: gasyncbridge.gio, its streams, call_gio      asyncio, uvloop
  executor   loop.run_in_executor(None, blocking PyGObject Gio call)    asyncio, uvloop
  pool       concurrent.futures.ThreadPoolExecutor + asyncio.wrap_future  asyncio
  gbulb      gbulb's loop, PyGObject *_async with callbacks             gbulb
  asyncio    asyncio's own subprocess / streams (where it has them)     asyncio, uvloop

Every line runs in a process of its own, so that its peak RSS is its own,
and reports throughput, CPU time per operation (user + system of the whole
process, all threads), peak RSS (ru_maxrss) and the loop's lag: how late a
task that sleeps 1 ms in a loop wakes up while the work runs (max and p99).
Lines run in rounds (every line once before any runs again); a line's
figures are medians over the rounds, and its ratio to run_in_executor is
the median of the per-round ratios against the executor line on the same
loop (gbulb and pool lines: the executor line on stock asyncio).

Every line checks what it got (sizes, headers, the echoed bytes, the D-Bus
replies) and fails the run if anything is wrong.

Run through bench.py (`--only workloads`, `--quick` for tiny sizes), or a
single line by hand:

    /usr/bin/python3 bench/bench.py --build-dir build --only workloads --quick
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass

HERE = os.path.dirname(os.path.abspath(__file__))

MIB = 1 << 20
HEADER = 32                     # bytes of a file's header, which names the file
CHUNK = 64 * 1024               # stream chunk, for every socket line
PATTERN = random.Random(12).randbytes(CHUNK)
PATTERN2 = PATTERN * 2          # any CHUNK-long window of the stream, as one slice


# ---------------------------------------------------------------------------
# Sizes

@dataclass
class Sizes:
    files: int = 400            # 1. load, 2. replace
    file_size: int = MIB
    queries: int = 2000         # 3. query_info
    mixed: int = 2000           # 4. this many loads + as many query_info
    procs: int = 200            # 5. communicate
    proc_bytes: int = MIB
    stream_bytes: int = 100_000_000   # 6. each way
    dbus_calls: int = 10_000    # 7.
    repeats: int = 3

    @classmethod
    def smoke(cls):
        return cls(files=8, file_size=64 * 1024, queries=40, mixed=20, procs=4,
                   proc_bytes=64 * 1024, stream_bytes=2_000_000, dbus_calls=200,
                   repeats=1)


WORKLOADS = [
    # key, title (formatted with the sizes), unit of throughput, what one op is
    ("load", "{files} x gio.load_contents of {file_size_h} files, all at once",
     "files/s"),
    ("replace", "{files} x gio.replace_contents of {file_size_h}, all at once", "files/s"),
    ("query", "{queries} x gio.query_info, all at once", "ops/s"),
    ("mixed", "{mixed} x {file_size_h} loads + {mixed} query_info at once", "ops/s"),
    ("communicate", "{procs} concurrent communicate, {proc_bytes_h} of stdout each",
     "procs/s"),
    ("socket", "socket stream, {stream_mb} MB each way to an asyncio echo server",
     "MB/s"),
    ("dbus", "{dbus_calls} concurrent D-Bus calls (org.freedesktop.DBus.GetId)",
     "calls/s"),
]

WAYS = {
    # way: (label per workload, loops)
    "gab": ({"load": "gasyncbridge.gio.load_contents",
             "replace": "gasyncbridge.gio.replace_contents",
             "query": "gasyncbridge.gio.query_info",
             "mixed": "gasyncbridge.gio.load_contents + query_info",
             "communicate": "gasyncbridge.gio.communicate",
             "socket": "gasyncbridge.StreamReader/Writer over Gio.SocketClient",
             "dbus": "gasyncbridge.call_gio(conn.call, ...)"},
            ("asyncio", "uvloop")),
    "gab-dbus_call": ({"dbus": "gasyncbridge.gio.dbus_call(conn, ...)"},
                      ("asyncio", "uvloop")),
    "executor": ({"socket": "run_in_executor: blocking Gio socket streams, per chunk",
                  "dbus": "run_in_executor(None, conn.call_sync, ...)",
                  "communicate": "run_in_executor: Gio.Subprocess.communicate"},
                 ("asyncio", "uvloop")),
    "pool": ({}, ("asyncio",)),
    "gbulb": ({}, ("gbulb",)),
    "asyncio": ({"communicate": "asyncio.create_subprocess_exec + communicate",
                 "socket": "asyncio.open_connection streams"},
                ("asyncio", "uvloop")),
    # The lag floor of a workload that submits all its operations at once:
    # the same number of futures, gathered the same way, each completed by
    # loop.call_soon with no I/O and no thread. Its lag is what the user's
    # own submission and collection cost the loop, which no bridge removes.
    "floor": ({**{key: "floor: as many futures, completed by call_soon, no I/O"
                  for key in ("load", "replace", "query", "mixed", "dbus")},
               # The children alone: their CPU is the machine's, and the
               # loop thread waits for a processor behind them.
               "communicate": "floor: the same children, read by wc -c, no Python"},
              ("asyncio", "uvloop")),
    # The I/O floor of the loads: the same reads (and, mixed, stats) by
    # one thread per processor, five nice levels down, as the module's
    # workers are, each into a fresh bytes object (allocated with the GIL,
    # read into without it) and no loop work per file: the lag that reading
    # that much into new memory in this process costs the loop thread.
    "floor-io": ({"load": "floor: the same reads by niced threads, no loop work",
                  "mixed": "floor: the same reads + stats by niced threads"},
                 ("asyncio", "uvloop")),
    # The same calls, all in flight, from C on one GLib thread with no
    # Python at all (bench/_gab_bench_events.c), the way C code usually
    # calls GDBus: with a timeout, so a GDBus timeout source each.
    "c": ({"dbus": "C, one GLib thread, no Python, a timeout per call"},
          ("asyncio",)),
}
DEFAULT_LABELS = {
    "executor": "loop.run_in_executor(None, blocking Gio)",
    "pool": "ThreadPoolExecutor + asyncio.wrap_future, blocking Gio",
    "gbulb": "gbulb loop, PyGObject *_async + callbacks",
}


def human_size(n):
    return f"{n // MIB} MiB" if n % MIB == 0 else f"{n // 1024} KiB"


def title(key, sizes):
    fmt = next(t for k, t, _ in WORKLOADS if k == key)
    return fmt.format(**asdict(sizes), file_size_h=human_size(sizes.file_size),
                      proc_bytes_h=human_size(sizes.proc_bytes),
                      stream_mb=f"{sizes.stream_bytes / 1e6:g}")


def lines_of(key):
    """(way, loop) of every line of a workload."""
    out = []
    for way, (labels, loops) in WAYS.items():
        if way in ("asyncio", "gab-dbus_call", "floor", "floor-io", "c") and key not in labels:
            continue
        out.extend((way, loop) for loop in loops)
    return out


def label_of(key, way):
    labels = WAYS[way][0]
    return labels.get(key) or DEFAULT_LABELS[way]


# ---------------------------------------------------------------------------
# The data every line reads: files named by their header

def header(i):
    return f"gasyncbridge bench file {i:07d}\n".encode().ljust(HEADER, b".")


def file_path(root, i):
    return os.path.join(root, "files", f"f{i:07d}")


def make_files(root, sizes):
    os.makedirs(os.path.join(root, "files"), exist_ok=True)
    body = (PATTERN * (sizes.file_size // CHUNK + 1))[:sizes.file_size - HEADER]
    for i in range(max(sizes.files, sizes.queries, sizes.mixed)):
        with open(file_path(root, i), "wb") as f:
            f.write(header(i))
            f.write(body)


def check(condition, what):
    if not condition:
        raise AssertionError(f"wrong result: {what}")


def check_file_data(data, i, sizes):
    check(len(data) == sizes.file_size, f"file {i}: {len(data)} bytes, "
          f"expected {sizes.file_size}")
    check(data[:HEADER] == header(i), f"file {i}: header {bytes(data[:HEADER])!r}")
    body = (PATTERN * (sizes.file_size // CHUNK + 1))[:sizes.file_size - HEADER]
    check(data[-HEADER:] == body[-HEADER:], f"file {i}: wrong tail")


# ---------------------------------------------------------------------------
# The child: one line, one process

class Line:
    """One line on a running loop: setup() (untimed), run() (timed), verify()
    and teardown() (untimed). `spec` is what the parent passed."""

    def __init__(self, spec):
        self.spec = spec
        self.key, self.way, self.kind = spec["workload"], spec["way"], spec["loop"]
        self.sizes = Sizes(**spec["sizes"])
        self.root = spec["dir"]
        self.loop = asyncio.get_running_loop()
        self.pool = None

    # ---- the ways of calling blocking and async GIO --------------------------

    def submit(self, func, *args):
        """executor/pool: func(*args) on a worker thread, as an asyncio future."""
        if self.way == "pool":
            return asyncio.wrap_future(self.pool.submit(func, *args), loop=self.loop)
        return self.loop.run_in_executor(None, func, *args)

    def gcall(self, start, finish, *args):
        """gbulb: start(*args, cancellable, callback, data) of PyGObject; the
        callback runs on gbulb's loop (GLib's default context) and sets the
        future with finish(result)."""
        fut = self.loop.create_future()

        def done(_source, result, _data):
            try:
                value = finish(result)
            except Exception as e:   # noqa: BLE001 - handed to the awaiting code
                fut.set_exception(e)
            else:
                fut.set_result(value)

        start(*args, None, done, None)
        return fut

    async def setup(self):
        if self.way == "pool":
            self.pool = concurrent.futures.ThreadPoolExecutor()
        # Start the threads a line uses before the clock starts.
        if self.way.startswith("gab"):
            await gasyncbridge.sleep(0)
        elif self.way in ("executor", "pool"):
            await asyncio.gather(*[self.submit(int) for _ in range(8)])
        await getattr(self, "setup_" + self.key, _nothing)()

    async def teardown(self):
        await getattr(self, "teardown_" + self.key, _nothing)()
        if self.pool is not None:
            self.pool.shutdown()

    async def run(self):
        """Returns (ops, result to verify)."""
        if self.way == "floor":
            return await self.run_floor()
        if self.way == "floor-io":
            return await self.run_floor_io()
        return await getattr(self, "run_" + self.key)()

    def verify(self, result):
        if self.way == "floor" and self.key == "communicate":
            counts = result.split()
            check(counts == [str(self.sizes.proc_bytes).encode()] * self.sizes.procs,
                  f"floor: {len(counts)} children's counts, not {self.sizes.procs} "
                  f"of {self.sizes.proc_bytes}")
            return
        if self.way == "floor":
            check(result == [None] * len(result), "floor: every future gave None")
            return
        if self.way == "floor-io" and self.key == "mixed":
            self.verify_load([data for data, _size in result])
            check(all(size == self.sizes.file_size for _data, size in result),
                  "floor-io: every stat gave the file's size")
            return
        getattr(self, "verify_" + self.key)(result)

    async def run_floor(self):
        if self.key == "communicate":
            return await self.run_floor_communicate()
        n = {"load": self.sizes.files, "replace": self.sizes.files,
             "query": self.sizes.queries, "mixed": 2 * self.sizes.mixed,
             "dbus": self.sizes.dbus_calls}[self.key]

        def op():
            fut = self.loop.create_future()
            self.loop.call_soon(fut.set_result, None)
            return fut

        return n, await asyncio.gather(*[op() for _ in range(n)])

    async def run_floor_io(self):
        n = self.sizes.files if self.key == "load" else self.sizes.mixed
        stat = self.key == "mixed"
        threads = os.cpu_count() or 1
        results = [None] * n

        def work(first):
            # As the module's workers: five nice levels below the process.
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + 5)
            for i in range(first, n, threads):
                path = file_path(self.root, i)
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    data = os.read(fd, os.fstat(fd).st_size)
                finally:
                    os.close(fd)
                results[i] = (data, os.stat(path).st_size) if stat else data

        workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
        for t in workers:
            t.start()
        # Only the end is awaited: no completion per file reaches the loop.
        await self.loop.run_in_executor(None, lambda: [t.join() for t in workers])
        return (2 * n if stat else n), results

    # ---- 1. load_contents ----------------------------------------------------

    def load_op(self, i):
        path = file_path(self.root, i)
        if self.way == "gab":
            return gio.load_contents(path)
        gfile = Gio.File.new_for_path(path)
        if self.way == "gbulb":
            return self.gcall(gfile.load_contents_async,
                              lambda r: gfile.load_contents_finish(r)[1])
        return self.submit(lambda: gfile.load_contents(None)[1])

    async def run_load(self):
        n = self.sizes.files
        return n, await asyncio.gather(*[self.load_op(i) for i in range(n)])

    def verify_load(self, results):
        for i, data in enumerate(results):
            check_file_data(data, i, self.sizes)

    # ---- 2. replace_contents -------------------------------------------------

    async def setup_replace(self):
        self.out = os.path.join(self.root, f"out-{os.getpid()}")
        os.makedirs(self.out)
        self.payload = (header(0) + PATTERN * (self.sizes.file_size // CHUNK + 1)
                        )[:self.sizes.file_size]
        if self.way == "gbulb":
            self.gbytes = GLib.Bytes.new(self.payload)

    async def teardown_replace(self):
        shutil.rmtree(self.out, ignore_errors=True)

    def replace_op(self, i):
        path = os.path.join(self.out, f"r{i:07d}")
        if self.way == "gab":
            return gio.replace_contents(path, self.payload)
        gfile = Gio.File.new_for_path(path)
        if self.way == "gbulb":
            return self.gcall(gfile.replace_contents_bytes_async,
                              gfile.replace_contents_finish, self.gbytes, None, False,
                              Gio.FileCreateFlags.NONE)
        return self.submit(gfile.replace_contents, self.payload, None, False,
                           Gio.FileCreateFlags.NONE, None)

    async def run_replace(self):
        n = self.sizes.files
        return n, await asyncio.gather(*[self.replace_op(i) for i in range(n)])

    def verify_replace(self, _results):
        for i in range(self.sizes.files):
            path = os.path.join(self.out, f"r{i:07d}")
            check(os.path.getsize(path) == self.sizes.file_size, f"{path}: wrong size")
            with open(path, "rb") as f:
                check(f.read(HEADER) == header(0), f"{path}: wrong header")
                f.seek(-HEADER, os.SEEK_END)
                check(f.read() == self.payload[-HEADER:], f"{path}: wrong tail")

    # ---- 3. query_info -------------------------------------------------------

    def query_op(self, i):
        path = file_path(self.root, i)
        if self.way == "gab":
            return gio.query_info(path, bench.GIO_KEYS)
        gfile = Gio.File.new_for_path(path)
        if self.way == "gbulb":
            return self.gcall(gfile.query_info_async,
                              lambda r: bench.info_to_dict(gfile.query_info_finish(r)),
                              bench.GIO_ATTRIBUTES, Gio.FileQueryInfoFlags.NONE,
                              GLib.PRIORITY_DEFAULT)
        return self.submit(lambda: bench.info_to_dict(gfile.query_info(
            bench.GIO_ATTRIBUTES, Gio.FileQueryInfoFlags.NONE, None)))

    async def run_query(self):
        n = self.sizes.queries
        return n, await asyncio.gather(*[self.query_op(i) for i in range(n)])

    def verify_query(self, results):
        for i, info in enumerate(results):
            check(info["name"] == f"f{i:07d}" and info["size"] == self.sizes.file_size,
                  f"query_info {i}: {info}")

    # ---- 4. mixed --------------------------------------------------------------

    async def run_mixed(self):
        ops = []
        for i in range(self.sizes.mixed):
            ops.append(self.load_op(i))
            ops.append(self.query_op(i))
        return len(ops), await asyncio.gather(*ops)

    def verify_mixed(self, results):
        self.verify_load(results[0::2])
        self.verify_query(results[1::2])

    # ---- 5. communicate -------------------------------------------------------

    def argv(self):
        return ["head", "-c", str(self.sizes.proc_bytes), "/dev/zero"]

    async def communicate_op(self):
        argv = self.argv()
        if self.way == "gab":
            code, out, _err = await gio.communicate(argv)
            return code, out
        if self.way == "asyncio":
            proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE)
            out, _err = await proc.communicate()
            return proc.returncode, out
        if self.way == "gbulb":
            proc = Gio.Subprocess.new(argv, Gio.SubprocessFlags.STDOUT_PIPE)
            _ok, out, _err = await self.gcall(proc.communicate_async,
                                              proc.communicate_finish, None)
            return proc.get_exit_status(), out.get_data()

        def blocking():
            proc = Gio.Subprocess.new(argv, Gio.SubprocessFlags.STDOUT_PIPE)
            _ok, out, _err = proc.communicate(None, None)
            return proc.get_exit_status(), out.get_data()
        return await self.submit(blocking)

    async def run_floor_communicate(self):
        """The same children at once, each piped into `wc -c` by one shell:
        no Python reads their output, and the loop only reads the counts."""
        n = self.sizes.procs
        each = " ".join(self.argv())
        script = f"for i in $(seq {n}); do {each} | wc -c & done; wait"
        proc = await asyncio.create_subprocess_exec("sh", "-c", script,
                                                    stdout=subprocess.PIPE)
        out, _err = await proc.communicate()
        check(proc.returncode == 0, f"floor: the shell exited {proc.returncode}")
        return n, out

    async def run_communicate(self):
        n = self.sizes.procs
        return n, await asyncio.gather(*[self.communicate_op() for _ in range(n)])

    def verify_communicate(self, results):
        zeros = bytes(self.sizes.proc_bytes)
        for code, out in results:
            check(code == 0 and out == zeros,
                  f"communicate: exit {code}, {len(out)} bytes of stdout")

    # ---- 6. socket stream ----------------------------------------------------

    async def setup_socket(self):
        port = self.spec["echo_port"]
        if self.way == "asyncio":
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
            return
        client = Gio.SocketClient()
        self.conn = client.connect_to_host("127.0.0.1", port, None)
        self.istream = self.conn.get_input_stream()
        self.ostream = self.conn.get_output_stream()
        if self.way == "gab":
            self.reader = gasyncbridge.StreamReader(self.istream)
            self.writer = gasyncbridge.StreamWriter(self.ostream)

    async def teardown_socket(self):
        if self.way in ("gab", "asyncio"):
            self.writer.close()
            await self.writer.wait_closed()
        if self.way == "gab":
            self.reader.close()
            await self.reader.wait_closed()
        if self.way != "asyncio":
            self.conn.close(None)

    async def socket_send(self):
        total = self.sizes.stream_bytes
        for offset in range(0, total, CHUNK):
            chunk = PATTERN[:min(CHUNK, total - offset)]
            if self.way in ("gab", "asyncio"):
                self.writer.write(chunk)
                await self.writer.drain()
            elif self.way == "gbulb":
                while chunk:            # write_bytes_async may write a part
                    n = await self.gcall(self.ostream.write_bytes_async,
                                         self.ostream.write_bytes_finish,
                                         GLib.Bytes.new(chunk), GLib.PRIORITY_DEFAULT)
                    chunk = chunk[n:]
            else:
                await self.submit(self.ostream.write_all, chunk, None)

    async def socket_receive(self):
        total, got = self.sizes.stream_bytes, 0
        while got < total:
            if self.way in ("gab", "asyncio"):
                data = await self.reader.read(CHUNK)
            elif self.way == "gbulb":
                data = (await self.gcall(self.istream.read_bytes_async,
                                         self.istream.read_bytes_finish, CHUNK,
                                         GLib.PRIORITY_DEFAULT)).get_data()
            else:
                data = (await self.submit(self.istream.read_bytes, CHUNK, None)).get_data()
            check(data, f"socket: end of stream after {got} of {total} bytes")
            start = got % CHUNK
            check(data == PATTERN2[start:start + len(data)],
                  f"socket: wrong bytes at offset {got}")
            got += len(data)
        return got

    async def run_socket(self):
        _, got = await asyncio.gather(self.socket_send(), self.socket_receive())
        return self.sizes.stream_bytes / 1e6, got

    def verify_socket(self, got):
        check(got == self.sizes.stream_bytes, f"socket: {got} bytes echoed")

    # ---- 7. D-Bus ------------------------------------------------------------

    DBUS = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
            "GetId")

    async def setup_dbus(self):
        flags = (Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
                 | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION)
        self.conn = Gio.DBusConnection.new_for_address_sync(self.spec["dbus_address"],
                                                            flags, None, None)
        self.reply_type = GLib.VariantType.new("(s)")

    async def teardown_dbus(self):
        self.conn.close_sync(None)

    def dbus_op(self):
        if self.way == "gab-dbus_call":
            return gio.dbus_call(self.conn, *self.DBUS, reply_type="(s)")
        args = (*self.DBUS, None, self.reply_type, Gio.DBusCallFlags.NONE, -1)
        if self.way == "gab":
            return gasyncbridge.call_gio(self.conn.call, *args)
        if self.way == "gbulb":
            return self.gcall(self.conn.call, self.conn.call_finish, *args)
        return self.submit(self.conn.call_sync, *args, None)

    async def run_dbus(self):
        n = self.sizes.dbus_calls
        if self.way == "c":
            import _gab_bench_events as ev
            handle = ev.dbus_calls(self.conn.__gpointer__, self.DBUS[0], self.DBUS[1],
                                   self.DBUS[2], "GetId", n, n, False)
            _seconds, errors, first = await self.loop.run_in_executor(None, ev.dbus_wait,
                                                                      handle)
            check(errors == 0, f"dbus/c: {errors} calls failed: {first}")
            return n, None
        return n, await asyncio.gather(*[self.dbus_op() for _ in range(n)])

    def verify_dbus(self, results):
        if self.way == "c":
            return
        ids = {r[0] if isinstance(r, tuple) else r.unpack()[0] for r in results}
        check(len(ids) == 1 and len(next(iter(ids))) == 32, f"D-Bus GetId: {ids}")


async def _nothing():
    return None


async def ticker(lags, stop):
    """Sleeps 1 ms, over and over; records how late each wake-up is."""
    while not stop:
        expected = time.perf_counter() + 0.001
        await asyncio.sleep(0.001)
        lags.append(time.perf_counter() - expected)


def cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def measure(spec):
    line = Line(spec)
    await line.setup()
    lags, stop = [], []
    tick = asyncio.ensure_future(ticker(lags, stop))
    await asyncio.sleep(0.005)          # the ticker is running before the work starts
    lags.clear()
    try:
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        ops, result = await line.run()
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        samples = list(lags)
    finally:
        stop.append(True)
        await tick
    line.verify(result)
    del result
    await line.teardown()
    samples.sort()
    return {"seconds": seconds, "ops": ops, "throughput": ops / seconds,
            "cpu_us_per_op": cpu / ops * 1e6,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "lag_max_ms": samples[-1] * 1e3 if samples else None,
            "lag_p99_ms": (samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1e3
                           if samples else None),
            "ticks": len(samples)}


def child_main(spec_json, build_dir):
    global bench, gasyncbridge, gio, Gio, GLib
    spec = json.loads(spec_json)
    sys.path.insert(0, HERE)
    import bench as _bench
    _bench.import_modules(build_dir)
    bench, gasyncbridge, Gio, GLib = _bench, _bench.gasyncbridge, _bench.Gio, _bench.GLib
    gio = gasyncbridge.gio
    if GLib is not None:
        # PyGObject loads types and flags lazily; done first by two worker
        # threads at once, one of them gets "Expected GLib.Bytes" or "no
        # attribute 'NONE'". So every one the workers use is loaded here.
        GLib.Bytes.new(b"x").get_data()
        for flags in (Gio.FileQueryInfoFlags, Gio.FileCreateFlags, Gio.DBusCallFlags):
            flags.NONE  # noqa: B018 - loads it
        Gio.SubprocessFlags.STDOUT_PIPE  # noqa: B018
    loop = bench.new_loop(spec["loop"])
    asyncio.set_event_loop(loop)
    try:
        out = loop.run_until_complete(measure(spec))
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
    print(json.dumps(out), flush=True)
    return 0


bench = gasyncbridge = gio = Gio = GLib = None   # set in the child


# ---------------------------------------------------------------------------
# Helpers the parent starts: the echo server and a private dbus-daemon

async def echo_server():
    async def echo(reader, writer):
        while data := await reader.read(256 * 1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


class Helpers:
    """The echo server and the dbus-daemon, for the whole group."""

    def __init__(self, tmpdir):
        self.procs = []
        self.echo_port = None
        self.dbus_address = None
        self.dbus_skip = None
        echo = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--echo-server"],
                                stdout=subprocess.PIPE, text=True)
        self.procs.append(echo)
        self.echo_port = int(echo.stdout.readline())
        daemon = shutil.which("dbus-daemon")
        if daemon is None:
            self.dbus_skip = "dbus-daemon (package dbus) is not installed"
            return
        sockdir = tempfile.mkdtemp(prefix="dbus-", dir=tmpdir)
        bus = subprocess.Popen([daemon, "--session", f"--address=unix:dir={sockdir}",
                                "--print-address=1", "--nofork", "--nopidfile"],
                               stdout=subprocess.PIPE, text=True)
        self.procs.append(bus)
        self.dbus_address = bus.stdout.readline().strip()
        if not self.dbus_address:
            self.dbus_skip = f"dbus-daemon did not start (exit {bus.wait()})"

    def close(self):
        for proc in self.procs:
            proc.terminate()
            proc.wait()


# ---------------------------------------------------------------------------
# The parent: lines in rounds, medians, the table

@dataclass
class Row:
    workload: str
    way: str
    loop: str
    label: str
    unit: str
    runs: list
    skipped: str | None = None
    throughput: float | None = None
    cpu_us_per_op: float | None = None
    peak_rss_mib: float | None = None
    lag_max_ms: float | None = None
    lag_p99_ms: float | None = None
    ratio: float | None = None      # to run_in_executor, median of per-round ratios


def median_of(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def why_not(way, kind, helpers, key, args, peers):
    if kind == "uvloop" and args.no_uvloop:
        return "--no-uvloop"
    if kind == "uvloop" and not peers["uvloop"]:
        return "uvloop is not installed"
    if way == "gbulb" and not peers["gbulb"]:
        return "gbulb (python3-gbulb) is not installed"
    if way != "asyncio" and not peers["gi"]:
        return "PyGObject is not installed"
    if way == "gab-dbus_call" and not peers.get("dbus_call"):
        return "gasyncbridge.gio has no dbus_call"
    if key == "dbus":
        return helpers.dbus_skip
    return None


def run_group(suite, peers):
    """Runs every line in rounds; returns a dict for the report and JSON."""
    args = suite.args
    sizes = Sizes.smoke() if args.quick else Sizes()
    if getattr(args, "workload_repeats", None):
        sizes.repeats = args.workload_repeats
    tmpdir = tempfile.mkdtemp(prefix="gab-workloads-")
    rows = []
    try:
        suite.log(f"# workloads: making files in {tmpdir}")
        make_files(tmpdir, sizes)
        helpers = Helpers(tmpdir)
        try:
            for key, _title, unit in WORKLOADS:
                if getattr(args, "workloads", None) and key not in args.workloads:
                    continue
                for way, kind in lines_of(key):
                    row = Row(key, way, kind, label_of(key, way), unit, [])
                    row.skipped = why_not(way, kind, helpers, key, args, peers)
                    if row.skipped != "--no-uvloop":
                        rows.append(row)
            for r in range(sizes.repeats):
                suite.log(f"# workloads: round {r + 1} of {sizes.repeats}")
                for row in rows:
                    if row.skipped:
                        continue
                    spec = {"workload": row.workload, "way": row.way, "loop": row.loop,
                            "sizes": asdict(sizes), "dir": tmpdir,
                            "echo_port": helpers.echo_port,
                            "dbus_address": helpers.dbus_address}
                    # No line inherits the writeback of an earlier one's
                    # dirty pages (the files made above, the replace lines'
                    # 400 MiB): it slowed whichever replace line came first.
                    os.sync()
                    started = time.monotonic()
                    try:
                        row.runs.append(run_child(spec, args.build_dir, args.quick))
                    except Exception as e:   # noqa: BLE001 - reported, fails the run
                        suite.fail(f"workloads/{row.workload}/{row.way}/{row.loop}", e)
                        row.skipped = "failed"
                        continue
                    got = row.runs[-1]
                    suite.log(f"  {row.workload}/{row.way}/{row.loop}: "
                              f"{got['throughput']:,.1f} {row.unit}, max lag "
                              f"{fmt_ms(got['lag_max_ms'])} ms "
                              f"({time.monotonic() - started:.1f} s in all)")
        finally:
            helpers.close()
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    for row in rows:
        if not row.runs:      # a line that failed later keeps its good rounds
            continue
        for field in ("throughput", "cpu_us_per_op", "peak_rss_mib", "lag_max_ms",
                      "lag_p99_ms"):
            setattr(row, field, median_of(row.runs, field))
    for row in rows:
        ref = reference_row(rows, row)
        if ref is not None and row.throughput is not None:
            k = min(len(row.runs), len(ref.runs))
            row.ratio = statistics.median(a["throughput"] / b["throughput"]
                                          for a, b in zip(row.runs[:k], ref.runs[:k]))
    return {"sizes": asdict(sizes), "rows": [asdict(r) for r in rows],
            "targets": targets(rows)}


def reference_row(rows, row):
    """The run_in_executor line the row is compared with."""
    loop = row.loop if row.loop in ("asyncio", "uvloop") and row.way != "pool" else "asyncio"
    for r in rows:
        if (r.workload, r.way, r.loop) == (row.workload, "executor", loop) and r.runs:
            return r
    return None


def run_child(spec, build_dir, quick):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec),
           "--build-dir", build_dir]
    out = subprocess.run(cmd, capture_output=True, text=True,
                         timeout=120 if quick else 900)
    if out.returncode != 0:
        raise RuntimeError(f"exit {out.returncode}:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# Issue 12, item 4: every gasyncbridge line against run_in_executor on its loop.
TARGET_RATIO, TARGET_AIM, TARGET_LAG_MAX, TARGET_LAG_P99 = 1.2, 1.5, 20.0, 5.0


def targets(rows):
    out = []
    for row in rows:
        if not row.way.startswith("gab") or row.throughput is None:
            continue
        name = row.workload + row.way[3:].replace("-", " ")
        out.append({"line": f"{name}/{row.loop}", "ratio": row.ratio,
                    "ratio_met": row.ratio is not None and row.ratio >= TARGET_RATIO,
                    "aim_met": row.ratio is not None and row.ratio >= TARGET_AIM,
                    "lag_max_ms": row.lag_max_ms,
                    "lag_max_met": row.lag_max_ms is not None
                    and row.lag_max_ms <= TARGET_LAG_MAX,
                    "lag_p99_ms": row.lag_p99_ms,
                    "lag_p99_met": row.lag_p99_ms is not None
                    and row.lag_p99_ms <= TARGET_LAG_P99})
    return out


def fmt_ms(value):
    return "-" if value is None else f"{value:.1f}"


def fmt_thr(value):
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def report(data):
    sizes = Sizes(**data["sizes"])
    rows = [Row(**r) for r in data["rows"]]
    lines = ["", "## 10. Workloads: real GIO work, each line in its own process "
             f"(medians of {sizes.repeats} rounds)",
             "   cpu: user+sys of the process per op (socket: per MB); lag (ms): a 1 ms "
             "ticker's late wake-ups during the work, ticks: how many; x exec: "
             "throughput / run_in_executor on the same loop"]
    head = (f"   {'what':<56} {'loop':<8} {'throughput':>12} {'cpu us/op':>10} "
            f"{'RSS MiB':>8} {'max lag':>8} {'p99 lag':>8} {'ticks':>6} {'x exec':>7}")
    for key, _t, unit in WORKLOADS:
        sub = [r for r in rows if r.workload == key]
        if not sub:
            continue
        lines.append("")
        lines.append(f"   {title(key, sizes)}  [{unit}]")
        lines.append(head)
        for r in sub:
            left = f"   {r.label[:56]:<56} {r.loop:<8} "
            if r.throughput is None:
                lines.append(left + f"{'skipped':>12}  ({r.skipped})")
                continue
            ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
            ticks = median_of(r.runs, "ticks")
            lines.append(left + f"{fmt_thr(r.throughput):>12} {r.cpu_us_per_op:>10,.0f} "
                         f"{r.peak_rss_mib:>8,.0f} {fmt_ms(r.lag_max_ms):>8} "
                         f"{fmt_ms(r.lag_p99_ms):>8} {ticks:>6.0f} {ratio:>7}")
    lines.append("")
    lines.append(f"## Targets (issue 12): >= {TARGET_RATIO}x run_in_executor (aim "
                 f"{TARGET_AIM}x), max lag <= {TARGET_LAG_MAX:g} ms, p99 <= "
                 f"{TARGET_LAG_P99:g} ms")
    for t in data["targets"]:
        ratio = "-" if t["ratio"] is None else f"{t['ratio']:.2f}x"
        verdict = ("met" if t["ratio_met"] and t["lag_max_met"] and t["lag_p99_met"]
                   else "NOT MET")
        lines.append(f"   {verdict:>7}  gasyncbridge {t['line']:<20} {ratio:>7} "
                     f"max lag {fmt_ms(t['lag_max_ms'])} ms, p99 {fmt_ms(t['lag_p99_ms'])} ms")
    return "\n".join(lines)


def main(argv):
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", metavar="SPEC", help="run one line (JSON spec)")
    parser.add_argument("--echo-server", action="store_true",
                        help="serve an asyncio echo server on 127.0.0.1; print its port")
    parser.add_argument("--build-dir", default=os.path.join(os.path.dirname(HERE), "build"))
    args = parser.parse_args(argv)
    if args.echo_server:
        try:
            asyncio.run(echo_server())
        except KeyboardInterrupt:
            pass
        return 0
    if args.child:
        return child_main(args.child, os.path.abspath(args.build_dir))
    parser.error("run the group through bench.py --only workloads")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
