/* gab-async-iterator.c: a Python async iterable consumed from C.
 *
 * The iterator is advanced on its event loop by one "driver" task per
 * iterator, a small coroutine (python/_iterator.py) that awaits
 * `__anext__` only when C has asked for an item, or when fewer than
 * `read_ahead` items are waiting. Running every step in one task keeps the
 * iteration in one contextvars.Context, as a Python `async for` would, and
 * costs no task per item.
 *
 * The state lives in a Core, touched only on the loop thread with the GIL.
 * C callers on any thread reach it through the loop's queue (one wakeup per
 * batch): next_async() pushes a Request there; the driver hands items to
 * the Core through a small "sink" object, and the Core completes Requests
 * in order. Results wait in a FIFO buffer with at most `read_ahead` items
 * (plus an end or an error marker), so a fast producer waits for a slow
 * consumer instead of filling memory.
 *
 * Closing (close_async(), cancelling a next, dropping the last reference)
 * stops the driver: if it is inside `__anext__` the task is cancelled,
 * else it is woken to return; either way its `finally` awaits the
 * iterator's aclose(), so the generator's own `finally` runs. An exception
 * raised by the iterator is kept, in order, after the items before it.
 *
 * The GObject is only a handle: the Core is reference counted separately,
 * because the driver task and queued items outlive the handle.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gab-streams-private.h"
#include "gab-runtime-private.h"
#include "gab-loop-queue.h"
#include "gab-caller-task.h"
#include "gab-lifecycle.h"
#include "gab-task-locals-private.h"
#include "gab-error-private.h"
#include "gab-python-sources.h"

typedef enum
{
  MODE_OBJECT,
  MODE_VARIANT,
  MODE_BYTES,
  MODE_CLOSE,
} Mode;

typedef struct _Core Core;

typedef struct
{
  GabLoopItem    run_item;
  GabLoopItem    cancel_item;
  gatomicrefcount ref_count;
  Core          *core;
  Mode           mode;
  GTask         *task;               /* strong until completed */
  GabLoopQueue  *dispatch_queue;     /* nullable: see gab_caller_task_new() */
  GCancellable  *cancellable;
  gulong         cancel_id;
  gint           cancel_requested;   /* atomic */
  /* loop thread, GIL */
  gboolean       arrived;            /* run_item has run */
  gboolean       cancelled;          /* the cancel came before the request */
  GQueue        *waiting_in;         /* the queue `link` is in, if any */
  GList          link;
} Request;

/* A buffered outcome of one step: an item, an error, or (both NULL) the end. */
typedef struct
{
  PyObject *item;
  GError   *error;
} Result;

struct _Core
{
  gatomicrefcount ref_count;
  GabTaskLocals *locals;             /* the loop and context of the creator */
  guint          read_ahead;
  GabLoopItem    close_item;         /* for gab_async_iterator_close_soon() */
  gint           close_pushed;       /* atomic */
  gint           driver_finished;    /* atomic: driver_done, for other threads */

  /* loop thread, GIL */
  PyObject      *aiter;
  PyObject      *driver;             /* the asyncio task, until it is done */
  PyObject      *waiter;             /* the future the idle driver awaits */
  GQueue         requests;           /* next requests, oldest first */
  GQueue         closers;            /* close requests waiting for the driver */
  GQueue         buffer;             /* Result *, oldest first */
  gboolean       fetching;           /* the driver is inside __anext__ */
  gboolean       ended;              /* the end or an error is buffered/delivered */
  gboolean       closing;
  gboolean       driver_started;
  gboolean       driver_done;
  GError        *close_error;        /* what aclose() raised */
  GError        *dead_error;         /* why the driver stopped early */
};

struct _GabAsyncIterator
{
  GObject  parent_instance;
  Core    *core;
};

/**
 * GabAsyncIterator:
 *
 * A Python async iterable consumed from C, one item per request: see
 * gab_async_iterator_new(). The Python side is advanced on its event loop
 * only when C asks (or to keep `read_ahead` items ready); cancelling a
 * request or dropping the handle closes it there (its `aclose()` runs).
 *
 * Since: 0.1
 */

/**
 * gab_async_iterator_get_type:
 *
 * The #GType of #GabAsyncIterator.
 *
 * Returns: the type
 */
G_DEFINE_FINAL_TYPE (GabAsyncIterator, gab_async_iterator, G_TYPE_OBJECT)

static PyObject *drive_func;   /* GIL */

typedef struct
{
  PyObject_HEAD
  Core *core;
} Sink;

static PyTypeObject Sink_Type;

static void core_close (Core *core);
static void core_serve (Core *core);

/* ---- references ------------------------------------------------------ */

static Core *
core_ref (Core *core)
{
  g_atomic_ref_count_inc (&core->ref_count);
  return core;
}

static void
result_free (Result *result)
{
  gab_py_decref (result->item);
  g_clear_error (&result->error);
  g_free (result);
}

static void
core_unref (Core *core)
{
  if (!g_atomic_ref_count_dec (&core->ref_count))
    return;
  /* Any thread: Python references travel to the next GIL holder. */
  g_queue_clear_full (&core->buffer, (GDestroyNotify) result_free);
  gab_py_decref (core->aiter);
  gab_py_decref (core->driver);
  gab_py_decref (core->waiter);
  g_clear_error (&core->close_error);
  g_clear_error (&core->dead_error);
  gab_task_locals_unref (core->locals);
  g_free (core);
}

static Request *
request_ref (Request *req)
{
  g_atomic_ref_count_inc (&req->ref_count);
  return req;
}

static void
request_unref (Request *req)
{
  if (!g_atomic_ref_count_dec (&req->ref_count))
    return;
  g_assert (req->task == NULL);
  g_clear_object (&req->cancellable);
  g_clear_pointer (&req->dispatch_queue, gab_loop_queue_unref);
  core_unref (req->core);
  g_free (req);
}

/* ---- completing requests (loop thread, GIL) -------------------------- */

static void
bytes_py_free (gpointer data)
{
  /* Whoever drops the last GBytes reference may not hold the GIL. */
  gab_py_decref (data);
}

GBytes *
gab_streams_bytes_from_python (PyObject     *object,
                               const gchar  *what,
                               GError      **error)
{
  PyObject *bytes;

  if (PyBytes_CheckExact (object))
    bytes = Py_NewRef (object);
  else if (PyObject_CheckBuffer (object))
    {
      /* A copy: a bytearray or a memoryview may change after it was given. */
      bytes = PyBytes_FromObject (object);
      if (bytes == NULL)
        {
          gab_error_set_from_python (error);
          return NULL;
        }
    }
  else
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s: expected a bytes-like object, not '%s'",
                   what, Py_TYPE (object)->tp_name);
      return NULL;
    }
  /* The GBytes shares the bytes object's memory, which is immutable. */
  return g_bytes_new_with_free_func (PyBytes_AS_STRING (bytes),
                                     (gsize) PyBytes_GET_SIZE (bytes),
                                     bytes_py_free, bytes);
}

/* Completes @req with @item (borrowed; NULL for the end) or @error (taken). */
static void
request_complete (Request  *req,
                  PyObject *item,
                  GError   *error)
{
  GTask *task = g_steal_pointer (&req->task);

  if (task == NULL)
    {
      g_clear_error (&error);
      return;
    }
  if (req->cancel_id != 0)
    {
      /* Our handler only pushes to a queue, so this never waits long. */
      g_cancellable_disconnect (req->cancellable, req->cancel_id);
      req->cancel_id = 0;
    }
  if (error == NULL && item != NULL)
    {
      switch (req->mode)
        {
        case MODE_OBJECT:
          /* Boxed: the callback may drop it on a thread without the GIL. */
          g_task_return_pointer (task, gab_py_ref_new (item),
                                 (GDestroyNotify) gab_py_ref_unref);
          break;
        case MODE_VARIANT:
          {
            GVariant *variant = gab_variant_from_python (item, NULL, &error);

            if (variant != NULL)
              g_task_return_pointer (task, g_variant_take_ref (variant),
                                     (GDestroyNotify) g_variant_unref);
          }
          break;
        case MODE_BYTES:
          {
            GBytes *bytes = gab_streams_bytes_from_python (item, "GabInputStream",
                                                           &error);

            if (bytes != NULL)
              g_task_return_pointer (task, bytes, (GDestroyNotify) g_bytes_unref);
          }
          break;
        case MODE_CLOSE:
          g_task_return_boolean (task, TRUE);
          break;
        }
    }
  else if (error == NULL)
    {
      if (req->mode == MODE_CLOSE)
        g_task_return_boolean (task, TRUE);
      else
        g_task_return_pointer (task, NULL, NULL);
    }
  if (error != NULL)
    g_task_return_error (task, error);
  g_object_unref (task);
  if (req->dispatch_queue != NULL)
    gab_caller_task_dispatch (g_steal_pointer (&req->dispatch_queue), FALSE);
}

static void
request_unlink (Request *req)
{
  if (req->waiting_in != NULL)
    {
      g_queue_unlink (req->waiting_in, &req->link);
      req->waiting_in = NULL;
    }
}

static GError *
closed_error (void)
{
  return g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CLOSED,
                              "The async iterator is closed");
}

static GError *
cancelled_error (void)
{
  return g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED, "Operation was cancelled");
}

/* Completes every request of @queue with a copy of @error, or with the
 * end (a close request: success). */
static void
complete_all (GQueue       *queue,
              const GError *error)
{
  GList *l;

  while ((l = queue->head) != NULL)
    {
      Request *req = l->data;

      request_unlink (req);
      request_complete (req, NULL, error != NULL ? g_error_copy (error) : NULL);
      request_unref (req);
    }
}

/* ---- the driver's sink (loop thread, GIL) ----------------------------- */

static void
core_wake (Core *core)
{
  gab_py_waiter_wake (g_steal_pointer (&core->waiter), TRUE);
}

static PyObject *
sink_want (PyObject *self,
           PyObject *unused)
{
  Core *core = ((Sink *) self)->core;
  PyObject *loop;

  if (core->closing || core->ended)
    Py_RETURN_FALSE;
  if (core->requests.length > 0 || core->buffer.length < core->read_ahead)
    {
      core->fetching = TRUE;
      Py_RETURN_TRUE;
    }
  loop = gab_task_locals_get_loop (core->locals);
  if (loop == NULL)
    Py_RETURN_FALSE;
  Py_CLEAR (core->waiter);
  core->waiter = PyObject_CallMethodNoArgs (loop, gab_py.s_create_future);
  return Py_XNewRef (core->waiter);
}

static PyObject *
sink_item (PyObject *self,
           PyObject *item)
{
  Core *core = ((Sink *) self)->core;

  core->fetching = FALSE;
  if (!core->closing)
    {
      Result *result = g_new0 (Result, 1);

      result->item = Py_NewRef (item);
      g_queue_push_tail (&core->buffer, result);
      core_serve (core);
    }
  Py_RETURN_NONE;
}

static PyObject *
sink_end (PyObject *self,
          PyObject *exception)
{
  Core *core = ((Sink *) self)->core;

  core->fetching = FALSE;
  core->ended = TRUE;
  if (!core->closing)
    {
      Result *result = g_new0 (Result, 1);

      if (exception != Py_None)
        result->error = gab_error_from_exception (exception);
      g_queue_push_tail (&core->buffer, result);
      core_serve (core);
    }
  Py_RETURN_NONE;
}

static PyObject *
sink_closed (PyObject *self,
             PyObject *exception)
{
  Core *core = ((Sink *) self)->core;

  if (exception != Py_None && core->close_error == NULL)
    core->close_error = gab_error_from_exception (exception);
  Py_RETURN_NONE;
}

static PyObject *
sink_done (PyObject *self,
           PyObject *task)
{
  Core *core = ((Sink *) self)->core;
  PyObject *cancelled, *exception = NULL;

  core->driver_done = TRUE;
  g_atomic_int_set (&core->driver_finished, TRUE);
  core->fetching = FALSE;
  Py_CLEAR (core->waiter);
  /* The task referred to the sink, which refers to the core: let go. */
  Py_CLEAR (core->driver);

  /* Retrieve the outcome, so asyncio never logs it as unretrieved. */
  cancelled = PyObject_CallMethodNoArgs (task, gab_py.s_cancelled);
  if (cancelled == Py_False)
    exception = PyObject_CallMethodNoArgs (task, gab_py.s_exception);
  if (!core->ended && !core->closing && core->dead_error == NULL)
    {
      if (exception != NULL && exception != Py_None)
        core->dead_error = gab_error_from_exception (exception);
      else
        core->dead_error =
          g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CLOSED,
                               "The task iterating the async iterable was "
                               "cancelled (is its event loop shutting down?)");
    }
  Py_XDECREF (cancelled);
  Py_XDECREF (exception);
  PyErr_Clear ();

  core_serve (core);
  /* Close requests complete once aclose() has run. */
  complete_all (&core->closers, core->close_error);
  Py_RETURN_NONE;
}

static void
sink_dealloc (PyObject *self)
{
  core_unref (((Sink *) self)->core);
  Py_TYPE (self)->tp_free (self);
}

static PyMethodDef sink_methods[] = {
  { "want", sink_want, METH_NOARGS, NULL },
  { "item", sink_item, METH_O, NULL },
  { "end", sink_end, METH_O, NULL },
  { "closed", sink_closed, METH_O, NULL },
  { "done", sink_done, METH_O, NULL },
  { NULL }
};

static PyTypeObject Sink_Type = {
  GAB_PY_TYPE_HEAD ("gasyncbridge._IteratorSink", Sink,
                    Py_TPFLAGS_DEFAULT,
                    "Where the task driving a Python async iterator for C puts what it gets."),
  .tp_dealloc = sink_dealloc,
  .tp_methods = sink_methods,
};

/* GIL. */
static gboolean
async_iterator_start (void)
{
  if (drive_func == NULL && PyType_Ready (&Sink_Type) == 0)
    drive_func = gab_py_run_file_get (&gab_py_source_iterator, "gasyncbridge._iterator",
                                      "drive");
  return drive_func != NULL;
}

static GabSubsystem async_iterator_subsystem = {
  .name = "async-iterator",
  .start = async_iterator_start,
};

/* Starts the driver task on the loop, in the creator's context. */
static void
core_start_driver (Core *core)
{
  PyObject *loop = gab_task_locals_get_loop (core->locals);
  PyObject *coro = NULL, *task = NULL, *done = NULL, *ret = NULL;
  Sink *sink;

  core->driver_started = TRUE;
  sink = PyObject_New (Sink, &Sink_Type);
  if (sink == NULL)
    goto fail;
  sink->core = core_ref (core);
  coro = PyObject_CallFunctionObjArgs (drive_func, core->aiter, (PyObject *) sink, NULL);
  if (coro == NULL || loop == NULL)
    goto fail;
  {
    PyObject *args[] = { core->locals->context, gab_py.ensure_future, coro, loop };

    task = PyObject_VectorcallMethod (gab_py.s_run, args, 3, gab_py.kw_loop);
  }
  if (task == NULL)
    goto fail;
  done = PyObject_GetAttrString ((PyObject *) sink, "done");
  if (done == NULL)
    goto fail;
  ret = PyObject_CallMethodOneArg (task, gab_py.s_add_done_callback, done);
  if (ret == NULL)
    goto fail;
  core->driver = g_steal_pointer (&task);
  Py_DECREF (ret);
  Py_DECREF (done);
  Py_DECREF (coro);
  Py_DECREF (sink);
  return;

fail:
  core->driver_done = TRUE;
  g_atomic_int_set (&core->driver_finished, TRUE);
  if (core->dead_error == NULL)
    {
      if (PyErr_Occurred ())
        gab_error_set_from_python (&core->dead_error);
      else
        core->dead_error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CLOSED,
                                                "The asyncio event loop of the "
                                                "async iterator has been closed");
    }
  if (task != NULL)
    {
      ret = PyObject_CallMethodNoArgs (task, gab_py.s_cancel);
      Py_XDECREF (ret);
    }
  else if (coro != NULL)
    {
      /* Never started: close it, so Python does not warn. */
      ret = PyObject_CallMethodNoArgs (coro, gab_py.s_close);
      Py_XDECREF (ret);
    }
  PyErr_Clear ();
  Py_XDECREF (task);
  Py_XDECREF (done);
  Py_XDECREF (coro);
  Py_XDECREF (sink);
}

/* ---- the core's decisions (loop thread, GIL) --------------------------- */

static void
core_serve_locked (Core *core);

static void
core_serve (Core *core)
{
  /* A completed request may hold the core's last reference: keep one of
   * our own until we are done with it. */
  core_ref (core);
  core_serve_locked (core);
  core_unref (core);
}

static void
core_serve_locked (Core *core)
{
  while (core->requests.length > 0 && core->buffer.length > 0)
    {
      Request *req = g_queue_peek_head (&core->requests);
      Result *result = g_queue_pop_head (&core->buffer);

      request_unlink (req);
      request_complete (req, result->item, g_steal_pointer (&result->error));
      request_unref (req);
      result_free (result);
    }

  if (core->requests.length > 0)
    {
      if (core->closing)
        {
          g_autoptr(GError) error = closed_error ();

          complete_all (&core->requests, error);
        }
      else if (core->ended)
        /* The end is sticky: every later request gets it too. */
        complete_all (&core->requests, NULL);
      else if (core->driver_done)
        complete_all (&core->requests, core->dead_error);
      else if (!core->driver_started)
        core_start_driver (core);
      else
        core_wake (core);
      if (core->driver_done && core->requests.length > 0)
        complete_all (&core->requests, core->dead_error);
    }
  else if (core->driver_started && !core->driver_done && !core->ended
           && !core->closing && core->buffer.length < core->read_ahead)
    /* Refill the read-ahead. */
    core_wake (core);
}

static void
core_close (Core *core)
{
  PyObject *ret;

  if (core->closing)
    return;
  core->closing = TRUE;
  g_queue_clear_full (&core->buffer, (GDestroyNotify) result_free);
  {
    g_autoptr(GError) error = closed_error ();

    complete_all (&core->requests, error);
  }
  if (!core->driver_started)
    /* Even a fresh iterator gets its aclose(). */
    core_start_driver (core);
  else if (!core->driver_done)
    {
      if (core->fetching && core->driver != NULL)
        {
          /* Inside __anext__: interrupt it. */
          ret = PyObject_CallMethodNoArgs (core->driver, gab_py.s_cancel);
          Py_XDECREF (ret);
          PyErr_Clear ();
        }
      else
        core_wake (core);
    }
}

/* ---- requests arriving on the loop ------------------------------------ */

static void
request_run (GabLoopItem *item,
             gboolean     alive)
{
  Request *req = G_STRUCT_MEMBER_P (item, -G_STRUCT_OFFSET (Request, run_item));
  Core *core = req->core;

  req->arrived = TRUE;
  if (!alive)
    {
      request_complete (req, NULL,
                        g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CLOSED,
                                             "The asyncio event loop of the "
                                             "async iterator has gone"));
      request_unref (req);
      return;
    }
  if (req->cancelled)
    {
      request_complete (req, NULL, cancelled_error ());
      if (req->mode != MODE_CLOSE)
        core_close (core);
      request_unref (req);
      return;
    }
  if (req->mode == MODE_CLOSE)
    {
      core_close (core);
      if (core->driver_done)
        {
          request_complete (req, NULL,
                            core->close_error != NULL ? g_error_copy (core->close_error) : NULL);
          request_unref (req);
        }
      else
        {
          /* The queue takes the item's reference. */
          req->link.data = req;
          req->waiting_in = &core->closers;
          g_queue_push_tail_link (&core->closers, &req->link);
        }
      return;
    }
  req->link.data = req;
  req->waiting_in = &core->requests;
  g_queue_push_tail_link (&core->requests, &req->link);
  core_serve (core);
}

static void
request_cancel_run (GabLoopItem *item,
                    gboolean     alive)
{
  Request *req = G_STRUCT_MEMBER_P (item, -G_STRUCT_OFFSET (Request, cancel_item));

  if (alive)
    {
      if (!req->arrived)
        /* The request is still on its way, behind us: it fails when it
         * arrives. */
        req->cancelled = TRUE;
      else
        {
          if (req->task != NULL)
            {
              gboolean was_waiting = req->waiting_in != NULL;

              request_unlink (req);
              request_complete (req, NULL, cancelled_error ());
              if (was_waiting)
                request_unref (req);
            }
          /* A next that is given up stops the iteration, and aclose()
           * runs; also when its item was already on its way, because the
           * GTask then reports the cancel instead of the item. */
          if (req->mode != MODE_CLOSE)
            core_close (req->core);
        }
    }
  request_unref (req);
}

static void
on_cancelled (GCancellable *cancellable,
              gpointer      data)
{
  Request *req = data;

  /* Any thread, no GIL: the cancel travels to the loop after the request. */
  if (g_atomic_int_compare_and_exchange (&req->cancel_requested, FALSE, TRUE))
    gab_loop_queue_push (req->core->locals->queue, &request_ref (req)->cancel_item);
}

static void
request_start (GabAsyncIterator     *self,
               Mode                  mode,
               GCancellable         *cancellable,
               GAsyncReadyCallback   callback,
               gpointer              user_data,
               gpointer              source_tag,
               const gchar          *name)
{
  Request *req = g_new0 (Request, 1);

  g_atomic_ref_count_init (&req->ref_count);   /* the run item's trip */
  req->run_item.run = request_run;
  req->cancel_item.run = request_cancel_run;
  req->core = core_ref (self->core);
  req->mode = mode;
  req->task = gab_caller_task_new (self, cancellable, callback, user_data, source_tag,
                                    &req->dispatch_queue);
  g_task_set_name (req->task, name);
  if (cancellable != NULL)
    {
      req->cancellable = g_object_ref (cancellable);
      /* Connected before the request travels, so that completing it can
       * always disconnect; a cancel that comes first waits for it. */
      req->cancel_id = g_cancellable_connect (cancellable, G_CALLBACK (on_cancelled),
                                              request_ref (req),
                                              (GDestroyNotify) request_unref);
    }
  /* Always through the queue, even on the loop thread: no Python runs
   * inside the caller's call. */
  gab_loop_queue_push (self->core->locals->queue, &req->run_item);
}

/* ---- the GObject ------------------------------------------------------ */

static void
close_item_run (GabLoopItem *item,
                gboolean     alive)
{
  Core *core = G_STRUCT_MEMBER_P (item, -G_STRUCT_OFFSET (Core, close_item));

  if (alive)
    core_close (core);
  core_unref (core);
}

void
gab_async_iterator_close_soon (GabAsyncIterator *self)
{
  Core *core = self->core;

  /* Once the driver is done, aclose() has run: nothing left to close (and
   * no item to leave behind for a loop that may have stopped). */
  if (g_atomic_int_get (&core->driver_finished))
    return;
  if (g_atomic_int_compare_and_exchange (&core->close_pushed, FALSE, TRUE))
    {
      core->close_item.run = close_item_run;
      gab_loop_queue_push (core->locals->queue, &core_ref (core)->close_item);
    }
}

gboolean
gab_async_iterator_on_loop_thread (GabAsyncIterator *self)
{
  PyObject *loop = gab_py_running_loop ();
  gboolean ret = loop != NULL && loop == gab_task_locals_get_loop (self->core->locals);

  Py_XDECREF (loop);
  return ret;
}

static void
gab_async_iterator_finalize (GObject *object)
{
  GabAsyncIterator *self = GAB_ASYNC_ITERATOR (object);

  /* Any thread, maybe without the GIL: the loop closes the iterator (its
   * aclose() runs there) after we are gone. */
  if (self->core != NULL)
    {
      gab_async_iterator_close_soon (self);
      core_unref (self->core);
    }
  G_OBJECT_CLASS (gab_async_iterator_parent_class)->finalize (object);
}

static void
gab_async_iterator_class_init (GabAsyncIteratorClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = gab_async_iterator_finalize;
}

static void
gab_async_iterator_init (GabAsyncIterator *self)
{
}

/* GIL: iter's __aiter__(), checked to give something with __anext__. */
static PyObject *
get_aiter (PyObject  *aiterable,
           GError   **error)
{
  PyTypeObject *type = Py_TYPE (aiterable);
  PyObject *aiter;

  if (type->tp_as_async == NULL || type->tp_as_async->am_aiter == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "An object of type '%s' is not an async iterable "
                   "(it has no __aiter__)", type->tp_name);
      return NULL;
    }
  aiter = type->tp_as_async->am_aiter (aiterable);
  if (aiter == NULL)
    {
      gab_error_set_from_python (error);
      return NULL;
    }
  type = Py_TYPE (aiter);
  if (type->tp_as_async == NULL || type->tp_as_async->am_anext == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "__aiter__ returned an object of type '%s', which is not "
                   "an async iterator (it has no __anext__)", type->tp_name);
      Py_DECREF (aiter);
      return NULL;
    }
  return aiter;
}

/**
 * gab_async_iterator_new:
 * @aiterable: a Python async iterable: an async generator, or any object
 *   with `__aiter__` returning an object with `__anext__`
 * @read_ahead: how many items may be fetched before C asks for them; 0
 *   advances the Python side only when C asks
 * @error: return location for a #GError
 *
 * Makes a C handle over @aiterable. `__aiter__` is called now; the items
 * are fetched later on the event loop of the current task locals (see
 * gab_task_locals_get_current()), in their contextvars.Context, by one task
 * that runs for the whole iteration. Needs the GIL.
 *
 * Dropping the last reference closes the iterator on its loop (its
 * `aclose()`, if it has one, runs there), as gab_async_iterator_close_async()
 * does.
 *
 * Returns: (transfer full) (nullable): the iterator, or %NULL with @error
 *   set (%G_IO_ERROR_INVALID_ARGUMENT for an object that is not an async
 *   iterable, %GAB_ERROR_NO_LOOP when no loop is known, or the error
 *   `__aiter__` raised)
 *
 * Since: 0.1
 */
GabAsyncIterator *
gab_async_iterator_new (PyObject  *aiterable,
                        guint      read_ahead,
                        GError   **error)
{
  GabAsyncIterator *self;
  GabTaskLocals *locals;
  PyObject *aiter;
  Core *core;

  g_return_val_if_fail (aiterable != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_return_val_if_fail (GAB_GIL_HELD (), NULL);

  if (!gab_error_start_subsystem (&async_iterator_subsystem, error)
      || !gab_runtime_ensure (error))
    return NULL;
  gab_orphans_flush ();
  aiter = get_aiter (aiterable, error);
  if (aiter == NULL)
    return NULL;
  locals = gab_task_locals_resolve (error);
  if (locals == NULL)
    {
      Py_DECREF (aiter);
      return NULL;
    }

  core = g_new0 (Core, 1);
  g_atomic_ref_count_init (&core->ref_count);
  core->locals = locals;
  core->read_ahead = read_ahead;
  core->aiter = aiter;
  self = g_object_new (GAB_TYPE_ASYNC_ITERATOR, NULL);
  self->core = core;
  return self;
}

/**
 * gab_async_iterator_get_read_ahead:
 * @self: a #GabAsyncIterator
 *
 * The read-ahead given to gab_async_iterator_new(). Any thread.
 *
 * Returns: how many items may be fetched before C asks for them
 *
 * Since: 0.1
 */
guint
gab_async_iterator_get_read_ahead (GabAsyncIterator *self)
{
  g_return_val_if_fail (GAB_IS_ASYNC_ITERATOR (self), 0);
  return self->core->read_ahead;
}

/**
 * gab_async_iterator_next_async:
 * @self: a #GabAsyncIterator
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called when the next item is there
 * @user_data: (closure): data for @callback
 *
 * Asks for the next item. Requests are served in the order they are made,
 * so several may be pending. Works from any thread, without the GIL;
 * @callback runs in the caller's thread-default #GMainContext (on a thread
 * running an asyncio loop without one, from that loop).
 *
 * Cancelling @cancellable closes the iterator: the pending request fails
 * with %G_IO_ERROR_CANCELLED, the Python side is interrupted and its
 * `aclose()` runs, and later requests fail with %G_IO_ERROR_CLOSED.
 *
 * Since: 0.1
 */
void
gab_async_iterator_next_async (GabAsyncIterator    *self,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  g_return_if_fail (GAB_IS_ASYNC_ITERATOR (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  request_start (self, MODE_OBJECT, cancellable, callback, user_data,
                 GAB_TAG (gab_async_iterator_next_async), "gab_async_iterator_next_async");
}

/* A next that finishes as cancelled closes the iterator, even when the
 * cancel came too late to reach the loop: GTask reports the cancel instead
 * of an item that was already there, and that item is gone. */
static void
close_if_cancelled (GabAsyncIterator *self,
                    GAsyncResult     *result)
{
  GCancellable *cancellable = g_task_get_cancellable (G_TASK (result));

  if (cancellable != NULL && g_cancellable_is_cancelled (cancellable))
    gab_async_iterator_close_soon (self);
}

/**
 * gab_async_iterator_next_finish:
 * @self: a #GabAsyncIterator
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * The item asked for by gab_async_iterator_next_async(). Like
 * g_file_enumerator_next_files_finish(), the end of the iteration is %NULL
 * with no error set; so is every request after it. An exception raised by
 * the iterator comes, after the items before it, as its #GError (see
 * gab-error.h: the very exception object for %GAB_PYTHON_ERROR), once; the
 * iteration has ended after it. Needs the GIL.
 *
 * Returns: (transfer full) (nullable): a new reference to the item, or
 *   %NULL at the end or with @error set
 *
 * Since: 0.1
 */
PyObject *
gab_async_iterator_next_finish (GabAsyncIterator  *self,
                                GAsyncResult      *result,
                                GError           **error)
{
  GabPyRef *box;
  PyObject *item;

  g_return_val_if_fail (GAB_IS_ASYNC_ITERATOR (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == gab_async_iterator_next_async, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  close_if_cancelled (self, result);
  box = g_task_propagate_pointer (G_TASK (result), error);
  if (box == NULL)
    return NULL;
  item = Py_NewRef (gab_py_ref_get (box));
  gab_py_ref_unref (box);
  return item;
}

/**
 * gab_async_iterator_next_variant_async:
 * @self: a #GabAsyncIterator
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called when the next item is there
 * @user_data: (closure): data for @callback
 *
 * Like gab_async_iterator_next_async(), for C code that never touches
 * Python objects: the item is converted to a #GVariant on the loop thread
 * (see gab_variant_from_python(); None becomes a maybe Nothing, `mv`).
 * Needs no GIL.
 *
 * Since: 0.1
 */
void
gab_async_iterator_next_variant_async (GabAsyncIterator    *self,
                                       GCancellable        *cancellable,
                                       GAsyncReadyCallback  callback,
                                       gpointer             user_data)
{
  g_return_if_fail (GAB_IS_ASYNC_ITERATOR (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  request_start (self, MODE_VARIANT, cancellable, callback, user_data,
                 GAB_TAG (gab_async_iterator_next_variant_async),
                 "gab_async_iterator_next_variant_async");
}

/**
 * gab_async_iterator_next_variant_finish:
 * @self: a #GabAsyncIterator
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * The item asked for by gab_async_iterator_next_variant_async(). %NULL with
 * no error at the end. An item that cannot be converted fails this request
 * with %GAB_ERROR_CONVERSION; the iteration goes on after it. Needs no GIL.
 *
 * Returns: (transfer full) (nullable): the item, or %NULL at the end or
 *   with @error set
 *
 * Since: 0.1
 */
GVariant *
gab_async_iterator_next_variant_finish (GabAsyncIterator  *self,
                                        GAsyncResult      *result,
                                        GError           **error)
{
  g_return_val_if_fail (GAB_IS_ASYNC_ITERATOR (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == gab_async_iterator_next_variant_async, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  close_if_cancelled (self, result);
  return g_task_propagate_pointer (G_TASK (result), error);
}

void
gab_async_iterator_next_bytes_async (GabAsyncIterator    *self,
                                     GCancellable        *cancellable,
                                     GAsyncReadyCallback  callback,
                                     gpointer             user_data)
{
  request_start (self, MODE_BYTES, cancellable, callback, user_data,
                 GAB_TAG (gab_async_iterator_next_bytes_async),
                 "gab_async_iterator_next_bytes_async");
}

GBytes *
gab_async_iterator_next_bytes_finish (GabAsyncIterator  *self,
                                      GAsyncResult      *result,
                                      GError           **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  close_if_cancelled (self, result);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * gab_async_iterator_close_async:
 * @self: a #GabAsyncIterator
 * @cancellable: (nullable): a #GCancellable; cancelling it only stops the
 *   wait, not the closing
 * @callback: (scope async): called when the iterator is closed
 * @user_data: (closure): data for @callback
 *
 * Closes the iterator: pending and later next requests fail with
 * %G_IO_ERROR_CLOSED, an item being fetched is interrupted (its task is
 * cancelled), items read ahead are dropped, and the iterator's `aclose()`,
 * if it has one, is awaited. Closing twice is harmless. Any thread, no GIL.
 *
 * Since: 0.1
 */
void
gab_async_iterator_close_async (GabAsyncIterator    *self,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  g_return_if_fail (GAB_IS_ASYNC_ITERATOR (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  request_start (self, MODE_CLOSE, cancellable, callback, user_data,
                 GAB_TAG (gab_async_iterator_close_async), "gab_async_iterator_close_async");
}

/**
 * gab_async_iterator_close_finish:
 * @self: a #GabAsyncIterator
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * The outcome of gab_async_iterator_close_async(). No GIL needed.
 *
 * Returns: %TRUE once `aclose()` has returned (or there was none); %FALSE
 *   with @error set to what it raised
 *
 * Since: 0.1
 */
gboolean
gab_async_iterator_close_finish (GabAsyncIterator  *self,
                                 GAsyncResult      *result,
                                 GError           **error)
{
  g_return_val_if_fail (GAB_IS_ASYNC_ITERATOR (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == gab_async_iterator_close_async, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}
