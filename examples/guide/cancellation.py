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


# [guide:cancel-taskgroup]
async def load_all(paths):
    async def load(path):                 # a coroutine, for create_task()
        return await gio.load_contents(path)

    async with asyncio.TaskGroup() as tg:          # Python 3.11
        tasks = [tg.create_task(load(p)) for p in paths]
    return [t.result() for t in tasks]    # one failing cancels the others
# [/guide:cancel-taskgroup]


async def main():
    assert await cancel_a_timeout() == "cancelled"
    assert await run_with_deadline(["sleep", "30"], 0.1) is None
    assert await run_with_deadline(["true"], 30) == (0, b"", b"")
    if hasattr(asyncio, "TaskGroup"):
        assert await load_all([__file__, __file__]) == [open(__file__, "rb").read()] * 2
        try:
            await load_all([__file__, "/nonexistent/file"])
        except Exception as group:          # an ExceptionGroup (no except* before 3.11)
            assert [type(e) for e in group.exceptions] == [FileNotFoundError], group
        else:
            raise AssertionError("the TaskGroup did not raise")
    print("cancellation: ok")


asyncio.run(main())
