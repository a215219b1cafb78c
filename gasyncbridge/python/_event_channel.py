# SPDX-License-Identifier: LGPL-2.1-or-later
"""The `__anext__` of a GabEventChannel's receiver: run by
gab-event-channel.c as "gasyncbridge._event_channel", in Python because
waiting for the next event is a coroutine (the receiver's C methods
`_take()` and `_wait()` do the rest). With `pause`, it first yields to the
loop once.
"""
import asyncio


async def event_next(receiver, pause):
    if pause:
        await asyncio.sleep(0)
    while True:
        item = receiver._take()
        if item is not None:
            return item[0]
        await receiver._wait()
