/* gab-task-locals.h: which event loop and contextvars.Context Python work runs in.
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
 * GabTaskLocals:
 *
 * An asyncio event loop together with a `contextvars.Context`: where the
 * coroutines that C code awaits run. Reference counted; ref and unref need no
 * GIL and work from any thread.
 *
 * Since: 0.1
 */
typedef struct _GabTaskLocals GabTaskLocals;

/**
 * GabLoopFunc:
 * @data: the data given to gab_task_locals_invoke()
 *
 * A function run on an asyncio loop's thread, from the loop, with the GIL.
 *
 * Since: 0.1
 */
typedef void (*GabLoopFunc) (gpointer data);

GAB_EXTERN
GType          gab_task_locals_get_type     (void) G_GNUC_CONST;
GAB_EXTERN
GabTaskLocals *gab_task_locals_new          (PyObject      *loop,
                                             PyObject      *context);
GAB_EXTERN
GabTaskLocals *gab_task_locals_ref          (GabTaskLocals *locals);
GAB_EXTERN
void           gab_task_locals_unref        (GabTaskLocals *locals);
GAB_EXTERN
PyObject      *gab_task_locals_get_loop     (GabTaskLocals *locals);
GAB_EXTERN
PyObject      *gab_task_locals_get_context  (GabTaskLocals *locals);
GAB_EXTERN
GabTaskLocals *gab_task_locals_get_current  (void);
GAB_EXTERN
void           gab_task_locals_push         (GabTaskLocals *locals);
GAB_EXTERN
void           gab_task_locals_pop          (GabTaskLocals *locals);
GAB_EXTERN
void           gab_task_locals_set_default  (GabTaskLocals *locals);
GAB_EXTERN
void           gab_task_locals_invoke       (GabTaskLocals  *locals,
                                             GabLoopFunc     func,
                                             gpointer        data,
                                             GDestroyNotify  notify);
GAB_EXTERN
PyObject      *gab_get_current_loop         (void);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GabTaskLocals, gab_task_locals_unref)

G_END_DECLS
