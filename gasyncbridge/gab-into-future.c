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
 * Cancelling the GCancellable cancels the Python task, and the GTask
 * reports G_IO_ERROR_CANCELLED only once the task has really stopped.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gab-private.h"

typedef struct _Await Await;
struct _Await
{
  GabLoopItem     start_item;
  GabLoopItem     cancel_item;
  GabLoopItem     dispatch_item;
  gint            ref_count;
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
  PyObject       *handle;            /* borrowed: our done callback on it */
  gboolean        own_task;          /* we made py_task (ensure_future) */
  gboolean        completed;
  GList           link;              /* in `running` */
  GabLoopWatch    watch;             /* on the loop's queue while running */
};

typedef struct
{
  PyObject_HEAD
  Await *await;
} AwaitHandle;

static PyTypeObject AwaitHandle_Type;

/* GIL: awaits started and not yet completed, for shutdown. */
static GQueue running = G_QUEUE_INIT;

static Await *
await_ref (Await *self)
{
  g_atomic_int_inc (&self->ref_count);
  return self;
}

static void
await_unref (Await *self)
{
  if (!g_atomic_int_dec_and_test (&self->ref_count))
    return;
  g_assert (self->task == NULL);
  gab_py_decref (self->awaitable);
  gab_py_decref (self->py_task);
  g_clear_pointer (&self->locals, gab_task_locals_unref);
  g_clear_pointer (&self->dispatch_queue, gab_loop_queue_unref);
  g_clear_object (&self->cancellable);
  g_free (self);
}

/* GIL. Closes a coroutine that will never run, so Python does not warn
 * that it was never awaited. */
static void
close_unused (PyObject *awaitable)
{
  if (awaitable != NULL && PyCoro_CheckExact (awaitable))
    {
      PyObject *ret = PyObject_CallMethodNoArgs (awaitable, gab_py.s_close);

      Py_XDECREF (ret);
      PyErr_Clear ();
    }
}

static void
dispatch_item_run (GabLoopItem *item,
                   gboolean     alive)
{
  Await *self = G_STRUCT_MEMBER_P (item, -G_STRUCT_OFFSET (Await, dispatch_item));

  if (alive)
    gab_loop_queue_dispatch (self->dispatch_queue);
  await_unref (self);
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
    {
      PyObject *loop = from_loop ? gab_py_running_loop () : NULL;

      if (loop != NULL && loop == gab_loop_queue_get_loop (self->dispatch_queue))
        gab_loop_queue_dispatch (self->dispatch_queue);
      else
        gab_loop_queue_push (self->dispatch_queue, &await_ref (self)->dispatch_item);
      Py_XDECREF (loop);
    }
}

/* Loop thread, GIL: the Python task is done. */
static void
await_complete (Await    *self,
                PyObject *future)
{
  PyObject *cancelled, *exception = NULL, *value = NULL;
  GError *error = NULL;
  GVariant *variant = NULL;

  if (self->completed)
    return;
  self->completed = TRUE;
  g_queue_unlink (&running, &self->link);
  gab_loop_queue_unwatch (&self->watch);
  gab_loop_queue_await_finished (self->locals->queue);

  cancelled = PyObject_CallMethodNoArgs (future, gab_py.s_cancelled);
  if (cancelled == Py_True)
    error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                 "The Python awaitable was cancelled");
  else if (cancelled != NULL)
    {
      exception = PyObject_CallMethodNoArgs (future, gab_py.s_exception);
      if (exception != NULL && exception != Py_None)
        error = gab_error_from_exception (exception);
      else if (exception != NULL)
        {
          value = PyObject_CallMethodNoArgs (future, gab_py.s_result);
          if (value != NULL && self->want_variant && value != Py_None)
            variant = gab_variant_from_python (value, NULL, &error);
        }
    }
  if (error == NULL && value == NULL)
    gab_error_set_from_python (&error);
  await_return (self, value, variant, error, TRUE);
  Py_XDECREF (cancelled);
  Py_XDECREF (exception);
  Py_XDECREF (value);
  PyErr_Clear ();
  gab_loop_queue_spin_after_await (self->locals->queue);
}

static PyObject *
await_handle_call (PyObject *self,
                   PyObject *args,
                   PyObject *kwargs)
{
  if (PyTuple_GET_SIZE (args) == 1)
    await_complete (((AwaitHandle *) self)->await, PyTuple_GET_ITEM (args, 0));
  Py_RETURN_NONE;
}

static void
await_handle_dealloc (PyObject *self)
{
  await_unref (((AwaitHandle *) self)->await);
  Py_TYPE (self)->tp_free (self);
}

static PyTypeObject AwaitHandle_Type = {
  PyVarObject_HEAD_INIT (NULL, 0)
  .tp_name = "gasyncbridge._Await",
  .tp_basicsize = sizeof (AwaitHandle),
  .tp_flags = Py_TPFLAGS_DEFAULT,
  .tp_call = await_handle_call,
  .tp_dealloc = await_handle_dealloc,
  .tp_doc = "Completes a GTask when the Python task it awaits is done.",
};

gboolean
gab_into_future_types_init (void)
{
  return PyType_Ready (&AwaitHandle_Type) == 0;
}

/* Loop thread, GIL: schedule the awaitable on the loop. */
static void
await_start (Await    *self,
             PyObject *awaitable)
{
  PyObject *loop = gab_loop_queue_get_loop (self->locals->queue);
  PyObject *py_task = NULL, *ret;
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

#if PY_VERSION_HEX >= 0x030B0000
  if (PyCoro_CheckExact (awaitable))
    {
      /* loop.create_task(coro, context=copy): the task runs in a copy of
       * the caller's context, as below, without ensure_future's Python
       * frames. A loop whose create_task() takes no context gets the
       * general way. */
      PyObject *copy = PyContext_Copy (self->locals->context);

      if (copy != NULL)
        {
          PyObject *args[] = { loop, awaitable, copy };

          py_task = PyObject_VectorcallMethod (gab_py.s_create_task, args, 2,
                                               gab_py.kw_context);
          Py_DECREF (copy);
          if (py_task == NULL && PyErr_ExceptionMatches (PyExc_TypeError))
            PyErr_Clear ();
        }
    }
  if (py_task == NULL && !PyErr_Occurred ())
#endif
  {
    /* context.run(asyncio.ensure_future, awaitable, loop=loop): the task
     * starts in (a copy of) the caller's context. */
    PyObject *args[] = { self->locals->context, gab_py.ensure_future, awaitable, loop };

    py_task = PyObject_VectorcallMethod (gab_py.s_run, args, 3, gab_py.kw_loop);
  }
  if (py_task == NULL)
    {
      gab_error_set_from_python (&error);
      close_unused (awaitable);
      await_return (self, NULL, NULL, error, FALSE);
      return;
    }
  self->py_task = py_task;
  self->own_task = py_task != awaitable;

  handle = PyObject_New (AwaitHandle, &AwaitHandle_Type);
  if (handle == NULL)
    goto fail;
  handle->await = await_ref (self);
  /* Borrowed: alive while it is on the task, which is while we hold it. */
  self->handle = (PyObject *) handle;
  ret = PyObject_CallMethodOneArg (py_task, gab_py.s_add_done_callback,
                                   (PyObject *) handle);
  Py_DECREF (handle);
  if (ret == NULL)
    goto fail;
  Py_DECREF (ret);
  self->link.data = self;
  g_queue_push_tail_link (&running, &self->link);
  gab_loop_queue_await_started (self->locals->queue);
  gab_loop_queue_watch (self->locals->queue, &self->watch);
  return;

fail:
  gab_error_set_from_python (&error);
  await_return (self, NULL, NULL, error, FALSE);
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
  ret = PyObject_CallMethodOneArg (task, gab_py.s_remove_done_callback, self->handle);
  Py_XDECREF (ret);
  if (self->own_task)
    PyObject_SetAttrString (task, "_log_destroy_pending", Py_False);
  PyErr_Clear ();
  Py_DECREF (task);
}

/* The loop was closed with the task still pending: it will never finish,
 * so the C caller hears so now. */
static void
await_watch_closed (GabLoopWatch *watch)
{
  Await *self = await_ref (G_STRUCT_MEMBER_P (watch, -G_STRUCT_OFFSET (Await, watch)));

  if (!self->completed)
    {
      self->completed = TRUE;
      g_queue_unlink (&running, &self->link);
      gab_loop_queue_await_finished (self->locals->queue);
      await_return (self, NULL, NULL,
                    g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CLOSED,
                                         "The asyncio event loop was closed while "
                                         "the Python awaitable was pending"),
                    FALSE);
      await_let_go_of_task (self);
    }
  await_unref (self);
}

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
      PyObject *ret = PyObject_CallMethodNoArgs (self->py_task, gab_py.s_cancel);

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
    gab_loop_queue_push (self->locals->queue, &await_ref (self)->cancel_item);
}

/* GTask for the caller, in the caller's thread-default context (see the
 * file comment for threads that run asyncio). */
GTask *
gab_task_new_for_caller (GCancellable         *cancellable,
                     GAsyncReadyCallback   callback,
                     gpointer              user_data,
                     gpointer              source_tag,
                     GabLoopQueue        **dispatch_queue)
{
  GMainContext *thread_default = g_main_context_get_thread_default ();
  GTask *task;

  *dispatch_queue = NULL;
  if (Py_IsInitialized () && PyGILState_Check () && gab_python_ensure ())
    {
      PyObject *loop = gab_py_running_loop ();
      GabLoopQueue *queue = loop != NULL ? gab_loop_queue_get (loop) : NULL;

      Py_XDECREF (loop);
      PyErr_Clear ();
      /* No context of the thread's own, or the private one we pushed
       * ourselves (GTask pushes it while a callback of ours runs). */
      if (queue != NULL
          && (thread_default == NULL
              || thread_default == gab_loop_queue_get_dispatch_context (queue)))
        {
          GMainContext *ctx = gab_loop_queue_get_dispatch_context (queue);

          *dispatch_queue = gab_loop_queue_ref (queue);
          g_main_context_push_thread_default (ctx);
          task = g_task_new (NULL, cancellable, callback, user_data);
          g_main_context_pop_thread_default (ctx);
          g_task_set_source_tag (task, source_tag);
          return task;
        }
    }
  task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, source_tag);
  return task;
}

/* Creates the Await for @task; @task and @locals are taken. */
static Await *
await_new (GTask         *task,
           GabTaskLocals *locals,
           GabLoopQueue  *dispatch_queue,
           gboolean       want_variant)
{
  Await *self = g_new0 (Await, 1);
  GCancellable *cancellable = g_task_get_cancellable (task);

  self->ref_count = 1;
  self->start_item.run = start_item_run;
  self->cancel_item.run = cancel_item_run;
  self->dispatch_item.run = dispatch_item_run;
  self->watch.closed = await_watch_closed;
  self->task = task;
  self->locals = locals;
  self->dispatch_queue = dispatch_queue;
  self->want_variant = want_variant;
  self->cancellable = cancellable != NULL ? g_object_ref (cancellable) : g_cancellable_new ();
  if (cancellable != NULL && locals != NULL)
    /* The handler's reference is dropped when it is disconnected. */
    self->cancel_id = g_cancellable_connect (cancellable, G_CALLBACK (on_cancelled),
                                             await_ref (self),
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
  Await *self = await_new (task, gab_task_locals_ref (locals), dispatch_queue,
                           want_variant);

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

void
gab_into_future_close_all (void)
{
  GList *l;

  while ((l = g_queue_pop_head_link (&running)) != NULL)
    {
      /* Our own reference: the calls below run Python, which may switch
       * threads, and a loop on another thread may drop the last one. */
      Await *self = await_ref (l->data);
      PyObject *loop = gab_loop_queue_get_loop (self->locals->queue);
      PyObject *is_running = NULL, *ret = NULL;

      Py_XINCREF (loop);   /* borrowed from the queue: keep it meanwhile */
      self->completed = TRUE;
      gab_loop_queue_unwatch (&self->watch);
      gab_loop_queue_await_finished (self->locals->queue);
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
      await_unref (self);
    }
}

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
  g_return_if_fail (Py_IsInitialized () && PyGILState_Check ());

  task = gab_task_new_for_caller (cancellable, callback, user_data,
                              gab_into_future_async, &dispatch_queue);
  g_task_set_name (task, "gab_into_future_async");

  if (!gab_python_ensure_error (&error) || !gab_runtime_ensure (&error))
    goto fail;
  type = Py_TYPE (awaitable);
  if (type->tp_as_async == NULL || type->tp_as_async->am_await == NULL)
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
