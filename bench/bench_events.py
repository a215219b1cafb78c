# SPDX-License-Identifier: LGPL-2.1-or-later
"""Group 9 of bench/bench.py: events from GLib into asyncio.

Two workloads, each beside the hand-written way and gbulb:

  signals  N emissions of a GObject signal by a GLib thread (C, as fast as
           it can) reach an `async for` on the asyncio loop.
             gab.signals   gasyncbridge.signals(obj, "tick")
             hand          PyGObject obj.connect(handler) where the handler
                           does loop.call_soon_threadsafe(queue.put_nowait, i),
                           and the loop awaits queue.get()
             gbulb         the same handler on gbulb's loop
  dbus     N D-Bus method calls Add(i, i), 64 in flight, from a C client
           thread over a peer-to-peer connection (no bus daemon between),
           served by an `async def Add` on the asyncio loop.
             gab.dbus      gasyncbridge.dbus.export(...)
             hand          PyGObject register_object on a GLib thread of its
                           own; its method_call callback hops to the loop
                           with call_soon_threadsafe, a task runs Add, its
                           done callback replies with invocation.return_value
             gbulb         register_object on gbulb's loop (which runs GLib's
                           default context): method_call runs on the loop, a
                           task runs Add, its done callback replies
             pygobject     no asyncio at all: PyGObject register_object on a
                           GLib thread whose method_call replies at once
             c             the ceiling: GDBus alone, a C thread replying at
                           once (no Python)

The figures are events (calls) per second: higher is better.
"""
import asyncio
import socket
import threading
import time

XML = """
<node>
  <interface name="org.gasyncbridge.Bench">
    <method name="Add">
      <arg type="i" direction="in"/>
      <arg type="i" direction="in"/>
      <arg type="i" direction="out"/>
    </method>
  </interface>
</node>
"""
PATH = "/org/gasyncbridge/Bench"
IFACE = "org.gasyncbridge.Bench"
IN_FLIGHT = 64


class Adder:
    async def Add(self, a, b):
        return a + b


def dbus_pair(Gio):
    """A server and a client GDBusConnection over a socketpair."""
    a, b = socket.socketpair()
    guid = Gio.dbus_generate_guid()
    made = {}

    def server():
        stream = Gio.Socket.new_from_fd(a.detach()).connection_factory_create_connection()
        made["server"] = Gio.DBusConnection.new_sync(
            stream, guid, Gio.DBusConnectionFlags.AUTHENTICATION_SERVER
            | Gio.DBusConnectionFlags.AUTHENTICATION_ALLOW_ANONYMOUS, None, None)

    thread = threading.Thread(target=server)
    thread.start()
    stream = Gio.Socket.new_from_fd(b.detach()).connection_factory_create_connection()
    client = Gio.DBusConnection.new_sync(stream, None,
                                         Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT,
                                         None, None)
    thread.join()
    return made["server"], client


class EventsBench:
    """The cells of group 9, on the bench module `b` (bench.py's globals)."""

    def __init__(self, b, suite):
        self.b, self.suite = b, suite
        import _gab_bench_events
        self.ev = _gab_bench_events
        from gi.repository import GObject
        self.GObject = GObject
        self.emitter_type = GObject.type_from_name(_gab_bench_events.emitter_type())

    # ---- signals -----------------------------------------------------------

    def new_emitter(self):
        return self.GObject.new(self.emitter_type)

    def signal_cells(self, n):
        b = self.b
        cells = []

        def gab_body():
            obj = self.new_emitter()

            async def body(k):
                async with b.gasyncbridge.signals(obj, "tick", maxsize=k) as events:
                    t0 = time.perf_counter()
                    self.ev.emit(obj.__gpointer__, k)
                    got = 0
                    async for _ in events:
                        got += 1
                        if got == k:
                            break
                    return time.perf_counter() - t0
            return body

        def hand_body():
            obj = self.new_emitter()

            async def body(k):
                loop = asyncio.get_running_loop()
                q = asyncio.Queue()
                put = q.put_nowait
                threadsafe = loop.call_soon_threadsafe
                handler = obj.connect("tick", lambda o, i: threadsafe(put, i))
                try:
                    t0 = time.perf_counter()
                    self.ev.emit(obj.__gpointer__, k)
                    for _ in range(k):
                        await q.get()
                    return time.perf_counter() - t0
                finally:
                    obj.disconnect(handler)
            return body

        rows = [("gab.signals", "gasyncbridge.signals(obj, 'tick'): async for", False,
                 ("asyncio", "uvloop"), gab_body),
                ("hand", "PyGObject connect + call_soon_threadsafe + Queue", True,
                 ("asyncio", "uvloop", "gbulb"), hand_body)]
        for key, label, baseline, loops, make in rows:
            for kind in loops:
                cell = b.Cell("events-signals", key, label, kind, "ops/s", n, make(),
                              b.ops_per_s, baseline, table_n=n)
                why = self.suite.wanted(kind)
                if why == "--no-uvloop":
                    continue
                cell.result.skipped = why
                cells.append(cell)
        return cells

    # ---- D-Bus ---------------------------------------------------------------

    def dbus_cells(self, n):
        b = self.b
        Gio, GLib = b.Gio, b.GLib
        ev = self.ev
        cells = []

        async def run_client(client, k):
            handle = ev.dbus_calls(client.__gpointer__, None, PATH, IFACE, "Add", k, IN_FLIGHT)
            seconds, errors, first = await asyncio.get_running_loop().run_in_executor(
                None, ev.dbus_wait, handle)
            if errors:
                raise RuntimeError(f"{errors} D-Bus calls failed: {first}")
            return seconds

        class GabDBus(b.Workload):
            async def open(self, loop):
                await super().open(loop)
                self.server, self.client = dbus_pair(Gio)
                self.registration = await b.gasyncbridge.dbus.export(self.server, PATH, XML,
                                                                     Adder())

            async def close(self):
                self.registration.unregister()
                close_pair(self.server, self.client)

        class HandDBus(b.Workload):
            """register_object on a GLib thread by hand; call_soon_threadsafe."""

            async def open(self, loop):
                await super().open(loop)
                self.server, self.client = dbus_pair(Gio)
                self.handler = Adder()
                info = Gio.DBusNodeInfo.new_for_xml(XML).interfaces[0]
                self.glib = None if loop_is_gbulb(loop) else b.GLibThread()
                registered = threading.Event() if self.glib else None
                if self.glib is None:
                    self.id = self.server.register_object(PATH, info, self.method_call_here,
                                                          None, None)
                else:
                    def register(_):
                        self.id = self.server.register_object(PATH, info, self.method_call,
                                                              None, None)
                        registered.set()
                        return False
                    self.glib.invoke(register, None)
                    registered.wait()

            def method_call(self, conn, sender, path, iface, method, params, invocation):
                # The GLib thread: hop to the loop.
                self.loop.call_soon_threadsafe(self.dispatch, params, invocation)

            def method_call_here(self, conn, sender, path, iface, method, params, invocation):
                # gbulb: already on the loop.
                self.dispatch(params, invocation)

            def dispatch(self, params, invocation):
                task = self.loop.create_task(self.handler.Add(*params.unpack()))
                task.add_done_callback(
                    lambda t: invocation.return_value(GLib.Variant("(i)", (t.result(),))))

            async def close(self):
                self.server.unregister_object(self.id)
                if self.glib is not None:
                    self.glib.stop()
                close_pair(self.server, self.client)

        class CeilingDBus(b.Workload):
            """The ceiling: GDBus alone, a C server thread replying at once."""

            async def open(self, loop):
                await super().open(loop)
                self.server, self.client = dbus_pair(Gio)
                self.handle = ev.dbus_serve_c(self.server.__gpointer__, PATH, XML)

            async def close(self):
                self.handle = None
                close_pair(self.server, self.client)

        class RawDBus(b.Workload):
            """No asyncio: PyGObject's method_call replies at once on a GLib thread."""

            async def open(self, loop):
                await super().open(loop)
                self.server, self.client = dbus_pair(Gio)
                info = Gio.DBusNodeInfo.new_for_xml(XML).interfaces[0]
                self.glib = b.GLibThread()
                registered = threading.Event()

                def method_call(conn, sender, path, iface, method, params, invocation):
                    a, b_ = params.unpack()
                    invocation.return_value(GLib.Variant("(i)", (a + b_,)))

                def register(_):
                    self.id = self.server.register_object(PATH, info, method_call, None, None)
                    registered.set()
                    return False
                self.glib.invoke(register, None)
                registered.wait()

            async def close(self):
                self.server.unregister_object(self.id)
                self.glib.stop()
                close_pair(self.server, self.client)

        def body_for(workload):
            async def body(k):
                return await run_client(workload.client, k)
            return body

        rows = [("gab.dbus", "gasyncbridge.dbus.export: async def Add", False,
                 ("asyncio", "uvloop"), GabDBus),
                ("hand", "PyGObject register_object, GLib thread + call_soon_threadsafe", True,
                 ("asyncio", "uvloop"), HandDBus),
                ("gbulb", "gbulb loop: PyGObject register_object, task per call", True,
                 ("gbulb",), HandDBus),
                ("pygobject", "no asyncio: PyGObject register_object replying at once",
                 False, ("asyncio",), RawDBus),
                ("c", "ceiling: GDBus alone, a C thread replying at once", False,
                 ("asyncio",), CeilingDBus)]
        for key, label, baseline, loops, cls in rows:
            for kind in loops:
                workload = cls()
                cell = b.Cell("events-dbus", key, label, kind, "ops/s", n, body_for(workload),
                              b.ops_per_s, baseline, workload=workload, table_n=n)
                why = self.suite.wanted(kind)
                if why == "--no-uvloop":
                    continue
                cell.result.skipped = why
                cells.append(cell)
        return cells


def close_pair(*connections):
    for connection in connections:
        if not connection.is_closed():
            try:
                connection.close_sync(None)
            except Exception:   # noqa: BLE001 - the peer closed it first
                pass


def loop_is_gbulb(loop):
    return type(loop).__module__.startswith("gbulb")


def run(b, suite):
    """Run group 9 on the suite."""
    s = suite.sizes
    if b.GLib is None:
        suite.log("# 9. events: skipped (PyGObject is not installed)")
        return
    bench = EventsBench(b, suite)
    suite.log(f"# 9. events: {s.events_n} signal emissions from a GLib thread")
    suite.run_cells(bench.signal_cells(s.events_n), s.events_repeats)
    suite.log(f"# 9. events: {s.dbus_n} D-Bus calls served by an async handler")
    suite.run_cells(bench.dbus_cells(s.dbus_n), s.events_repeats)


def targets(suite, target):
    """The targets of issue 13: the bridge at least 2x the hand-written way."""
    s = suite.sizes
    for loop in ("asyncio", "uvloop"):
        target(f"signals: {s.events_n} emissions >= 2x PyGObject handler + "
               f"call_soon_threadsafe ({loop})",
               suite.find("events-signals", "gab.signals", loop, n=s.events_n),
               suite.find("events-signals", "hand", loop, n=s.events_n), 2.0, True)
    for loop in ("asyncio", "uvloop"):
        target(f"D-Bus: {s.dbus_n} calls >= 2x PyGObject register_object + "
               f"call_soon_threadsafe ({loop})",
               suite.find("events-dbus", "gab.dbus", loop, n=s.dbus_n),
               suite.find("events-dbus", "hand", loop, n=s.dbus_n), 2.0, True)
    target(f"(info) signals vs gbulb's loop ({s.events_n})",
           suite.find("events-signals", "gab.signals", n=s.events_n),
           suite.find("events-signals", "hand", "gbulb", n=s.events_n), 1.0, True)
    target(f"(info) D-Bus: share of GDBus's own ceiling, a C server ({s.dbus_n})",
           suite.find("events-dbus", "gab.dbus", n=s.dbus_n),
           suite.find("events-dbus", "c", n=s.dbus_n), 0.5, True)
    target(f"(info) D-Bus vs gbulb's loop ({s.dbus_n})",
           suite.find("events-dbus", "gab.dbus", n=s.dbus_n),
           suite.find("events-dbus", "gbulb", "gbulb", n=s.dbus_n), 1.0, True)
