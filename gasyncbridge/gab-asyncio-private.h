/* gab-asyncio-private.h: the only place that touches asyncio's private
 * attributes (see gab-asyncio-private.c for why each is needed).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "gab-python-compat.h"
#include <glib.h>

G_BEGIN_DECLS

gboolean gab_asyncio_future_awaited_by_others (PyObject   *future,
                                               Py_ssize_t  ours);
void     gab_asyncio_task_forget_quietly      (PyObject   *task);

/* GIL: `future.METHOD (arg)` (set_result or set_exception) that loses
 * nothing to a signal handler: if one raises (KeyboardInterrupt from
 * Ctrl-C) while asyncio schedules the done callbacks, those it dropped are
 * scheduled again and the exception is raised again from a callback of
 * @loop (nullable: the future's), so it reaches the code that runs the
 * loop. Returns like the call: a new reference, or NULL with an exception
 * set when the future was not completed. */
PyObject *gab_asyncio_future_complete   (PyObject   *future,
                                         PyObject   *method,
                                         PyObject   *arg,
                                         PyObject   *loop);

/* GIL, with an exception set: if it is no Exception (KeyboardInterrupt,
 * SystemExit from a signal handler), it is raised again from a callback of
 * @loop (nullable: the running loop), where it reaches the code that runs
 * the loop, and cleared: TRUE. FALSE leaves it set. */
gboolean  gab_asyncio_interrupt_to_loop (PyObject   *loop);

G_END_DECLS
