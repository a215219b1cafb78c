# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Python side of rel-main.c (pytests/test_reliability.py)."""
import asyncio
import os
import sys


async def ok():
    await asyncio.sleep(0)
    return "fine"


async def ignore_cancel():
    """Never stops: swallows every cancellation."""
    print("started", flush=True)
    while True:
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            print("ignored a cancel", flush=True)


async def raise_systemexit(code="3"):
    await asyncio.sleep(0)
    raise SystemExit(int(code))


async def raise_keyboardinterrupt():
    await asyncio.sleep(0)
    raise KeyboardInterrupt


async def raise_generatorexit():
    await asyncio.sleep(0)
    raise GeneratorExit


class CustomBase(BaseException):
    pass


async def raise_custom_base():
    await asyncio.sleep(0)
    raise CustomBase("custom")
