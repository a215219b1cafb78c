#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Checks what the gasyncbridge test harness reports, from the outside.

    check_harness.py failures FAILING_EXE PASSING_EXE
        Runs test-harness-failing, whose tests fail on purpose in every way
        (assertion, Python error in a blocking and an async test, crash,
        hang past GAB_TEST_TIMEOUT, hang past a per-test timeout), and
        checks that each is `not ok` with its message, that the tests
        around them still ran `ok`, that a skip is a skip, and that the
        run exits non-zero.

    check_harness.py filter FAILING_EXE PASSING_EXE
        Runs test-harness with positional name filters and checks that
        exactly the matching tests ran (and were listed, with -l).
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import watchdog  # noqa: E402  (a time limit and a stack dump for every child)

TAP_LINE = re.compile(r"^(ok|not ok) (\d+) (\S+)(?: - (.*?))?(?: # (SKIP|TODO)\s*(.*))?$")


def run(argv, **env):
    environ = dict(os.environ, **env)
    proc = watchdog.run(argv, 300, env=environ)
    return proc


def parse_tap(output):
    """Returns (plan, {path: (status, reason, directive, directive_reason)})."""
    plan = None
    results = {}
    numbers = []
    for line in output.splitlines():
        if re.match(r"^1\.\.\d+$", line):
            plan = int(line[3:])
            continue
        m = TAP_LINE.match(line)
        if m:
            status, number, path, reason, directive, why = m.groups()
            numbers.append(int(number))
            results[path] = (status, reason or "", directive, why or "")
    assert numbers == list(range(1, len(numbers) + 1)), f"test numbers {numbers}"
    return plan, results


def fail(message, proc):
    print(f"FAIL: {message}")
    print("---- stdout ----")
    print(proc.stdout)
    print("---- stderr ----")
    print(proc.stderr)
    sys.exit(1)


def check_failures(failing_exe, passing_exe):
    proc = run([failing_exe], GAB_TEST_TIMEOUT="2")
    print(proc.stdout)
    plan, results = parse_tap(proc.stdout)

    expected_failures = {
        "/fails_an_assertion": r"assertion failed \(two \+ 2 == 5\): \(4 == 5\)",
        "/fails_with_a_python_error": r"ValueError: deliberate",
        "/fails_async_with_a_python_error": r"ValueError: async deliberate",
        "/crashes": r"killed by signal 11",
        "/hangs": r"timed out after 2 s",          # GAB_TEST_TIMEOUT
        "/hangs_async": r"timed out after 1 s",    # GAB_ASYNC_TEST_FULL (.., 1)
    }
    expected_ok = ["/a_first_test_passes", "/z_last_test_passes"]

    if proc.returncode == 0:
        fail("the run of failing tests exited 0", proc)
    if plan != len(results) or plan != len(expected_failures) + len(expected_ok) + 1:
        fail(f"plan {plan} for {len(results)} results", proc)
    for path, pattern in expected_failures.items():
        status, reason, directive, _ = results.get(path, (None, "", None, ""))
        if status != "not ok" or directive is not None:
            fail(f"{path} is {status!r}, not 'not ok'", proc)
        if not re.search(pattern, reason):
            fail(f"{path}: the reason {reason!r} does not match {pattern!r}", proc)
    for path in expected_ok:
        status, _, directive, _ = results.get(path, (None, "", None, ""))
        if status != "ok" or directive is not None:
            fail(f"{path} is {status!r} {directive!r}, not 'ok'", proc)
    status, _, directive, why = results.get("/is_skipped", (None, "", None, ""))
    if (status, directive, why) != ("ok", "SKIP", "not on this machine"):
        fail(f"/is_skipped is {status!r} {directive!r} {why!r}", proc)
    # The assertion's own message is there for a reader, as a TAP comment.
    if not re.search(r"^# ERROR:.*test-harness-failing\.c:\d+:.*fails_an_assertion",
                     proc.stdout, re.M):
        fail("the assertion message was not forwarded", proc)


def check_filter(failing_exe, passing_exe):
    everything = run([passing_exe, "-l"])
    all_paths = [line for line in everything.stdout.splitlines() if line.startswith("/")]
    if len(all_paths) < 5:
        fail(f"-l listed {all_paths}", everything)

    for filters in (["async"], ["python", "worker"], ["no_test_has_this_name"]):
        expected = sorted(p for p in all_paths if any(f in p for f in filters))

        listed = run([passing_exe, "-l"] + filters)
        got = [line for line in listed.stdout.splitlines() if line.startswith("/")]
        if got != expected:
            fail(f"-l {filters} listed {got}, not {expected}", listed)

        proc = run([passing_exe] + filters)
        print(proc.stdout)
        plan, results = parse_tap(proc.stdout)
        if proc.returncode != 0:
            fail(f"the run with filters {filters} failed", proc)
        if plan != len(expected) or sorted(results) != expected:
            fail(f"filters {filters} ran {sorted(results)}, not {expected}", proc)
        if any(status != "ok" for status, *_ in results.values()):
            fail(f"filters {filters}: not every test passed", proc)

    # GLib's own options still work beside the filter: -s skips a path.
    skipped = expected[0] if (expected := sorted(p for p in all_paths if "async" in p)) else None
    proc = run([passing_exe, "-s", skipped, "async"])
    plan, results = parse_tap(proc.stdout)
    if results.get(skipped, (None, "", None))[2] != "SKIP" or proc.returncode != 0:
        fail(f"-s {skipped} did not skip it", proc)


def main(argv):
    mode, failing_exe, passing_exe = argv[1:4]
    {"failures": check_failures, "filter": check_filter}[mode](failing_exe, passing_exe)
    print(f"harness {mode}: all checks passed")


if __name__ == "__main__":
    main(sys.argv)
