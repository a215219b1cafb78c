# SPDX-License-Identifier: LGPL-2.1-or-later
"""Python functions that the C benchmark drivers await, by module and name.

gab_call_async() imports a module by name, so these live in a module of their
own (bench.py adds its directory to sys.path); the drivers that take a
coroutine function get the same ones as objects.
"""


async def nop():
    """A coroutine that returns at once: what 'C awaits Python' costs per await."""
    return None


def nop_sync():
    """A plain function (gab_call_async takes its return value as the result)."""
    return None
