# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Python side of readme.c, the README's "C awaits Python" example."""
# [guide:readme-calc]
async def add(a, b):        # calc.py, next to the program
    return a + b
# [/guide:readme-calc]
