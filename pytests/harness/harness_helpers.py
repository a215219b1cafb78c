# SPDX-License-Identifier: LGPL-2.1-or-later
"""Python side of the harness end-to-end tests (pytests/harness).

Copied next to the test programs, whose own directory the harness makes
importable. Every coroutine here runs on the harness's asyncio loop, on the
main thread of the test process.
"""
import asyncio
import threading

# Set by ticker() once it has run; see test-harness.c.
ticked = threading.Event()
cancelled = 0


def add(a, b):
    """A plain function: its return value is the result."""
    return a + b


async def greet(name):
    await asyncio.sleep(0)
    return f"hello, {name}"


async def where():
    """Where coroutines run: (on the main thread, a loop is running)."""
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    return (threading.current_thread() is threading.main_thread(), loop.is_running())


async def ticker(n):
    """Takes n trips around the loop."""
    for _ in range(n):
        await asyncio.sleep(0)
    return n


async def ticker_then_signal(n):
    """ticker(), then says so through `ticked`."""
    await ticker(n)
    ticked.set()
    return n


def wait_ticked():
    """Blocks the calling thread until ticker_then_signal() has run."""
    done = ticked.wait()
    ticked.clear()
    return done


async def sleep_forever():
    global cancelled
    try:
        await asyncio.get_running_loop().create_future()
    except asyncio.CancelledError:
        cancelled += 1
        raise


def cancelled_count():
    return cancelled


async def fail(message):
    await asyncio.sleep(0)
    raise ValueError(message)
