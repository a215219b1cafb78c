# SPDX-License-Identifier: LGPL-2.1-or-later
"""The example binding gabdbus against a real D-Bus peer, offline.

The peer is a GDBusServer on a unix socket in a temporary directory (no bus
daemon), made with PyGObject on gasyncbridge's runtime thread so that its
method calls are dispatched there while asyncio runs here. Every test runs
on the stock asyncio loop and on uvloop.
"""
import asyncio

import pytest

import gasyncbridge
import gabdbus

gi = pytest.importorskip("gi")
gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

PATH = "/org/gasyncbridge/Calc"
IFACE = "org.gasyncbridge.Calc"
XML = f"""
<node>
  <interface name="{IFACE}">
    <method name="Add">
      <arg type="i" direction="in"/><arg type="i" direction="in"/>
      <arg type="i" direction="out"/>
    </method>
    <method name="Join">
      <arg type="as" direction="in"/><arg type="s" direction="in"/>
      <arg type="s" direction="out"/>
    </method>
    <method name="Fail"/>
    <method name="Hang"/>
  </interface>
</node>
"""


@pytest.fixture(params=["asyncio"] + (["uvloop"] if uvloop else []))
def run(request):
    """run(coro_fn): run a coroutine function on a fresh loop of the kind."""
    def runner(coro_fn):
        loop = uvloop.new_event_loop() if request.param == "uvloop" else asyncio.new_event_loop()
        try:
            return loop.run_until_complete(coro_fn())
        finally:
            loop.close()
    return runner


def start_server(directory, hanging):
    """A GDBusServer answering Calc calls; runs on the runtime thread.

    Hang calls are kept unanswered in `hanging`, a list whose `notify`
    attribute, if set, is called (on the runtime thread) for each.
    """
    node = Gio.DBusNodeInfo.new_for_xml(XML)
    connections = []

    def on_call(conn, sender, path, iface, method, params, invocation):
        if method == "Add":
            a, b = params.unpack()
            invocation.return_value(GLib.Variant("(i)", (a + b,)))
        elif method == "Join":
            words, sep = params.unpack()
            invocation.return_value(GLib.Variant("(s)", (sep.join(words),)))
        elif method == "Hang":
            hanging.append(invocation)      # never answered
            if hanging.notify is not None:
                hanging.notify()
        else:
            invocation.return_dbus_error("org.gasyncbridge.Calc.Error.Failed", "as asked")

    def on_new_connection(server, conn):
        connections.append(conn)            # accepting means keeping it
        conn.register_object(PATH, node.interfaces[0], on_call, None, None)
        return True

    server = Gio.DBusServer.new_sync(f"unix:tmpdir={directory}", Gio.DBusServerFlags.NONE,
                                     Gio.dbus_generate_guid(), None, None)
    server.connect("new-connection", on_new_connection)
    server.start()
    return server


@pytest.fixture
def server(tmp_path):
    """(address, hanging invocations) of a fresh server, stopped afterwards."""
    class Hanging(list):
        notify = None

    hanging = Hanging()

    async def start():
        return await gasyncbridge.run_in_runtime(start_server, str(tmp_path), hanging)

    srv = asyncio.run(start())
    yield srv.get_client_address(), hanging

    async def stop():
        await gasyncbridge.run_in_runtime(srv.stop)

    asyncio.run(stop())


def test_call(run, server):
    """Arguments and replies cross as Python values."""
    address, _ = server

    async def main():
        return (await gabdbus.call(address, PATH, IFACE, "Add", (20, 22), signature="(ii)"),
                await gabdbus.call(address, PATH, IFACE, "Join", (["a", "b", "c"], "-"),
                                   reply_type="(s)"))

    assert run(main) == ((42,), ("a-b-c",))


def test_concurrent_calls(run, server):
    """Many calls at once, each on its own connection."""
    address, _ = server

    async def main():
        return await asyncio.gather(*(gabdbus.call(address, PATH, IFACE, "Add", (i, i),
                                                   signature="(ii)") for i in range(20)))

    assert run(main) == [(2 * i,) for i in range(20)]


def test_dbus_error(run, server):
    """A D-Bus error reply raises GLibError with the remote error in its message."""
    address, _ = server

    async def main():
        with pytest.raises(gasyncbridge.GLibError) as excinfo:
            await gabdbus.call(address, PATH, IFACE, "Fail")
        return excinfo.value

    exc = run(main)
    assert exc.domain == "g-io-error-quark"
    assert "org.gasyncbridge.Calc.Error.Failed" in str(exc)


def test_no_server(run, tmp_path):
    """Nobody at the address: the connection fails with an OSError."""
    async def main():
        with pytest.raises(OSError) as excinfo:
            await gabdbus.call(f"unix:path={tmp_path}/nobody", PATH, IFACE, "Add", (1, 2),
                               signature="(ii)")
        return excinfo.value

    exc = run(main)
    assert exc.domain == "g-io-error-quark"


def test_cancel(run, server):
    """Cancelling a call that gets no reply cancels it; calls go on working."""
    address, hanging = server

    async def main():
        loop = asyncio.get_running_loop()
        arrived = asyncio.Event()
        hanging.notify = lambda: loop.call_soon_threadsafe(arrived.set)
        task = asyncio.ensure_future(gabdbus.call(address, PATH, IFACE, "Hang"))
        await arrived.wait()                 # the server has the call
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await gabdbus.call(address, PATH, IFACE, "Add", (1, 1), signature="(ii)")

    assert run(main) == (2,)


@pytest.mark.parametrize("args,kwargs,exc", [
    (("not an address", PATH, IFACE, "Add"), {}, ValueError),
    (("unix:path=/x", "no/path", IFACE, "Add"), {}, ValueError),
    (("unix:path=/x", PATH, "nodots", "Add"), {}, ValueError),
    (("unix:path=/x", PATH, IFACE, "Bad-Name"), {}, ValueError),
    (("unix:path=/x", PATH, IFACE, "Add", [1, 2]), {}, TypeError),
    (("unix:path=/x", PATH, IFACE, "Add", (1, "two")), {"signature": "(ii)"}, TypeError),
    (("unix:path=/x", PATH, IFACE, "Add", (1, 2)), {"signature": "ii"}, ValueError),
    (("unix:path=/x", PATH, IFACE, "Add"), {"reply_type": "i"}, ValueError),
    (("unix:path=/x", PATH, IFACE), {}, TypeError),
])
def test_bad_arguments(run, server, args, kwargs, exc):
    """Bad arguments raise at the call, before anything starts; then a call works."""
    address, _ = server

    async def main():
        with pytest.raises(exc):
            gabdbus.call(*args, **kwargs)
        return await gabdbus.call(address, PATH, IFACE, "Add", (2, 3), signature="(ii)")

    assert run(main) == (5,)
