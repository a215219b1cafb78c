#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Runs the glib-main-thread example and checks its output and status."""
import subprocess
import sys

EXPECTED = [
    "2 squared is 4",
    "3 squared is 9",
    "4 squared is 16",
    "python ran on the asyncio thread",
    "callbacks ran on the main thread",
    "stopped",
]


def main(argv):
    proc = subprocess.run([argv[1]], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0 or proc.stdout.splitlines() != EXPECTED or proc.stderr:
        print(f"FAIL: status {proc.returncode}, expected 0 and {EXPECTED}, no stderr")
        print(f"---- stdout ----\n{proc.stdout}\n---- stderr ----\n{proc.stderr}")
        sys.exit(1)
    print("glib-main-thread: ok")


if __name__ == "__main__":
    main(sys.argv)
