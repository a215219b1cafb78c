#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Runs the async-main example and checks what it does.

    check_async_main.py output  EXE GREETER   the normal run and its output
    check_async_main.py failure EXE GREETER   a GIO error: status 1, message
    check_async_main.py SIGINT  EXE GREETER   a signal while it waits cancels
    check_async_main.py SIGTERM EXE GREETER   its work: cleanup, 128 + signal
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


def check_output(exe, greeter):
    proc = watchdog.run([exe], 30)
    with open(greeter) as f:
        lines = f.read().count("\n")
    expected = [
        "python says: Hello, world!",
        f"greeter.py has {lines} lines",
        "python files here: greeter.py",
    ]
    if proc.returncode != 0 or proc.stdout.splitlines() != expected:
        fail(f"status {proc.returncode}, expected 0 and {expected}", proc.stdout, proc.stderr)


def check_failure(exe, greeter):
    missing = os.path.join(os.path.dirname(exe), "no-such-file.txt")
    proc = watchdog.run([exe, missing], 30)
    if proc.returncode != 1:
        fail(f"status {proc.returncode}, expected 1", proc.stdout, proc.stderr)
    if not proc.stderr.startswith("async-main: ") or "no-such-file.txt" not in proc.stderr:
        fail("the GError message is not on stderr", proc.stdout, proc.stderr)
    if proc.stdout:
        fail("a failed run printed results", proc.stdout, proc.stderr)


def check_signal(exe, greeter, signame):
    signum = getattr(signal, signame)
    # Its stdin stays open until it exits: the read it waits on must end by
    # cancellation, not by end of file.
    stdin_r, stdin_w = os.pipe()
    proc = subprocess.Popen([exe, "--wait"], stdin=stdin_r, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=watchdog.child_env())
    os.close(stdin_r)
    seen = []
    limit = watchdog.deadline(proc, 60).__enter__()
    try:
        # The program says when its handlers are in place and its work waits.
        for line in proc.stdout:
            seen.append(line.rstrip("\n"))
            if seen[-1] == "waiting for a signal":
                break
        else:
            proc.wait(timeout=30)
            fail("it never said it was waiting", "\n".join(seen), proc.stderr.read())
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        fail(f"still running 30 s after {signame}", "\n".join(seen) + out, err)
    finally:
        os.close(stdin_w)
        limit.__exit__()
    if limit.expired:
        fail("no result within 60 s: aborted (its stacks are on stderr)", "\n".join(seen) + out, err)
    lines = seen + out.splitlines()
    if proc.returncode != 128 + signum:
        fail(f"status {proc.returncode}, expected {128 + signum}", "\n".join(lines), err)
    for needed in ["python: cancelled, cleaning up", "cancelled: python task stopped",
                   "cancelled: stdin read stopped", "cleaned up"]:
        if needed not in lines:
            fail(f"{needed!r} missing", "\n".join(lines), err)
    if lines.index("cleaned up") < lines.index("cancelled: python task stopped"):
        fail("cleaned up before its work stopped", "\n".join(lines), err)
    if "Traceback" in err or "KeyboardInterrupt" in err:
        fail("a Python traceback on stderr", "\n".join(lines), err)


def main(argv):
    mode, exe, greeter = argv[1:4]
    if mode == "output":
        check_output(exe, greeter)
    elif mode == "failure":
        check_failure(exe, greeter)
    else:
        check_signal(exe, greeter, mode)
    print(f"async-main {mode}: ok")


if __name__ == "__main__":
    main(sys.argv)
