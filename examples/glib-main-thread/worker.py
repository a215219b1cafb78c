# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Python half of the glib-main-thread example: coroutines that run on
the asyncio loop of the "gab-asyncio" thread, while the program's main
thread runs a GMainLoop. It ships next to the program, whose directory
gab_start_asyncio_thread() makes importable when it embeds Python.
"""
import asyncio
import threading


async def square(n):
    # Yield to the loop, as real work would.
    await asyncio.sleep(0)
    return n * n


async def describe():
    """Where this runs: not on the main thread, and on a running loop."""
    await asyncio.sleep(0)
    on_main = threading.current_thread() is threading.main_thread()
    return f"python ran on {'the main thread' if on_main else 'the asyncio thread'}"
