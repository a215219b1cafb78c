# SPDX-License-Identifier: LGPL-2.1-or-later
"""asyncio and GLib/GIO awaiting each other.

GIO work runs on a background GLib thread (the runtime); asyncio keeps
its own loop, any loop, on its own thread.

The C extension `gasyncbridge._gasyncbridge` holds most of it; GLib signals
(`signals`, `wait_signal`) and D-Bus (`gasyncbridge.dbus`) are written in
Python on top of it.
"""
from ._gasyncbridge import (  # noqa: F401
    GLibError,
    StreamReader,
    StreamWriter,
    __version__,
    call_gio,
    gio,
    init,
    run_in_runtime,
    shutdown,
    sleep,
)
from ._signals import ContextWarning, SignalEvent, signals, wait_signal  # noqa: F401
from . import dbus  # noqa: F401,E402
