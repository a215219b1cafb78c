#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Turn a hang into a failure, with the stack of every thread printed.

Used by the fault and stress tests (pytests/test_faults.py, test_stress.py,
test_bad_input.py), in the test process and in the scripts they run:

    import watchdog
    with watchdog.Watchdog(30):
        ...                      # must finish within 30 s

When time runs out:

1. faulthandler prints the Python stack of every thread. It does so from a
   C thread of its own that needs no GIL, so it works when the GIL is what
   is stuck.
2. A helper process (this file, run as a script; one per watched process,
   started on first use) runs `gdb -batch -p PID -ex 'thread apply all bt'`
   for the native stacks, if gdb is installed, so that a thread stuck in
   GLib or in the bridge shows where.
3. The helper kills the process with SIGABRT: the test fails (pytest, or
   meson for a pytest process) instead of hanging until a global timeout.

The helper watches from outside, so a process whose every thread is stuck
(in C, holding locks or the GIL) is still caught.

Fork: faulthandler keeps one watchdog thread per process and does not
expect fork(); a forked child must not arm a Watchdog and should end with
os._exit(). Give a child its own time limit with signal.alarm() instead.
"""
import faulthandler
import os
import select
import shutil
import signal
import subprocess
import sys
import time

__all__ = ["Watchdog", "for_pytest", "gdb_available", "run", "ChildHung"]

GDB = shutil.which("gdb")
GDB_TIMEOUT = 60


def gdb_available():
    return GDB is not None


# ---- the helper process ---------------------------------------------------

def _native_stacks(pid, out):
    if GDB is None:
        print(f"watchdog: gdb is not installed; no native stacks of {pid}", file=out, flush=True)
        return
    print(f"watchdog: native stacks of process {pid} (gdb):", file=out, flush=True)
    try:
        proc = subprocess.run(
            [GDB, "-nx", "-batch", "-p", str(pid),
             "-ex", "set pagination off", "-ex", "thread apply all bt"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            timeout=GDB_TIMEOUT, text=True, errors="replace")
        # gdb prints Python objects in full in CPython's frames: keep lines short
        lines = [l if len(l) < 240 else l[:240] + "..." for l in proc.stdout.splitlines()
                 if l.startswith(("Thread ", "#")) or "thread apply" in l]
        print("\n".join(lines) if lines else proc.stdout, file=out, flush=True)
    except (OSError, subprocess.SubprocessError) as e:
        print(f"watchdog: gdb failed: {e}", file=out, flush=True)


def _helper_main():
    """Reads `arm PID SECONDS LABEL` / `disarm` lines on stdin; exits on EOF.
    Output goes to its stderr, which the watched process chose."""
    out = sys.stderr
    deadline = None
    pid = label = None
    buf = b""
    fd = sys.stdin.fileno()
    while True:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            print(f"\nwatchdog: {label or 'the test'} did not finish in time: "
                  f"process {pid} hangs", file=out, flush=True)
            _native_stacks(pid, out)
            print(f"watchdog: killing {pid} with SIGABRT", file=out, flush=True)
            try:
                os.kill(pid, signal.SIGABRT)
            except ProcessLookupError:
                pass
            deadline = None
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return 0
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            words = line.decode().split(" ", 3)
            if words[0] == "arm":
                pid, seconds = int(words[1]), float(words[2])
                label = words[3] if len(words) > 3 else None
                deadline = time.monotonic() + seconds
            elif words[0] == "disarm":
                deadline = None


# ---- in the watched process -----------------------------------------------

class Watchdog:
    """Arms on entry (or arm()), disarms on exit (or disarm())."""

    _helper = None          # one per process
    _helper_pid = None

    def __init__(self, seconds, *, label=None, out_fd=2):
        self.seconds = float(seconds)
        self.label = (label or "").replace("\n", " ")
        self.out_fd = out_fd

    @classmethod
    def _ensure_helper(cls, out_fd):
        if cls._helper is not None and cls._helper_pid == os.getpid() \
                and cls._helper.poll() is None:
            return cls._helper
        cls._helper = subprocess.Popen(
            [sys.executable, "-S", os.path.abspath(__file__), "--helper"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=out_fd,
            close_fds=True, start_new_session=True)
        cls._helper_pid = os.getpid()
        return cls._helper

    def arm(self):
        # Python stacks first (no GIL needed), the helper's native stacks and
        # the kill half a second later.
        self._out = os.fdopen(os.dup(self.out_fd), "w", closefd=True)
        faulthandler.dump_traceback_later(self.seconds, exit=False, file=self._out)
        helper = self._ensure_helper(self.out_fd)
        helper.stdin.write(f"arm {os.getpid()} {self.seconds + 0.5} {self.label}\n".encode())
        helper.stdin.flush()
        return self

    def disarm(self):
        faulthandler.cancel_dump_traceback_later()
        helper = type(self)._helper
        if helper is not None and type(self)._helper_pid == os.getpid():
            try:
                helper.stdin.write(b"disarm\n")
                helper.stdin.flush()
            except BrokenPipeError:
                pass
        self._out.close()

    def __enter__(self):
        return self.arm()

    def __exit__(self, *exc):
        self.disarm()
        return False


# ---- children with a time limit of their own ---------------------------------

class ChildHung(AssertionError):
    """A child started by run() did not finish in time. Its message has what
    the child printed, its Python stacks (faulthandler) included."""


def run(argv, timeout, *, env=None, input=None, text=True, cwd=None, dump_grace=5.0,
        **popen_kwargs):
    """subprocess.run(argv, capture_output=True) with a time limit that turns
    a hang into one clear failure (ChildHung), never a suite timeout:

    * Python in the child (a script, or a C program that embeds Python) runs
      with PYTHONFAULTHANDLER=1, so the SIGABRT sent at the time limit prints
      the Python stack of every thread before it dies;
    * a child that does not die of it within `dump_grace` seconds is killed
      (SIGKILL), C programs included.

    No gdb needed. Returns the CompletedProcess otherwise."""
    environ = dict(os.environ if env is None else env)
    environ.setdefault("PYTHONFAULTHANDLER", "1")
    # A session of its own: the signals reach the children it forked too,
    # which would otherwise keep its pipes open after it died.
    popen_kwargs.setdefault("start_new_session", True)
    proc = subprocess.Popen(argv, env=environ, cwd=cwd, text=text,
                            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            errors="replace" if text else None, **popen_kwargs)

    def signal_all(signum):
        try:
            if popen_kwargs.get("start_new_session"):
                os.killpg(proc.pid, signum)
            else:
                proc.send_signal(signum)
        except (ProcessLookupError, PermissionError):
            pass

    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            signal_all(signal.SIGABRT)
            out, err = proc.communicate(timeout=dump_grace)
            how = "aborted (SIGABRT)"
        except subprocess.TimeoutExpired:
            signal_all(signal.SIGKILL)
            try:
                out, err = proc.communicate(timeout=dump_grace)
            except subprocess.TimeoutExpired:
                out, err = "", "(its output could not be read: something still holds its pipes)"
                if not text:
                    out, err = out.encode(), err.encode()
            how = "killed (SIGKILL: SIGABRT did not end it)"
        raise ChildHung(f"{' '.join(map(str, argv))[:200]}: no result within {timeout} s; "
                        f"{how}. Its stdout:\n{out}\nIts stderr (stacks):\n{err}") from None
    except BaseException:
        signal_all(signal.SIGKILL)
        proc.wait()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


class deadline:
    """For a child started with Popen that a test talks to: if it is still
    running `seconds` after the block starts, SIGABRT (faulthandler's stacks,
    if it was started with PYTHONFAULTHANDLER=1: see child_env()), then
    SIGKILL `dump_grace` seconds later. `.expired` says whether it fired."""

    def __init__(self, proc, seconds, dump_grace=5.0):
        import threading
        self.proc = proc
        self.expired = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(seconds, dump_grace),
                                        daemon=True)

    def _watch(self, seconds, dump_grace):
        if self._stop.wait(seconds) or self.proc.poll() is not None:
            return
        self.expired = True
        try:
            self.proc.send_signal(signal.SIGABRT)
            if not self._stop.wait(dump_grace) and self.proc.poll() is None:
                self.proc.kill()
        except ProcessLookupError:
            pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


def child_env(env=None):
    """The environment for a child: PYTHONFAULTHANDLER=1 added."""
    environ = dict(os.environ if env is None else env)
    environ.setdefault("PYTHONFAULTHANDLER", "1")
    return environ


_real_stderr = None


def for_pytest(request, seconds):
    """A Watchdog for one pytest test, printing to the stderr that pytest
    had before it captured output (so the stacks survive the kill)."""
    global _real_stderr
    if _real_stderr is None:
        capman = request.config.pluginmanager.getplugin("capturemanager")
        if capman is not None:
            with capman.global_and_fixture_disabled():
                _real_stderr = os.dup(2)
        else:
            _real_stderr = os.dup(2)
    return Watchdog(seconds, label=request.node.nodeid, out_fd=_real_stderr)


if __name__ == "__main__":
    if sys.argv[1:] == ["--helper"]:
        sys.exit(_helper_main())
    print(__doc__)
