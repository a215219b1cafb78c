/* gab-into-future.h: a Python awaitable as a GIO-style asynchronous operation.
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

GAB_EXTERN
void      gab_into_future_async  (PyObject             *awaitable,
                                  GCancellable         *cancellable,
                                  GAsyncReadyCallback   callback,
                                  gpointer              user_data);
GAB_EXTERN
PyObject *gab_into_future_finish (GAsyncResult         *result,
                                  GError              **error);

G_END_DECLS
