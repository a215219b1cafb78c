# SPDX-License-Identifier: LGPL-2.1-or-later
"""gasyncbridge.dbus against a private dbus-daemon that the tests start on a
unix socket (and stop): exported objects served by async handlers,
subscriptions, owned names; cancellation, errors, loops closing, leaks."""
import asyncio
import gc
import os
import shutil
import subprocess
import threading
import time
import tracemalloc

import pytest

gi = pytest.importorskip("gi")
gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

import gasyncbridge  # noqa: E402
from gasyncbridge import dbus  # noqa: E402

XML = """
<node>
  <interface name="org.example.Calc">
    <method name="Add">
      <arg type="i" name="a" direction="in"/>
      <arg type="i" name="b" direction="in"/>
      <arg type="i" name="sum" direction="out"/>
    </method>
    <method name="Split">
      <arg type="s" direction="in"/>
      <arg type="as" direction="out"/>
      <arg type="u" direction="out"/>
    </method>
    <method name="Nothing"/>
    <method name="Plain"><arg type="s" direction="out"/></method>
    <method name="Slow"><arg type="d" direction="in"/></method>
    <method name="Fail"><arg type="s" direction="in"/></method>
    <method name="Missing"/>
    <method name="Wrong"><arg type="i" direction="out"/></method>
    <signal name="Changed">
      <arg type="s" name="what"/>
      <arg type="i" name="value"/>
    </signal>
    <property name="Volume" type="i" access="readwrite"/>
    <property name="Label" type="s" access="read"/>
    <property name="Secret" type="s" access="write"/>
  </interface>
</node>
"""

CALC = "org.example.Calc"
PATH = "/org/example/Calc"


class Calc:
    Label = "calculator"

    def __init__(self):
        self._volume = 3
        self.secret = None
        self.slow_started = None

    @property
    def Volume(self):
        return self._volume

    @Volume.setter
    def Volume(self, value):
        if value < 0:
            raise ValueError("the volume cannot be negative")
        self._volume = value

    @property
    def Secret(self):
        raise AttributeError("write-only")

    @Secret.setter
    def Secret(self, value):
        self.secret = value

    async def Add(self, a, b):
        return a + b

    async def Split(self, text):
        words = text.split()
        return words, len(words)

    async def Nothing(self):
        return None

    def Plain(self):
        return "not async"

    async def Slow(self, seconds):
        if self.slow_started is not None:
            self.slow_started.set()
        await asyncio.sleep(seconds)

    async def Fail(self, how):
        if how == "value":
            raise ValueError("bad value")
        if how == "dbus":
            raise dbus.DBusError("org.example.Error.Custom", "custom failure")
        if how == "glib":
            raise gasyncbridge.GLibError("denied", "g-dbus-error-quark",
                                         int(Gio.DBusError.ACCESS_DENIED))
        if how == "gi":
            raise GLib.Error.new_literal(Gio.dbus_error_quark(), "gi denied",
                                         int(Gio.DBusError.ACCESS_DENIED))
        raise RuntimeError(how)

    async def Wrong(self):
        return "not an int"


@pytest.fixture(scope="module")
def bus(tmp_path_factory):
    """The address of a private session bus, stopped after the module."""
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        pytest.skip("dbus-daemon is not installed (Debian package dbus)")
    directory = tmp_path_factory.mktemp("bus")
    proc = subprocess.Popen([daemon, "--session", f"--address=unix:dir={directory}",
                             "--print-address", "--nofork"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    address = proc.stdout.readline().strip()
    assert address.startswith("unix:"), address
    yield address
    proc.terminate()
    proc.wait(10)


def connect(address):
    flags = (Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
             | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION)
    return Gio.DBusConnection.new_for_address_sync(address, flags, None, None)


async def call(conn, method, args=None, *, interface=CALC, path=PATH, dest=None, timeout=5000):
    """Call a method with gasyncbridge.call_gio; the reply unpacked."""
    dest = dest if dest is not None else conn_name(conn)
    reply = await gasyncbridge.call_gio(conn.call, dest, path, interface, method, args, None,
                                        Gio.DBusCallFlags.NONE, timeout)
    return reply.unpack()


_names = {}


def conn_name(conn):
    return _names.get(id(conn))


def serve_on(server, client):
    _names[id(client)] = server.get_unique_name()


def dbus_error_name(exc):
    """The D-Bus error name of a failed call's exception."""
    message = str(exc)
    assert "GDBus.Error:" in message, message
    return message.split("GDBus.Error:", 1)[1].split(":", 1)[0]


def test_methods_with_every_shape_of_reply(run, bus):
    async def main():
        server, client = connect(bus), connect(bus)
        serve_on(server, client)
        async with dbus.export(server, PATH, XML, Calc()) as reg:
            assert reg.registered
            assert await call(client, "Add", GLib.Variant("(ii)", (20, 22))) == (42,)
            assert await call(client, "Split", GLib.Variant("(s)", ("a b c",))) == (
                ["a", "b", "c"], 3)
            assert await call(client, "Nothing") == ()
            assert await call(client, "Plain") == ("not async",)
            results = await asyncio.gather(*[
                call(client, "Add", GLib.Variant("(ii)", (i, i))) for i in range(200)])
            assert results == [(2 * i,) for i in range(200)]
        assert not reg.registered
        with pytest.raises(Exception) as info:
            await call(client, "Add", GLib.Variant("(ii)", (1, 1)))
        assert dbus_error_name(info.value) in ("org.freedesktop.DBus.Error.UnknownMethod",
                                               "org.freedesktop.DBus.Error.UnknownObject")

    run(main)


@pytest.mark.parametrize("how, name", [
    ("value", "org.gasyncbridge.Error.ValueError"),
    ("other", "org.gasyncbridge.Error.RuntimeError"),
    ("dbus", "org.example.Error.Custom"),
    ("glib", "org.freedesktop.DBus.Error.AccessDenied"),
    ("gi", "org.freedesktop.DBus.Error.AccessDenied"),
])
def test_a_handler_raising_replies_an_error(run, bus, how, name):
    async def main():
        server, client = connect(bus), connect(bus)
        serve_on(server, client)
        async with dbus.export(server, PATH, XML, Calc()):
            with pytest.raises(Exception) as info:
                await call(client, "Fail", GLib.Variant("(s)", (how,)))
            assert dbus_error_name(info.value) == name
            # The object goes on serving.
            assert await call(client, "Add", GLib.Variant("(ii)", (1, 2))) == (3,)

    run(main)


def test_missing_methods_and_wrong_replies(run, bus):
    async def main():
        server, client = connect(bus), connect(bus)
        serve_on(server, client)
        async with dbus.export(server, PATH, XML, Calc()):
            with pytest.raises(Exception) as info:
                await call(client, "Missing")
            assert dbus_error_name(info.value) == "org.freedesktop.DBus.Error.UnknownMethod"
            with pytest.raises(Exception) as info:
                await call(client, "Wrong")
            assert dbus_error_name(info.value) == "org.freedesktop.DBus.Error.Failed"
            assert "does not fit its signature" in str(info.value)

    run(main)


def test_properties(run, bus):
    async def main():
        server, client = connect(bus), connect(bus)
        serve_on(server, client)
        handler = Calc()
        props = "org.freedesktop.DBus.Properties"
        async with dbus.export(server, PATH, XML, handler) as reg:
            assert await call(client, "Get", GLib.Variant("(ss)", (CALC, "Volume")),
                              interface=props) == (3,)
            await call(client, "Set", GLib.Variant("(ssv)", (CALC, "Volume",
                                                             GLib.Variant("i", 8))),
                       interface=props)
            assert handler.Volume == 8
            await call(client, "Set", GLib.Variant("(ssv)", (CALC, "Secret",
                                                             GLib.Variant("s", "x"))),
                       interface=props)
            assert handler.secret == "x"
            assert await call(client, "GetAll", GLib.Variant("(s)", (CALC,)),
                              interface=props) == ({"Volume": 8, "Label": "calculator"},)
            with pytest.raises(Exception) as info:
                await call(client, "Set", GLib.Variant("(ssv)", (CALC, "Volume",
                                                                 GLib.Variant("i", -1))),
                           interface=props)
            assert dbus_error_name(info.value) == "org.gasyncbridge.Error.ValueError"
            with pytest.raises(Exception) as info:   # GDBus checks access itself
                await call(client, "Set", GLib.Variant("(ssv)", (CALC, "Label",
                                                                 GLib.Variant("s", "x"))),
                           interface=props)
            async with dbus.subscribe(client, interface=props, member="PropertiesChanged",
                                      path=PATH) as changes:
                reg.properties_changed(CALC, {"Volume": 9}, ["Label"])
                change = await changes.__anext__()
            assert change.params == (CALC, {"Volume": 9}, ["Label"])

    run(main)


def test_subscriptions_and_their_filters(run, bus):
    async def main():
        server, client = connect(bus), connect(bus)
        serve_on(server, client)
        async with dbus.export(server, PATH, XML, Calc()) as reg, \
                dbus.subscribe(client, interface=CALC) as everything, \
                dbus.subscribe(client, member="Changed", arg0="volume") as volume, \
                dbus.subscribe(client, sender=server.get_unique_name(),
                               path="/elsewhere") as elsewhere:
            for i in range(100):
                reg.emit_signal("Changed", "volume" if i % 2 else "label", i)
            server.emit_signal(None, "/elsewhere", CALC, "Changed",
                               GLib.Variant("(si)", ("far", -1)))
            got = [await everything.__anext__() for _ in range(101)]
            assert [s.params[1] for s in got[:100]] == list(range(100))
            first = got[0]
            assert (first.sender, first.path, first.interface, first.member) == (
                server.get_unique_name(), PATH, CALC, "Changed")
            only = [await volume.__anext__() for _ in range(50)]
            assert all(s.params[0] == "volume" for s in only)
            far = await elsewhere.__anext__()
            assert far.path == "/elsewhere" and far.params == ("far", -1)
        assert not everything.active

    run(main)


def test_subscribe_as_a_plain_async_iterator(run, bus):
    async def main():
        server, client = connect(bus), connect(bus)
        serve_on(server, client)
        sigs = dbus.subscribe(client, member="Changed")

        async def emit_when_subscribed():
            while not sigs.active:
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.05)    # the match rule reaches the bus
            server.emit_signal(None, PATH, CALC, "Changed", GLib.Variant("(si)", ("x", 1)))

        emitter = asyncio.ensure_future(emit_when_subscribed())
        async for sig in sigs:
            assert sig.params == ("x", 1)
            break
        await emitter
        await sigs.aclose()
        assert not sigs.active

    run(main)


def test_own_name(run, bus):
    async def main():
        first, second, client = connect(bus), connect(bus), connect(bus)
        async with dbus.export(first, PATH, XML, Calc()):
            async with dbus.own_name(first, "org.example.Owned") as owner:
                assert not owner.lost.is_set()
                assert await call(client, "Add", GLib.Variant("(ii)", (1, 1)),
                                  dest="org.example.Owned") == (2,)
                with pytest.raises(gasyncbridge.GLibError, match="another owner"):
                    async with dbus.own_name(second, "org.example.Owned"):
                        pass
            # Released: another connection can have it now.
            async with dbus.own_name(second, "org.example.Owned"):
                pass
            async with dbus.own_name(first, "org.example.Replaceable",
                                     allow_replacement=True) as owner:
                async with dbus.own_name(second, "org.example.Replaceable", replace=True):
                    await asyncio.wait_for(owner.lost.wait(), 5)

    run(main)


def test_cancellation_at_every_await(run, bus):
    async def main():
        server, client = connect(bus), connect(bus)
        serve_on(server, client)
        handler = Calc()

        # Cancelled while exporting / subscribing / owning: nothing stays.
        # (What a cancel interrupted on the runtime thread is undone when it
        # reports back there, a moment later: wait for that.)
        async def exported():
            try:
                await call(client, "Add", GLib.Variant("(ii)", (1, 1)))
                return True
            except Exception as e:   # noqa: BLE001
                name = dbus_error_name(e)
                if name == "org.freedesktop.DBus.Error.LimitsExceeded":
                    return True          # closed, not yet unregistered
                assert "Unknown" in name, e
                return False

        async def owned():
            try:
                await call(client, "GetNameOwner", GLib.Variant("(s)", ("org.example.Cancelled",)),
                           interface="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                           dest="org.freedesktop.DBus")
                return True
            except Exception as e:   # noqa: BLE001
                assert "NameHasNoOwner" in dbus_error_name(e), e
                return False

        async def until_gone(check):
            for _ in range(500):
                if not await check():
                    return
                await asyncio.sleep(0.01)
            raise AssertionError(f"{check.__name__}: still there 5 s after the cancel")

        for make, check in ((lambda: dbus.export(server, PATH, XML, handler), exported),
                            (lambda: dbus.subscribe(client, member="Changed"), None),
                            (lambda: dbus.own_name(server, "org.example.Cancelled"), owned)):
            async def enter(cm):
                async with cm:
                    await asyncio.sleep(30)
            for delay in (0, 0.001, 0.05):
                task = asyncio.ensure_future(enter(make()))
                await asyncio.sleep(delay)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                if check is not None:
                    await until_gone(check)

        # Cancelled while waiting for a signal.
        async def wait_one():
            async with dbus.subscribe(client, member="Changed") as sigs:
                return await sigs.__anext__()
        task = asyncio.ensure_future(wait_one())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        # A caller cancelling its call; the handler's task is not cancelled.
        async with dbus.export(server, PATH, XML, handler):
            handler.slow_started = asyncio.Event()
            caller = asyncio.ensure_future(call(client, "Slow", GLib.Variant("(d)", (0.2,))))
            await handler.slow_started.wait()
            caller.cancel()
            with pytest.raises(asyncio.CancelledError):
                await caller
            assert await call(client, "Add", GLib.Variant("(ii)", (2, 2))) == (4,)

    run(main)


def test_too_many_calls_waiting_are_refused(run, bus):
    async def main():
        server, client = connect(bus), connect(bus)
        async with dbus.export(server, PATH, XML, Calc(), maxsize=2):
            results = []

            def one():
                try:
                    client.call_sync(server.get_unique_name(), PATH, CALC, "Add",
                                     GLib.Variant("(ii)", (1, 1)), None,
                                     Gio.DBusCallFlags.NONE, 5000, None)
                    results.append("ok")
                except GLib.Error as e:
                    results.append(e.message)

            threads = [threading.Thread(target=one) for _ in range(10)]
            for t in threads:
                t.start()
            time.sleep(0.5)        # the loop is blocked: calls wait in the channel
            await asyncio.get_running_loop().run_in_executor(None, lambda: [t.join()
                                                                             for t in threads])
            assert results.count("ok") >= 2
            refused = [r for r in results if r != "ok"]
            assert refused and all("LimitsExceeded" in r for r in refused)

    run(main)


@pytest.mark.parametrize("kind", ["asyncio", "uvloop"])
def test_the_loop_closing_with_exports_and_subscriptions_open(kind, bus):
    if kind == "uvloop":
        new_loop = pytest.importorskip("uvloop").new_event_loop
    else:
        new_loop = asyncio.new_event_loop
    server, client = connect(bus), connect(bus)
    serve_on(server, client)
    loop = new_loop()

    async def start():
        reg = await dbus.export(server, PATH, XML, Calc())
        sigs = dbus.subscribe(client, member="Changed")
        await sigs.__aenter__()
        return reg, sigs

    reg, sigs = loop.run_until_complete(start())
    loop.close()
    server.emit_signal(None, PATH, CALC, "Changed", GLib.Variant("(si)", ("late", 1)))

    # Another loop calls the object whose loop is gone: an error, at once.
    other = new_loop()
    try:
        with pytest.raises(Exception) as info:
            other.run_until_complete(asyncio.wait_for(
                call(client, "Add", GLib.Variant("(ii)", (1, 1))), 5))
        assert "LimitsExceeded" in str(info.value) or "Unknown" in str(info.value)
    finally:
        other.close()
    reg.unregister()
    sigs.close()


def test_a_thousand_subscribe_cycles_leak_nothing(run, bus):
    async def main():
        server, client = connect(bus), connect(bus)

        async def cycle():
            async with dbus.subscribe(client, member="Changed", path=PATH) as sigs:
                server.emit_signal(None, PATH, CALC, "Changed", GLib.Variant("(si)", ("x", 1)))
                await sigs.__anext__()

        for _ in range(50):
            await cycle()
        gc.collect()
        tracemalloc.start()
        grown = []
        for _ in range(2):     # the first thousand may still fill caches
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(1000):
                await cycle()
            gc.collect()
            grown.append(tracemalloc.get_traced_memory()[0] - before)
        tracemalloc.stop()
        grown = grown[1]
        assert grown < 64 * 1024, f"{grown} bytes more after 1000 cycles"

    run(main)


def test_a_proxy_made_on_the_loop_thread_is_reported(run, bus):
    async def main():
        client = connect(bus)
        proxy = Gio.DBusProxy.new_sync(client, Gio.DBusProxyFlags.DO_NOT_LOAD_PROPERTIES,
                                       None, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus", None)
        with pytest.warns(gasyncbridge.ContextWarning):
            gasyncbridge.signals(proxy, "g-signal").close()
        made = await gasyncbridge.run_in_runtime(
            Gio.DBusProxy.new_sync, client, Gio.DBusProxyFlags.DO_NOT_LOAD_PROPERTIES, None,
            "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", None)
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            gasyncbridge.signals(made, "g-signal").close()

    run(main)


def test_bad_arguments(run, bus):
    async def main():
        server = connect(bus)
        with pytest.raises(TypeError, match="DBusConnection"):
            await dbus.export(Gio.SimpleAction.new("x", None), PATH, XML, Calc())
        with pytest.raises(ValueError, match="object path"):
            await dbus.export(server, "not/a/path", XML, Calc())
        with pytest.raises(gasyncbridge.GLibError):
            await dbus.export(server, PATH, "<node><interface", Calc())
        with pytest.raises(ValueError, match="no interface"):
            await dbus.export(server, PATH, "<node/>", Calc())
        with pytest.raises(TypeError):
            await dbus.subscribe(server, member=3).__aenter__()
        async with dbus.export(server, PATH, XML, Calc()):
            with pytest.raises(Exception, match="already exported|exists"):
                await dbus.export(server, PATH, XML, Calc())

    run(main)


# ---- dbus.call: a method call with no Python on the runtime thread ------------

DBUS = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")


def test_call_replies_errors_and_many_at_once(run, bus):
    """dbus.call gives the reply as a tuple of Python values, remote errors as
    GLibError in the D-Bus domain, and many calls in flight all come back."""
    conn = connect(bus)

    async def main():
        (bus_id,) = await dbus.call(conn, *DBUS, "GetId")
        assert await dbus.call(conn, *DBUS, "NameHasOwner", ("org.example.Nobody",),
                                   signature="(s)", reply_type="(b)") == (False,)
        # types inferred from the values without a signature
        assert await dbus.call(conn, *DBUS, "NameHasOwner", ["org.freedesktop.DBus"]) == (True,)
        with pytest.raises(gasyncbridge.GLibError) as excinfo:
            await dbus.call(conn, *DBUS, "NoSuchMethod")
        assert excinfo.value.domain == "g-dbus-error-quark"
        assert "UnknownMethod" in str(excinfo.value)
        ids = await asyncio.gather(*[dbus.call(conn, *DBUS, "GetId") for _ in range(500)])
        assert ids == [(bus_id,)] * 500
        return bus_id

    assert len(run(main)) == 32


def test_call_bad_input(run, bus):
    """Bad arguments raise at the call with a clear message; the bridge and the
    connection still work afterwards."""
    conn = connect(bus)

    async def main():
        cases = [
            (TypeError, "connection must be a GDBusConnection", (object(), *DBUS, "GetId"), {}),
            (ValueError, "not a valid object path", (conn, DBUS[0], "no/slash", DBUS[2], "GetId"), {}),
            (ValueError, "not a valid interface name", (conn, DBUS[0], DBUS[1], "nodots", "GetId"), {}),
            (ValueError, "not a valid method name", (conn, *DBUS, "Get.Id"), {}),
            (ValueError, "not a valid bus name", (conn, "bad name", DBUS[1], DBUS[2], "GetId"), {}),
            (ValueError, "signature must be a GVariant tuple", (conn, *DBUS, "GetId"), {"signature": "s"}),
            (ValueError, "reply_type must be a GVariant tuple", (conn, *DBUS, "GetId"), {"reply_type": "zz"}),
            (TypeError, "args must be a tuple or list", (conn, *DBUS, "NameHasOwner", "x"), {}),
            (TypeError, "dbus_call: args", (conn, *DBUS, "NameHasOwner", (1,)), {"signature": "(s)"}),
        ]
        for exc, message, args, kwargs in cases:
            with pytest.raises(exc, match=message):
                dbus.call(*args, **kwargs)
        # a reply of another type: GIO's G_IO_ERROR_INVALID_ARGUMENT, an OSError
        with pytest.raises(OSError, match="returned type .*, but expected"):
            await dbus.call(conn, *DBUS, "GetId", reply_type="(u)")
        return await dbus.call(conn, *DBUS, "GetId")

    assert len(run(main)[0]) == 32


def test_call_cancelled(run, bus):
    """Cancelling the awaiting task cancels the call; nothing is left behind."""
    conn = connect(bus)

    async def main():
        tasks = [asyncio.ensure_future(dbus.call(conn, *DBUS, "GetId")) for _ in range(50)]
        await asyncio.sleep(0)
        for t in tasks:
            t.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(o, (asyncio.CancelledError, tuple)) for o in outcomes)
        return await dbus.call(conn, *DBUS, "GetId")

    assert len(run(main)[0]) == 32


class Stuck:
    """Slow(seconds) replies only once the test lets it (release())."""

    def __init__(self):
        self.started = 0
        self.release = asyncio.Event()

    async def Slow(self, seconds):
        self.started += 1
        await self.release.wait()


def test_call_timeouts_come_in_deadline_order(run, bus):
    """dbus.call keeps its own deadlines (GDBus gets no timeout source per
    call): calls past their timeout raise TimeoutError in deadline order,
    whatever order they were made in; a call cancelled before its deadline
    leaves nothing behind that fires later; a reply that comes after the
    deadline is dropped; calls with time left, and the connection, work on."""
    server, client = connect(bus), connect(bus)
    name = server.get_unique_name()
    stuck = Stuck()
    slow = (client, name, PATH, CALC, "Slow", (0.0,))

    async def main():
        async with dbus.export(server, PATH, XML, stuck):
            # Cancelled first: their 300 ms deadlines pass while the
            # calls below wait, and must find nothing to time out.
            early = [asyncio.ensure_future(dbus.call(*slow, timeout=300)) for _ in range(20)]
            await asyncio.sleep(0)
            for task in early:
                task.cancel()
            outcomes = await asyncio.gather(*early, return_exceptions=True)
            assert all(isinstance(o, asyncio.CancelledError) for o in outcomes), outcomes
            order = []
            calls = []
            for timeout in (900, 500, 700):
                fut = asyncio.ensure_future(dbus.call(*slow, timeout=timeout))
                fut.add_done_callback(lambda f, t=timeout: order.append(t))
                calls.append(fut)
            # a call with time to spare gets its reply meanwhile
            (bus_id,) = await dbus.call(client, *DBUS, "GetId", timeout=60_000)
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
            for outcome in outcomes:
                assert isinstance(outcome, TimeoutError), outcome
                assert "Timeout was reached" in str(outcome)
            assert order == [500, 700, 900]
            stuck.release.set()       # the late replies: dropped by GDBus
            with pytest.raises(ValueError, match="timeout must be -1"):
                dbus.call(client, *DBUS, "GetId", timeout=-2)
            # no timeout at all (G_MAXINT), and the default
            assert await dbus.call(client, *DBUS, "GetId", timeout=2**31 - 1) == (bus_id,)
            return await dbus.call(client, *DBUS, "GetId")

    assert len(run(main)[0]) == 32
