# SPDX-License-Identifier: LGPL-2.1-or-later
"""doc/guide/02-gio-from-python.md: Python awaits GIO, three ways."""
import asyncio
import os
import tempfile

import gasyncbridge
from gasyncbridge import gio

import guidebinding


# [guide:gio-module]
async def tour(directory):
    path = os.path.join(directory, "notes.txt")
    await gio.replace_contents(path, b"first line\n")      # atomic: a temporary file, renamed
    info = await gio.query_info(path)                       # a dict: size, type, mtime, ...
    data, _ = await asyncio.gather(gio.load_contents(path), # two GIO operations at once
                                   gio.copy(path, path + ".bak"))
    names = await gio.list_dir(directory)
    code, out, err = await gio.communicate(["wc", "-c", path])
    return info["size"], data, sorted(names), out.split()[0]
# [/guide:gio-module]


# [guide:call-gio]
import gi
gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib


async def size_of(path):
    file = Gio.File.new_for_path(path)
    info = await gasyncbridge.call_gio(file.query_info_async, "standard::size",
                                       Gio.FileQueryInfoFlags.NONE, GLib.PRIORITY_DEFAULT)
    return info.get_size()                  # what query_info_finish returned
# [/guide:call-gio]


# [guide:binding-use]
async def make_dirs(directory):
    await guidebinding.mkdir(os.path.join(directory, "new"))
    try:
        await guidebinding.mkdir(os.path.join(directory, "new"))
    except FileExistsError as e:            # G_IO_ERROR_EXISTS, mapped
        return e.domain, e.code             # ('g-io-error-quark', 2)
# [/guide:binding-use]


async def main():
    with tempfile.TemporaryDirectory() as tmp:
        size, data, names, wc = await tour(tmp)
        assert (size, data, names, wc) == (11, b"first line\n", ["notes.txt", "notes.txt.bak"],
                                           b"11"), (size, data, names, wc)
        assert await size_of(os.path.join(tmp, "notes.txt")) == 11
        assert await make_dirs(tmp) == ("g-io-error-quark", 2)
        assert os.path.isdir(os.path.join(tmp, "new"))
    print("gio_from_python: ok")


asyncio.run(main())
