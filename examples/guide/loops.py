# SPDX-License-Identifier: LGPL-2.1-or-later
"""doc/guide/03-event-loops.md: gasyncbridge on any loop, on any thread."""
import asyncio

import gasyncbridge


# [guide:loops-threads]
async def nap(n):
    return await gasyncbridge.sleep(0.01, result=n)     # a GLib timeout


def in_a_thread(n):
    # A thread of your own with a loop of its own: every loop gets its own
    # queue from the runtime; all of them share the one runtime thread.
    return asyncio.run(nap(n))


async def main():
    return await asyncio.gather(*(asyncio.to_thread(in_a_thread, n) for n in range(3)),
                                nap("main"))
# [/guide:loops-threads]


assert asyncio.run(main()) == [0, 1, 2, "main"]

# [guide:loops-uvloop]
import uvloop

uvloop.install()                    # asyncio.run () makes uvloop loops from now on
print(asyncio.run(main()))          # [0, 1, 2, 'main']
# [/guide:loops-uvloop]
