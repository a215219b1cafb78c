# SPDX-License-Identifier: LGPL-2.1-or-later
"""doc/guide/10-threads.md: fork() and the runtime."""
# [guide:fork]
import asyncio
import os

import gasyncbridge


async def work(tag):
    return await gasyncbridge.sleep(0.01, result=tag)


print(asyncio.run(work("parent")))      # the parent's runtime thread runs
pid = os.fork()
if pid == 0:
    # The child has no runtime thread (fork copies only the calling
    # thread): the bridge counts it as shut down until init () starts a
    # fresh one for the child's own loops.
    gasyncbridge.init()
    print(asyncio.run(work("child")), flush=True)
    os._exit(0)
_, status = os.waitpid(pid, 0)
print(asyncio.run(work("parent again")), os.waitstatus_to_exitcode(status))
# [/guide:fork]
