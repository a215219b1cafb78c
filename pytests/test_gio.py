# SPDX-License-Identifier: LGPL-2.1-or-later
"""gasyncbridge.gio against real files, real subprocesses and real name resolution.

Every test runs on the stock asyncio loop and on uvloop (the `run` fixture of
conftest.py), which also fails a test if the loop's exception handler fired.
Nothing sleeps to wait for something: tests synchronise on events (a progress
call, a line in a FIFO, the end of an await).
"""
import asyncio
import contextvars
import errno
import os
import pathlib
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import gasyncbridge
from gasyncbridge import gio
from conftest import GI_MISSING, NO_GI

_TOOLS = os.path.join(os.environ.get("GAB_SOURCE_DIR")
                      or os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")
if _TOOLS not in sys.path:
    sys.path.insert(0, _TOOLS)
import watchdog  # noqa: E402  (every child: a time limit and a stack dump)

G_IO_ERROR = "g-io-error-quark"
# GIOErrorEnum codes the tests look for.
NOT_FOUND, EXISTS, IS_DIRECTORY, NOT_DIRECTORY, PERMISSION_DENIED = 1, 2, 3, 4, 14
WRONG_ETAG = 23

MIB = 1024 * 1024


def check_error(excinfo, cls, code):
    """The exception is the mapped class and carries the GError's domain and code."""
    assert isinstance(excinfo.value, cls), repr(excinfo.value)
    assert excinfo.value.domain == G_IO_ERROR
    assert excinfo.value.code == code


def pid_alive(pid):
    """Whether the process exists at all, zombies included (/proc/PID)."""
    return os.path.exists(f"/proc/{pid}")


def call(run, func, *args, **kwargs):
    """Run `await func(*args, **kwargs)` on the fixture's loop."""
    async def main():
        return await func(*args, **kwargs)

    return run(main)


async def good_call(path):
    """A call that must work after a bad one: the bridge is still usable."""
    return await gio.load_contents(path)


# ---- load_contents / replace_contents ------------------------------------

@pytest.mark.parametrize("data", [
    b"",
    b"hello, world\n",
    bytes(range(256)) * 3,                       # every byte value, NULs too
    os.urandom(8 * MIB),                          # large
], ids=["empty", "text", "binary", "8MiB"])
def test_round_trip(run, tmp_path, data):
    """What replace_contents writes, load_contents reads back, byte for byte."""
    path = tmp_path / "f.bin"

    async def main():
        assert await gio.replace_contents(path, data) is None
        return await gio.load_contents(path)

    assert run(main) == data
    assert path.read_bytes() == data


@pytest.mark.parametrize("kind", ["str", "bytes", "pathlike"])
def test_path_kinds(run, tmp_path, kind):
    """Paths are str, bytes or os.PathLike, for every function."""
    src = tmp_path / "src"
    src.write_bytes(b"abc")
    conv = {"str": str, "bytes": lambda p: os.fsencode(str(p)), "pathlike": pathlib.Path}[kind]

    async def main():
        assert await gio.load_contents(conv(src)) == b"abc"
        await gio.replace_contents(conv(tmp_path / "new"), bytearray(b"xyz"))
        assert (await gio.query_info(conv(src)))["size"] == 3
        await gio.copy(conv(src), conv(tmp_path / "copy"))
        return await gio.list_dir(conv(tmp_path))

    names = run(main)
    want = {"src", "new", "copy"}
    if kind == "bytes":
        want = {os.fsencode(n) for n in want}
    assert set(names) == want
    assert (tmp_path / "new").read_bytes() == b"xyz"
    assert (tmp_path / "copy").read_bytes() == b"abc"


def test_buffer_kinds(run, tmp_path):
    """Any bytes-like object is data; a mutable one is copied at once."""
    path = tmp_path / "f"
    buf = bytearray(b"before")

    async def main():
        fut = gio.replace_contents(path, buf)
        buf[:] = b"after!"          # changing it later changes nothing
        await fut
        await gio.replace_contents(tmp_path / "m", memoryview(b"0123456789")[2:5])

    run(main)
    assert path.read_bytes() == b"before"
    assert (tmp_path / "m").read_bytes() == b"234"


@pytest.mark.parametrize("size", [64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, 3 * MIB + 7])
def test_load_sizes_around_the_direct_read(run, tmp_path, size):
    """Large local files are read straight into the bytes object that Python
    gets; small ones through a buffer. Both give exactly the file, as bytes."""
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)

    async def main():
        return await asyncio.gather(*[gio.load_contents(path) for _ in range(8)])

    results = run(main)
    assert all(type(r) is bytes and r == data for r in results)


def test_load_files_of_unknown_size(run):
    """Files whose size stat() does not give (/proc) are read to their end."""
    async def main():
        return await gio.load_contents("/proc/self/status")

    data = run(main)
    assert data.startswith(b"Name:") and data.endswith(b"\n")


def test_load_cancelled_while_reading_large_files(run, tmp_path):
    """Cancelling loads of large files raises CancelledError in the caller, and
    the bridge (and the file) are fine afterwards."""
    data = os.urandom(4 * MIB)
    path = tmp_path / "big"
    path.write_bytes(data)

    async def main():
        tasks = [asyncio.ensure_future(gio.load_contents(path)) for _ in range(16)]
        await asyncio.sleep(0)
        for t in tasks:
            t.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(o, asyncio.CancelledError) or o == data for o in outcomes)
        return await gio.load_contents(path)

    assert run(main) == data


def test_replace_keeps_a_bytes_object_without_copying_it(run, tmp_path):
    """bytes are written without a copy: the call holds the object until the
    write is over, and what is written is exactly it."""
    import sys as _sys
    data = os.urandom(2 * MIB)
    path = tmp_path / "out"

    async def main():
        before = _sys.getrefcount(data)
        fut = gio.replace_contents(path, data)
        held = _sys.getrefcount(data) - before
        await fut
        return held

    assert run(main) >= 1
    assert path.read_bytes() == data


def test_load_missing(run, tmp_path):
    """A missing file raises FileNotFoundError with the GError's domain and code."""
    async def main():
        with pytest.raises(FileNotFoundError) as excinfo:
            await gio.load_contents(tmp_path / "missing")
        check_error(excinfo, FileNotFoundError, NOT_FOUND)
        assert excinfo.value.errno == errno.ENOENT

    run(main)


def test_load_directory(run, tmp_path):
    """Reading a directory raises IsADirectoryError."""
    async def main():
        with pytest.raises(IsADirectoryError) as excinfo:
            await gio.load_contents(tmp_path)
        check_error(excinfo, IsADirectoryError, IS_DIRECTORY)

    run(main)


def test_replace_into_missing_directory(run, tmp_path):
    """Writing under a directory that does not exist raises FileNotFoundError."""
    async def main():
        with pytest.raises(FileNotFoundError):
            await gio.replace_contents(tmp_path / "no" / "such" / "file", b"x")

    run(main)


PERMISSION_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from gasyncbridge import gio

    async def main(secret, locked_dir):
        out = []
        for what, call in [("load", lambda: gio.load_contents(secret)),
                           ("replace", lambda: gio.replace_contents(locked_dir + "/new", b"x")),
                           ("list", lambda: gio.list_dir(locked_dir))]:
            try:
                await call()
                out.append(what + ":no error")
            except PermissionError as e:
                out.append("%s:%s:%s:%d" % (what, type(e).__name__, e.domain, e.code))
        # and the bridge still works
        out.append("ok" if await gio.load_contents("/etc/passwd") else "bad")
        print(" ".join(out))

    asyncio.run(main(sys.argv[1], sys.argv[2]))
""")


def test_permission_denied(tmp_path):
    """EACCES raises PermissionError (G_IO_ERROR_PERMISSION_DENIED).

    The tests run as root here, and root reads and writes whatever the modes
    say. So as root the check runs in a child process that has dropped to
    the user nobody (uid 65534), which the file modes do stop; as any other
    user it runs the same way with that user's own permissions.
    """
    secret = tmp_path / "secret"
    secret.write_bytes(b"top secret")
    secret.chmod(0o600)
    locked = tmp_path / "locked"
    locked.mkdir()
    # Traversable but neither readable nor writable (for other users).
    tmp_path.chmod(0o711)
    locked.chmod(0o311 if os.geteuid() == 0 else 0o100)
    if os.geteuid() != 0:
        secret.chmod(0o000)
    kwargs = {}
    if os.geteuid() == 0:
        kwargs["user"] = 65534
        kwargs["group"] = 65534
        kwargs["extra_groups"] = []
    try:
        proc = watchdog.run([sys.executable, "-c", PERMISSION_SCRIPT, str(secret), str(locked)],
                            120, env=os.environ, **kwargs)
    except PermissionError as e:   # no CAP_SETUID in this container
        pytest.skip(f"cannot drop to uid 65534 to provoke EACCES as root: {e}")
    finally:
        locked.chmod(0o700)
        tmp_path.chmod(0o700)
    if proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr:
        pytest.skip("the build directory is not readable by uid 65534: " + proc.stderr[-200:])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [
        f"load:PermissionError:{G_IO_ERROR}:{PERMISSION_DENIED}",
        f"replace:PermissionError:{G_IO_ERROR}:{PERMISSION_DENIED}",
        f"list:PermissionError:{G_IO_ERROR}:{PERMISSION_DENIED}",
        "ok",
    ]


def test_replace_etag(run, tmp_path):
    """With etag=, a file changed since its etag was read is not overwritten."""
    path = tmp_path / "f"
    path.write_bytes(b"v1")
    # An mtime of its own: the etag is the mtime, and writes within one
    # clock tick of the kernel can share it.
    os.utime(path, (1_000_000_000, 1_000_000_000))

    async def main():
        etag = (await gio.query_info(path, ["etag"]))["etag"]
        await gio.replace_contents(path, b"v2", etag=etag)        # still that etag
        with pytest.raises(gasyncbridge.GLibError) as excinfo:
            await gio.replace_contents(path, b"v3", etag=etag)     # stale now
        assert excinfo.value.domain == G_IO_ERROR
        assert excinfo.value.code == WRONG_ETAG
        assert await gio.load_contents(path) == b"v2"

    run(main)


def test_replace_backup(run, tmp_path):
    """make_backup=True keeps the old contents as path + '~'."""
    path = tmp_path / "f"
    path.write_bytes(b"old")

    async def main():
        await gio.replace_contents(path, b"new", make_backup=True)

    run(main)
    assert path.read_bytes() == b"new"
    assert (tmp_path / "f~").read_bytes() == b"old"


def test_replace_is_atomic(run, tmp_path):
    """The file is renamed into place: a reader holding the old one keeps it."""
    path = tmp_path / "f"
    path.write_bytes(b"old contents")

    async def main():
        with open(path, "rb") as old:
            await gio.replace_contents(path, b"new contents")
            assert old.read() == b"old contents"
        # and no temporary file is left behind
        assert await gio.list_dir(tmp_path) == ["f"]

    run(main)
    assert path.read_bytes() == b"new contents"


# ---- query_info ------------------------------------------------------------

def test_query_info_default(run, tmp_path):
    """The default keys match os.stat."""
    path = tmp_path / "file.txt"
    path.write_bytes(b"x" * 1234)
    os.utime(path, (1_000_000_000.25, 1_600_000_000.5))
    st = os.stat(path)

    info = call(run, gio.query_info, path)
    assert info["name"] == "file.txt"
    assert info["display_name"] == "file.txt"
    assert info["size"] == 1234
    assert info["type"] == "regular"
    assert info["is_symlink"] is False
    assert info["mtime"] == pytest.approx(1_600_000_000.5, abs=1e-6)
    assert info["permissions"] == st.st_mode
    assert stat.S_ISREG(info["permissions"])
    assert isinstance(info["etag"], str) and info["etag"]
    dinfo = call(run, gio.query_info, tmp_path)
    assert dinfo["type"] == "directory"
    assert stat.S_ISDIR(dinfo["permissions"])


def test_query_info_symlinks(run, tmp_path):
    """follow_symlinks=False describes the link itself, like os.lstat."""
    (tmp_path / "target").write_bytes(b"12345")
    os.symlink("target", tmp_path / "link")

    async def main():
        followed = await gio.query_info(tmp_path / "link")
        link = await gio.query_info(tmp_path / "link", ["type", "symlink_target", "size"],
                                    follow_symlinks=False)
        return followed, link

    followed, link = run(main)
    assert followed["type"] == "regular" and followed["size"] == 5
    assert followed["is_symlink"] is True
    assert link["type"] == "symbolic-link"
    assert link["symlink_target"] == "target"


def test_query_info_attributes(run, tmp_path):
    """attributes= selects keys, GIO attributes and patterns."""
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    st = os.stat(path)

    async def main():
        return (await gio.query_info(path, ["size"]),
                await gio.query_info(path, "size, mtime"),
                await gio.query_info(path, ("unix::uid", "unix::gid", "permissions")),
                await gio.query_info(path, "standard::*"),
                await gio.query_info(path, "time::modified-usec"))

    size, two, unix, standard, usec = run(main)
    assert size == {"size": 3}
    assert set(two) == {"size", "mtime"}
    assert unix == {"unix::uid": st.st_uid, "unix::gid": st.st_gid, "permissions": st.st_mode}
    assert {"name", "size", "type", "display_name"} <= set(standard)
    assert set(usec) == {"time::modified-usec"}   # alone, it keeps its GIO name


def test_query_info_missing(run, tmp_path):
    """A missing file raises FileNotFoundError."""
    async def main():
        with pytest.raises(FileNotFoundError) as excinfo:
            await gio.query_info(tmp_path / "missing")
        check_error(excinfo, FileNotFoundError, NOT_FOUND)

    run(main)


# ---- list_dir --------------------------------------------------------------

def test_list_dir(run, tmp_path):
    """More entries than one batch of the enumerator, all of them, once."""
    names = {f"file-{i:04d}" for i in range(300)} | {"sub", ".hidden"}
    for name in names:
        if name == "sub":
            (tmp_path / name).mkdir()
        else:
            (tmp_path / name).write_bytes(b"")

    listed = call(run, gio.list_dir, tmp_path)
    assert sorted(listed) == sorted(names)
    assert sorted(call(run, gio.list_dir, str(tmp_path) + "/sub")) == []


def test_list_dir_undecodable_names(run, tmp_path):
    """Names that are not UTF-8 come back as os.listdir gives them."""
    raw = b"caf\xe9"
    with open(os.path.join(os.fsencode(str(tmp_path)), raw), "wb"):
        pass
    assert call(run, gio.list_dir, tmp_path) == os.listdir(tmp_path)
    assert call(run, gio.list_dir, os.fsencode(str(tmp_path))) == [raw]


def test_list_dir_errors(run, tmp_path):
    """A file is not a directory; a missing path is missing."""
    (tmp_path / "file").write_bytes(b"")

    async def main():
        with pytest.raises(NotADirectoryError) as excinfo:
            await gio.list_dir(tmp_path / "file")
        check_error(excinfo, NotADirectoryError, NOT_DIRECTORY)
        with pytest.raises(FileNotFoundError):
            await gio.list_dir(tmp_path / "missing")

    run(main)


# ---- copy ------------------------------------------------------------------

def test_copy(run, tmp_path):
    """A copy has the source's bytes."""
    data = os.urandom(3 * MIB + 17)
    (tmp_path / "src").write_bytes(data)
    call(run, gio.copy, tmp_path / "src", tmp_path / "dst")
    assert (tmp_path / "dst").read_bytes() == data


def test_copy_existing_destination(run, tmp_path):
    """Without overwrite an existing file stays; with it, it is replaced."""
    (tmp_path / "src").write_bytes(b"new")
    (tmp_path / "dst").write_bytes(b"old")

    async def main():
        with pytest.raises(FileExistsError) as excinfo:
            await gio.copy(tmp_path / "src", tmp_path / "dst")
        check_error(excinfo, FileExistsError, EXISTS)
        assert (tmp_path / "dst").read_bytes() == b"old"
        await gio.copy(tmp_path / "src", tmp_path / "dst", overwrite=True)

    run(main)
    assert (tmp_path / "dst").read_bytes() == b"new"


def test_copy_missing_source(run, tmp_path):
    """A missing source raises FileNotFoundError and creates nothing."""
    async def main():
        with pytest.raises(FileNotFoundError):
            await gio.copy(tmp_path / "missing", tmp_path / "dst")

    run(main)
    assert not (tmp_path / "dst").exists()


def test_copy_progress(run, tmp_path):
    """Progress arrives on the loop thread, throttled, ending with the final numbers."""
    size = 48 * MIB
    (tmp_path / "src").write_bytes(os.urandom(size))
    calls = []
    var = contextvars.ContextVar("var")

    def progress(current, total):
        calls.append((current, total, threading.get_ident(), var.get(None)))

    async def main():
        var.set("caller's")
        start = time.monotonic()
        await gio.copy(tmp_path / "src", tmp_path / "dst", progress=progress)
        return time.monotonic() - start

    elapsed = run(main)
    assert calls, "no progress reported"
    assert calls[-1][:2] == (size, size)
    assert all(c[2] == threading.get_ident() for c in calls)   # the loop's thread
    assert all(c[3] == "caller's" for c in calls)               # the caller's context
    currents = [c[0] for c in calls]
    assert currents == sorted(currents)
    assert all(c[1] == size for c in calls)
    # At most one call per 50 ms, plus the final one: a fast copy does not
    # flood the loop (GIO reports every MiB, 48 times here).
    assert len(calls) <= elapsed / 0.05 + 2, (len(calls), elapsed)
    assert (tmp_path / "dst").read_bytes() == (tmp_path / "src").read_bytes()


def test_copy_progress_empty_file(run, tmp_path):
    """An empty file reports (0, 0) once."""
    (tmp_path / "src").write_bytes(b"")
    calls = []

    call(run, gio.copy, tmp_path / "src", tmp_path / "dst", progress=lambda c, t: calls.append((c, t)))
    assert calls == [(0, 0)]


class ProgressFailed(Exception):
    """Raised by a progress callback."""


def test_copy_progress_raises(run, tmp_path):
    """A progress callback that raises stops the copy with its exception."""
    (tmp_path / "src").write_bytes(b"\0" * (8 * MIB))
    raised = ProgressFailed("stop")

    def progress(current, total):
        raise raised

    async def main():
        with pytest.raises(ProgressFailed) as excinfo:
            await gio.copy(tmp_path / "src", tmp_path / "dst", progress=progress)
        assert excinfo.value is raised

    run(main)
    assert not (tmp_path / "dst").exists()


def sparse_file(path, size):
    """A big file that takes no disk space: copying it takes long enough to cancel."""
    with open(path, "wb") as f:
        f.truncate(size)


def test_copy_cancel_mid_copy(run, tmp_path):
    """Cancelling mid-copy leaves no partial destination, once CancelledError is seen."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    sparse_file(src, 1024 * MIB)
    seen = []

    async def main():
        started = asyncio.Event()

        def progress(current, total):
            seen.append(current)
            started.set()

        task = asyncio.ensure_future(gio.copy(src, dst, progress=progress))
        await started.wait()              # GIO is writing dst now
        assert dst.exists()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # When the task sees CancelledError, GIO has stopped and cleaned up.
        assert not dst.exists()

    run(main)
    assert 0 < seen[-1] < 1024 * MIB


def test_copy_cancel_keeps_existing_destination(run, tmp_path):
    """A cancelled overwrite leaves the old destination as it was."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    sparse_file(src, 1024 * MIB)
    dst.write_bytes(b"precious")

    async def main():
        started = asyncio.Event()
        task = asyncio.ensure_future(
            gio.copy(src, dst, overwrite=True, progress=lambda c, t: started.set()))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main)
    assert dst.read_bytes() == b"precious"
    assert sorted(os.listdir(tmp_path)) == ["dst", "src"]   # no temporary file either


def test_cancel_before_start(run, tmp_path):
    """Cancelled at once, before the runtime even started it: nothing is left."""
    # Big, so that the copy cannot finish whole before the cancellation
    # reaches it, whichever runs first on the runtime thread.
    sparse_file(tmp_path / "src", 1024 * MIB)
    (tmp_path / "small").write_bytes(b"abc")

    async def main():
        fut = gio.copy(tmp_path / "src", tmp_path / "dst")
        assert fut.cancel() is True
        assert fut.cancel() is True       # again: still on its way
        with pytest.raises(asyncio.CancelledError):
            await fut
        assert fut.cancelled()
        assert fut.cancel() is False      # done now
        return await good_call(tmp_path / "small")

    assert run(main) == b"abc"
    assert not (tmp_path / "dst").exists()


# ---- communicate -----------------------------------------------------------

def test_communicate_descriptors_the_child_inherits(run):
    """A child inherits descriptors only if they lack close-on-exec (Python's
    never have it off unless asked); close_fds=True closes those too."""
    r, w = os.pipe()
    os.set_inheritable(w, True)
    closed_r, closed_w = os.pipe()          # close-on-exec, as Python makes them
    probe = [sys.executable, "-c", "import os, sys; print(sorted(int(f) for f in os.listdir('/proc/self/fd')))"]

    async def main():
        _, inherit, _ = await gio.communicate(probe)
        _, closed, _ = await gio.communicate(probe, close_fds=True)
        return eval(inherit), eval(closed)

    try:
        inherit, closed = run(main)
    finally:
        for fd in (r, w, closed_r, closed_w):
            os.close(fd)
    assert w in inherit and closed_r not in inherit and closed_w not in inherit
    assert w not in closed and closed_r not in closed


def test_communicate_input_bytes_are_not_copied(run):
    """bytes input is fed from the object itself (held until the end)."""
    data = os.urandom(3 * MIB)

    async def main():
        before = sys.getrefcount(data)
        fut = gio.communicate(["cat"], data)
        held = sys.getrefcount(data) - before
        return held, await fut

    held, (rc, out, err) = run(main)
    assert held >= 1 and rc == 0 and out == data and err == b""


def test_communicate_large_outputs(run):
    """Outputs of a MiB and more arrive whole and in order on both pipes (made
    into bytes objects off the loop thread), many children at once."""
    code = ("import sys; sys.stdout.buffer.write(bytes(range(256)) * 4096 * 3); "
            "sys.stderr.buffer.write(b'e' * 100000)")

    async def main():
        return await asyncio.gather(*[gio.communicate([sys.executable, "-c", code])
                                      for _ in range(10)])

    for rc, out, err in run(main):
        assert rc == 0
        assert type(out) is bytes and out == bytes(range(256)) * 4096 * 3
        assert type(err) is bytes and err == b"e" * 100000


def test_communicate_output_and_exit_code(run):
    """stdout, stderr and the exit status come back."""
    code, out, err = call(run, gio.communicate, ["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (code, out, err) == (7, b"out\n", b"err\n")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGINT])
def test_communicate_signal(run, sig):
    """A child ended by signal N reports -N, as asyncio does."""
    code, out, err = call(run, gio.communicate, ["sh", "-c", f"kill -{int(sig)} $$"])
    assert code == -int(sig)


@pytest.mark.parametrize("size", [MIB, 4 * MIB])
def test_communicate_large(run, size):
    """More than a pipe buffer in and out (and on stderr at the same time)."""
    data = os.urandom(size)
    code, out, err = call(run, gio.communicate,
                         ["sh", "-c", f"head -c {size} /dev/zero >&2; cat"], data)
    assert code == 0
    assert out == data
    assert err == b"\0" * size


def test_communicate_child_ignores_input(run):
    """A child that exits without reading its input is no error."""
    assert call(run, gio.communicate, ["true"], b"x" * (2 * MIB)) == (0, b"", b"")


def test_communicate_stdin_closed_without_input(run):
    """With input=None the child reads EOF at once."""
    assert call(run, gio.communicate, ["cat"]) == (0, b"", b"")


def test_communicate_cwd_env(run, tmp_path):
    """cwd= and env= are the child's."""
    async def main():
        here = await gio.communicate(["pwd"], cwd=tmp_path)
        env = await gio.communicate(["/bin/sh", "-c", "echo $GAB_TEST_VAR; echo ${HOME-unset}"],
                                    env={"GAB_TEST_VAR": "from env", b"PATH": b"/usr/bin:/bin"})
        return here, env

    here, env = run(main)
    assert here == (0, os.fsencode(str(tmp_path)) + b"\n", b"")
    assert env == (0, b"from env\nunset\n", b"")


def test_communicate_spawn_errors(run, tmp_path):
    """Programs that cannot start raise the OSError asyncio would."""
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)

    async def main():
        with pytest.raises(FileNotFoundError) as excinfo:
            await gio.communicate([str(tmp_path / "no-such-program")])
        check_error(excinfo, FileNotFoundError, NOT_FOUND)
        with pytest.raises(FileNotFoundError):
            await gio.communicate(["no-such-program-gab"])
        with pytest.raises(PermissionError) as excinfo:
            await gio.communicate([str(script)])
        check_error(excinfo, PermissionError, PERMISSION_DENIED)
        with pytest.raises(FileNotFoundError):
            await gio.communicate(["true"], cwd=tmp_path / "missing")

    run(main)


def test_communicate_cancel_kills_and_reaps(run, tmp_path):
    """Cancelling kills the child and reaps it before CancelledError: no zombie."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    async def main():
        task = asyncio.ensure_future(gio.communicate(
            ["sh", "-c", f"echo $$ > '{fifo}'; exec sleep 1000"]))
        # The child tells its pid through the FIFO: it is running from then on.
        pid = int(await asyncio.get_running_loop().run_in_executor(None, fifo.read_text))
        assert pid_alive(pid)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Killed and reaped by GLib already: not even a zombie is left.
        assert not pid_alive(pid)
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)

    run(main)


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs os.pidfd_open")
def test_dropped_operation_kills_its_child(run, tmp_path):
    """An Operation that Python drops while pending (no reference, no done
    callback): the bridge notices on its next sweep (0.1 s) and cancels the
    GIO call, which kills the child. Its exit is awaited through a pidfd."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    async def main():
        loop = asyncio.get_running_loop()
        op = gio.communicate(["sh", "-c", f"echo $$ > '{fifo}'; exec sleep 1000"])
        pid = int(await loop.run_in_executor(None, fifo.read_text))
        pidfd = os.pidfd_open(pid)
        try:
            exited = loop.create_future()
            loop.add_reader(pidfd, lambda: exited.done() or exited.set_result(True))
            del op
            try:
                await asyncio.wait_for(exited, 30)
            finally:
                loop.remove_reader(pidfd)
        finally:
            os.close(pidfd)
        return await gio.communicate(["echo", "still works"])

    assert run(main) == (0, b"still works\n", b"")


def test_unreferenced_task_awaiting_an_operation_completes(run, tmp_path):
    """Fire-and-forget tasks awaiting gio Operations survive gc.collect():
    the bridge holds an Operation while GIO runs, as asyncio holds its own
    I/O futures."""
    import gc
    paths = []
    for i in range(10):
        paths.append(tmp_path / f"f{i}")
        paths[-1].write_bytes(b"x" * i)

    async def main():
        done = []
        all_done = asyncio.Event()

        async def worker(path):
            contents = await gio.load_contents(str(path))
            done.append(len(contents))
            if len(done) == len(paths):
                all_done.set()

        for path in paths:
            asyncio.ensure_future(worker(path))
        await asyncio.sleep(0)
        gc.collect()
        await asyncio.wait_for(all_done.wait(), 30)
        return sorted(done)

    assert run(main) == list(range(10))


def test_communicate_timeout(run):
    """asyncio.wait_for() on communicate: TimeoutError, and the child is gone."""
    async def main():
        fut = gio.communicate(["sleep", "1000"])
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(fut, 0.2)
        assert fut.cancelled()
        return await gio.communicate(["echo", "still works"])

    assert run(main) == (0, b"still works\n", b"")


# ---- resolve ---------------------------------------------------------------

def test_resolve_localhost(run):
    """localhost resolves, like getaddrinfo says."""
    async def main():
        return (await gio.resolve("localhost"),
                await gio.resolve("localhost", family=socket.AF_INET),
                await gio.resolve("127.0.0.1"))

    both, v4, literal = run(main)
    # GResolver answers localhost itself (RFC 6761: both loopbacks); the
    # system resolver's answers are among them.
    want = {info[4][0] for info in socket.getaddrinfo("localhost", None, type=socket.SOCK_STREAM)}
    assert "127.0.0.1" in both
    assert want <= set(both)
    assert v4 == ["127.0.0.1"]
    assert literal == ["127.0.0.1"]


def test_resolve_unknown(run):
    """A name in the reserved .invalid domain does not resolve."""
    async def main():
        with pytest.raises(gasyncbridge.GLibError) as excinfo:
            await gio.resolve("no-such-host.invalid")
        assert excinfo.value.domain == "g-resolver-error-quark"

    run(main)


# ---- bad arguments ---------------------------------------------------------

class BadPath:
    """An os.PathLike whose __fspath__ returns neither str nor bytes."""

    def __fspath__(self):
        return 42


BAD_CALLS = [
    # (function, args, kwargs, exception)
    (gio.load_contents, (None,), {}, TypeError),
    (gio.load_contents, (42,), {}, TypeError),
    (gio.load_contents, ("",), {}, ValueError),
    (gio.load_contents, ("a\0b",), {}, ValueError),
    (gio.load_contents, (BadPath(),), {}, TypeError),
    (gio.load_contents, (), {}, TypeError),
    (gio.replace_contents, ("/tmp/x", "text"), {}, TypeError),
    (gio.replace_contents, ("/tmp/x", 42), {}, TypeError),
    (gio.replace_contents, ("/tmp/x", b""), {"etag": 5}, TypeError),
    (gio.replace_contents, ("/tmp/x", b""), {"bogus": 1}, TypeError),
    (gio.replace_contents, ("/tmp/x", b"", None), {}, TypeError),     # etag is keyword-only
    (gio.query_info, ("/tmp",), {"attributes": 42}, TypeError),
    (gio.query_info, ("/tmp",), {"attributes": b"size"}, TypeError),
    (gio.query_info, ("/tmp",), {"attributes": [1]}, TypeError),
    (gio.query_info, ("/tmp",), {"attributes": "no_such_key"}, ValueError),
    (gio.query_info, ("/tmp",), {"attributes": ""}, ValueError),
    (gio.query_info, ("/tmp",), {"attributes": []}, ValueError),
    (gio.query_info, ("/tmp",), {"attributes": ["size,mtime"]}, ValueError),
    (gio.list_dir, (None,), {}, TypeError),
    (gio.list_dir, ("a\0b",), {}, ValueError),
    (gio.copy, ("/tmp/a",), {}, TypeError),
    (gio.copy, ("/tmp/a", 3), {}, TypeError),
    (gio.copy, ("/tmp/a", "/tmp/b"), {"progress": 42}, TypeError),
    (gio.copy, ("/tmp/a", "/tmp/b", True), {}, TypeError),            # overwrite is keyword-only
    (gio.communicate, ("echo hi",), {}, TypeError),                   # a str is no argv
    (gio.communicate, (b"echo",), {}, TypeError),
    (gio.communicate, ([],), {}, ValueError),
    (gio.communicate, ([""],), {}, ValueError),
    (gio.communicate, ([1],), {}, TypeError),
    (gio.communicate, (["echo", "a\0b"],), {}, ValueError),
    (gio.communicate, (42,), {}, TypeError),
    (gio.communicate, (["cat"], "text"), {}, TypeError),
    (gio.communicate, (["cat"], 42), {}, TypeError),
    (gio.communicate, (["cat"],), {"cwd": 42}, TypeError),
    (gio.communicate, (["cat"],), {"env": "A=B"}, TypeError),
    (gio.communicate, (["cat"],), {"env": {"A=B": "x"}}, ValueError),
    (gio.communicate, (["cat"],), {"env": {"": "x"}}, ValueError),
    (gio.communicate, (["cat"],), {"env": {"A": 1}}, TypeError),
    (gio.communicate, (["cat"],), {"env": {"A": "a\0b"}}, ValueError),
    (gio.communicate, (["cat"],), {"timeout": 1}, TypeError),
    (gio.resolve, (42,), {}, TypeError),
    (gio.resolve, (b"localhost",), {}, TypeError),
    (gio.resolve, ("",), {}, ValueError),
    (gio.resolve, ("a\0b",), {}, ValueError),
    (gio.resolve, ("localhost",), {"family": 99}, ValueError),
]


@pytest.mark.parametrize("func,args,kwargs,exc", BAD_CALLS,
                         ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(BAD_CALLS)])
def test_bad_arguments(run, tmp_path, func, args, kwargs, exc):
    """Bad arguments raise at the call, before anything starts; a good call then works."""
    (tmp_path / "good").write_bytes(b"good")

    async def main():
        with pytest.raises(exc):
            func(*args, **kwargs)       # no await: it raises right here
        return await good_call(tmp_path / "good")

    assert run(main) == b"good"


def test_no_running_loop():
    """Called outside a running loop: RuntimeError, nothing started."""
    with pytest.raises(RuntimeError):
        gio.load_contents("/etc/passwd")


# ---- the Operation future --------------------------------------------------

def test_operation_is_a_future(run, tmp_path):
    """What the functions return is an asyncio.Future of the running loop."""
    (tmp_path / "f").write_bytes(b"x")

    async def main():
        fut = gio.load_contents(tmp_path / "f")
        assert isinstance(fut, asyncio.Future)
        assert isinstance(fut, gio.Operation)
        assert fut.get_loop() is asyncio.get_running_loop()
        assert await fut == b"x"
        assert fut.cancel() is False
        # gather and shield take it like any future
        return await asyncio.gather(gio.load_contents(tmp_path / "f"),
                                    asyncio.shield(gio.load_contents(tmp_path / "f")))

    assert run(main) == [b"x", b"x"]


def test_cancel_message(run):
    """cancel(msg) reaches the CancelledError, once GIO has stopped."""
    async def main():
        fut = gio.communicate(["sleep", "1000"])
        assert fut.cancel("enough") is True
        assert not fut.done()            # like Task.cancel(): not done yet
        with pytest.raises(asyncio.CancelledError) as excinfo:
            await fut
        assert excinfo.value.args == ("enough",)
        assert fut.cancelled()

    run(main)


# ---- type stubs ------------------------------------------------------------

import ast  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402

SOURCE_DIR = os.environ.get("GAB_SOURCE_DIR",
                            os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STUBS_DIR = os.path.join(SOURCE_DIR, "gasyncbridge", "module", "gasyncbridge-stubs")
STUB_FILES = {"gasyncbridge": "__init__.pyi", "gasyncbridge.gio": "gio.pyi",
              "gasyncbridge.dbus": "dbus.pyi"}
# Protocols that exist for type checkers only (imported under
# TYPE_CHECKING): in the stubs, not in the module.
STUB_ONLY = {"gasyncbridge": {"GErrorInfo"}, "gasyncbridge.gio": set(), "gasyncbridge.dbus": set()}


def stub_definitions(module_name):
    """{name: [ast node, ...]} of a stub file's top level (overloads are several)."""
    with open(os.path.join(STUBS_DIR, STUB_FILES[module_name])) as f:
        tree = ast.parse(f.read())
    defs = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defs.setdefault(node.name, []).append(node)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            defs.setdefault(node.target.id, []).append(node)
        elif isinstance(node, ast.ImportFrom) and node.module in (None, "gio") and node.level == 1:
            for alias in node.names:               # re-exports: `from . import gio as gio`
                if alias.asname == alias.name:
                    defs.setdefault(alias.name, []).append(node)
    return defs


def stub_params(func):
    """[(name, kind, has_default)] of an ast function, as inspect would say."""
    a = func.args
    out = []
    positional = a.posonlyargs + a.args
    first_default = len(positional) - len(a.defaults)
    for i, arg in enumerate(positional):
        kind = "POSITIONAL_ONLY" if i < len(a.posonlyargs) else "POSITIONAL_OR_KEYWORD"
        out.append((arg.arg, kind, i >= first_default))
    if a.vararg:
        out.append((a.vararg.arg, "VAR_POSITIONAL", False))
    for arg, default in zip(a.kwonlyargs, a.kw_defaults):
        out.append((arg.arg, "KEYWORD_ONLY", default is not None))
    if a.kwarg:
        out.append((a.kwarg.arg, "VAR_KEYWORD", False))
    return out


def runtime_params(obj):
    """[(name, kind, has_default)] of a runtime callable."""
    return [(p.name, p.kind.name, p.default is not inspect.Parameter.empty)
            for p in inspect.signature(obj).parameters.values()]


def public_names(obj):
    """The public names of a module (its __all__ if it has one), or the
    methods a class defines itself."""
    if isinstance(obj, type):
        keep = {"__init__", "__aiter__", "__anext__", "__aenter__", "__aexit__", "__await__"}
        # A named tuple of C (a struct sequence) has these besides its fields.
        bookkeeping = {"n_fields", "n_sequence_fields", "n_unnamed_fields"}
        return {n for n in vars(obj)
                if (not n.startswith("_") or n in keep) and n not in bookkeeping}
    if hasattr(obj, "__all__"):
        return set(obj.__all__)
    return {n for n in dir(obj) if not n.startswith("_") or n == "__version__"}


def check_callable(where, runtime, stubs, errors, method=False):
    """Compare one function's runtime signature with its stub (or overloads)."""
    try:
        have = runtime_params(runtime)
    except (TypeError, ValueError):
        return
    if method and have and have[0][0] == "self":
        have = have[1:]
    for stub in stubs:
        if isinstance(stub, ast.ClassDef) or not isinstance(stub, (ast.FunctionDef, ast.AsyncFunctionDef)):
            errors.append(f"{where}: a function at runtime, not in the stub")
            return
    overloaded = len(stubs) > 1
    for stub in stubs:
        want = stub_params(stub)
        if method and want and want[0][0] == "self":
            want = want[1:]
        if overloaded:
            # Each overload uses some of the parameters, the same way.
            byname = {p[0]: p[1] for p in have}
            bad = [p for p in want if byname.get(p[0]) != p[1]]
            if bad:
                errors.append(f"{where}: overload parameters {bad} not in runtime {have}")
        elif want != have:
            errors.append(f"{where}: stub {want} != runtime {have}")


@pytest.mark.parametrize("module_name", sorted(STUB_FILES))
def test_stubs_match_module(module_name):
    """The .pyi stubs name exactly what the module exposes, with its signatures.

    If this fails after a change of the module, update
    gasyncbridge/module/gasyncbridge-stubs/ to match.
    """
    import importlib
    module = importlib.import_module(module_name)
    defs = stub_definitions(module_name)
    runtime = public_names(module)
    errors = []
    for name in sorted(runtime - set(defs)):
        errors.append(f"{module_name}.{name} is missing from the stubs")
    for name in sorted(set(defs) - runtime - STUB_ONLY[module_name]):
        errors.append(f"{module_name}.{name} is in the stubs but not in the module")
    for name in sorted(STUB_ONLY[module_name]):
        node = defs[name][0]
        if not (isinstance(node, ast.ClassDef)
                and any(getattr(b, "id", None) == "Protocol" for b in node.bases)):
            errors.append(f"{module_name}.{name} is stub-only but not a Protocol")
        if name in runtime:
            errors.append(f"{module_name}.{name} is stub-only but exists at run time")
    for name in sorted(runtime & set(defs)):
        obj = getattr(module, name)
        where = f"{module_name}.{name}"
        if isinstance(obj, type):
            cls_stub = defs[name][0]
            if not isinstance(cls_stub, ast.ClassDef):
                errors.append(f"{where}: a class at runtime, not in the stub")
                continue
            members = {}
            for node in cls_stub.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    members.setdefault(node.name, []).append(node)
            for member in sorted(public_names(obj)):
                if member not in members:
                    errors.append(f"{where}.{member} is missing from the stubs")
                    continue
                value = vars(obj)[member]
                if isinstance(value, property):
                    continue
                runtime_async = inspect.iscoroutinefunction(value)
                if runtime_async != isinstance(members[member][0], ast.AsyncFunctionDef):
                    errors.append(f"{where}.{member}: async is {runtime_async} at runtime, "
                                  "not in the stub")
                check_callable(f"{where}.{member}", value, members[member], errors, method=True)
        elif callable(obj):
            check_callable(where, obj, defs[name], errors)
    assert not errors, "\n".join(errors)


def test_stubs_with_mypy_stubtest(tmp_path):
    """mypy's stubtest agrees with the stubs (when mypy is installed)."""
    pytest.importorskip("mypy.stubtest")
    stubs = tmp_path / "stubs" / "gasyncbridge"
    shutil.copytree(STUBS_DIR, stubs)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    allowlist = tmp_path / "allowlist.txt"
    allowlist.write_text("".join(f"{module}.{name}\n" for module, names in STUB_ONLY.items()
                                 for name in sorted(names)))
    env = dict(os.environ, MYPYPATH=str(tmp_path / "stubs"))
    proc = watchdog.run([sys.executable, "-m", "mypy.stubtest", "--allowlist", str(allowlist),
                         "gasyncbridge"], 300, cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_stubs_mypy_strict(tmp_path):
    """`mypy --strict` accepts the typed example of doc/guide/07-errors.md,
    .domain and .code of mapped errors included (when mypy is installed;
    GAB_REQUIRE_MYPY=1, as in CI, makes a missing mypy a failure)."""
    if os.environ.get("GAB_REQUIRE_MYPY") == "1":
        import mypy.api  # noqa: F401
    else:
        pytest.importorskip("mypy.api")
    stubs = tmp_path / "stubs" / "gasyncbridge"
    shutil.copytree(STUBS_DIR, stubs)
    example = os.path.join(SOURCE_DIR, "examples", "guide", "typed_errors.py")
    env = dict(os.environ, MYPYPATH=str(tmp_path / "stubs"))
    proc = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                           "--cache-dir", str(tmp_path / "cache"), example],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # And it fails without the cast: the stubs do not pretend that every
    # OSError has .domain.
    bad = tmp_path / "bad.py"
    bad.write_text("def f(e: FileNotFoundError) -> int:\n    return e.code\n")
    proc = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                           "--cache-dir", str(tmp_path / "cache"), str(bad)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "has no attribute \"code\"" in proc.stdout, proc.stdout


def test_stubs_are_installed():
    """`meson install` puts the stub package beside the extension module."""
    build_dir = os.environ.get("GAB_BUILD_DIR")
    meson = shutil.which("meson")
    if not build_dir or not meson:
        pytest.skip("needs GAB_BUILD_DIR (set by meson test) and meson")
    proc = watchdog.run([meson, "introspect", "--installed", build_dir], 120)
    assert proc.returncode == 0, proc.stderr
    installed = json.loads(proc.stdout).values()
    so = [p for p in installed if os.path.basename(p).startswith("_gasyncbridge.cpython")]
    package = os.path.dirname(so[0])
    assert os.path.basename(package) == "gasyncbridge"
    modules = sorted(os.path.relpath(p, package) for p in installed
                     if os.path.dirname(p) == package and p.endswith(".py"))
    assert modules == ["__init__.py", "_signals.py", "dbus.py"]
    stubs = sorted(os.path.relpath(p, os.path.dirname(package)) for p in installed
                   if "gasyncbridge-stubs" in p)
    assert stubs == ["gasyncbridge-stubs/__init__.pyi", "gasyncbridge-stubs/dbus.pyi",
                     "gasyncbridge-stubs/gio.pyi"]
