/* gab-into-future.c: a Python awaitable as a GIO-style asynchronous
 * operation — C awaits Python.
 *
 * The awaitable runs as an asyncio task on the loop of the task locals
 * (the caller's, see gab-task-locals.c), in their contextvars.Context.
 * Started from the loop's own thread it is scheduled at once; from any
 * other thread it travels through the loop's queue. When the task is done,
 * its outcome completes a GTask, whose callback runs in the caller's
 * thread-default GMainContext as GIO promises. On a thread that runs an
 * asyncio loop and has no thread-default context of its own, GLib's
 * default context is not iterated by anyone, so the callback runs from
 * that asyncio loop instead (through a private context the bridge
 * iterates).
 *
 * A coroutine runs inside a small driver coroutine of ours, the task's
 * body, which hands the outcome to the GTask the moment it is there: no
 * done callback on the task, no extra turn of the loop. Other awaitables
 * (futures, objects with __await__) go through asyncio.ensure_future() and
 * a done callback.
 *
 * Cancelling the GCancellable cancels the Python task, and the GTask
 * reports G_IO_ERROR_CANCELLED only once the task has really stopped.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gasyncbridge.h>
#include "gab-python.h"
#include "gab-runtime-private.h"
#include "gab-loop-queue.h"
#include "gab-loop-spin.h"
#include "gab-caller-task.h"
#include "gab-lifecycle.h"
#include "gab-task-locals-private.h"
#include "gab-into-future-private.h"
#include "gab-error-private.h"
#include "gab-asyncio-private.h"
#include "gab-python-sources.h"

typedef struct _Await Await;
struct _Await
{
  GabLoopItem     start_item;
  GabLoopItem     cancel_item;
  gint            cancel_requested;  /* atomic */

  GTask          *task;              /* strong until returned */
  GabTaskLocals  *locals;
  GabLoopQueue   *dispatch_queue;    /* nullable; see the file comment */
  GCancellable   *cancellable;
  gulong          cancel_id;
  gboolean        want_variant;

  /* GIL */
  PyObject       *awaitable;         /* until started */
  PyObject       *py_task;           /* the asyncio task or future */
  PyObject       *handle;            /* borrowed, until completed: our done
                                        callback, or the driver's `done` */
  PyObject       *coro;              /* strong: the coroutine the driver runs */
  gboolean        driven;            /* py_task runs the driver */
  gboolean        own_task;          /* we made py_task (ensure_future) */
  gboolean        completed;
  GList           link;              /* in `running` */
  GabLoopWatch    watch;             /* on the loop's queue while running */
};

typedef struct
{
  PyObject_HEAD
  Await   *await;
  gboolean driver;     /* held by the driver coroutine's frame (and, once
                          it raised, by the frame in its traceback) */
} AwaitHandle;

static PyTypeObject AwaitHandle_Type;

/* GIL: awaits started and not yet completed, for shutdown. */
static GQueue running = G_QUEUE_INIT;

static PyObject *awaited_by_c;   /* GIL; the driver function */

static GabSubsystem into_future_subsystem;

/* The last reference to an await went (a GLib reference-counted box). */
static void
await_clear (gpointer data)
{
  Await *self = data;

  g_assert (self->task == NULL);
  gab_py_decref (self->awaitable);
  gab_py_decref (self->coro);
  gab_py_decref (self->py_task);
  g_clear_pointer (&self->locals, gab_task_locals_unref);
  g_clear_pointer (&self->dispatch_queue, gab_loop_queue_unref);
  g_clear_object (&self->cancellable);
}

static void
await_unref (Await *self)
{
  g_atomic_rc_box_release_full (self, await_clear);
}

/* GIL. Closes a coroutine that will never run, so Python does not warn
 * that it was never awaited. */
static void
close_unused (PyObject *awaitable)
{
  if (awaitable != NULL
      && (PyCoro_CheckExact (awaitable) || gab_py_is_generator_coroutine (awaitable)))
    {
      PyObject *ret = PyObject_CallMethodNoArgs (awaitable, gab_py.s_close);

      Py_XDECREF (ret);
      PyErr_Clear ();
    }
}

/* Completes the GTask: @variant or @value (a result) or @error. GIL held
 * when @value is given. Consumes @error and @variant. @from_loop says that
 * we run as a callback of the loop, not inside the caller's _async call,
 * so a private-context callback may be dispatched right here. */
static void
await_return (Await    *self,
              PyObject *value,
              GVariant *variant,
              GError   *error,
              gboolean  from_loop)
{
  GTask *task = g_steal_pointer (&self->task);

  if (task == NULL)
    {
      g_clear_error (&error);
      g_clear_pointer (&variant, g_variant_unref);
      return;
    }
  if (self->cancel_id != 0)
    {
      /* Safe here: our handler only queues work and never waits. */
      g_cancellable_disconnect (self->cancellable, self->cancel_id);
      self->cancel_id = 0;
    }
  if (error != NULL)
    g_task_return_error (task, error);
  else if (self->want_variant)
    g_task_return_pointer (task, variant, (GDestroyNotify) g_variant_unref);
  else
    /* The result crosses to the callback's thread in a box that can be
     * dropped without the GIL. */
    g_task_return_pointer (task, gab_py_ref_new (value),
                           (GDestroyNotify) gab_py_ref_unref);
  g_object_unref (task);

  if (self->dispatch_queue != NULL)
    gab_caller_task_dispatch (g_steal_pointer (&self->dispatch_queue), from_loop);
}

/* GIL, loop thread: listed as running, for shutdown, the loop's close()
 * and the loop-side wait. Before the task exists: a loop with an eager
 * task factory may finish it inside create_task(). */
static void
await_register (Await *self)
{
  self->link.data = self;
  g_queue_push_tail_link (&running, &self->link);
  gab_loop_spin_begin (gab_loop_spin_get (self->locals->queue), TRUE);
  gab_loop_queue_watch (self->locals->queue, &self->watch);
}

/* GIL: marks the await complete and unlists it, once. FALSE if it was
 * complete already: then the caller reports nothing. */
static gboolean
await_settle (Await *self)
{
  if (self->completed)
    return FALSE;
  self->completed = TRUE;
  g_queue_unlink (&running, &self->link);
  gab_loop_watch_remove (&self->watch);
  gab_loop_spin_end (gab_loop_spin_get (self->locals->queue), TRUE);
  return TRUE;
}

/* GIL: fails the await with @error (taken), unless it is complete already
 * (a loop with an eager task factory may have run it to its end). */
static void
await_fail (Await  *self,
            GError *error)
{
  if (await_settle (self))
    await_return (self, NULL, NULL, error, FALSE);
  else
    g_clear_error (&error);
}

/* Loop thread, GIL: the awaitable is done, with @value, or @exception
 * (borrowed, nullable), or cancelled. */
static void
await_complete (Await    *self,
                PyObject *value,
                PyObject *exception,
                gboolean  cancelled)
{
  GError *error = NULL;
  GVariant *variant = NULL;

  if (!await_settle (self))
    return;

  if (cancelled
      || (exception != NULL
          && PyObject_IsInstance (exception, gab_py.cancelled_error) == 1))
    error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                 "The Python awaitable was cancelled");
  else if (exception != NULL)
    {
      error = gab_error_from_exception (exception);
      /* KeyboardInterrupt and SystemExit go on to stop the loop, whose
       * shutdown cancels what remains; the C caller still hears of them,
       * not of that cancellation. */
      if (self->task != NULL
          && (PyErr_GivenExceptionMatches (exception, PyExc_KeyboardInterrupt)
              || PyErr_GivenExceptionMatches (exception, PyExc_SystemExit)))
        g_task_set_check_cancellable (self->task, FALSE);
    }
  else if (value == NULL)
    gab_error_set_from_python (&error);
  else if (self->want_variant && value != Py_None)
    variant = gab_variant_from_python (value, NULL, &error);
  PyErr_Clear ();
  await_return (self, error == NULL ? value : NULL, variant, error, TRUE);
  PyErr_Clear ();
  /* Done with the task: let go of it now. A task that ends with an
   * exception keeps the driver's frame, with our handle in it, through the
   * traceback; holding the task would make that a cycle through us. A
   * driver cancelled before its first step never touched the coroutine:
   * close it, so Python does not warn that it was never awaited. */
  if (cancelled)
    close_unused (self->coro);
  Py_CLEAR (self->coro);
  Py_CLEAR (self->py_task);
}

/* Loop thread, GIL: the done callback of a future or task we await. */
static void
await_complete_from_future (Await    *self,
                            PyObject *future)
{
  PyObject *cancelled, *exception = NULL, *value = NULL;

  if (self->completed)
    return;
  cancelled = PyObject_CallMethodNoArgs (future, gab_py.s_cancelled);
  if (cancelled != NULL && cancelled != Py_True)
    {
      exception = PyObject_CallMethodNoArgs (future, gab_py.s_exception);
      if (exception == Py_None)
        value = PyObject_CallMethodNoArgs (future, gab_py.s_result);
    }
  await_complete (self, value,
                  exception != Py_None ? exception : NULL, cancelled == Py_True);
  Py_XDECREF (cancelled);
  Py_XDECREF (exception);
  Py_XDECREF (value);
}

/* Called as a done callback (the future), or by the driver (value,
 * exception). */
static PyObject *
await_handle_call (PyObject *self,
                   PyObject *args,
                   PyObject *kwargs)
{
  Await *await = ((AwaitHandle *) self)->await;
  gboolean was_completed = await->completed;

  if (PyTuple_GET_SIZE (args) == 1)
    await_complete_from_future (await, PyTuple_GET_ITEM (args, 0));
  else if (PyTuple_GET_SIZE (args) == 2)
    {
      PyObject *exception = PyTuple_GET_ITEM (args, 1);

      await_complete (await, PyTuple_GET_ITEM (args, 0),
                      exception != Py_None ? exception : NULL, FALSE);
    }
  if (!was_completed)
    gab_loop_spin_after_await (gab_loop_spin_get (await->locals->queue));
  Py_RETURN_NONE;
}

static void
await_handle_dealloc (PyObject *self)
{
  Await *await = ((AwaitHandle *) self)->await;

  /* Only the driver coroutine's frame holds a driver's handle: if it goes
   * without having called us, the coroutine never finished (dropped
   * unstarted, say, with its loop). */
  if (((AwaitHandle *) self)->driver && !await->completed)
    {
      PyObject *exception = PyErr_GetRaisedException ();

      await_complete (await, NULL, NULL, TRUE);
      PyErr_SetRaisedException (exception);
    }
  await_unref (await);
  Py_TYPE (self)->tp_free (self);
}

static PyTypeObject AwaitHandle_Type = {
  GAB_PY_TYPE_HEAD ("gasyncbridge._Await", AwaitHandle,
                    Py_TPFLAGS_DEFAULT,
                    "Completes a GTask when the Python task it awaits is done."),
  .tp_call = await_handle_call,
  .tp_dealloc = await_handle_dealloc,
};

static gboolean
into_future_start (void)
{
  if (PyType_Ready (&AwaitHandle_Type) < 0)
    return FALSE;
  if (awaited_by_c == NULL)
    awaited_by_c = gab_py_run_file_get (&gab_py_source_into_future,
                                        "gasyncbridge._into_future", "awaited_by_c");
  return awaited_by_c != NULL;
}

/* GIL: a task of @loop for @awaitable in a copy of the caller's context,
 * or @awaitable itself if it is a future already. New ref, or NULL with an
 * exception set. */
static PyObject *
create_task (Await    *self,
             PyObject *loop,
             PyObject *awaitable)
{
#if GAB_PY_CREATE_TASK_TAKES_CONTEXT
  if (PyCoro_CheckExact (awaitable))
    {
      /* loop.create_task(coro, context=copy): without ensure_future's
       * Python frames. A loop whose create_task() takes no context gets
       * the general way below. */
      PyObject *copy = PyContext_Copy (self->locals->context);
      PyObject *py_task;

      if (copy == NULL)
        return NULL;
      {
        PyObject *args[] = { loop, awaitable, copy };

        py_task = PyObject_VectorcallMethod (gab_py.s_create_task, args, 2,
                                             gab_py.kw_context);
      }
      Py_DECREF (copy);
      if (py_task != NULL || !PyErr_ExceptionMatches (PyExc_TypeError))
        return py_task;
      PyErr_Clear ();
    }
#endif
  {
    /* context.run(asyncio.ensure_future, awaitable, loop=loop): the task
     * starts in a copy of the caller's context. */
    PyObject *args[] = { self->locals->context, gab_py.ensure_future, awaitable, loop };

    return PyObject_VectorcallMethod (gab_py.s_run, args, 3, gab_py.kw_loop);
  }
}

/* Loop thread, GIL: schedule the awaitable on the loop. */
static void
await_start (Await    *self,
             PyObject *awaitable)
{
  PyObject *loop = gab_loop_queue_get_loop (self->locals->queue);
  PyObject *py_task = NULL, *driver, *ret;
  AwaitHandle *handle;
  GError *error = NULL;

  if (loop == NULL)
    {
      close_unused (awaitable);
      await_return (self, NULL, NULL,
                    g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CLOSED,
                                         "The asyncio event loop has been closed"),
                    FALSE);
      return;
    }

  if (g_cancellable_is_cancelled (self->cancellable))
    {
      close_unused (awaitable);
      await_return (self, NULL, NULL,
                    g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                         "The operation was cancelled before "
                                         "the Python awaitable started"), FALSE);
      return;
    }

  await_register (self);
  if (PyCoro_CheckExact (awaitable) || gab_py_is_generator_coroutine (awaitable))
    {
      /* The driver coroutine is the task's body; it holds the handle. */
      handle = PyObject_New (AwaitHandle, &AwaitHandle_Type);
      if (handle == NULL)
        goto fail_unused;
      handle->await = g_atomic_rc_box_acquire (self);
      handle->driver = FALSE;
      driver = PyObject_CallFunctionObjArgs (awaited_by_c, awaitable, handle, NULL);
      if (driver != NULL)
        handle->driver = TRUE;
      Py_DECREF (handle);   /* the driver's frame holds it from now on */
      if (driver == NULL)
        goto fail_unused;
      py_task = create_task (self, loop, driver);
      if (py_task == NULL)
        {
          /* Report the real error first: closing the unstarted driver
           * drops the handle, which would otherwise say "cancelled". */
          gab_error_set_from_python (&error);
          await_fail (self, error);
          close_unused (driver);
          Py_DECREF (driver);
          close_unused (awaitable);
          return;
        }
      Py_DECREF (driver);
      self->py_task = py_task;
      self->own_task = TRUE;
      self->driven = TRUE;
      self->coro = Py_NewRef (awaitable);
      /* Borrowed: the driver's frame holds it until the driver calls it. */
      self->handle = (PyObject *) handle;
    }
  else
    {
      py_task = create_task (self, loop, awaitable);
      if (py_task == NULL)
        goto fail_unused;
      self->py_task = py_task;
      self->own_task = py_task != awaitable;

      handle = PyObject_New (AwaitHandle, &AwaitHandle_Type);
      if (handle == NULL)
        goto fail;
      handle->await = g_atomic_rc_box_acquire (self);
      handle->driver = FALSE;
      /* Borrowed: alive while it is on the task, which is while we hold it. */
      self->handle = (PyObject *) handle;
      ret = PyObject_CallMethodOneArg (py_task, gab_py.s_add_done_callback,
                                       (PyObject *) handle);
      Py_DECREF (handle);
      if (ret == NULL)
        goto fail;
      Py_DECREF (ret);
    }
  return;

fail_unused:
  close_unused (awaitable);
fail:
  gab_error_set_from_python (&error);
  await_fail (self, error);
}

/* GIL. The task holds our handle, which holds us: take the handle off and
 * drop the task, so that both can be collected. A task we made ourselves
 * goes quietly: its C caller has been told, so asyncio's "Task was
 * destroyed but it is pending!" would only be noise. */
static void
await_let_go_of_task (Await *self)
{
  PyObject *task = g_steal_pointer (&self->py_task), *ret;

  if (task == NULL)
    return;
  if (self->handle != NULL)
    {
      ret = PyObject_CallMethodOneArg (task, gab_py.s_remove_done_callback, self->handle);
      Py_XDECREF (ret);
    }
  if (self->own_task)
    gab_asyncio_task_forget_quietly (task);
  PyErr_Clear ();
  Py_DECREF (task);
}

/* The loop was closed with the task still pending: it will never finish,
 * so the C caller hears so now. */
static void
await_watch_closed (GabLoopWatch *watch)
{
  Await *self = g_atomic_rc_box_acquire (G_STRUCT_MEMBER_P (watch, -G_STRUCT_OFFSET (Await, watch)));

  if (await_settle (self))
    {
      await_return (self, NULL, NULL,
                    g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CLOSED,
                                         "The asyncio event loop was closed while "
                                         "the Python awaitable was pending"),
                    FALSE);
      await_let_go_of_task (self);
    }
  await_unref (self);
}

static int
await_watch_traverse (GabLoopWatch *watch,
                      visitproc     visit,
                      void         *arg)
{
  Await *self = G_STRUCT_MEMBER_P (watch, -G_STRUCT_OFFSET (Await, watch));

  Py_VISIT (self->py_task);
  Py_VISIT (self->coro);
  return 0;
}

static const GabLoopWatchKind await_watch_kind = {
  .closed = await_watch_closed,
  .traverse = await_watch_traverse,
};

static void
start_item_run (GabLoopItem *item,
                gboolean     alive)
{
  Await *self = G_STRUCT_MEMBER_P (item, -G_STRUCT_OFFSET (Await, start_item));
  PyObject *awaitable = g_steal_pointer (&self->awaitable);

  if (alive)
    await_start (self, awaitable);
  else
    {
      close_unused (awaitable);
      await_return (self, NULL, NULL,
                    g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CLOSED,
                                         "The asyncio event loop has been closed"),
                    FALSE);
    }
  Py_XDECREF (awaitable);
  await_unref (self);
}

static void
cancel_item_run (GabLoopItem *item,
                 gboolean     alive)
{
  Await *self = G_STRUCT_MEMBER_P (item, -G_STRUCT_OFFSET (Await, cancel_item));

  if (alive && self->py_task != NULL && !self->completed)
    {
      PyObject *ret;

      /* A driver cancelled before its first step never enters its body and
       * so never calls us: hear of the task's end as a done callback then
       * (a no-op if the driver did call). */
      if (self->driven)
        {
          ret = PyObject_CallMethodOneArg (self->py_task, gab_py.s_add_done_callback,
                                           self->handle);
          Py_XDECREF (ret);
        }
      ret = PyObject_CallMethodNoArgs (self->py_task, gab_py.s_cancel);
      Py_XDECREF (ret);
      PyErr_Clear ();
    }
  await_unref (self);
}

static void
on_cancelled (GCancellable *cancellable,
              gpointer      data)
{
  Await *self = data;

  /* Any thread, no GIL: the cancel travels to the loop. */
  if (g_atomic_int_compare_and_exchange (&self->cancel_requested, FALSE, TRUE))
    gab_loop_queue_push (self->locals->queue, &g_atomic_rc_box_acquire (self)->cancel_item);
}

/* GTask for the caller, in the caller's thread-default context (see the
 * file comment for threads that run asyncio). */
/* Creates the Await for @task; @task and @locals are taken. */
static Await *
await_new (GTask         *task,
           GabTaskLocals *locals,
           GabLoopQueue  *dispatch_queue,
           gboolean       want_variant)
{
  Await *self = g_atomic_rc_box_new0 (Await);
  GCancellable *cancellable = g_task_get_cancellable (task);

  self->start_item.run = start_item_run;
  self->cancel_item.run = cancel_item_run;
  self->watch.kind = &await_watch_kind;
  self->task = task;
  self->locals = locals;
  self->dispatch_queue = dispatch_queue;
  self->want_variant = want_variant;
  self->cancellable = cancellable != NULL ? g_object_ref (cancellable) : g_cancellable_new ();
  if (cancellable != NULL && locals != NULL)
    /* The handler's reference is dropped when it is disconnected. */
    self->cancel_id = g_cancellable_connect (cancellable, G_CALLBACK (on_cancelled),
                                             g_atomic_rc_box_acquire (self),
                                             (GDestroyNotify) await_unref);
  return self;
}

/* GIL held. Schedules @awaitable now if @locals' loop runs on this thread,
 * else through the loop's queue. */
static void
await_launch (Await    *self,
              PyObject *awaitable)
{
  PyObject *running_loop = gab_py_running_loop ();
  gboolean here = running_loop != NULL
                  && running_loop == gab_loop_queue_get_loop (self->locals->queue);

  Py_XDECREF (running_loop);
  if (here)
    {
      await_start (self, awaitable);
      await_unref (self);
    }
  else
    {
      /* The awaitable reference travels with the item to the loop. */
      self->awaitable = Py_NewRef (awaitable);
      if (!gab_loop_queue_try_push (self->locals->queue, &self->start_item))
        /* The loop is closed: fail now, we hold the GIL. */
        start_item_run (&self->start_item, FALSE);
    }
}

void
gab_into_future_start (GabTaskLocals *locals,
                       PyObject      *awaitable,
                       GTask         *task,
                       GabLoopQueue  *dispatch_queue,
                       gboolean       want_variant)
{
  Await *self;

  /* Started by the caller's own unit in most cases, not always: a call
   * queued from C without the GIL reaches here first. */
  if (!gab_lifecycle_start (&into_future_subsystem))
    {
      GError *error = NULL;

      gab_error_set_from_python (&error);
      gab_into_future_return (task, dispatch_queue, want_variant, NULL, NULL, error);
      return;
    }
  self = await_new (task, gab_task_locals_ref (locals), dispatch_queue, want_variant);
  await_start (self, awaitable);
  await_unref (self);
}

void
gab_into_future_return (GTask        *task,
                        GabLoopQueue *dispatch_queue,
                        gboolean      want_variant,
                        PyObject     *value,
                        GVariant     *variant,
                        GError       *error)
{
  Await *self = await_new (task, NULL, dispatch_queue, want_variant);

  await_return (self, value, variant, error, FALSE);
  await_unref (self);
}

static void
into_future_close_all (void)
{
  while (running.head != NULL)
    {
      /* Our own reference: the calls below run Python, which may switch
       * threads, and a loop on another thread may drop the last one. */
      Await *self = g_atomic_rc_box_acquire (running.head->data);
      PyObject *loop = gab_loop_queue_get_loop (self->locals->queue);
      PyObject *is_running = NULL, *ret = NULL;

      Py_XINCREF (loop);   /* borrowed from the queue: keep it meanwhile */
      await_settle (self);
      await_return (self, NULL, NULL,
                    g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CLOSED,
                                         "The gasyncbridge runtime was shut down"),
                    FALSE);
      if (loop != NULL)
        is_running = PyObject_CallMethodNoArgs (loop, gab_py.s_is_running);
      /* asyncio is not thread-safe: a running loop cancels on its thread. */
      if (is_running == Py_True)
        {
          PyObject *cancel = PyObject_GetAttr (self->py_task, gab_py.s_cancel);

          if (cancel != NULL)
            ret = PyObject_CallMethodOneArg (loop, gab_py.s_call_soon_threadsafe, cancel);
          Py_XDECREF (cancel);
        }
      else if (is_running != NULL)
        ret = PyObject_CallMethodNoArgs (self->py_task, gab_py.s_cancel);
      Py_XDECREF (is_running);
      Py_XDECREF (ret);
      Py_XDECREF (loop);
      PyErr_Clear ();
      /* The cancel holds the task as long as it needs it; our reference
       * could only make a cycle with a driver's traceback (see
       * await_complete). */
      Py_CLEAR (self->py_task);
      await_unref (self);
    }
}

/* Python awaits under way: failed at shutdown. */
static GabSubsystem into_future_subsystem = {
  .name = "into-future",
  .start = into_future_start,
  .closing_gil = into_future_close_all,
};

/**
 * gab_into_future_async:
 * @awaitable: a coroutine, `asyncio.Future`, task, or any object with
 *   `__await__`
 * @cancellable: (nullable): cancels the Python task
 * @callback: (scope async): called when the awaitable is done
 * @user_data: (closure): data for @callback
 *
 * Awaits @awaitable from C. It runs as a task of the current task locals'
 * loop, in their context (see gab_task_locals_get_current()). @callback runs
 * in the thread-default #GMainContext of the calling thread; on a thread
 * that runs an asyncio loop and has no thread-default context of its own,
 * it runs from that loop. Cancelling @cancellable cancels the task; the
 * operation then fails with %G_IO_ERROR_CANCELLED once the task has
 * stopped. A Python exception becomes a #GError (see gab-error.h). Needs
 * the GIL.
 *
 * Since: 0.1
 */
void
gab_into_future_async (PyObject            *awaitable,
                       GCancellable        *cancellable,
                       GAsyncReadyCallback  callback,
                       gpointer             user_data)
{
  g_autoptr(GError) error = NULL;
  GabLoopQueue *dispatch_queue;
  GabTaskLocals *locals;
  GTask *task;
  PyTypeObject *type;

  g_return_if_fail (awaitable != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));
  g_return_if_fail (GAB_GIL_HELD ());

  task = gab_caller_task_new (NULL, cancellable, callback, user_data,
                              GAB_TAG (gab_into_future_async), &dispatch_queue);
  g_task_set_name (task, "gab_into_future_async");

  if (!gab_error_start_subsystem (&into_future_subsystem, &error) || !gab_runtime_ensure (&error))
    goto fail;
  type = Py_TYPE (awaitable);
  if (!gab_py_is_awaitable (awaitable))
    {
      g_set_error (&error, GAB_ERROR, GAB_ERROR_NOT_AWAITABLE,
                   "An object of type '%s' is not awaitable", type->tp_name);
      goto fail;
    }
  locals = gab_task_locals_resolve (&error);
  if (locals == NULL)
    goto fail;
  await_launch (await_new (task, locals, dispatch_queue, FALSE), awaitable);
  return;

fail:
  /* Reported through the callback, never from inside this call. */
  close_unused (awaitable);
  gab_into_future_return (task, dispatch_queue, FALSE, NULL, NULL,
                          g_steal_pointer (&error));
}

/**
 * gab_into_future_finish:
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * The result of gab_into_future_async(). Needs the GIL.
 *
 * Returns: (transfer full) (nullable): the awaitable's result, or %NULL
 *   with @error set
 *
 * Since: 0.1
 */
PyObject *
gab_into_future_finish (GAsyncResult  *result,
                        GError       **error)
{
  GabPyRef *box;
  PyObject *value;

  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == gab_into_future_async, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_return_val_if_fail (GAB_GIL_HELD (), NULL);

  box = g_task_propagate_pointer (G_TASK (result), error);
  if (box == NULL)
    return NULL;
  value = Py_NewRef (gab_py_ref_get (box));
  gab_py_ref_unref (box);
  return value;
}
