# SPDX-License-Identifier: LGPL-2.1-or-later
"""D-Bus from asyncio: signal subscriptions, exported objects, owned names.

Every subscription and exported object is registered on the gasyncbridge
runtime thread, whose GLib main context the bridge runs, so that GDBus
dispatches signals and method calls there; C callbacks then hand them to
your asyncio loop in batches (one wakeup per burst). Works with any
Gio.DBusConnection: a bus (Gio.bus_get_sync, or
Gio.DBusConnection.new_for_address awaited with gasyncbridge.call_gio) or
a peer-to-peer connection.

    (bus_id,) = await dbus.call(conn, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                "org.freedesktop.DBus", "GetId")

    async with dbus.subscribe(conn, interface="org.example.Foo") as sigs:
        async for sig in sigs:
            print(sig.member, sig.params)

    class Calculator:
        async def Add(self, a, b):
            return a + b

    async with dbus.export(conn, "/org/example/Calc", XML, Calculator()):
        async with dbus.own_name(conn, "org.example.Calc"):
            ...
"""
import asyncio
import inspect

from . import _gasyncbridge
from ._gasyncbridge import GLibError, _DBusSignal as DBusSignal, _MethodCall as MethodCall

__all__ = ["DBusError", "DBusSignal", "MethodCall", "PROPERTIES", "Registration", "call",
           "export", "own_name", "subscribe"]

# Calling a method: gio.dbus_call, in C, with no Python on the runtime thread
# (call_gio(conn.call, ...) would run PyGObject there, twice per call).
call = _gasyncbridge.gio.dbus_call

PROPERTIES = "org.freedesktop.DBus.Properties"
_DBUS_ERROR_DOMAIN = "g-dbus-error-quark"


class DBusError(Exception):
    """Raise it from an exported method to reply with exactly this D-Bus error.

    `DBusError("org.example.Error.NotFound", "no such item")`. Other
    exceptions are replied as `org.gasyncbridge.Error.<ExceptionType>`
    (or, for a GLibError or GLib.Error, as that GError: a G_DBUS_ERROR code
    as its org.freedesktop.DBus.Error name).
    """

    def __init__(self, name, message=""):
        super().__init__(message)
        self.dbus_error_name = name
        self.message = message


class subscribe:
    """subscribe(connection, *, sender=None, interface=None, member=None, path=None, arg0=None, maxsize=1024, overflow='raise')

    The D-Bus signals that match, as an async iterator of
    DBusSignal(sender, path, interface, member, params), params a tuple of
    Python values. Subscribed on the runtime thread when entered (`async
    with`, which also waits until the bus has the match rule, so that any
    signal sent afterwards is seen) or at the first iteration; unsubscribed
    on exit, by aclose(), and when dropped. maxsize and overflow are those
    of gasyncbridge.signals().
    """

    def __init__(self, connection, *, sender=None, interface=None, member=None, path=None,
                 arg0=None, maxsize=1024, overflow="raise"):
        self._args = (connection, sender, interface, member, path, arg0, maxsize, overflow)
        self._starting = None
        self._subscription = None
        self._receiver = None
        self._closed = False

    async def _start(self):
        if self._receiver is not None:
            return self._receiver
        if self._closed:
            raise RuntimeError("gasyncbridge.dbus.subscribe: closed")
        if self._starting is None:
            self._starting = _gasyncbridge._dbus_subscribe(*self._args)
        try:
            subscription = await self._starting
        except BaseException:
            # Cancelled: the subscription, if made, goes when its future does.
            self._starting = None
            raise
        if self._subscription is None:
            self._subscription = subscription
            self._receiver = subscription.receiver
            if self._closed:
                self.close()
        return self._receiver

    @property
    def active(self):
        """Whether the subscription is in place."""
        return self._subscription is not None and self._subscription.active

    @property
    def dropped(self):
        """How many signals the overflow policy dropped."""
        return self._receiver.dropped if self._receiver is not None else 0

    def close(self):
        """Unsubscribe now; the signals waiting are dropped. Idempotent."""
        self._closed = True
        if self._subscription is not None:
            self._subscription.unsubscribe()
            self._receiver.close()
        elif self._starting is not None:
            self._starting.cancel()

    async def aclose(self):
        """close(), as async iterators have it."""
        self.close()

    async def __aenter__(self):
        await self._start()
        return self

    async def __aexit__(self, *exc_info):
        self.close()

    def __aiter__(self):
        # Once subscribed, `async for` calls the C iterator directly.
        return self._receiver if self._receiver is not None else self

    async def __anext__(self):
        receiver = await self._start()
        return await receiver.__anext__()


def _reply_exception(call, exc):
    """Reply to call with the D-Bus error that stands for exc."""
    name = getattr(exc, "dbus_error_name", None)
    if isinstance(name, str):
        call.return_dbus_error(name, str(getattr(exc, "message", exc) or name))
        return
    domain = getattr(exc, "domain", None)
    code = getattr(exc, "code", None)
    if isinstance(domain, str) and isinstance(code, int) and _is_glib_error(exc):
        message = getattr(exc, "message", None) or str(exc)
        call.return_gerror(domain, code, message)
        return
    call.return_dbus_error(f"org.gasyncbridge.Error.{type(exc).__name__}", str(exc))


def _is_glib_error(exc):
    if isinstance(exc, GLibError):
        return True
    try:
        from gi.repository import GLib
    except ImportError:
        return False
    return isinstance(exc, GLib.Error)


async def _maybe_await(value):
    if inspect.isawaitable(value):
        return await value
    return value


class Registration:
    """An object exported by export(): await it, or `async with` it.

    unregister() (or leaving the `async with`) unexports it; calls that
    are still running finish and reply. emit_signal() and
    properties_changed() send its signals.
    """

    def __init__(self, connection, path, interface_xml, handler, maxsize):
        self._args = (connection, path, interface_xml)
        self.handler = handler
        self.path = path
        self._maxsize = maxsize
        self._registration = None
        self._starting = None
        self._tasks = set()
        self._loop = None

    async def _start(self):
        if self._registration is None:
            if self._starting is None:
                self._loop = asyncio.get_running_loop()
                connection, path, xml = self._args
                self._starting = _gasyncbridge._dbus_register(connection, path, xml,
                                                              self._dispatch, self._maxsize)
            try:
                registration = await self._starting
            except BaseException:
                # Cancelled: the object, if exported, goes when its future does.
                self._starting = None
                raise
            if self._registration is None:
                self._registration = registration
        return self

    def __await__(self):
        return self._start().__await__()

    async def __aenter__(self):
        return await self._start()

    async def __aexit__(self, *exc_info):
        self.unregister()

    @property
    def registered(self):
        """Whether the object is exported."""
        return self._registration is not None and self._registration.registered

    def unregister(self):
        """Unexport the object now. Idempotent."""
        if self._registration is not None:
            self._registration.unregister()
        elif self._starting is not None:
            self._starting.cancel()

    def emit_signal(self, name, *args, interface=None):
        """Emit the signal `name` of the exported interface (the first that has
        it, or `interface`) with args converted by its signature."""
        self._registration._emit_signal(name, args, interface)

    def properties_changed(self, interface, changed, invalidated=()):
        """Emit org.freedesktop.DBus.Properties.PropertiesChanged for
        `changed` ({name: new value}) and `invalidated` (names)."""
        self._registration._properties_changed(interface, changed, invalidated)

    # -- serving -----------------------------------------------------------

    def _dispatch(self, call):
        # The loop, per call, from the C callback consumer.
        task = self._loop.create_task(self._serve(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, call):
        try:
            if call.interface == PROPERTIES:
                await self._serve_property(call)
                return
            method = getattr(self.handler, call.method, None)
            if method is None:
                call.return_dbus_error("org.freedesktop.DBus.Error.UnknownMethod",
                                       f"{type(self.handler).__name__} has no method "
                                       f"{call.method}")
                return
            result = method(*call.args)
            if inspect.isawaitable(result):
                result = await result
            call.return_value(result)
        except BaseException as exc:  # noqa: B902 - every failure is a reply
            if not call.replied:
                _reply_exception(call, exc)
            if not isinstance(exc, Exception):
                raise

    async def _serve_property(self, call):
        handler = self.handler
        if call.method == "Get":
            call.return_value(await _maybe_await(getattr(handler, call.property_name)))
        elif call.method == "Set":
            setattr(handler, call.property_name, call.args[2])
            call.return_value(None)
        elif call.method == "GetAll":
            values = {}
            for name in call.readable_properties:
                values[name] = await _maybe_await(getattr(handler, name))
            call.return_value(values)
        else:
            call.return_dbus_error("org.freedesktop.DBus.Error.UnknownMethod",
                                   f"no method {call.method} in {PROPERTIES}")


def export(connection, path, interface_xml, handler, *, maxsize=1024):
    """export(connection, path, interface_xml, handler, *, maxsize=1024)

    Export an object at path with the interface(s) of interface_xml (D-Bus
    introspection XML), served by handler on the asyncio loop: a call of
    method M runs `await handler.M(*args)` (a plain method works too), and
    its return value is the reply, converted by the out-signature (None for
    no out argument, a tuple for several). An exception replies a D-Bus
    error (see DBusError). Properties read `getattr(handler, Name)` (awaited
    if awaitable) and write `setattr(handler, Name, value)`. At most maxsize
    calls wait for the loop; more are refused with
    org.freedesktop.DBus.Error.LimitsExceeded.

    Returns a Registration: `reg = await export(...)`, or
    `async with export(...) as reg:`, which unexports on exit.
    """
    return Registration(connection, path, interface_xml, handler, maxsize)


class own_name:
    """own_name(connection, name, *, replace=False, allow_replacement=False)

    An async context manager that owns the well-known bus name while inside:
    entering waits until the name is acquired (or raises GLibError if it
    cannot be), leaving releases it and waits until the bus has done so.
    `lost` is an asyncio.Event set if the name is lost while owned.
    """

    def __init__(self, connection, name, *, replace=False, allow_replacement=False):
        self.connection = connection
        self.name = name
        self._replace = replace
        self._allow_replacement = allow_replacement
        self._id = 0
        self.lost = None

    async def __aenter__(self):
        from gi.repository import Gio
        loop = asyncio.get_running_loop()
        acquired = loop.create_future()
        self.lost = lost_event = asyncio.Event()
        flags = Gio.BusNameOwnerFlags.NONE
        if self._replace:
            flags |= Gio.BusNameOwnerFlags.REPLACE
        if self._allow_replacement:
            flags |= Gio.BusNameOwnerFlags.ALLOW_REPLACEMENT

        def settle(ok):
            if not acquired.done():
                if ok:
                    acquired.set_result(None)
                else:
                    acquired.set_exception(GLibError(
                        f"own_name: the bus gave {self.name!r} to another owner",
                        _DBUS_ERROR_DOMAIN, 0))
            elif not ok:
                lost_event.set()

        def callback(ok):
            # The runtime thread, from GDBus.
            def on_name(connection, name):
                try:
                    loop.call_soon_threadsafe(settle, ok)
                except RuntimeError:   # the loop has closed
                    pass
            return on_name

        start = asyncio.ensure_future(_gasyncbridge.run_in_runtime(
            Gio.bus_own_name_on_connection, self.connection, self.name, flags,
            callback(True), callback(False)))
        try:
            self._id = await asyncio.shield(start)
        except asyncio.CancelledError:
            # The request may be made all the same: release it once it is.
            start.add_done_callback(_unown_when_done)
            raise
        try:
            await acquired
        except BaseException:
            await self._release()
            raise
        return self

    async def _release(self):
        from gi.repository import Gio
        owner_id, self._id = self._id, 0
        if owner_id:
            await _gasyncbridge.run_in_runtime(Gio.bus_unown_name, owner_id)
            await _round_trip(self.connection)

    async def __aexit__(self, *exc_info):
        await self._release()


def _unown_when_done(start):
    if not start.cancelled() and start.exception() is None:
        from gi.repository import Gio
        Gio.bus_unown_name(start.result())   # thread-safe in GDBus


async def _round_trip(connection):
    """Wait until the bus has processed what this connection sent before."""
    if connection.get_unique_name() is None or connection.is_closed():
        return
    from gi.repository import Gio
    try:
        await _gasyncbridge.call_gio(connection.call, "org.freedesktop.DBus",
                                     "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                     "GetId", None, None, Gio.DBusCallFlags.NONE, -1)
    except OSError:
        pass
