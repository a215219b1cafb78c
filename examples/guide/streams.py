# SPDX-License-Identifier: LGPL-2.1-or-later
"""doc/guide/09-streams.md: asyncio streams over GIO, and C producers."""
import asyncio
import os
import tempfile

from gi.repository import Gio, GLib

import gasyncbridge
from gasyncbridge import gio

import guidebinding


# [guide:streams-files]
async def write_then_read(path):
    writer = await gio.open_write(path)
    for n in range(3):
        writer.write(f"line {n}\n".encode())
        await writer.drain()                 # waits while too much is buffered
    writer.close()
    await writer.wait_closed()               # now the file is in place

    async with await gio.open_read(path) as reader:
        return [line async for line in reader]
# [/guide:streams-files]


# [guide:streams-subprocess]
async def sort_lines(lines):
    proc = await gio.create_subprocess_exec("sort", stdin=asyncio.subprocess.PIPE,
                                            stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate(b"".join(lines))
    return out, proc.returncode
# [/guide:streams-subprocess]


# [guide:streams-channel]
async def ticks():
    got = []
    async for n, word in guidebinding.ticker(5, 2):    # a C thread sends them
        got.append((n, word))
    return got
# [/guide:streams-channel]


# [guide:streams-fd-reader]
async def read_pipe():
    r, w = os.pipe()
    reader = guidebinding.fd_reader(r)      # a GUnixInputStream, as a StreamReader
    os.write(w, b"hello\nworld\n")
    os.close(w)
    return await reader.readline(), await reader.read()
# [/guide:streams-fd-reader]


# [guide:streams-any-gio]
async def read_any_gio_stream():
    stream = Gio.MemoryInputStream.new_from_bytes(GLib.Bytes(b"one\ntwo\n"))
    reader = gasyncbridge.StreamReader(stream)      # any Gio.InputStream of PyGObject
    writer = gasyncbridge.StreamWriter(Gio.MemoryOutputStream.new_resizable())
    writer.write(await reader.readline())
    await writer.drain()
    return [line async for line in reader]
# [/guide:streams-any-gio]


async def main():
    with tempfile.TemporaryDirectory() as tmp:
        lines = await write_then_read(os.path.join(tmp, "out.txt"))
    assert lines == [b"line 0\n", b"line 1\n", b"line 2\n"], lines
    assert await sort_lines(reversed(lines)) == (b"line 0\nline 1\nline 2\n", 0)
    assert await ticks() == [(n, "tick") for n in range(5)]
    assert await read_pipe() == (b"hello\n", b"world\n")
    assert await read_any_gio_stream() == [b"two\n"]
    print("streams: ok")


asyncio.run(main())
