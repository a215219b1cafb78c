# SPDX-License-Identifier: LGPL-2.1-or-later
"""The task body of gab_into_future_async() for coroutines: run by
gab-into-future.c as "gasyncbridge._into_future", in Python because it
awaits the coroutine inside the task.

`done` is the C handle. Every outcome is handed to C, BaseExceptions
included, and none is left in the task (nobody else looks at it, and
asyncio would log it as never retrieved), except CancelledError, which
marks the task cancelled. KeyboardInterrupt and SystemExit also stop the
loop, as they do from any asyncio task: they are raised again from a
callback of the loop, so that they leave its run_until_complete() /
run_forever() (asyncio.run(), gab_run(), gab_main()) the way asyncio's own
tasks make them do.
"""
import asyncio


def reraise(exc):
    raise exc


async def awaited_by_c(coro, done):
    try:
        result = await coro
    except BaseException as exc:
        done(None, exc)
        if isinstance(exc, asyncio.CancelledError):
            raise
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            asyncio.get_running_loop().call_soon(reraise, exc)
        return None
    done(result, None)
