#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Runs a test under valgrind memcheck and judges the report.

Used as the exe_wrapper of `meson test --setup=valgrind`. The test fails if
valgrind finds an invalid access (read, write, free, jump) or a definite
leak whose stack passes through our code (gasyncbridge's library, module,
test module and tests). Reports with no frame of ours are CPython's, GLib's
or the dynamic loader's (ld.so's hand-written strncmp reads past the end of
strings, harmlessly): they are counted in the summary but are not ours to fix. CPython keeps
module-level objects alive at exit on purpose, and with PYTHONMALLOC=malloc
valgrind calls some of them "definitely lost": those stacks never pass
through our code, so they do not fail the test. Suppressions for CPython and
GLib internals are in tools/valgrind.supp, each with its reason.
"""
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OURS = re.compile(r"\b(gab_\w+|_gab_\w+|t_\w+ \(_gab_testmod|gasyncbridge|test-\w+\.c|gab-[\w-]+\.c)")
ERROR_KINDS = ("Invalid read", "Invalid write", "Invalid free", "Jump to the invalid",
               "Mismatched free", "Source and destination overlap")


def main(argv):
    supps = [os.path.join(HERE, "valgrind.supp"), "/usr/lib/valgrind/python3.supp"]
    with tempfile.NamedTemporaryFile(prefix="memcheck-", suffix=".log", delete=False) as log:
        log_path = log.name
    cmd = ["valgrind", "--tool=memcheck", "--leak-check=full", "--show-leak-kinds=definite",
           "--num-callers=40", "--track-origins=no",
           # GSubprocess forks: the child's report would be about a copy of us
           "--child-silent-after-fork=yes", f"--log-file={log_path}"]
    cmd += [f"--suppressions={s}" for s in supps if os.path.exists(s)]
    env = dict(os.environ, PYTHONMALLOC="malloc", G_SLICE="always-malloc")
    status = subprocess.call(cmd + argv, env=env)
    with open(log_path) as f:
        report = f.read()
    os.unlink(log_path)

    problems = []
    for block in re.split(r"==\d+== \n", report):
        lines = block.strip()
        if not OURS.search(lines):
            continue
        if any(kind in lines for kind in ERROR_KINDS) or "definitely lost" in lines:
            problems.append(lines)
    summary = re.findall(r"==\d+==\s+(definitely lost:.*|ERROR SUMMARY:.*)", report)
    print("memcheck:", "; ".join(summary[-2:]), file=sys.stderr)
    if problems:
        print(f"memcheck: {len(problems)} problem(s) in our code:", file=sys.stderr)
        for p in problems:
            print(p, file=sys.stderr)
            print("--", file=sys.stderr)
        return status or 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
