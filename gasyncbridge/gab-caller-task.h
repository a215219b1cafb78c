/* gab-caller-task.h: GTasks whose callbacks reach the caller where it can
 * hear them, including C code called on an asyncio loop's thread.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "gab-loop-queue.h"

G_BEGIN_DECLS

/* Any thread. A GTask whose callback runs in the caller's thread-default
 * GMainContext (GIO's convention), or, for a caller on a running asyncio
 * loop's thread with no context of its own (or only the loop's private
 * one, pushed while a callback of ours runs), in that loop's private
 * dispatch context: then *@dispatch_queue is set (transfer full), and once
 * the task has returned gab_caller_task_dispatch() must be given it, so
 * that the loop dispatches the callback. */
GTask *gab_caller_task_new      (gpointer              source_object,
                                 GCancellable         *cancellable,
                                 GAsyncReadyCallback   callback,
                                 gpointer              user_data,
                                 gpointer              source_tag,
                                 GabLoopQueue        **dispatch_queue);
/* Any thread, no GIL needed: after the task of gab_caller_task_new() has
 * returned, have its loop dispatch the callback: at once inside the loop's
 * dispatch of that context, or when @from_loop (the caller runs as a
 * callback of the loop, never inside the caller's own _async call) and
 * the loop is the one running here; else through the loop's queue. Takes
 * @dispatch_queue. */
void   gab_caller_task_dispatch (GabLoopQueue         *dispatch_queue,
                                 gboolean              from_loop);

G_END_DECLS
