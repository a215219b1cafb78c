/* gab-call.h: call a Python async function from C with GVariant arguments.
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
void      gab_call_async  (const gchar          *module,
                           const gchar          *function,
                           GVariant             *args,
                           GCancellable         *cancellable,
                           GAsyncReadyCallback   callback,
                           gpointer              user_data);
GAB_EXTERN
GVariant *gab_call_finish (GAsyncResult         *result,
                           GError              **error);

G_END_DECLS
