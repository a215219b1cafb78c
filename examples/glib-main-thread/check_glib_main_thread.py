#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Runs the glib-main-thread example and checks its output and status."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import watchdog  # noqa: E402  (a time limit and a stack dump for every child)

EXPECTED = [
    "2 squared is 4",
    "3 squared is 9",
    "4 squared is 16",
    "python ran on the asyncio thread",
    "callbacks ran on the main thread",
    "stopped",
]


def main(argv):
    proc = watchdog.run([argv[1]], 30)
    if proc.returncode != 0 or proc.stdout.splitlines() != EXPECTED or proc.stderr:
        print(f"FAIL: status {proc.returncode}, expected 0 and {EXPECTED}, no stderr")
        print(f"---- stdout ----\n{proc.stdout}\n---- stderr ----\n{proc.stderr}")
        sys.exit(1)
    print("glib-main-thread: ok")


if __name__ == "__main__":
    main(sys.argv)
