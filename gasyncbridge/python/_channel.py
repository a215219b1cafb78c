# SPDX-License-Identifier: LGPL-2.1-or-later
"""The `__anext__` of a GabChannel's receiver: run by gab-channel.c as
"gasyncbridge._channel", in Python because waiting for the next item is a
coroutine (the receiver's C methods `_take()` and `_wait()` do the rest).
"""


async def channel_next(receiver):
    while True:
        item = receiver._take()
        if item is not None:
            return item[0]
        await receiver._wait()
