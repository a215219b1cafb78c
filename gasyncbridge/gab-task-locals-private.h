/* gab-task-locals-private.h: what the bridge's units
 * know of task locals beyond the public API (gab-task-locals.c).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "gab-python-compat.h"
#include <gasyncbridge/gab-task-locals.h>
#include "gab-loop-queue.h"

G_BEGIN_DECLS

struct _GabTaskLocals
{
  GabLoopQueue *queue;     /* strong; the loop is reached through it */
  PyObject     *context;   /* strong; dropped with gab_py_decref */
};

GabTaskLocals *gab_task_locals_new_for_queue (GabLoopQueue  *queue,
                                              PyObject      *context);   /* GIL; takes a new ref */
/* Where Python work started from C goes: the current locals, else the
 * running loop of this thread (GIL), else the default. Transfer full. */
GabTaskLocals *gab_task_locals_resolve       (GError       **error);
/* Runtime thread fast path: make @locals current, return the previous. */
GabTaskLocals *gab_task_locals_swap          (GabTaskLocals *locals);

G_END_DECLS
