# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Python side of the guide's C programs that run loops of their own
(event-loops.c, glib-main.c, async-main.c, test-guide.c). It ships next to
them; gab_main(), gab_start_asyncio_thread() and the test harness make a
program's directory importable.
"""
import asyncio


async def count_to(n):
    for _ in range(n):
        await asyncio.sleep(0)
    return n


async def greet(name):
    await asyncio.sleep(0)
    return f"hello, {name}"


async def square(n):
    await asyncio.sleep(0)
    return n * n


# [guide:jobs-serve]
async def serve(requests):
    """Handles requests (-1: until cancelled); returns how many it handled."""
    if requests < -1:
        raise ValueError(f"cannot serve {requests} requests")
    print("serving", flush=True)
    served = 0
    try:
        while served != requests:
            await asyncio.sleep(0.01)          # one request
            served += 1
    except asyncio.CancelledError:
        print(f"python: stopped after {served} requests", flush=True)
        raise
    return served
# [/guide:jobs-serve]
