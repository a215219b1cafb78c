# SPDX-License-Identifier: LGPL-2.1-or-later
"""gasyncbridge.call_gio on real PyGObject async methods.

Methods of Gio.File, Gio.InputStream, Gio.OutputStream, Gio.FileEnumerator,
Gio.SocketClient, Gio.DBusConnection (peer to peer, no bus daemon),
Gio.Subprocess and Gio.Resolver, static functions too, failures and
cancellation; on asyncio and uvloop (the `run` fixture of conftest.py).
"""
import asyncio
import os

import pytest

from conftest import GI_MISSING  # noqa: E402

gi = pytest.importorskip("gi", reason=GI_MISSING)
gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

import gasyncbridge  # noqa: E402
from gasyncbridge import call_gio  # noqa: E402

PRIO = GLib.PRIORITY_DEFAULT


def gfile(path):
    """A Gio.File for a path."""
    return Gio.File.new_for_path(str(path))


# ---- files and streams -----------------------------------------------------

def test_load_contents_tuple(run, tmp_path):
    """The finish's return value comes back as PyGObject gives it: a tuple."""
    (tmp_path / "f").write_bytes(b"\0binary\xff")

    async def main():
        return await call_gio(gfile(tmp_path / "f").load_contents_async)

    ok, contents, etag = run(main)
    assert ok is True
    assert contents == b"\0binary\xff"
    assert isinstance(etag, str)


def test_query_info(run, tmp_path):
    """A method with arguments before its cancellable."""
    (tmp_path / "f").write_bytes(b"12345")

    async def main():
        return await call_gio(gfile(tmp_path / "f").query_info_async, "standard::size",
                              Gio.FileQueryInfoFlags.NONE, PRIO)

    info = run(main)
    assert isinstance(info, Gio.FileInfo)
    assert info.get_size() == 5


def test_input_stream(run, tmp_path):
    """Gio.File.read_async, then Gio.InputStream methods on what it gave."""
    (tmp_path / "f").write_bytes(b"a" * 10000)

    async def main():
        stream = await call_gio(gfile(tmp_path / "f").read_async, PRIO)
        assert isinstance(stream, Gio.FileInputStream)
        chunks = []
        while True:
            chunk = await call_gio(stream.read_bytes_async, 4096, PRIO)
            if chunk.get_size() == 0:
                break
            chunks.append(chunk.get_data())
        assert await call_gio(stream.close_async, PRIO) is True
        return b"".join(chunks)

    assert run(main) == b"a" * 10000


def test_replace_contents_bytes(run, tmp_path):
    """replace_contents_bytes_async pairs with replace_contents_finish."""
    path = tmp_path / "f"

    async def main():
        return await call_gio(gfile(path).replace_contents_bytes_async, GLib.Bytes.new(b"new"),
                              None, False, Gio.FileCreateFlags.NONE)

    ok, etag = run(main)
    assert ok is True and etag
    assert path.read_bytes() == b"new"


def test_enumerate_children(run, tmp_path):
    """Gio.File.enumerate_children_async and Gio.FileEnumerator.next_files_async."""
    names = {f"n{i}" for i in range(50)}
    for name in names:
        (tmp_path / name).write_bytes(b"")

    async def main():
        enumerator = await call_gio(gfile(tmp_path).enumerate_children_async, "standard::name",
                                    Gio.FileQueryInfoFlags.NONE, PRIO)
        found = set()
        while True:
            infos = await call_gio(enumerator.next_files_async, 16, PRIO)
            if not infos:
                break
            found.update(info.get_name() for info in infos)
        await call_gio(enumerator.close_async, PRIO)
        return found

    assert run(main) == names


def test_static_function(run, tmp_path):
    """A class's static async function (no source object): Gio.File.new_tmp_async."""
    async def main():
        return await call_gio(Gio.File.new_tmp_async, "gab-XXXXXX.tmp", PRIO)

    file, iostream = run(main)
    try:
        assert os.path.basename(file.get_path()).startswith("gab-")
        assert isinstance(iostream, Gio.FileIOStream)
    finally:
        iostream.close(None)
        file.delete(None)


def test_failure_is_mapped(run, tmp_path):
    """A GLib.Error from the finish raises the mapped exception, with the GLib.Error as cause."""
    async def main():
        with pytest.raises(FileNotFoundError) as excinfo:
            await call_gio(gfile(tmp_path / "missing").load_contents_async)
        return excinfo.value

    exc = run(main)
    assert exc.domain == "g-io-error-quark"
    assert exc.code == Gio.IOErrorEnum.NOT_FOUND
    assert isinstance(exc.__cause__, GLib.Error)
    assert exc.__cause__.code == Gio.IOErrorEnum.NOT_FOUND


# ---- subprocesses ------------------------------------------------------------

def test_subprocess_communicate(run):
    """Gio.Subprocess.communicate_async through cat."""
    data = os.urandom(1024 * 1024)

    async def main():
        proc = Gio.Subprocess.new(["cat"], Gio.SubprocessFlags.STDIN_PIPE
                                  | Gio.SubprocessFlags.STDOUT_PIPE)
        ok, out, err = await call_gio(proc.communicate_async, GLib.Bytes.new(data))
        return ok, out.get_data(), err, proc.get_exit_status()

    assert run(main) == (True, data, None, 0)


def test_subprocess_wait_check_fails(run):
    """A failing method: wait_check on a child that exits 3 raises GLibError."""
    async def main():
        proc = Gio.Subprocess.new(["sh", "-c", "exit 3"], Gio.SubprocessFlags.NONE)
        with pytest.raises(gasyncbridge.GLibError) as excinfo:
            await call_gio(proc.wait_check_async)
        return excinfo.value

    exc = run(main)
    assert exc.domain == "g-spawn-exit-error-quark"
    assert exc.code == 3


def test_cancel_subprocess_wait(run):
    """Cancelling the task cancels the GIO call (the child is not touched)."""
    async def main():
        proc = Gio.Subprocess.new(["sleep", "1000"], Gio.SubprocessFlags.NONE)
        try:
            task = asyncio.ensure_future(call_gio(proc.wait_async))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert task.cancelled()
            # GIO's wait stopped for the cancellable, the child still runs.
            assert proc.get_identifier() is not None
        finally:
            proc.force_exit()
            await call_gio(proc.wait_async)
        return proc.get_if_signaled()

    assert run(main) is True


# ---- sockets -----------------------------------------------------------------

def test_socket_client(run):
    """Gio.SocketClient.connect_to_host_async to an asyncio server on the same loop."""
    async def main():
        async def echo(reader, writer):
            writer.write(await reader.readexactly(5))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            client = Gio.SocketClient()
            conn = await call_gio(client.connect_to_host_async, "127.0.0.1", port)
            assert isinstance(conn, Gio.SocketConnection)
            written = await call_gio(conn.get_output_stream().write_bytes_async,
                                     GLib.Bytes.new(b"hello"), PRIO)
            assert written == 5
            reply = await call_gio(conn.get_input_stream().read_bytes_async, 5, PRIO)
            await call_gio(conn.close_async, PRIO)
            return reply.get_data()
        finally:
            server.close()
            await server.wait_closed()

    assert run(main) == b"hello"


def test_socket_connection_refused(run):
    """Connection refused maps to ConnectionRefusedError."""
    async def main():
        # A port that nobody listens on: bind one, and close it.
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        with pytest.raises(ConnectionRefusedError) as excinfo:
            await call_gio(Gio.SocketClient().connect_to_host_async, "127.0.0.1", port)
        assert excinfo.value.domain == "g-io-error-quark"

    run(main)


def test_cancel_pending_read(run):
    """A read with no data yet is cancelled in GIO: the stream is free again."""
    async def main():
        got_client = asyncio.Event()
        writers = []

        async def handler(reader, writer):
            writers.append(writer)
            got_client.set()

        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            conn = await call_gio(Gio.SocketClient().connect_to_host_async, "127.0.0.1", port)
            await got_client.wait()
            stream = conn.get_input_stream()
            task = asyncio.ensure_future(call_gio(stream.read_bytes_async, 10, PRIO))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # GIO has finished the read (with G_IO_ERROR_CANCELLED): no
            # operation is pending on the stream, and it reads again.
            assert not stream.has_pending()
            writers[0].write(b"after")
            await writers[0].drain()
            data = await call_gio(stream.read_bytes_async, 5, PRIO)
            await call_gio(conn.close_async, PRIO)
            return data.get_data()
        finally:
            for w in writers:
                w.close()
            server.close()
            await server.wait_closed()

    assert run(main) == b"after"


def test_resolver(run):
    """Gio.Resolver.lookup_by_name_async on localhost."""
    async def main():
        return await call_gio(Gio.Resolver.get_default().lookup_by_name_async, "localhost")

    addresses = run(main)
    assert "127.0.0.1" in [a.to_string() for a in addresses]


# ---- D-Bus, peer to peer -----------------------------------------------------

DBUS_XML = """
<node>
  <interface name="org.gasyncbridge.Test">
    <method name="Add">
      <arg type="i" name="a" direction="in"/>
      <arg type="i" name="b" direction="in"/>
      <arg type="i" name="sum" direction="out"/>
    </method>
    <method name="Fail"/>
  </interface>
</node>
"""


def start_dbus_server(directory):
    """A D-Bus peer-to-peer server; runs on the runtime thread, so its
    signals and method calls are dispatched there."""
    node = Gio.DBusNodeInfo.new_for_xml(DBUS_XML)

    def on_call(conn, sender, path, iface, method, params, invocation):
        if method == "Add":
            a, b = params.unpack()
            invocation.return_value(GLib.Variant("(i)", (a + b,)))
        else:
            invocation.return_dbus_error("org.gasyncbridge.Test.Error.Failed", "asked to fail")

    connections = []

    def on_new_connection(server, conn):
        # Accepting means keeping a reference (GDBusServer's rule).
        connections.append(conn)
        conn.register_object("/org/gasyncbridge/Test", node.interfaces[0], on_call, None, None)
        return True

    server = Gio.DBusServer.new_sync(f"unix:tmpdir={directory}", Gio.DBusServerFlags.NONE,
                                     Gio.dbus_generate_guid(), None, None)
    server.connect("new-connection", on_new_connection)
    server.start()
    return server


def test_dbus_peer_to_peer(run, tmp_path):
    """Gio.DBusConnection.new_for_address (static, no _async suffix) and call."""
    async def main():
        server = await gasyncbridge.run_in_runtime(start_dbus_server, str(tmp_path))
        try:
            conn = await call_gio(Gio.DBusConnection.new_for_address, server.get_client_address(),
                                  Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT, None)
            reply = await call_gio(conn.call, None, "/org/gasyncbridge/Test",
                                   "org.gasyncbridge.Test", "Add", GLib.Variant("(ii)", (20, 22)),
                                   GLib.VariantType("(i)"), Gio.DBusCallFlags.NONE, -1)
            with pytest.raises(gasyncbridge.GLibError) as excinfo:
                await call_gio(conn.call, None, "/org/gasyncbridge/Test",
                               "org.gasyncbridge.Test", "Fail", None, None,
                               Gio.DBusCallFlags.NONE, -1)
            # An unregistered remote error name is G_IO_ERROR_DBUS_ERROR.
            assert excinfo.value.domain == "g-io-error-quark"
            assert excinfo.value.code == Gio.IOErrorEnum.DBUS_ERROR
            assert "org.gasyncbridge.Test.Error.Failed" in str(excinfo.value)
            assert "asked to fail" in str(excinfo.value)
            assert await call_gio(conn.close) is True
            return reply.unpack()
        finally:
            await gasyncbridge.run_in_runtime(server.stop)

    assert run(main) == (42,)


# ---- bad arguments -----------------------------------------------------------

def bad_calls(tmp_path):
    """(args of call_gio, exception raised at the call) for every kind of mistake."""
    f = gfile(tmp_path / "f")
    return [
        ((), TypeError),                                          # nothing to call
        ((42,), TypeError),                                       # not callable
        ((None,), TypeError),                                     # None
        ((f.load_contents,), TypeError),                          # synchronous method
        ((f.load_contents_async, None), TypeError),               # passes its own cancellable
        ((f.query_info_async, "*", 0, PRIO, None, None), TypeError),
        ((Gio.Task.new, None), TypeError),                        # takes a callback, no finish
        ((len,), TypeError),                                      # not a PyGObject method
    ]


@pytest.mark.parametrize("index", range(8))
def test_bad_arguments(run, tmp_path, index):
    """Each mistake raises TypeError at the call, and a good call then works."""
    (tmp_path / "f").write_bytes(b"good")
    args, exc = bad_calls(tmp_path)[index]

    async def main():
        with pytest.raises(exc):
            call_gio(*args)
        return await call_gio(gfile(tmp_path / "f").load_contents_async)

    assert run(main)[1] == b"good"


def test_wrong_argument_type_raises_at_await(run, tmp_path):
    """PyGObject checks argument types when it calls: TypeError at the await."""
    (tmp_path / "f").write_bytes(b"good")

    async def main():
        fut = call_gio(gfile(tmp_path / "f").query_info_async, 42,
                       Gio.FileQueryInfoFlags.NONE, PRIO)
        with pytest.raises(TypeError):
            await fut
        return await call_gio(gfile(tmp_path / "f").load_contents_async)

    assert run(main)[1] == b"good"


def test_no_running_loop(tmp_path):
    """Called outside a running loop: RuntimeError, nothing started."""
    with pytest.raises(RuntimeError):
        call_gio(gfile(tmp_path).load_contents_async)
