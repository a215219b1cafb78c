/* gab-asyncio-private.h: the only place that touches asyncio's private
 * attributes (see gab-asyncio-private.c for why each is needed).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <Python.h>
#include <glib.h>

G_BEGIN_DECLS

gboolean gab_asyncio_future_awaited_by_others (PyObject   *future,
                                               Py_ssize_t  ours);
void     gab_asyncio_task_forget_quietly      (PyObject   *task);

G_END_DECLS
