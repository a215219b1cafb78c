# SPDX-License-Identifier: LGPL-2.1-or-later
"""GObject signals into asyncio: signals() and wait_signal().

The handlers are C closures (gasyncbridge-signals.c): an emission, in
whatever thread it happens, copies its arguments and pushes them into a
bounded GabEventChannel, with no GIL and no Python. The loop converts them
with PyGObject when they are taken, and a burst costs it one wakeup.
"""
import asyncio
import warnings

from . import _gasyncbridge
from ._gasyncbridge import SignalEvent

__all__ = ["ContextWarning", "SignalEvent", "signals", "wait_signal"]

# Types whose signals GLib emits from the GMainContext that was
# thread-default where the object was made (a monitor's source, a proxy's
# subscription), rather than in the thread that changes something.
_CONTEXT_BOUND = (
    "GFileMonitor",
    "GDBusProxy",
    "GDBusObjectManagerClient",
    "GSettings",
    "GVolumeMonitor",
    "GAppInfoMonitor",
)


class ContextWarning(RuntimeWarning):
    """An object's signals come from a GLib main context that nothing runs.

    GFileMonitor, GDBusProxy, GSettings and a few other GLib objects emit
    their signals from the main context that was thread-default where they
    were made. Made on the asyncio thread, that is GLib's global default
    context, which no one iterates in an asyncio program, so they never
    fire. Make them on the runtime thread instead:
    `monitor = await gasyncbridge.run_in_runtime(make_monitor)`.
    """


def _check_context(obj, what):
    """Warn (ContextWarning) when obj's signals would never be emitted."""
    try:
        from gi.repository import GObject
    except ImportError:   # no PyGObject: obj is no GObject, and that is reported later
        return
    if not isinstance(obj, GObject.Object):
        return
    gtype = obj.__gtype__
    for name in _CONTEXT_BOUND:
        try:
            bound = GObject.type_from_name(name)
        except RuntimeError:   # not registered yet: obj cannot be one
            continue
        if gtype.is_a(bound):
            break
    else:
        return
    if _gasyncbridge._made_in_runtime(obj) or not _gasyncbridge._default_context_idle():
        return
    warnings.warn(
        f"{what}: {type(obj).__name__} emits its signals from the GLib main context "
        f"that was thread-default where it was made; unless that was the gasyncbridge "
        f"runtime thread or a thread running its own GLib main loop, nothing runs it "
        f"and no emission will come: make it with "
        f"`await gasyncbridge.run_in_runtime(factory)`",
        ContextWarning, stacklevel=3)


class signals:
    """signals(obj, *signal_names, maxsize=1024, overflow='raise')

    The emissions of signal_names on the GObject obj, from any thread, as an
    async iterator of SignalEvent(signal, args) in emission order; also an
    async context manager that disconnects on exit:

        async with gasyncbridge.signals(action, "activate") as events:
            async for event in events:
                print(event.signal, event.args)

    Connected when called (so an emission right after the call is seen),
    disconnected on leaving the `async with`, by aclose(), and when the
    object is dropped. `args` are the emission's arguments after the
    instance, converted as PyGObject converts a handler's; a signal that
    returns a value gets its default return value.

    At most maxsize emissions wait for the consumer; the emitting thread
    never waits. When the consumer falls further behind, overflow says what
    happens: 'raise' (the default) stops recording and, after the events
    that fit, the iteration raises OSError(errno.ENOSPC); 'drop-oldest'
    forgets the oldest waiting event, 'drop-newest' the new one (`dropped`
    counts them). A burst of emissions wakes the loop once; the iteration
    lets the loop run other work every 256 events or 1 ms.
    """

    def __init__(self, obj, *signal_names, maxsize=1024, overflow="raise"):
        if not signal_names:
            raise TypeError("signals: name at least one signal")
        _check_context(obj, "signals")
        self._connection = _gasyncbridge._connect_signals(obj, signal_names, maxsize,
                                                          overflow, None, False)
        self._receiver = self._connection.receiver
        self.maxsize = maxsize

    @property
    def connected(self):
        """Whether the handlers are still connected."""
        return self._connection.connected

    @property
    def dropped(self):
        """How many emissions the overflow policy dropped."""
        return self._receiver.dropped

    @property
    def pending(self):
        """How many emissions wait to be taken."""
        return self._receiver.pending

    def close(self):
        """Disconnect now; the emissions waiting are dropped. Idempotent."""
        self._connection.disconnect()
        self._receiver.close()

    async def aclose(self):
        """close(), as async iterators have it."""
        self.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        self.close()

    def __aiter__(self):
        # `async for` then calls the C iterator directly.
        return self._receiver

    def __anext__(self):
        return self._receiver.__anext__()

    def __repr__(self):
        state = "connected" if self.connected else "disconnected"
        return f"<gasyncbridge.signals {state}, {self._receiver!r}>"


class _SignalFuture(asyncio.Future):
    """The future of wait_signal(): done, cancelled or timed out, it disconnects."""

    _connection = None
    _timer = None

    def _deliver(self, args):
        if not self.done():
            self.set_result(args)
        self._disconnect()

    def _time_out(self, signal, timeout):
        if not self.done():
            self.set_exception(asyncio.TimeoutError(
                f"wait_signal: no {signal!r} emission within {timeout} s"))
        self._disconnect()

    def _disconnect(self):
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.disconnect()
            connection.receiver.close()
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def cancel(self, *args, **kwargs):
        cancelled = super().cancel(*args, **kwargs)
        self._disconnect()
        return cancelled


def wait_signal(obj, signal, *, timeout=None):
    """wait_signal(obj, signal, *, timeout=None)

    A future that resolves with the argument tuple (without the instance) of
    the next emission of signal on the GObject obj, from any thread. The
    handler is connected before this returns and disconnected as soon as the
    future is done: by the emission, by cancel(), or by the timeout (in
    seconds), which raises TimeoutError.
    """
    loop = asyncio.get_running_loop()
    _check_context(obj, "wait_signal")
    future = _SignalFuture(loop=loop)
    future._connection = _gasyncbridge._connect_signals(obj, (signal,), 1, "drop-newest",
                                                        future._deliver, True)
    if timeout is not None:
        future._timer = loop.call_later(timeout, future._time_out, signal, timeout)
    return future
