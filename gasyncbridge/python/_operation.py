# SPDX-License-Identifier: LGPL-2.1-or-later
"""The future of gab_future_into_py_full() with GAB_FUTURE_CANCEL_WAITS.

Run by gab-future.c with __name__ "gasyncbridge.gio", the module that
exports the class. The bridge gives each instance a `_gab_handle` whose
`_request_cancel(msg)` asks the operation's GCancellable to be cancelled on
the runtime thread and returns False if the operation has already let go of
the future (it was dropped or its loop closed), so that the cancel happens
here and now.
"""
import asyncio


class Operation(asyncio.Future):
    """An asyncio.Future for a GIO operation of gasyncbridge.

    What the functions of gasyncbridge.gio and gasyncbridge.call_gio return.
    It differs from asyncio.Future in cancel() only: that asks GIO to stop
    and returns True, and the future completes, cancelled, once GIO has
    stopped, as a Task does. So when an awaiting task sees CancelledError,
    the operation's cleanup is done: no partial file of a copy is left, a
    child of communicate() has been killed and reaped.
    """

    _gab_handle = None

    def cancel(self, msg=None):
        """Ask the GIO operation to stop.

        Returns False if the future is already done, else True; like
        Task.cancel(), the future is not done yet: it completes, cancelled,
        once GIO has stopped and cleaned up (a partial file removed, a child
        process killed and reaped). An awaiting task sees CancelledError
        only then.
        """
        if self.done():
            return False
        handle = self._gab_handle
        if handle is not None and handle._request_cancel(msg):
            return True
        return self._gab_cancel_now(msg)

    def _gab_cancel_now(self, msg):
        # Future.cancel() itself: what the bridge calls once GIO reported.
        if msg is None:
            return super().cancel()
        return super().cancel(msg)
