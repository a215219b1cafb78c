# SPDX-License-Identifier: LGPL-2.1-or-later
"""gasyncbridge demo: asyncio and GLib/GIO awaiting each other, both ways.

Python -> GLib: a stock asyncio loop awaits real GIO work (reading files,
GLib timeouts) that runs on the gasyncbridge runtime thread, concurrently.
GLib -> Python: C code on the runtime thread (the small _gab_testmod binding)
awaits Python coroutines on this loop, with this task's contextvars.

Run it with `tools/demo` (which builds everything first).
"""
import asyncio
import contextvars
import os
import sys
import tempfile
import threading

import gasyncbridge
import _gab_testmod as cbridge   # C operations written with the public C API

request_id = contextvars.ContextVar("request_id", default="-")


def thread_name():
    """The OS-level name of the calling thread (Python calls foreign threads Dummy-N)."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/comm") as f:
            return f.read().strip()
    except OSError:
        return threading.current_thread().name


async def add(a, b):
    """Called from C with GVariant arguments."""
    await asyncio.sleep(0)
    return a + b


async def python_side(n):
    """A coroutine that C code awaits."""
    await asyncio.sleep(0.01)
    return f"python coroutine {n} ran on {thread_name()!r} for request {request_id.get()}"


async def main():
    request_id.set("demo-42")
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(3):
            path = os.path.join(tmp, f"file{i}.txt")
            with open(path, "w") as f:
                f.write(f"contents of file {i}\n" * (i + 1))
            paths.append(path)

        print("== Python awaits GIO (runtime thread), concurrently ==")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        contents, slept = await asyncio.gather(
            asyncio.gather(*[gasyncbridge.gio.load_contents(p) for p in paths]),
            gasyncbridge.sleep(0.05, result="a GLib timeout fired"),
        )
        for path, data in zip(paths, contents):
            print(f"  {os.path.basename(path)}: {len(data)} bytes, first line {data.splitlines()[0]!r}")
        print(f"  {slept} (all in {1000 * (loop.time() - t0):.0f} ms)")
        runtime = await gasyncbridge.run_in_runtime(thread_name)
        print(f"  the GLib work ran on thread {runtime!r}; asyncio stayed on {thread_name()!r}")
        try:
            await gasyncbridge.gio.load_contents(os.path.join(tmp, "missing"))
        except FileNotFoundError as e:
            print(f"  a GIO error arrives as {type(e).__name__} (domain {e.domain}, code {e.code})")

        print("== GLib/C awaits Python ==")
        results = await asyncio.gather(*[cbridge.await_py(python_side(i)) for i in range(3)])
        for r in results:
            print("  C got:", r)
        total = await cbridge.call("__main__", "add", (20, 22))
        print(f"  C called add(20, 22) in this module with GVariant arguments: {total}")

        print("== cancellation crosses both ways ==")
        task = asyncio.ensure_future(gasyncbridge.sleep(3600))
        await asyncio.sleep(0.01)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            print("  cancelling the asyncio task removed the GLib timeout")


if __name__ == "__main__":
    asyncio.run(main())
    print("demo: ok")
