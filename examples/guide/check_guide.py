#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Runs one of the guide's C programs and checks what it prints and returns.

    check_guide.py NAME EXE     NAME is one of the programs below
"""
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import watchdog  # noqa: E402  (a time limit and a stack dump for every child)


def fail(message, out="", err=""):
    print(f"FAIL: {message}\n---- stdout ----\n{out}\n---- stderr ----\n{err}")
    sys.exit(1)


def expect(argv, status, lines, stderr_has=None, exact=False):
    proc = watchdog.run(argv, 60)
    got = proc.stdout.splitlines()
    missing = [line for line in lines if line not in got]
    if proc.returncode != status or missing or (exact and got != lines):
        fail(f"{argv}: status {proc.returncode} (expected {status}), missing {missing}",
             proc.stdout, proc.stderr)
    if stderr_has is not None and stderr_has not in proc.stderr:
        fail(f"{argv}: {stderr_has!r} is not on stderr", proc.stdout, proc.stderr)


def check_signal(exe, signum):
    proc = subprocess.Popen([exe], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=watchdog.child_env())
    with watchdog.deadline(proc, 60) as limit:
        first = proc.stdout.readline()
    if limit.expired:
        fail("it did not start within 60 s: aborted", first, proc.stderr.read())
    if first.strip() != "serving":
        proc.kill()
        fail(f"it said {first!r}, not 'serving'", first, proc.stderr.read())
    proc.send_signal(signum)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        fail(f"still running 30 s after signal {signum}", out, err)
    if proc.returncode != 128 + signum or "python: stopped after" not in out:
        fail(f"status {proc.returncode}, expected {128 + signum} after the Python cleanup",
             out, err)


def main(name, exe):
    if name == "readme":
        expect([exe], 0, ["20 + 22 = 42"], exact=True)
    elif name == "python-from-c":
        expect([exe], 0, ["an apple costs 3", "a pear costs 5",
                          "no kiwis: KeyError: 'kiwi'", "crate 0 unloaded", "crate 1 unloaded",
                          "crate 2 unloaded", "all crates unloaded", "stocktake stopped"])
    elif name == "c-streams":
        expect([exe], 0, ["apple: 3 euros", "pear: 5 euros"], exact=True)
    elif name == "event-loops":
        expect([exe], 0, ["gab_run: counted to 3", "gab_run_until_complete: counted to 2",
                          "gab_run_forever: hello, run_forever"], exact=True)
    elif name == "glib-main":
        expect([exe], 0, ["7 squared is 49"], exact=True)
    elif name == "async-main":
        expect([exe, "3"], 0, ["serving", "served 3 requests"], exact=True)
        expect([exe, "-5"], 1, [], stderr_has="ValueError: cannot serve -5 requests")
        check_signal(exe, signal.SIGINT)
        check_signal(exe, signal.SIGTERM)
    else:
        fail(f"unknown program {name}")
    print(f"{name}: ok")


if __name__ == "__main__":
    main(*sys.argv[1:3])
