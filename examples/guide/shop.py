# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Python side of python-from-c.c and c-streams.c (doc/guide/01 and 09).

It ships next to the programs: gab_main() makes a program's own directory
importable, as a script's is.
"""
# [guide:shop-py]
import asyncio

PRICES = {"apple": 3, "pear": 5}


async def price(item):
    await asyncio.sleep(0.01)          # stands for real I/O
    return PRICES[item]                # KeyError for an unknown item


async def deliveries(count):
    for n in range(count):
        await asyncio.sleep(0.01)
        yield {"item": "apple", "crate": n}
# [/guide:shop-py]


# [guide:shop-stocktake]
async def stocktake():
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        print("python: stocktake cancelled, cleaning up", flush=True)
        raise
# [/guide:shop-stocktake]


# [guide:shop-report]
async def report():
    for item, euros in PRICES.items():
        await asyncio.sleep(0)
        yield f"{item}: {euros} euros\n".encode()
# [/guide:shop-report]
