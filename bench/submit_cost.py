#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""What submitting N operations at once costs the loop thread.

    /usr/bin/python3 bench/submit_cost.py [--build-dir build] [--n 2000]

A workload that starts all its operations in one step of its own code (a
list comprehension handed to asyncio.gather) holds the loop for that whole
step, whatever the bridge does afterwards: this is the floor of the loop
lag of the workloads group (bench.py --only workloads) for load, query,
mixed and D-Bus. For each kind of operation it prints the loop thread's
CPU time and the wall time per call of the submission, and the length of
the burst, beside bare futures (loop.create_future + call_soon).
"""
import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", default="build")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, HERE)
    import bench
    bench.import_modules(args.build_dir)
    gio = bench.gasyncbridge.gio
    tmp = tempfile.mkdtemp(prefix="gab-submit-")
    paths = []
    for i in range(args.n):
        path = os.path.join(tmp, f"f{i}")
        with open(path, "wb") as f:
            f.write(b"x" * 128)
        paths.append(path)

    async def run():
        loop = asyncio.get_running_loop()

        def bare(_path):
            fut = loop.create_future()
            loop.call_soon(fut.set_result, None)
            return fut

        kinds = [("bare future (create_future + call_soon)", bare),
                 ("gio.load_contents", gio.load_contents),
                 ("gio.query_info", gio.query_info)]
        await bench.gasyncbridge.sleep(0)
        print(f"{args.n} operations submitted at once, median of {args.repeats}:")
        print(f"  {'what':42} {'loop CPU us/call':>16} {'wall us/call':>13} {'burst ms':>9}")
        for name, start in kinds:
            cpu, wall = [], []
            for _ in range(args.repeats):
                c0, t0 = time.thread_time(), time.perf_counter()
                futs = [start(p) for p in paths]
                c1, t1 = time.thread_time(), time.perf_counter()
                await asyncio.gather(*futs)
                cpu.append((c1 - c0) / args.n * 1e6)
                wall.append((t1 - t0) / args.n * 1e6)
            cpu.sort()
            wall.sort()
            m = len(cpu) // 2
            print(f"  {name:42} {cpu[m]:16.1f} {wall[m]:13.1f} {wall[m] * args.n / 1e3:9.1f}")

    try:
        asyncio.run(run())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
