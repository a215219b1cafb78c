# SPDX-License-Identifier: LGPL-2.1-or-later
"""doc/guide/07-errors.md: GErrors as exceptions, exceptions as GErrors."""
import asyncio
import errno
import os
import tempfile

import gasyncbridge
from gasyncbridge import gio

import guidebinding


# [guide:errors-python]
async def show_errors(directory):
    try:
        await gio.load_contents(os.path.join(directory, "missing"))
    except FileNotFoundError as e:                   # G_IO_ERROR_NOT_FOUND
        print(e.errno == errno.ENOENT, e.domain, e.code)   # True g-io-error-quark 1

    path = os.path.join(directory, "file")
    await gio.replace_contents(path, b"v1")
    try:
        await gio.replace_contents(path, b"v2", etag="stale")
    except gasyncbridge.GLibError as e:              # no closer Python exception
        print(e.domain, e.code, e.message)           # g-io-error-quark 23 (WRONG_ETAG) ...
# [/guide:errors-python]


# [guide:errors-roundtrip]
class OutOfStock(Exception):
    pass


problem = OutOfStock("no apples")


async def check_stock():
    raise problem


async def round_trip():
    try:
        await guidebinding.call_twice(check_stock)   # C awaits it: a GError keeps it
    except OutOfStock as e:
        assert e is problem                          # the very object, traceback and all
        return e
# [/guide:errors-roundtrip]


# [guide:errors-glib-error]
async def empty_shelf():
    # C gets a GError of this domain and code, for g_error_matches (), and
    # back in Python it is a GLibError again.
    raise gasyncbridge.GLibError("the shelf is empty", "shop-error-quark", 3)
# [/guide:errors-glib-error]


async def main():
    with tempfile.TemporaryDirectory() as tmp:
        await show_errors(tmp)
    e = await round_trip()
    assert e.__traceback__ is not None
    try:
        await guidebinding.call_twice(empty_shelf)
    except gasyncbridge.GLibError as e:
        assert (e.domain, e.code, e.message) == ("shop-error-quark", 3, "the shelf is empty")
    print("errors: ok")


asyncio.run(main())
