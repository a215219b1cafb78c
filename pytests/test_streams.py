# SPDX-License-Identifier: LGPL-2.1-or-later
"""Streams from Python: StreamReader/StreamWriter over GIO streams, with
asyncio.StreamReader/StreamWriter semantics, on asyncio and uvloop.

(The C side — Python async iterables consumed by C, GabInputStream and
GabChannel — is tested from C in tests/test-streams.c.)"""
import asyncio
import gc
import os

import pytest

import gasyncbridge

from conftest import GI_MISSING  # noqa: E402

gi = pytest.importorskip("gi", reason=GI_MISSING)
gi.require_version("Gio", "2.0")
from gi.repository import Gio  # noqa: E402


def pipe():
    """A non-blocking pipe as (reader, writer) over GUnixInputStream and
    GUnixOutputStream: GIO polls non-blocking fds instead of blocking the
    runtime thread."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    return (gasyncbridge.StreamReader(Gio.UnixInputStream.new(r, True)),
            gasyncbridge.StreamWriter(Gio.UnixOutputStream.new(w, True)))


async def write_file(path, data):
    writer = await gasyncbridge.gio.open_write(path)
    writer.write(data)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


# ---- files: round trips -----------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 3 * 2**20 + 11])
def test_file_round_trip(run, tmp_path, size):
    data = os.urandom(size)
    path = tmp_path / "data.bin"

    async def main():
        writer = await gasyncbridge.gio.open_write(path)
        assert isinstance(writer, gasyncbridge.StreamWriter)
        for i in range(0, size, 10_000):
            writer.write(data[i:i + 10_000])
            await writer.drain()
        assert not writer.is_closing()
        writer.close()
        assert writer.is_closing()
        await writer.wait_closed()
        assert path.read_bytes() == data

        reader = await gasyncbridge.gio.open_read(str(path))
        assert isinstance(reader, gasyncbridge.StreamReader)
        assert await reader.read() == data
        assert reader.at_eof()
        assert await reader.read() == b""
        await reader.wait_closed()

        reader = await gasyncbridge.gio.open_read(os.fsencode(path))
        chunks = [c async for c in reader.iter_chunks(4096)]
        assert all(0 < len(c) <= 4096 for c in chunks)
        assert b"".join(chunks) == data

    run(main)


def test_writelines_and_replace(run, tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"old content that is longer")

    async def main():
        async with await gasyncbridge.gio.open_write(path) as writer:
            writer.writelines([b"a\n", bytearray(b"b\n"), memoryview(b"c\n")])
        assert path.read_bytes() == b"a\nb\nc\n"
        async with await gasyncbridge.gio.open_read(path) as reader:
            assert [line async for line in reader] == [b"a\n", b"b\n", b"c\n"]

    run(main)


# ---- reader semantics --------------------------------------------------------

def test_read_sizes_and_readexactly(run, tmp_path):
    data = bytes(range(256)) * 1000
    path = tmp_path / "d"
    path.write_bytes(data)

    async def main():
        reader = await gasyncbridge.gio.open_read(path)
        assert await reader.read(0) == b""
        first = await reader.read(10)
        assert first == data[:10]
        got = bytearray(first)
        got += await reader.readexactly(100_000)
        assert len(got) == 100_010
        while True:
            piece = await reader.read(3000)
            if not piece:
                break
            assert len(piece) <= 3000
            got += piece
        assert bytes(got) == data
        with pytest.raises(asyncio.IncompleteReadError) as info:
            await reader.readexactly(5)
        assert info.value.partial == b"" and info.value.expected == 5

        reader = await gasyncbridge.gio.open_read(path)
        await reader.readexactly(len(data) - 3)
        with pytest.raises(asyncio.IncompleteReadError) as info:
            await reader.readexactly(10)
        assert info.value.partial == data[-3:] and info.value.expected == 10
        assert reader.at_eof()
        assert await reader.readexactly(0) == b""
        with pytest.raises(ValueError):
            await reader.readexactly(-1)

    run(main)


def test_readline_edge_cases(run, tmp_path):
    # a line across the 64 KiB boundary of the reader's reads, an empty
    # line, a CRLF, and a last line without a newline
    long_line = b"x" * 65530 + b"yyyyyyyyyy\n"
    data = b"short\n" + long_line + b"\n" + b"crlf\r\n" + b"no newline at the end"
    path = tmp_path / "lines"
    path.write_bytes(data)

    async def main():
        reader = await gasyncbridge.gio.open_read(path, limit=2**17)
        assert await reader.readline() == b"short\n"
        assert await reader.readline() == long_line
        assert await reader.readline() == b"\n"
        assert await reader.readline() == b"crlf\r\n"
        assert await reader.readline() == b"no newline at the end"
        assert await reader.readline() == b""
        assert reader.at_eof()

        reader = await gasyncbridge.gio.open_read(path, limit=2**17)
        assert [line async for line in reader] == data.splitlines(keepends=True)

    run(main)


def test_readuntil_edge_cases(run, tmp_path):
    sep = b"<SEP>"
    # the separator straddles the first 64 KiB read
    data = b"a" * 65533 + sep + b"tail without separator"
    path = tmp_path / "until"
    path.write_bytes(data)

    async def main():
        reader = await gasyncbridge.gio.open_read(path, limit=2**17)
        assert await reader.readuntil(sep) == b"a" * 65533 + sep
        with pytest.raises(asyncio.IncompleteReadError) as info:
            await reader.readuntil(sep)
        assert info.value.partial == b"tail without separator"
        assert info.value.expected is None
        assert reader.at_eof()
        with pytest.raises(ValueError):
            await reader.readuntil(b"")

    run(main)


def test_limits(run, tmp_path):
    path = tmp_path / "long"
    path.write_bytes(b"0123456789" * 10 + b"\nnext\n" + b"z" * 50 + b"!" + b"rest")

    async def main():
        reader = await gasyncbridge.gio.open_read(path, limit=20)
        # readuntil: the data stays in the buffer, consumed says how far it looked
        with pytest.raises(asyncio.LimitOverrunError) as info:
            await reader.readuntil(b"\n")
        assert info.value.consumed > 20
        # readline: ValueError, and the too-long line is dropped with its newline
        with pytest.raises(ValueError):
            await reader.readline()
        assert await reader.readline() == b"next\n"
        # separator found but beyond the limit
        with pytest.raises(asyncio.LimitOverrunError) as info:
            await reader.readuntil(b"!")
        assert info.value.consumed == 50
        assert await reader.readexactly(51) == b"z" * 50 + b"!"
        assert await reader.read() == b"rest"

        with pytest.raises(ValueError):
            await gasyncbridge.gio.open_read(path, limit=0)
        with pytest.raises(ValueError):
            gasyncbridge.StreamReader(Gio.MemoryInputStream.new_from_data(b"x"), limit=0)

    run(main)


def test_reader_over_any_gio_stream(run):
    async def main():
        memory = Gio.MemoryInputStream.new_from_data(b"line one\nline two\n")
        reader = gasyncbridge.StreamReader(memory)
        assert await reader.readline() == b"line one\n"
        assert await reader.read() == b"line two\n"
        # a converter stream: gzip in GIO, read through the reader
        raw = Gio.MemoryOutputStream.new_resizable()
        gz = Gio.ConverterOutputStream.new(
            raw, Gio.ZlibCompressor.new(Gio.ZlibCompressorFormat.GZIP, -1))
        payload = b"compressible " * 10_000
        writer = gasyncbridge.StreamWriter(gz)
        writer.write(payload)
        await writer.wait_closed()
        import gzip
        assert gzip.decompress(raw.steal_as_bytes().get_data()) == payload

    run(main)


# ---- pipes: backpressure and cancellation ------------------------------------

def test_writer_drain_under_slow_reader(run):
    total = 4 * 2**20
    piece = os.urandom(64 * 1024)

    async def main():
        reader, writer = pipe()
        low, high = writer.get_write_buffer_limits()
        assert (low, high) == (16 * 1024, 64 * 1024)

        # nobody reads: the pipe fills, and drain must wait
        writer.write(piece * 16)
        drain = asyncio.ensure_future(writer.drain())
        done, _ = await asyncio.wait([drain], timeout=0.3)
        assert not done, "drain returned while nothing was read"
        assert writer.get_write_buffer_size() > high

        received = bytearray()
        worst = 0

        async def slow_reader():
            while True:
                data = await reader.read(16 * 1024)
                if not data:
                    return
                received.extend(data)
                await asyncio.sleep(0)   # slower than the writer

        reading = asyncio.ensure_future(slow_reader())
        await drain
        assert writer.get_write_buffer_size() <= low
        sent = len(piece) * 16
        while sent < total:
            writer.write(piece)
            sent += len(piece)
            worst = max(worst, writer.get_write_buffer_size())
            await writer.drain()
            assert writer.get_write_buffer_size() <= high
        writer.close()
        await writer.wait_closed()
        await reading
        assert len(received) == total
        assert bytes(received[:len(piece) * 16]) == piece * 16
        # the buffer never held much more than the high-water mark
        assert worst <= high + len(piece) * 16

    run(main)


def test_cancelled_read_loses_nothing(run):
    async def main():
        reader, writer = pipe()
        task = asyncio.ensure_future(reader.read(100))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        writer.write(b"after the cancel")
        await writer.drain()
        assert await reader.readexactly(16) == b"after the cancel"
        # two readers at once: asyncio's RuntimeError
        first = asyncio.ensure_future(reader.read(10))
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="already waiting"):
            await reader.read(10)
        writer.close()
        await writer.wait_closed()
        assert await first == b""
        reader.close()
        await reader.wait_closed()

    run(main)


def test_reader_close_cancels_pending_read(run):
    async def main():
        reader, writer = pipe()
        task = asyncio.ensure_future(reader.read(10))
        while reader._pending is None:   # the GIO read is under way
            await asyncio.sleep(0)
        reader.close()
        assert reader.is_closing()
        with pytest.raises(asyncio.CancelledError):
            await task
        await reader.wait_closed()
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()

    run(main)


def test_write_error_raised_by_drain(run):
    async def main():
        reader, writer = pipe()
        reader.close()
        await reader.wait_closed()
        # more than the high-water mark: drain waits for the write, which fails
        writer.write(b"x" * 200_000)
        with pytest.raises(BrokenPipeError) as info:
            await writer.drain()
        assert info.value.domain == "g-io-error-quark"
        writer.write(b"dropped, as asyncio drops writes after a lost connection")
        with pytest.raises(BrokenPipeError):
            await writer.drain()
        with pytest.raises(BrokenPipeError):
            await writer.wait_closed()

    run(main)


# ---- bad input -------------------------------------------------------------------

def test_bad_input(run, tmp_path):
    async def main():
        for bad in (None, 42, object()):
            with pytest.raises(TypeError):
                await gasyncbridge.gio.open_read(bad)
            with pytest.raises(TypeError):
                await gasyncbridge.gio.open_write(bad)
        with pytest.raises(FileNotFoundError):
            await gasyncbridge.gio.open_read(tmp_path / "missing")
        with pytest.raises(FileNotFoundError):
            await gasyncbridge.gio.open_write(tmp_path / "no-dir" / "f")
        with pytest.raises(IsADirectoryError):
            await (await gasyncbridge.gio.open_read(tmp_path)).read()
        # the same path rules as every gio function: no empty path
        with pytest.raises(ValueError, match="open_read: path must not be empty"):
            await gasyncbridge.gio.open_read("")
        with pytest.raises(ValueError, match="open_write: path must not be empty"):
            await gasyncbridge.gio.open_write(b"")

        with pytest.raises(TypeError, match="Gio.InputStream"):
            gasyncbridge.StreamReader(42)
        with pytest.raises(TypeError, match="output stream"):
            gasyncbridge.StreamReader(Gio.MemoryOutputStream.new_resizable())
        with pytest.raises(TypeError, match="input stream"):
            gasyncbridge.StreamWriter(Gio.MemoryInputStream.new_from_data(b""))
        with pytest.raises(TypeError):
            gasyncbridge.StreamWriter(Gio.File.new_for_path("/"))

        writer = await gasyncbridge.gio.open_write(tmp_path / "w")
        with pytest.raises(TypeError, match="bytes-like"):
            writer.write("text")
        with pytest.raises(TypeError):
            writer.write(None)
        with pytest.raises(NotImplementedError):
            writer.write_eof()
        assert not writer.can_write_eof()
        writer.write(b"kept")
        writer.close()
        with pytest.raises(RuntimeError, match="after close"):
            writer.write(b"late")
        await writer.wait_closed()
        assert (tmp_path / "w").read_bytes() == b"kept"
        with pytest.raises(ValueError):
            writer.set_write_buffer_limits(high=1, low=2)

        # and everything still works
        await write_file(tmp_path / "again", b"fine")
        reader = await gasyncbridge.gio.open_read(tmp_path / "again")
        assert await reader.read() == b"fine"

    run(main)


def test_many_files_concurrently(run, tmp_path):
    async def one(i):
        data = os.urandom(1000 + i)
        await write_file(tmp_path / f"f{i}", data)
        reader = await gasyncbridge.gio.open_read(tmp_path / f"f{i}")
        assert await reader.read() == data

    async def main():
        await asyncio.gather(*(one(i) for i in range(50)))

    run(main)
    gc.collect()


# ---- subprocess pipes --------------------------------------------------------------

from asyncio.subprocess import DEVNULL, PIPE, STDOUT  # noqa: E402


def test_subprocess_pipes(run, tmp_path):
    data = os.urandom(1_000_000)   # far more than a pipe holds, both ways

    async def main():
        proc = await gasyncbridge.gio.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
        assert isinstance(proc, gasyncbridge.gio.Process) and proc.pid > 0
        assert isinstance(proc.stdin, gasyncbridge.StreamWriter)
        assert isinstance(proc.stdout, gasyncbridge.StreamReader)
        assert proc.stderr is None
        out, err = await proc.communicate(data)
        assert out == data and err is None and proc.returncode == 0

        # line by line, with the writer and reader used directly
        proc = await gasyncbridge.gio.create_subprocess_exec(
            "sh", "-c", "while read l; do echo \"got $l\"; done; echo bye >&2; exit 7",
            stdin=PIPE, stdout=PIPE, stderr=PIPE, cwd=tmp_path, env={"PATH": os.environ["PATH"]})
        for i in range(3):
            proc.stdin.write(b"line %d\n" % i)
            await proc.stdin.drain()
            assert await proc.stdout.readline() == b"got line %d\n" % i
        proc.stdin.close()
        await proc.stdin.wait_closed()
        assert await proc.stdout.read() == b""
        assert await proc.stderr.read() == b"bye\n"
        assert await proc.wait() == 7

        proc = await gasyncbridge.gio.create_subprocess_exec(
            "sh", "-c", "echo out; echo err >&2", stdout=PIPE, stderr=STDOUT)
        out, err = await proc.communicate()
        assert sorted(out.splitlines()) == [b"err", b"out"] and err is None

        proc = await gasyncbridge.gio.create_subprocess_exec("pwd", stdout=PIPE, cwd=tmp_path)
        out, _ = await proc.communicate()
        assert out.strip() == os.fsencode(tmp_path)

        proc = await gasyncbridge.gio.create_subprocess_exec("cat", stdin=DEVNULL, stdout=DEVNULL)
        assert await proc.wait() == 0

    run(main)


def test_subprocess_signals_and_errors(run):
    async def main():
        proc = await gasyncbridge.gio.create_subprocess_exec("sleep", "60")
        waiter = asyncio.ensure_future(proc.wait())
        await asyncio.sleep(0)
        # a cancelled wait does not stop the others
        second = asyncio.ensure_future(proc.wait())
        await asyncio.sleep(0)
        second.cancel()
        proc.terminate()
        assert await waiter == -15
        assert proc.returncode == -15
        proc.kill()   # after the end: harmless

        with pytest.raises(FileNotFoundError):
            await gasyncbridge.gio.create_subprocess_exec("/no/such/program")
        with pytest.raises(ValueError):
            await gasyncbridge.gio.create_subprocess_exec("true", stdin=STDOUT)
        with pytest.raises(ValueError):
            await gasyncbridge.gio.create_subprocess_exec("true", stdout=42)
        with pytest.raises(TypeError):
            await gasyncbridge.gio.create_subprocess_exec(None)
        with pytest.raises(TypeError):
            await gasyncbridge.gio.create_subprocess_exec("true", env={"A": None})
        # the same env rules as gio.communicate: keys non-empty, without '='
        for key in ("A=B", ""):
            with pytest.raises(ValueError, match="create_subprocess_exec: env key"):
                await gasyncbridge.gio.create_subprocess_exec("true", env={key: "x"})
        proc = await gasyncbridge.gio.create_subprocess_exec("true")
        assert await proc.wait() == 0

    run(main)


def test_subprocess_close_fds(run):
    """As gio.communicate: the child inherits a descriptor only if it lacks
    close-on-exec, and close_fds=True closes it too."""
    import sys
    r, w = os.pipe()
    os.set_inheritable(w, True)
    probe = ("import os; print(sorted(int(f) for f in os.listdir('/proc/self/fd')))",)

    async def fds(**kwargs):
        proc = await gasyncbridge.gio.create_subprocess_exec(
            sys.executable, "-c", *probe, stdout=PIPE, **kwargs)
        out, _ = await proc.communicate()
        assert await proc.wait() == 0
        return eval(out)

    async def main():
        return await fds(), await fds(close_fds=True)

    try:
        inherit, closed = run(main)
    finally:
        os.close(r)
        os.close(w)
    # valgrind runs a vfork as a fork, so under it children are forked
    # (and close what they do not need) whatever close_fds says
    if not os.environ.get("GAB_UNDER_VALGRIND"):
        assert w in inherit
    assert r not in inherit
    assert w not in closed and r not in closed
