# SPDX-License-Identifier: LGPL-2.1-or-later
"""The `__anext__` of the receivers of GabChannel and GabEventChannel: run
by gab-receiver.c as "gasyncbridge._receiver", in Python because waiting
for the next item is a coroutine (the receiver's C methods `_take()` and
`_wait()` do the rest: `_take()` gives a 1-tuple of
the next item, None if there is none yet, or raises StopAsyncIteration or
the channel's error at the end; `_wait()` a future done when there may be
one). With `pause`, it first yields to the loop once.
"""
import asyncio


async def receive(receiver, pause=False):
    if pause:
        await asyncio.sleep(0)
    while True:
        item = receiver._take()
        if item is not None:
            return item[0]
        await receiver._wait()
