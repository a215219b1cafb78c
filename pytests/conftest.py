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
