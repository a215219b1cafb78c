# SPDX-License-Identifier: LGPL-2.1-or-later
"""doc/guide/06-cancellation.md: cancelling GIO work from Python."""
import asyncio

import gasyncbridge
from gasyncbridge import gio


# [guide:cancel-sleep]
async def cancel_a_timeout():
    task = asyncio.ensure_future(gasyncbridge.sleep(3600))  # a future, not a coroutine
    await asyncio.sleep(0.01)
    task.cancel()                      # removes the timeout, on the runtime thread
    try:
        await task
    except asyncio.CancelledError:
        return "cancelled"
# [/guide:cancel-sleep]


# [guide:cancel-gio]
async def run_with_deadline(argv, seconds):
    try:
        return await asyncio.wait_for(gio.communicate(argv), seconds)
    except asyncio.TimeoutError:
        # wait_for cancelled the operation, and its future completed only
        # once GIO had stopped: the child has been killed and reaped.
        return None
# [/guide:cancel-gio]


async def main():
    assert await cancel_a_timeout() == "cancelled"
    assert await run_with_deadline(["sleep", "30"], 0.1) is None
    assert await run_with_deadline(["true"], 30) == (0, b"", b"")
    print("cancellation: ok")


asyncio.run(main())
