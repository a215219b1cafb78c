# SPDX-License-Identifier: LGPL-2.1-or-later
"""gab_py_coroutine_from_factory(): run by gab-python.c as
"gasyncbridge._main", in Python because C needs a real coroutine object
that returns `await factory()` (factory is a C function).
"""


async def main(factory):
    return await factory()
