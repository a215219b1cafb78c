/* gab-into-future-private.h: Python awaited for a GTask,
 * for gab-call.c (gab-into-future.c).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "gab-python-compat.h"
#include <gio/gio.h>
#include "gab-task-locals-private.h"

G_BEGIN_DECLS

/* Loop thread, GIL: runs @awaitable as a task of @locals and completes
 * @task with its outcome. Takes @task and @dispatch_queue. */
void     gab_into_future_start      (GabTaskLocals *locals,
                                     PyObject      *awaitable,
                                     GTask         *task,
                                     GabLoopQueue  *dispatch_queue,
                                     gboolean       want_variant);
/* Completes @task now with @value/@variant or @error (taken), its callback
 * dispatched later. GIL held if @value is given. Takes @task, @dispatch_queue. */
void     gab_into_future_return     (GTask         *task,
                                     GabLoopQueue  *dispatch_queue,
                                     gboolean       want_variant,
                                     PyObject      *value,
                                     GVariant      *variant,
                                     GError        *error);

G_END_DECLS
