# SPDX-License-Identifier: LGPL-2.1-or-later
"""Python functions that the tests' C code calls with gab_call_async."""
import asyncio
import contextvars

var = contextvars.ContextVar("var", default="unset")


async def add(a, b):
    await asyncio.sleep(0)
    return a + b


def add_sync(a, b):
    return a + b


async def read_var():
    await asyncio.sleep(0)
    return var.get()


async def nothing():
    return None


async def fail(message):
    raise ValueError(message)


async def unconvertible():
    return {1, 2, 3}


async def echo(value):
    return value


