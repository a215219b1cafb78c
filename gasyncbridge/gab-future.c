/* gab-future.c: a C future (a GIO-style async operation) as an asyncio
 * future — Python awaits C.
 *
 * The life of one operation (an Op):
 *
 *   loop thread, GIL    gab_future_into_py(): create the asyncio future, a
 *                        weak reference to it and a done callback, queue
 *                        the start for the runtime thread.
 *   runtime thread      start() runs, without the GIL, with the caller's
 *                        task locals current. Its callback stores the
 *                        result and pushes the Op to the loop's queue.
 *   loop thread, GIL    the queue drains: finish() turns the result into
 *                        the future's result or exception.
 *
 * The Op holds the future only weakly: a future that Python drops while
 * pending is collected, and its weakref callback cancels the operation,
 * as cancelling the future does. Cancellation always reaches the
 * GCancellable on the runtime thread, where GIO operations live.
 *
 * References of an Op: one for the runtime side (from start until its
 * callback has been handed to the loop), one held by the Python handle
 * object (the done callback and the weakref callback), and one per trip
 * through a queue. user_data is freed with the GIL once nothing can use it.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gab-private.h"

typedef enum
{
  OP_QUEUED,      /* start not yet run */
  OP_STARTED,     /* waiting for the GIO callback */
  OP_CLOSED,      /* shutdown failed it; still waiting for the callback */
  OP_DONE,        /* callback arrived */
} OpState;

typedef struct _Op Op;
struct _Op
{
  GabRuntimeItem  start_item;
  GabRuntimeItem  cancel_item;
  GabLoopItem     done_item;
  GabLoopItem     free_item;
  gint            ref_count;
  gint            cancel_requested;  /* atomic */

  GabStartFunc    start;
  GabFinishFunc   finish;
  gpointer        user_data;
  GDestroyNotify  user_data_free;

  GCancellable   *cancellable;
  GabTaskLocals  *locals;            /* the caller's loop and context */
  PyObject       *future_ref;        /* GIL: weakref to the future */
  PyObject       *handle;            /* GIL: borrowed; the weakref keeps it */
  gboolean        counted;           /* in the queue's in-flight count */

  /* Runtime thread until handed over through the loop queue. */
  OpState         state;
  GObject        *source;
  GAsyncResult   *result;
  gboolean        closed;            /* fail with G_IO_ERROR_CLOSED */
  GList           link;              /* in `pending`, runtime thread only */
};

/* Runtime thread only: operations started and not yet called back. */
static GQueue pending = G_QUEUE_INIT;
static guint  closed_waiting;        /* closed, callback still to come */

typedef struct
{
  PyObject_HEAD
  Op *op;
} OpHandle;

static PyTypeObject OpHandle_Type;

static Op *
op_ref (Op *op)
{
  g_atomic_int_inc (&op->ref_count);
  return op;
}

static void
op_free_item_run (GabLoopItem *item,
                  gboolean     alive)
{
  Op *op = G_STRUCT_MEMBER_P (item, -G_STRUCT_OFFSET (Op, free_item));

  if (op->user_data_free != NULL)
    op->user_data_free (op->user_data);
  g_free (op);
}

static void
op_unref (Op *op)
{
  if (!g_atomic_int_dec_and_test (&op->ref_count))
    return;
  g_clear_object (&op->cancellable);
  g_clear_object (&op->source);
  g_clear_object (&op->result);
  g_clear_pointer (&op->locals, gab_task_locals_unref);
  /* user_data_free is promised the GIL; the weakref is a Python object. */
  if (PyGILState_Check ())
    {
      Py_CLEAR (op->future_ref);
      op_free_item_run (&op->free_item, TRUE);
    }
  else
    {
      g_assert (op->future_ref == NULL);
      op->free_item.run = op_free_item_run;
      gab_orphan_push (&op->free_item);
    }
}

/* ---- runtime thread -------------------------------------------------- */

static void
op_ready (GObject      *source,
          GAsyncResult *result,
          gpointer      data)
{
  Op *op = data;

  if (op->state == OP_CLOSED)
    {
      /* Shutdown already told Python; this is the cancelled call returning. */
      if (closed_waiting > 0)
        closed_waiting--;
      op->state = OP_DONE;
      op_unref (op);
      return;
    }
  if (op->state != OP_STARTED)
    {
      g_critical ("gasyncbridge: the callback of an operation was called twice");
      return;
    }
  g_queue_unlink (&pending, &op->link);
  op->state = OP_DONE;
  op->source = source != NULL ? g_object_ref (source) : NULL;
  op->result = g_object_ref (result);
  /* The runtime's reference travels with the item to the loop thread. */
  gab_loop_queue_push (op->locals->queue, &op->done_item);
}

static void
op_start_run (GabRuntimeItem *item)
{
  Op *op = G_STRUCT_MEMBER_P (item, -G_STRUCT_OFFSET (Op, start_item));
  GabTaskLocals *prev;

  op->state = OP_STARTED;
  op->link.data = op;
  g_queue_push_tail_link (&pending, &op->link);
  /* Once per thread; may wait for the GIL, so the op is listed first. */
  gab_python_pin_runtime_thread ();
  prev = gab_task_locals_swap (op->locals);
  op->start (op->cancellable, op_ready, op, op->user_data);
  gab_task_locals_swap (prev);
}

static void
op_cancel_run (GabRuntimeItem *item)
{
  Op *op = G_STRUCT_MEMBER_P (item, -G_STRUCT_OFFSET (Op, cancel_item));

  /* On the runtime thread, so GIO's cancelled handlers run here. */
  g_cancellable_cancel (op->cancellable);
  op_unref (op);
}

void
gab_future_close_all (void)
{
  GList *l;

  while ((l = g_queue_pop_head_link (&pending)) != NULL)
    {
      Op *op = l->data;

      op->state = OP_CLOSED;
      op->closed = TRUE;
      closed_waiting++;
      g_cancellable_cancel (op->cancellable);
      /* A new reference for the trip; the runtime's waits for the callback. */
      gab_loop_queue_push (op->locals->queue, &op_ref (op)->done_item);
    }
}

void
gab_future_forget_closed (void)
{
  /* The grace period is over: calls that never came back never will. */
  closed_waiting = 0;
}

gboolean
gab_future_all_idle (void)
{
  return pending.length == 0 && closed_waiting == 0;
}

/* ---- fork ------------------------------------------------------------ */

static void
op_fail_forked (Op *op)
{
  PyObject *future = op->future_ref != NULL ? PyWeakref_GetObject (op->future_ref) : NULL;
  PyObject *exc, *ret = NULL;

  if (future == NULL || future == Py_None || gab_py_future_done (future) != 0)
    {
      PyErr_Clear ();
      return;
    }
  exc = PyObject_CallFunction (PyExc_RuntimeError, "s",
                               "gasyncbridge: the process forked while this "
                               "operation was pending; it belongs to the "
                               "parent's runtime and will never complete here");
  if (exc != NULL)
    ret = PyObject_CallMethodOneArg (future, gab_py.s_set_exception, exc);
  Py_XDECREF (exc);
  Py_XDECREF (ret);
  PyErr_Clear ();
}

void
gab_future_fail_after_fork (void)
{
  GabRuntimeItem *items = gab_runtime_take_forked_items ();
  GList *l;

  /* Single-threaded child with the GIL: the runtime's lists are ours now.
   * The operations themselves are left as they are (they may reference
   * state of threads that no longer exist); only their futures learn. */
  while ((l = g_queue_pop_head_link (&pending)) != NULL)
    op_fail_forked (l->data);
  for (; items != NULL; items = items->next)
    if (items->run == op_start_run)
      op_fail_forked (G_STRUCT_MEMBER_P (items, -G_STRUCT_OFFSET (Op, start_item)));
  closed_waiting = 0;
}

/* ---- loop thread ----------------------------------------------------- */

static void
op_request_cancel (Op *op)
{
  if (!g_atomic_int_compare_and_exchange (&op->cancel_requested, FALSE, TRUE))
    return;
  if (!gab_runtime_push (&op_ref (op)->cancel_item))
    {
      /* Shutting down: the runtime thread cancels every pending operation
       * itself, on its own thread. Once it is gone, nothing runs there and
       * cancelling here is all there is. */
      if (!gab_runtime_is_shutting_down ())
        g_cancellable_cancel (op->cancellable);
      op_unref (op);
    }
}

/* Completes @future with @exception (borrowed) — never leaves it pending.
 * asyncio refuses some exceptions (StopIteration, which would end the
 * awaiting coroutine as if it returned); those arrive wrapped in a
 * RuntimeError whose __cause__ is the original, as PEP 479 does. */
static void
set_future_exception (PyObject *future,
                      PyObject *exception)
{
  PyObject *ret = NULL, *wrapper;

  if (exception != NULL)
    ret = PyObject_CallMethodOneArg (future, gab_py.s_set_exception, exception);
  if (ret != NULL)
    {
      Py_DECREF (ret);
      return;
    }
  PyErr_Clear ();
  wrapper = PyObject_CallFunction (PyExc_RuntimeError, "s",
                                   exception != NULL
                                   && PyErr_GivenExceptionMatches (exception, PyExc_StopIteration)
                                   ? "gasyncbridge: the operation raised StopIteration"
                                   : "gasyncbridge: the operation's outcome could not "
                                     "be converted to an exception");
  if (wrapper != NULL && exception != NULL)
    PyException_SetCause (wrapper, Py_NewRef (exception));
  if (wrapper != NULL)
    ret = PyObject_CallMethodOneArg (future, gab_py.s_set_exception, wrapper);
  Py_XDECREF (wrapper);
  if (ret == NULL)
    {
      /* Last resort: a cancelled future is still a finished one. */
      PyErr_Clear ();
      ret = PyObject_CallMethodNoArgs (future, gab_py.s_cancel);
    }
  Py_XDECREF (ret);
  PyErr_Clear ();
}

static void
set_future_error (PyObject     *future,
                  const GError *error)
{
  PyObject *exception = gab_error_new_python_exception (error);

  PyErr_Clear ();
  set_future_exception (future, exception);
  Py_XDECREF (exception);
}

static void
op_done_run (GabLoopItem *item,
             gboolean     alive)
{
  Op *op = G_STRUCT_MEMBER_P (item, -G_STRUCT_OFFSET (Op, done_item));
  PyObject *future = NULL;

  if (alive && op->future_ref != NULL)
    {
      future = PyWeakref_GetObject (op->future_ref);
      future = future != Py_None ? Py_NewRef (future) : NULL;
    }
  /* A future already cancelled, or collected, or a loop that is gone:
   * the result is dropped, quietly. */
  if (op->counted)
    gab_loop_queue_op_finished (op->locals->queue);
  if (future != NULL && gab_py_future_done (future) == 0)
    {
      PyObject *ret = NULL;

      /* Our done callback has nothing left to do once we complete the
       * future: take it off, which is cheaper than the loop calling it. */
      ret = PyObject_CallMethodOneArg (future, gab_py.s_remove_done_callback,
                                       op->handle);
      Py_XDECREF (ret);
      ret = NULL;
      PyErr_Clear ();

      if (op->closed)
        {
          g_autoptr(GError) error =
            g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CLOSED,
                                 "The gasyncbridge runtime was shut down");
          set_future_error (future, error);
        }
      else
        {
          g_autoptr(GError) error = NULL;
          PyObject *value = op->finish (op->source, op->result, op->user_data, &error);

          if (value != NULL)
            {
              ret = PyObject_CallMethodOneArg (future, gab_py.s_set_result, value);
              Py_DECREF (value);
            }
          else if (error != NULL)
            {
              PyErr_Clear ();
              set_future_error (future, error);
            }
          else
            {
              /* finish raised a Python exception: the future raises that
               * very object. */
              PyObject *type, *exc, *tb;

              if (!PyErr_Occurred ())
                PyErr_SetString (PyExc_SystemError,
                                 "gasyncbridge: a GabFinishFunc returned NULL "
                                 "without setting an error");
              PyErr_Fetch (&type, &exc, &tb);
              PyErr_NormalizeException (&type, &exc, &tb);
              if (exc != NULL && tb != NULL)
                PyException_SetTraceback (exc, tb);
              set_future_exception (future, exc);
              Py_XDECREF (type);
              Py_XDECREF (exc);
              Py_XDECREF (tb);
            }
        }
      Py_XDECREF (ret);
    }
  if (PyErr_Occurred ())
    PyErr_WriteUnraisable (future != NULL ? future : Py_None);
  Py_XDECREF (future);
  /* The result has been used: the weakref (and with it, perhaps, the
   * handle) can go now. */
  Py_CLEAR (op->future_ref);
  g_clear_object (&op->result);
  g_clear_object (&op->source);
  op_unref (op);
}

static PyObject *
op_handle_call (PyObject *self,
                PyObject *args,
                PyObject *kwargs)
{
  Op *op = ((OpHandle *) self)->op;
  PyObject *arg;

  if (PyTuple_GET_SIZE (args) != 1)
    Py_RETURN_NONE;
  arg = PyTuple_GET_ITEM (args, 0);
  if (PyWeakref_CheckRef (arg))
    /* The future was collected while pending: nobody wants the result. */
    op_request_cancel (op);
  else
    {
      PyObject *cancelled = PyObject_CallMethodNoArgs (arg, gab_py.s_cancelled);

      if (cancelled == NULL)
        return NULL;
      if (cancelled == Py_True)
        op_request_cancel (op);
      Py_DECREF (cancelled);
    }
  Py_RETURN_NONE;
}

static void
op_handle_dealloc (PyObject *self)
{
  op_unref (((OpHandle *) self)->op);
  Py_TYPE (self)->tp_free (self);
}

static PyTypeObject OpHandle_Type = {
  PyVarObject_HEAD_INIT (NULL, 0)
  .tp_name = "gasyncbridge._Operation",
  .tp_basicsize = sizeof (OpHandle),
  .tp_flags = Py_TPFLAGS_DEFAULT,
  .tp_call = op_handle_call,
  .tp_dealloc = op_handle_dealloc,
  .tp_doc = "Cancels a gasyncbridge operation when its future is cancelled or collected.",
};

gboolean
gab_future_types_init (void)
{
  return PyType_Ready (&OpHandle_Type) == 0;
}

/**
 * gab_future_into_py:
 * @start: starts the operation, on the runtime thread
 * @finish: turns its result into a Python value, on the loop thread
 * @user_data: (closure): data for @start and @finish
 * @user_data_free: (nullable): frees @user_data; called once, with the GIL,
 *   when neither function can run any more (also when this call fails)
 *
 * Makes an asyncio future of the running loop that completes with the
 * outcome of a GIO-style asynchronous operation: @start runs on the runtime
 * thread and starts it, passing the given callback along; @finish runs on
 * the loop thread with the GIL and returns the result (or %NULL and a
 * #GError, which becomes the mapped exception).
 *
 * Cancelling the future, or dropping it while pending, cancels the
 * operation's #GCancellable on the runtime thread. A result that arrives for
 * a future already cancelled or collected, or after its loop has gone, is
 * dropped quietly. Call with the GIL held, from code running on a loop.
 *
 * Returns: (transfer full) (nullable): an `asyncio.Future`, or %NULL with an
 *   exception set (RuntimeError when no loop is running)
 */
PyObject *
gab_future_into_py (GabStartFunc    start,
                    GabFinishFunc   finish,
                    gpointer        user_data,
                    GDestroyNotify  user_data_free)
{
  g_autoptr(GError) error = NULL;
  PyObject *loop = NULL, *future = NULL, *context = NULL, *ret;
  GabLoopQueue *queue;
  OpHandle *handle = NULL;
  Op *op;

  g_return_val_if_fail (GAB_GIL_HELD (), NULL);

  if (start == NULL || finish == NULL)
    {
      if (user_data_free != NULL)
        user_data_free (user_data);
      PyErr_SetString (PyExc_TypeError,
                       "gab_future_into_py: start and finish must not be NULL");
      return NULL;
    }

  op = g_new0 (Op, 1);
  op->ref_count = 1;     /* this function's, then the runtime side's */
  op->start_item.run = op_start_run;
  op->cancel_item.run = op_cancel_run;
  op->done_item.run = op_done_run;
  op->start = start;
  op->finish = finish;
  op->user_data = user_data;
  op->user_data_free = user_data_free;

  if (!gab_python_ensure ())
    goto fail;
  gab_orphans_flush ();

  loop = gab_py_running_loop ();
  if (loop == NULL)
    {
      PyErr_SetString (PyExc_RuntimeError,
                       "gasyncbridge: no running asyncio event loop in this "
                       "thread; await this from a coroutine or call it from a "
                       "callback of a running loop");
      goto fail;
    }
  if (gab_is_runtime_thread ())
    {
      /* Its start would be queued behind the very thread that waits. */
      PyErr_SetString (PyExc_RuntimeError,
                       "gasyncbridge: C operations cannot be awaited from an event "
                       "loop running on the gasyncbridge runtime thread (it would "
                       "wait for itself); run the loop on another thread");
      goto fail;
    }
  if (!gab_runtime_ensure (&error))
    {
      gab_error_to_python (error);
      goto fail;
    }
  queue = gab_loop_queue_get (loop);
  if (queue == NULL)
    goto fail;
  context = PyContext_CopyCurrent ();
  if (context == NULL)
    goto fail;
  op->locals = gab_task_locals_new_for_queue (queue, context);
  op->cancellable = g_cancellable_new ();

  future = PyObject_CallMethodNoArgs (loop, gab_py.s_create_future);
  if (future == NULL)
    goto fail;

  handle = PyObject_New (OpHandle, &OpHandle_Type);
  if (handle == NULL)
    goto fail;
  handle->op = op_ref (op);
  op->handle = (PyObject *) handle;
  op->future_ref = PyWeakref_NewRef (future, (PyObject *) handle);
  if (op->future_ref == NULL)
    goto fail;
  {
    /* future.add_done_callback(handle, context=context): reuse our copy
     * of the context rather than have asyncio make another. */
    PyObject *args[] = { future, (PyObject *) handle, context };

    ret = PyObject_VectorcallMethod (gab_py.s_add_done_callback, args, 2,
                                     gab_py.kw_context);
    if (ret == NULL)
      goto fail;
    Py_DECREF (ret);
  }
  Py_CLEAR (handle);
  Py_CLEAR (context);
  Py_CLEAR (loop);

  /* This function's reference becomes the runtime side's. */
  op->counted = TRUE;
  gab_loop_queue_op_started (queue);
  if (!gab_runtime_push (&op->start_item))
    {
      op->counted = FALSE;
      gab_loop_queue_op_finished (queue);
      g_autoptr(GError) closed =
        g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CLOSED,
                             "The gasyncbridge runtime was shut down");

      set_future_error (future, closed);
      Py_CLEAR (op->future_ref);
      op_unref (op);
      if (PyErr_Occurred ())
        Py_CLEAR (future);
    }
  else
    /* A caller that awaits one operation at a time: if it completes
     * quickly, the loop will find it without sleeping. */
    gab_loop_queue_spin (queue);
  return future;

fail:
  /* The handle, if made, holds a reference; ours goes here. */
  Py_XDECREF (handle);
  Py_XDECREF (future);
  Py_XDECREF (context);
  Py_XDECREF (loop);
  Py_CLEAR (op->future_ref);
  op_unref (op);
  return NULL;
}
