/* gab-loop.h: running asyncio event loops from C, on either thread topology.
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
PyObject *gab_run_until_complete   (PyObject  *loop,
                                    PyObject  *awaitable);
GAB_EXTERN
PyObject *gab_run                  (PyObject  *awaitable);
GAB_EXTERN
PyObject *gab_run_forever          (PyObject  *loop);
GAB_EXTERN
PyObject *gab_start_asyncio_thread (GError   **error);
GAB_EXTERN
void      gab_stop_asyncio_thread  (void);

G_END_DECLS
