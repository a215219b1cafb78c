/* gab-future.c: a C future (a GIO-style async operation) as an asyncio
 * future — Python awaits C.
 *
 * The life of one operation (an Op):
 *
 *   loop thread, GIL    gab_future_into_py(): create the asyncio future and
 *                        a done callback, watch it on the loop's queue,
 *                        queue the start for the runtime thread.
 *   runtime thread      start() runs, without the GIL, with the caller's
 *                        task locals current. Its callback stores the
 *                        result and pushes the Op to the loop's queue.
 *   loop thread, GIL    the queue drains: finish() turns the result into
 *                        the future's result or exception.
 *
 * The Op holds its future strongly, as asyncio's own I/O does: a task
 * that awaits it stays alive even if nobody else references the task.
 * To notice a future that Python dropped, the loop queue sweeps its
 * watches every 0.1 s; a pending future that only the Op references and
 * that has no done callback but ours is abandoned: the operation is
 * cancelled and the future released. Closing the loop does the same to
 * all of them. Cancellation always reaches the GCancellable on the runtime
 * thread, where GIO operations live.
 *
 * With GAB_FUTURE_CANCEL_WAITS the future is an Operation
 * (python/_operation.py) whose cancel() calls the handle's
 * _request_cancel(): the Op remembers the message, the GCancellable is
 * cancelled, and the future stays pending until the operation reports
 * back; then it is cancelled, whatever GIO came to.
 *
 * References of an Op: one for the runtime side (from start until its
 * callback has been handed to the loop), one held by the Python handle
 * object (the future's done callback, which the Op holds too until it lets
 * go of the future), and one per trip through a queue. user_data is freed
 * with the GIL once nothing can use it.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gasyncbridge.h>
#include "gab-python.h"
#include "gab-runtime-private.h"
#include "gab-loop-queue.h"
#include "gab-loop-spin.h"
#include "gab-lifecycle.h"
#include "gab-task-locals-private.h"
#include "gab-asyncio-private.h"
#include "gab-python-sources.h"

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
  /* One at a time, in this order: queued for the start, then for the
   * result, then for the free. (The cancel may be queued meanwhile.) */
  union
  {
    GabRuntimeItem  start_item;
    GabLoopItem     done_item;
    GabLoopItem     free_item;
  };
  GabRuntimeItem  cancel_item;
  gatomicrefcount  ref_count;
  gint            cancel_requested;  /* atomic */

  GabStartFunc    start;
  GabFinishFunc   finish;
  gpointer        user_data;
  GDestroyNotify  user_data_free;

  GCancellable   *cancellable;
  GabTaskLocals  *locals;            /* the caller's loop and context */
  /* GIL, loop thread: until the result is delivered or nobody wants it. */
  PyObject       *future;            /* strong */
  PyObject       *handle;            /* strong; holds a reference of the Op */
  GabFutureFlags  flags;
  gboolean        cancel_asked;      /* Operation.cancel() returned True */
  PyObject       *cancel_msg;        /* strong: its msg, once cancel_asked */
  GabLoopWatch    watch;
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

/* GIL: gasyncbridge.gio.Operation, made once from python/_operation.py. */
static PyObject *operation_class;
static PyObject *s_handle;           /* "_gab_handle" */
static PyObject *s_cancel_now;       /* "_gab_cancel_now" */

static Op *
op_ref (Op *op)
{
  g_atomic_ref_count_inc (&op->ref_count);
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
  if (!g_atomic_ref_count_dec (&op->ref_count))
    return;
  g_clear_object (&op->cancellable);
  g_clear_object (&op->source);
  g_clear_object (&op->result);
  g_clear_pointer (&op->locals, gab_task_locals_unref);
  /* The handle holds a reference: both Python objects were let go. */
  g_assert (op->future == NULL && op->handle == NULL);
  /* user_data_free is promised the GIL. */
  if (PyGILState_Check ())
    op_free_item_run (&op->free_item, TRUE);
  else
    {
      op->free_item.run = op_free_item_run;
      gab_orphan_push (&op->free_item);
    }
}

/* GIL: let go of the Python side. The handle's reference of the Op may be
 * the last one: the caller holds its own or does not touch @op after. */
static void
op_release_python (Op *op)
{
  PyObject *handle = g_steal_pointer (&op->handle);

  gab_loop_watch_remove (&op->watch);
  if (op->future != NULL && (op->flags & GAB_FUTURE_CANCEL_WAITS))
    {
      PyObject *raised;

      /* From now on a cancel() of a future still pending (its loop
       * closed) happens at once; and the future no longer keeps the Op
       * alive through the handle. */
      raised = PyErr_GetRaisedException ();
      if (PyObject_SetAttr (op->future, s_handle, Py_None) < 0)
        PyErr_Clear ();
      PyErr_SetRaisedException (raised);
    }
  Py_CLEAR (op->cancel_msg);
  Py_CLEAR (op->future);
  Py_XDECREF (handle);
}

/* ---- runtime thread -------------------------------------------------- */

static void op_done_run (GabLoopItem *item,
                         gboolean     alive);

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
  /* The runtime's reference travels with the item to the loop thread;
   * the start item is done with, and the result takes its place. */
  op->done_item.run = op_done_run;
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

static void
future_close_all (void)
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
      op->done_item.run = op_done_run;
      gab_loop_queue_push (op->locals->queue, &op_ref (op)->done_item);
    }
}

static void
future_forget_closed (void)
{
  /* The grace period is over: calls that never came back never will. */
  closed_waiting = 0;
}

static gboolean
future_all_idle (void)
{
  return pending.length == 0 && closed_waiting == 0;
}

/* ---- fork ------------------------------------------------------------ */

static void
op_fail_forked (Op *op)
{
  PyObject *future = op->future;
  PyObject *exc, *ret = NULL;

  if (future == NULL || gab_py_future_done (future) != 0)
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

static void
future_fail_after_fork (void)
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
    ret = gab_asyncio_future_complete (future, gab_py.s_set_exception, exception, NULL);
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
    ret = gab_asyncio_future_complete (future, gab_py.s_set_exception, wrapper, NULL);
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
  PyObject *kept = NULL;

  /* A signal handler's exception (Ctrl-C) is kept for the loop; anything
   * else becomes the wrapper of set_future_exception(). */
  if (exception == NULL && PyErr_Occurred ()
      && !PyErr_ExceptionMatches (PyExc_Exception))
    kept = PyErr_GetRaisedException ();
  PyErr_Clear ();
  set_future_exception (future, exception);
  Py_XDECREF (exception);
  if (kept != NULL)
    PyErr_SetRaisedException (kept);
}

/* An Operation's Future.cancel() itself, at the end of a cancel that
 * waited. */
static void
op_cancel_future_now (PyObject *future,
                      PyObject *msg)
{
  PyObject *ret;

  /* One argument whatever it is (a tuple too). */
  ret = PyObject_CallMethodOneArg (future, s_cancel_now, msg != NULL ? msg : Py_None);
  if (ret == NULL)
    set_future_exception (future, NULL);
  Py_XDECREF (ret);
  PyErr_Clear ();
}

static void
op_done_run (GabLoopItem *item,
             gboolean     alive)
{
  Op *op = G_STRUCT_MEMBER_P (item, -G_STRUCT_OFFSET (Op, done_item));
  PyObject *future = NULL;

  if (alive && op->future != NULL)
    future = Py_NewRef (op->future);
  /* A future already cancelled, or abandoned, or a loop that is gone:
   * the result is dropped, quietly. */
  if (op->counted)
    gab_loop_spin_end (gab_loop_spin_get (op->locals->queue), FALSE);
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

      if (op->cancel_asked)
        /* cancel() said True: cancelled it is, whatever GIO came to. */
        op_cancel_future_now (future, op->cancel_msg);
      else if (op->closed)
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
              ret = gab_asyncio_future_complete (future, gab_py.s_set_result, value,
                                            gab_loop_queue_get_loop (op->locals->queue));
              Py_DECREF (value);
            }
          else if (error != NULL
                   && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED)
                   && (op->flags & GAB_FUTURE_CANCEL_WAITS))
            {
              /* Cancelled without our cancel() (the future was dropped,
               * the runtime shut down): a cancel all the same. */
              PyErr_Clear ();
              op_cancel_future_now (future, NULL);
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
              PyObject *exc;

              if (!PyErr_Occurred ())
                PyErr_SetString (PyExc_SystemError,
                                 "gasyncbridge: a GabFinishFunc returned NULL "
                                 "without setting an error");
              exc = PyErr_GetRaisedException ();
              set_future_exception (future, exc);
              Py_XDECREF (exc);
            }
        }
      Py_XDECREF (ret);
    }
  /* Ctrl-C landing here reaches whoever runs the loop; anything else has
   * nobody to go to. */
  if (PyErr_Occurred ()
      && !gab_asyncio_interrupt_to_loop (alive ? gab_loop_queue_get_loop (op->locals->queue) : NULL))
    PyErr_WriteUnraisable (future != NULL ? future : Py_None);
  Py_XDECREF (future);
  /* The result has been used; the item's reference keeps @op meanwhile. */
  op_release_python (op);
  g_clear_object (&op->result);
  g_clear_object (&op->source);
  op_unref (op);
}

/* The future's done callback: it runs when somebody else finished the
 * future, which means cancelled it (we take the callback off before we
 * complete the future ourselves). */
static PyObject *
op_handle_call (PyObject *self,
                PyObject *args,
                PyObject *kwargs)
{
  Op *op = ((OpHandle *) self)->op;
  PyObject *cancelled;

  if (PyTuple_GET_SIZE (args) != 1)
    Py_RETURN_NONE;
  cancelled = PyObject_CallMethodNoArgs (PyTuple_GET_ITEM (args, 0), gab_py.s_cancelled);
  if (cancelled == NULL)
    return NULL;
  if (cancelled == Py_True)
    op_request_cancel (op);
  Py_DECREF (cancelled);
  Py_RETURN_NONE;
}

/* Operation.cancel() (GAB_FUTURE_CANCEL_WAITS): ask GIO to stop and keep
 * the future pending until it reports back. False: the Op has let go of
 * the future (its loop closed), so the caller cancels it at once. */
static PyObject *
op_handle_request_cancel (PyObject *self,
                          PyObject *msg)
{
  Op *op = ((OpHandle *) self)->op;

  if (op->future == NULL)
    Py_RETURN_FALSE;
  if (!op->cancel_asked)
    {
      op->cancel_asked = TRUE;
      op->cancel_msg = Py_NewRef (msg);
      op_request_cancel (op);
    }
  Py_RETURN_TRUE;
}

static PyMethodDef op_handle_methods[] = {
  { "_request_cancel", op_handle_request_cancel, METH_O, NULL },
  { NULL }
};

/* ---- watched by the loop queue ---------------------------------------- */

/* No Python here: is the Op the only holder of its future? (An attribute
 * of the future may hold the handle; that does not count.) */
static gboolean
op_watch_candidate (GabLoopWatch *watch)
{
  Op *op = G_STRUCT_MEMBER_P (watch, -G_STRUCT_OFFSET (Op, watch));

  return op->future != NULL && Py_REFCNT (op->future) == 1;
}

/* Nobody wants the outcome any more: cancel and let go. */
static void
op_abandon (Op *op)
{
  op_ref (op);
  op_request_cancel (op);
  op_release_python (op);
  op_unref (op);
}

static gboolean
op_watch_sweep (GabLoopWatch *watch)
{
  Op *op = G_STRUCT_MEMBER_P (watch, -G_STRUCT_OFFSET (Op, watch));

  if (op->future == NULL)
    return TRUE;
  /* A done callback other than ours (the handle) is somebody waiting for
   * the result (fut.add_done_callback(f) and del fut): keep the future for
   * them. */
  if (gab_asyncio_future_awaited_by_others (op->future, 1)
      || op->future == NULL || Py_REFCNT (op->future) != 1)
    return FALSE;
  op_abandon (op);
  return TRUE;
}

/* The loop closed before the operation's outcome arrived: it can never be
 * delivered, so the operation is cancelled and its future let go. */
static void
op_watch_closed (GabLoopWatch *watch)
{
  op_abandon (G_STRUCT_MEMBER_P (watch, -G_STRUCT_OFFSET (Op, watch)));
}

static int
op_watch_traverse (GabLoopWatch *watch,
                   visitproc     visit,
                   void         *arg)
{
  Op *op = G_STRUCT_MEMBER_P (watch, -G_STRUCT_OFFSET (Op, watch));

  Py_VISIT (op->future);
  return 0;
}

static const GabLoopWatchKind op_watch_kind = {
  .closed = op_watch_closed,
  .candidate = op_watch_candidate,
  .sweep = op_watch_sweep,
  .traverse = op_watch_traverse,
};

static void
op_handle_dealloc (PyObject *self)
{
  op_unref (((OpHandle *) self)->op);
  Py_TYPE (self)->tp_free (self);
}

static PyTypeObject OpHandle_Type = {
  GAB_PY_TYPE_HEAD ("gasyncbridge._Operation", OpHandle,
                    Py_TPFLAGS_DEFAULT,
                    "Cancels a gasyncbridge operation when its future is cancelled."),
  .tp_call = op_handle_call,
  .tp_methods = op_handle_methods,
  .tp_dealloc = op_handle_dealloc,
};

static gboolean
future_start (void)
{
  /* The loop queues first: they stop after the futures do. */
  return gab_loop_queues_start () && PyType_Ready (&OpHandle_Type) == 0;
}

/* Pending operations: failed at shutdown and in a forked child. */
static GabSubsystem future_subsystem = {
  .name = "future",
  .start = future_start,
  .closing = future_close_all,
  .idle = future_all_idle,
  .closed = future_forget_closed,
  .after_fork = future_fail_after_fork,
};

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
 * Cancelling the future cancels the operation's #GCancellable on the
 * runtime thread. So does dropping the future while it is pending (noticed
 * within about 0.1 s: a future that only the bridge references and that has
 * no done callback of anybody else), and closing its loop. The bridge holds
 * the future while the operation runs, as asyncio does for its own I/O, so
 * a task awaiting it stays alive even if nothing else references the task.
 * A result that arrives for a future already cancelled or dropped, or after
 * its loop was closed, is dropped quietly. Call with the GIL held, from
 * code running on a loop.
 *
 * This is gab_future_into_py_full() with %GAB_FUTURE_NONE.
 *
 * Returns: (transfer full) (nullable): an `asyncio.Future`, or %NULL with an
 *   exception set (RuntimeError when no loop is running)
 *
 * Since: 0.1
 */
PyObject *
gab_future_into_py (GabStartFunc    start,
                    GabFinishFunc   finish,
                    gpointer        user_data,
                    GDestroyNotify  user_data_free)
{
  return gab_future_into_py_full (start, finish, user_data, user_data_free,
                                  GAB_FUTURE_NONE);
}

/**
 * gab_future_get_operation_class:
 *
 * The class of the futures that gab_future_into_py_full() makes with
 * %GAB_FUTURE_CANCEL_WAITS, `gasyncbridge.gio.Operation`, a subclass of
 * `asyncio.Future`. Call with the GIL held.
 *
 * Returns: (transfer none) (nullable): the class, or %NULL with an
 *   exception set
 *
 * Since: 0.1
 */
PyObject *
gab_future_get_operation_class (void)
{
  g_return_val_if_fail (GAB_GIL_HELD (), NULL);

  if (operation_class != NULL)
    return operation_class;
  if (!gab_lifecycle_start (&future_subsystem))
    return NULL;
  if (s_handle == NULL)
    s_handle = PyUnicode_InternFromString ("_gab_handle");
  if (s_cancel_now == NULL)
    s_cancel_now = PyUnicode_InternFromString ("_gab_cancel_now");
  if (s_handle == NULL || s_cancel_now == NULL)
    return NULL;
  /* The module that exports it, for its __module__ and tracebacks. */
  operation_class = gab_py_run_file_get (&gab_py_source_operation, "gasyncbridge.gio",
                                         "Operation");
  return operation_class;
}

/* GIL: a new, pending future of @loop: an Operation or a plain one. */
static PyObject *
op_future_new (PyObject       *loop,
               GabFutureFlags  flags)
{
  PyObject *cls;

  if (!(flags & GAB_FUTURE_CANCEL_WAITS))
    return PyObject_CallMethodNoArgs (loop, gab_py.s_create_future);
  cls = gab_future_get_operation_class ();
  if (cls == NULL)
    return NULL;
  /* Operation(loop=loop), without a tuple or dict per call. */
  return PyObject_Vectorcall (cls, &loop, 0, gab_py.kw_loop);
}

/**
 * gab_future_into_py_full:
 * @start: starts the operation, on the runtime thread
 * @finish: turns its result into a Python value, on the loop thread
 * @user_data: (closure): data for @start and @finish
 * @user_data_free: (nullable): frees @user_data; called once, with the GIL,
 *   when neither function can run any more (also when this call fails)
 * @flags: how the future behaves
 *
 * Like gab_future_into_py(), with @flags. With %GAB_FUTURE_CANCEL_WAITS the
 * future is a `gasyncbridge.gio.Operation` (see
 * gab_future_get_operation_class()): its cancel() cancels the operation's
 * #GCancellable on the runtime thread and returns %TRUE, and the future
 * stays pending until the operation has reported back (so whatever it
 * cleans up when cancelled is cleaned up); then it completes cancelled,
 * with cancel()'s message, whatever the operation came to. An operation
 * that fails with %G_IO_ERROR_CANCELLED without cancel() (the future was
 * dropped, the runtime shut down) cancels the future too. Dropping the
 * future and closing its loop work as for gab_future_into_py().
 *
 * Returns: (transfer full) (nullable): an `asyncio.Future`, or %NULL with an
 *   exception set (RuntimeError when no loop is running)
 *
 * Since: 0.1
 */
PyObject *
gab_future_into_py_full (GabStartFunc    start,
                         GabFinishFunc   finish,
                         gpointer        user_data,
                         GDestroyNotify  user_data_free,
                         GabFutureFlags  flags)
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
  if ((flags & ~GAB_FUTURE_CANCEL_WAITS) != 0)
    {
      if (user_data_free != NULL)
        user_data_free (user_data);
      PyErr_Format (PyExc_ValueError,
                    "gab_future_into_py_full: unknown flags 0x%x",
                    (unsigned) (flags & ~GAB_FUTURE_CANCEL_WAITS));
      return NULL;
    }

  op = g_new0 (Op, 1);
  g_atomic_ref_count_init (&op->ref_count);     /* this function's, then the runtime side's */
  op->start_item.run = op_start_run;
  op->cancel_item.run = op_cancel_run;
  op->watch.kind = &op_watch_kind;
  op->start = start;
  op->finish = finish;
  op->user_data = user_data;
  op->user_data_free = user_data_free;
  op->flags = flags;

  if (!gab_lifecycle_start (&future_subsystem))
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

  future = op_future_new (loop, flags);
  if (future == NULL)
    goto fail;

  handle = PyObject_New (OpHandle, &OpHandle_Type);
  if (handle == NULL)
    goto fail;
  handle->op = op_ref (op);
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
  if (flags & GAB_FUTURE_CANCEL_WAITS)
    {
      /* The future holds the handle (so the Op) until op_release_python()
       * clears it; Operation.cancel() calls its _request_cancel(). */
      if (PyObject_SetAttr (future, s_handle, (PyObject *) handle) < 0)
        goto fail;
    }
  /* The Op holds both until it lets go of the Python side. */
  op->handle = (PyObject *) g_steal_pointer (&handle);
  op->future = Py_NewRef (future);
  gab_loop_queue_watch (queue, &op->watch);
  Py_CLEAR (context);
  Py_CLEAR (loop);

  /* This function's reference becomes the runtime side's. */
  op->counted = TRUE;
  gab_loop_spin_begin (gab_loop_spin_get (queue), FALSE);
  if (!gab_runtime_push (&op->start_item))
    {
      op->counted = FALSE;
      gab_loop_spin_end (gab_loop_spin_get (queue), FALSE);
      g_autoptr(GError) closed =
        g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CLOSED,
                             "The gasyncbridge runtime was shut down");

      set_future_error (future, closed);
      op_release_python (op);
      op_unref (op);
      if (PyErr_Occurred ())
        Py_CLEAR (future);
    }
  else
    /* A caller that awaits one operation at a time: if it completes
     * quickly, the loop will find it without sleeping. */
    gab_loop_spin_after_start (gab_loop_spin_get (queue));
  return future;

fail:
  /* The handle, if made, holds a reference; ours goes here. */
  Py_XDECREF (handle);
  Py_XDECREF (future);
  Py_XDECREF (context);
  Py_XDECREF (loop);
  op_unref (op);
  return NULL;
}

/**
 * gab_future_finish_none:
 * @source_object: (nullable): the source object the operation reported
 * @result: a #GTask that returned a boolean (g_task_return_boolean())
 * @user_data: unused
 * @error: return location for a #GError
 *
 * A #GabFinishFunc for the many operations whose only outcome is success
 * or an error: the future's result is None, or the task's error raised.
 *
 * Returns: (transfer full) (nullable): None, or %NULL with @error set
 *
 * Since: 0.1
 */
PyObject *
gab_future_finish_none (GObject       *source_object,
                        GAsyncResult  *result,
                        gpointer       user_data,
                        GError       **error)
{
  g_return_val_if_fail (G_IS_TASK (result), NULL);

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  Py_RETURN_NONE;
}
