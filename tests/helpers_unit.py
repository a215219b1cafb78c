# SPDX-License-Identifier: LGPL-2.1-or-later
"""Python side of tests/test-bridge.c."""
import asyncio


async def double(x):
    await asyncio.sleep(0)
    return 2 * x


async def fail():
    raise LookupError("from python")
