# SPDX-License-Identifier: LGPL-2.1-or-later
"""doc/guide/12-signals-and-events.md: GLib signals, monitors and D-Bus into asyncio."""
import asyncio
import os
import shutil
import subprocess
import tempfile
import threading
import warnings

from gi.repository import Gio, GLib, GObject

import gasyncbridge
from gasyncbridge import dbus


class Sensor(GObject.Object):
    __gsignals__ = {"reading": (GObject.SignalFlags.RUN_LAST, None, (str, float))}


# [guide:events-signals]
async def watch(sensor):
    async with gasyncbridge.signals(sensor, "reading") as events:
        threading.Thread(target=lambda: [sensor.emit("reading", "temp", 20.0 + i)
                                         for i in range(3)]).start()   # any thread
        got = []
        async for event in events:               # SignalEvent(signal, args)
            name, value = event.args
            got.append(value)
            if len(got) == 3:
                return got                       # leaving `async with` disconnects
# [/guide:events-signals]


# [guide:events-wait-signal]
async def activate_later():
    action = Gio.SimpleAction.new("quit", None)
    asyncio.get_running_loop().call_later(0.01, action.activate, None)
    await gasyncbridge.wait_signal(action, "activate", timeout=5)   # -> (None,)
    return "activated"
# [/guide:events-wait-signal]


# [guide:events-monitor]
async def first_change(directory):
    folder = Gio.File.new_for_path(directory)
    # Made on the runtime thread, so that it fires: see below.
    monitor = await gasyncbridge.run_in_runtime(folder.monitor_directory,
                                                Gio.FileMonitorFlags.NONE, None)
    async with gasyncbridge.signals(monitor, "changed") as events:
        with open(os.path.join(directory, "new.txt"), "w") as f:
            f.write("hello")
        async for event in events:
            file, other_file, kind = event.args
            if kind == Gio.FileMonitorEvent.CREATED:
                monitor.cancel()
                return file.get_basename()
# [/guide:events-monitor]


# [guide:events-monitor-wrong]
def made_on_the_loop_thread(directory):
    monitor = Gio.File.new_for_path(directory).monitor_directory(
        Gio.FileMonitorFlags.NONE, None)     # on the loop thread: never fires
    return monitor, gasyncbridge.signals(monitor, "changed")   # ContextWarning
# [/guide:events-monitor-wrong]


async def silent_monitor(directory):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monitor, events = made_on_the_loop_thread(directory)
        events.close()
        monitor.cancel()
    return [type(w.message).__name__ for w in caught]


# [guide:events-dbus-service]
XML = """
<node>
  <interface name="org.example.Thermostat">
    <method name="SetTarget">
      <arg type="d" name="celsius" direction="in"/>
      <arg type="b" name="heating" direction="out"/>
    </method>
    <signal name="Reached"><arg type="d" name="celsius"/></signal>
    <property name="Target" type="d" access="read"/>
  </interface>
</node>
"""


class Thermostat:
    Target = 19.0                                # a property: read with getattr()

    async def SetTarget(self, celsius):          # a method: awaited on the loop
        if celsius > 30:
            raise dbus.DBusError("org.example.Error.TooHot", f"{celsius} is too hot")
        self.Target = celsius
        await asyncio.sleep(0)                   # anything async
        return celsius > 20                      # the reply, by the out-signature


async def serve(connection):
    async with dbus.export(connection, "/org/example/Thermostat", XML, Thermostat()) as reg, \
            dbus.own_name(connection, "org.example.Thermostat"):
        await serving.wait()                     # until told to stop
        reg.emit_signal("Reached", 21.5)
# [/guide:events-dbus-service]

serving = None


# [guide:events-dbus-client]
async def use(connection):
    async def call(method, args):
        reply = await gasyncbridge.call_gio(
            connection.call, "org.example.Thermostat", "/org/example/Thermostat",
            "org.example.Thermostat", method, args, None, Gio.DBusCallFlags.NONE, -1)
        return reply.unpack()

    heating, = await call("SetTarget", GLib.Variant("(d)", (21.0,)))
    try:
        await call("SetTarget", GLib.Variant("(d)", (40.0,)))
    except gasyncbridge.GLibError as e:
        refused = e.message                      # GDBus.Error:org.example.Error.TooHot: ...
    async with dbus.subscribe(connection, interface="org.example.Thermostat",
                              member="Reached") as signals:
        serving.set()                            # the service emits Reached and stops
        async for signal in signals:             # DBusSignal(sender, path, ..., params)
            return heating, refused, signal.params
# [/guide:events-dbus-client]


def private_bus(directory):
    """A dbus-daemon of our own on a unix socket: (process, address)."""
    proc = subprocess.Popen(["dbus-daemon", "--session", f"--address=unix:dir={directory}",
                             "--print-address", "--nofork"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return proc, proc.stdout.readline().strip()


async def dbus_demo(address):
    global serving
    serving = asyncio.Event()
    flags = (Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
             | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION)
    service = await gasyncbridge.call_gio(Gio.DBusConnection.new_for_address, address, flags, None)
    client = await gasyncbridge.call_gio(Gio.DBusConnection.new_for_address, address, flags, None)
    server = asyncio.ensure_future(serve(service))
    while not server.done():                     # until the name is on the bus
        names = await gasyncbridge.call_gio(
            client.call, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
            "ListNames", None, None, Gio.DBusCallFlags.NONE, -1)
        if "org.example.Thermostat" in names.unpack()[0]:
            break
        await asyncio.sleep(0.01)
    result = await use(client)
    await server
    return result


async def main():
    sensor = Sensor()
    assert await watch(sensor) == [20.0, 21.0, 22.0]
    assert await activate_later() == "activated"
    with tempfile.TemporaryDirectory() as tmp:
        assert await first_change(tmp) == "new.txt"
        assert await silent_monitor(tmp) == ["ContextWarning"]
    if shutil.which("dbus-daemon") is None:
        print("events: ok (D-Bus part skipped: no dbus-daemon, Debian package dbus)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        proc, address = private_bus(tmp)
        try:
            heating, refused, params = await dbus_demo(address)
        finally:
            proc.terminate()
            proc.wait()
    assert heating is True, heating
    assert "org.example.Error.TooHot" in refused, refused
    assert params == (21.5,), params
    print("events: ok")


if __name__ == "__main__":
    asyncio.run(main())
