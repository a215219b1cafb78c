/* gab-caller-task.c: one rule for the GTasks of C callers.
 *
 * GIO calls a GTask's callback in the GMainContext that was thread-default
 * where the task was made. On an asyncio loop's thread no GMainContext is
 * iterated, so the callback of C code called there (from Python) would
 * never run: such tasks are made in the loop queue's private dispatch
 * context instead, and the loop dispatches it after the task returns.
 * gab_into_future_async(), gab_call_async(), the async iterator and the
 * input stream all make their tasks here.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gasyncbridge.h>
#include "gab-python.h"
#include "gab-loop-queue.h"
#include "gab-lifecycle.h"
#include "gab-caller-task.h"

GTask *
gab_caller_task_new (gpointer              source_object,
                     GCancellable         *cancellable,
                     GAsyncReadyCallback   callback,
                     gpointer              user_data,
                     gpointer              source_tag,
                     GabLoopQueue        **dispatch_queue)
{
  GMainContext *thread_default = g_main_context_get_thread_default ();
  GTask *task = NULL;

  *dispatch_queue = NULL;
  if (GAB_GIL_HELD () && gab_lifecycle_start (NULL))
    {
      PyObject *loop = gab_py_running_loop ();
      GabLoopQueue *queue = loop != NULL ? gab_loop_queue_get (loop) : NULL;
      GMainContext *ctx = queue != NULL ? gab_loop_queue_get_dispatch_context (queue) : NULL;

      Py_XDECREF (loop);
      PyErr_Clear ();
      /* No context of the thread's own, or the loop's private one, which
       * GTask pushes while a callback of ours runs: a task made there
       * needs the loop to dispatch it too. */
      if (ctx != NULL && (thread_default == NULL || thread_default == ctx))
        {
          *dispatch_queue = gab_loop_queue_ref (queue);
          g_main_context_push_thread_default (ctx);
          task = g_task_new (source_object, cancellable, callback, user_data);
          g_main_context_pop_thread_default (ctx);
        }
    }
  if (task == NULL)
    task = g_task_new (source_object, cancellable, callback, user_data);
  g_task_set_source_tag (task, source_tag);
  return task;
}

typedef struct
{
  GabLoopItem   item;
  GabLoopQueue *queue;
} Dispatch;

static void
dispatch_run (GabLoopItem *item,
              gboolean     alive)
{
  Dispatch *self = (Dispatch *) item;

  if (alive)
    gab_loop_queue_dispatch (self->queue);
  gab_loop_queue_unref (self->queue);
  g_free (self);
}

void
gab_caller_task_dispatch (GabLoopQueue *dispatch_queue,
                          gboolean      from_loop)
{
  Dispatch *self;

  if (PyGILState_Check ())
    {
      GSource *current = g_main_current_source ();
      PyObject *loop;

      /* Already inside the loop's dispatch of that context, on its thread:
       * the dispatch goes on until nothing is ready, this callback
       * included. */
      if (current != NULL
          && g_source_get_context (current) == gab_loop_queue_get_dispatch_context (dispatch_queue))
        {
          gab_loop_queue_unref (dispatch_queue);
          return;
        }
      /* Running from that very loop (never inside the caller's own _async
       * call, whose callback must not run before it returns): dispatch
       * now, a loop turn sooner. */
      loop = from_loop ? gab_py_running_loop () : NULL;
      if (loop != NULL && loop == gab_loop_queue_get_loop (dispatch_queue))
        {
          Py_DECREF (loop);
          gab_loop_queue_dispatch (dispatch_queue);
          gab_loop_queue_unref (dispatch_queue);
          return;
        }
      Py_XDECREF (loop);
    }
  self = g_new (Dispatch, 1);
  self->item.run = dispatch_run;
  self->queue = dispatch_queue;
  gab_loop_queue_push (dispatch_queue, &self->item);
}
