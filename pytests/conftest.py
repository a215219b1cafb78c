# SPDX-License-Identifier: LGPL-2.1-or-later
"""Shared fixtures: every async test runs on the stock asyncio loop and on uvloop."""
import asyncio
import os
import sys

import pytest

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is installed by the test command
    uvloop = None

try:
    import gi
except ImportError:  # pragma: no cover - python3-gi is installed by the test command
    gi = None

# Debian's python3-gi and python3-uvloop serve /usr/bin/python3 alone: on
# the other interpreters (tools/test-pythons) what needs them is skipped.
_PYTHON = f"Python {sys.version_info[0]}.{sys.version_info[1]} ({sys.executable})"
GI_MISSING = f"needs PyGObject (gi), which {_PYTHON} lacks"
UVLOOP_MISSING = f"uvloop is not installed for {_PYTHON}: tests run on asyncio only"
# @pytest.mark.skipif(NO_GI, reason=GI_MISSING); a module: importorskip("gi", reason=GI_MISSING)
NO_GI = gi is None

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

LOOPS = ["asyncio"] + (["uvloop"] if uvloop is not None else [])
if os.environ.get("GAB_TEST_LOOPS"):
    LOOPS = [k for k in os.environ["GAB_TEST_LOOPS"].split(",") if k in LOOPS]


@pytest.fixture(params=LOOPS)
def run(request):
    """run(coro_fn, *args): run a coroutine function on a fresh loop of the kind."""

    def runner(coro_fn, *args):
        if request.param == "uvloop":
            loop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        errors = []
        loop.set_exception_handler(lambda loop, ctx: errors.append(ctx))
        try:
            result = loop.run_until_complete(coro_fn(*args))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
        assert errors == [], f"the loop's exception handler fired: {errors}"
        return result

    runner.kind = request.param
    return runner


def pytest_report_header(config):
    return [UVLOOP_MISSING] if uvloop is None else []


def pytest_sessionfinish(session, exitstatus):
    # A module that skipped itself whole (importorskip of a package this
    # interpreter lacks) collects no test: meson test's SKIP (77), with the
    # reason in its log, rather than pytest's "no tests collected" failure.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if (exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and reporter is not None
            and reporter.stats.get("skipped")):
        session.exitstatus = 77
