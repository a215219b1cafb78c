# SPDX-License-Identifier: LGPL-2.1-or-later
"""Small coroutines of gab-loop.c: running a C caller's awaitable as a loop's
main task, and serving a loop on a thread of its own."""
import inspect

async def run_main(aw, enter, leave):
    token = enter()
    try:
        return await aw
    finally:
        leave(token)

def close_if_unstarted(coro):
    if inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
        coro.close()

async def serve(ready):
    import asyncio
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    ready(loop, stop)
    await stop

def stop_serving(stop):
    if not stop.done():
        stop.set_result(None)
