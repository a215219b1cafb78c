/* gab-future.h: a C future (GIO-style async operation) as a Python awaitable.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#if !defined(GAB_INSIDE) && !defined(GAB_COMPILATION)
# error "Only <gasyncbridge/gasyncbridge.h> can be included directly."
#endif

#include <Python.h>
#include <gio/gio.h>
#include <gasyncbridge/gab-version.h>

G_BEGIN_DECLS

/**
 * GabStartFunc:
 * @cancellable: the operation's cancellable; cancelled (on the runtime thread)
 *   when the Python future is cancelled or dropped
 * @callback: pass to the GIO-style `*_async` call you start
 * @callback_data: pass as the `user_data` of that call
 * @user_data: the data given to gab_future_into_py()
 *
 * Starts an asynchronous operation. Runs on the runtime thread, without the
 * GIL, with the task locals of the Python caller current (see
 * gab_task_locals_get_current()).
 *
 * Since: 0.1
 */
typedef void      (*GabStartFunc)  (GCancellable        *cancellable,
                                    GAsyncReadyCallback  callback,
                                    gpointer             callback_data,
                                    gpointer             user_data);

/**
 * GabFinishFunc:
 * @source_object: (nullable): the source object the operation reported
 * @result: the operation's result
 * @user_data: the data given to gab_future_into_py()
 * @error: return location for a #GError
 *
 * Turns the result into a Python value. Runs on the loop thread with the GIL.
 * Returning %NULL with @error set makes the future raise the mapped exception;
 * returning %NULL with a Python exception set raises that exception.
 *
 * Returns: (transfer full) (nullable): the future's result
 *
 * Since: 0.1
 */
typedef PyObject *(*GabFinishFunc) (GObject             *source_object,
                                    GAsyncResult        *result,
                                    gpointer             user_data,
                                    GError             **error);

/**
 * GabFutureFlags:
 * @GAB_FUTURE_NONE: a plain `asyncio.Future`: cancel() completes it at
 *   once and the operation is asked to stop in the background
 * @GAB_FUTURE_CANCEL_WAITS: the future is a `gasyncbridge.gio.Operation`:
 *   cancel() asks GIO to stop and returns %TRUE, and the future completes,
 *   cancelled, once the operation has reported back, as `Task.cancel()`
 *   does; so its cleanup is done when an awaiting task sees CancelledError
 *
 * How the future of gab_future_into_py_full() behaves.
 *
 * Since: 0.1
 */
typedef enum /*< flags >*/
{
  GAB_FUTURE_NONE         = 0,
  GAB_FUTURE_CANCEL_WAITS = 1 << 0,
} GabFutureFlags;

GAB_EXTERN
PyObject *gab_future_into_py      (GabStartFunc    start,
                                   GabFinishFunc   finish,
                                   gpointer        user_data,
                                   GDestroyNotify  user_data_free);

GAB_EXTERN
PyObject *gab_future_into_py_full (GabStartFunc    start,
                                   GabFinishFunc   finish,
                                   gpointer        user_data,
                                   GDestroyNotify  user_data_free,
                                   GabFutureFlags  flags);

GAB_EXTERN
PyObject *gab_future_get_operation_class (void);

GAB_EXTERN
PyObject *gab_future_finish_none  (GObject        *source_object,
                                   GAsyncResult   *result,
                                   gpointer        user_data,
                                   GError        **error);

G_END_DECLS
