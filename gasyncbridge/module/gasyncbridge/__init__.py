# SPDX-License-Identifier: LGPL-2.1-or-later
"""asyncio and GLib/GIO awaiting each other.

GIO work runs on a background GLib thread (the runtime); asyncio keeps
its own loop, any loop, on its own thread.

The C extension `gasyncbridge._gasyncbridge` holds most of it; GLib signals
(`signals`, `wait_signal`) and D-Bus (`gasyncbridge.dbus`) are written in
Python on top of it.
"""
import os as _os

# Before GLib is loaded (the extension below loads it, unless gi did so
# already): GLib older than 2.76 hands out small blocks from its own slice
# allocator, whose global locks another thread (a worker freeing a task)
# may hold at the moment of a fork(); a child that then starts its runtime
# waits for them forever. malloc's locks are made safe across fork() by the
# C library. GLib 2.76 and later use malloc anyway and ignore the variable.
_os.environ.setdefault("G_SLICE", "always-malloc")

from ._gasyncbridge import (  # noqa: F401,E402
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
from ._signals import ContextWarning, SignalEvent, signals, wait_signal  # noqa: F401,E402
from . import dbus  # noqa: F401,E402
