# SPDX-License-Identifier: LGPL-2.1-or-later
"""doc/guide/08-task-locals.md: contextvars follow the Python caller into C."""
import asyncio

import gasyncbridge

import guidebinding

# [guide:contextvars]
import contextvars

request_id = contextvars.ContextVar("request_id", default=None)


async def current_request():
    await asyncio.sleep(0)
    return request_id.get()


async def handle(n):
    request_id.set(f"request-{n}")
    # C awaits current_request () twice: both run in this task's context
    return await guidebinding.call_twice(current_request)


async def main():
    print(await asyncio.gather(handle(1), handle(2)))
    # [['request-1', 'request-1'], ['request-2', 'request-2']]
# [/guide:contextvars]


# [guide:run-in-runtime-context]
async def in_the_runtime():
    request_id.set("request-3")
    # func runs on the runtime thread, in a copy of this context
    return await gasyncbridge.run_in_runtime(request_id.get)
# [/guide:run-in-runtime-context]


async def check():
    results = await asyncio.gather(handle(1), handle(2))
    assert results == [["request-1", "request-1"], ["request-2", "request-2"]], results
    assert await in_the_runtime() == "request-3"
    print("task_locals: ok")


asyncio.run(main())
asyncio.run(check())
