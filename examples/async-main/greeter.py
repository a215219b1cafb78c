# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Python half of the async-main example.

It ships next to the program: gab_main() makes the program's own
directory importable, as a script's is.
"""
import asyncio
import sys


async def greet(name):
    """A coroutine that C awaits with gab_call_async()."""
    await asyncio.sleep(0)
    return f"Hello, {name}!"


async def wait_for_cancel():
    """Waits until C cancels it (on SIGINT or SIGTERM), then cleans up."""
    try:
        await asyncio.get_running_loop().create_future()
    except asyncio.CancelledError:
        # one write: C prints to the same stdout from another thread
        sys.stdout.write("python: cancelled, cleaning up\n")
        sys.stdout.flush()
        raise
