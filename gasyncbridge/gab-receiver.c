/* gab-receiver.c: the Python end of a channel (GabChannel, GabEventChannel):
 * one receiver machinery, parameterised by a GabReceiverKind per channel.
 *
 * The consumer takes an item with `_take()` and, when there is none yet,
 * awaits the future of `_wait()`, which the channel's wakeup resolves on
 * the loop thread; python/_receiver.py is the coroutine that loops over
 * the two. A sliced receiver hands out an item that is there already as a
 * ready awaitable (no coroutine, no future), and every GAB_EVENT_SLICE_*
 * goes through the coroutine with a pause, so that the loop runs other work.
 *
 * Everything here runs with the GIL; the channel's lock is taken only in
 * the kind's hooks, and never held while Python runs.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <string.h>

#include <gasyncbridge/gasyncbridge.h>
#include "gab-receiver-private.h"
#include "gab-lifecycle.h"
#include "gab-task-locals-private.h"
#include "gab-python-sources.h"

typedef struct
{
  PyObject_HEAD
  const GabReceiverKind *kind;
  gpointer               channel;       /* a reference */
  GabReceiverLink       *link;          /* in the channel */
  gboolean               error_raised;  /* the close error went to Python */
  guint                  slice_count;   /* items handed out in this slice */
  gint64                 slice_start;
} GabReceiver;

/* An awaitable that is ready at once with a value: what a sliced
 * receiver's __anext__ returns when an item is there, so that `async for`
 * takes it without a coroutine or a future. */
typedef struct
{
  PyObject_HEAD
  PyObject *value;
} Ready;

static PyTypeObject Ready_Type;
static PyObject *receiver_receive;   /* GIL: _receiver.receive */


/* ---- the ready awaitable ---------------------------------------------- */

static PyObject *
ready_new (PyObject *value)   /* takes @value */
{
  Ready *ready = PyObject_New (Ready, &Ready_Type);

  if (ready == NULL)
    {
      Py_DECREF (value);
      return NULL;
    }
  ready->value = value;
  return (PyObject *) ready;
}

static void
ready_dealloc (PyObject *object)
{
  Py_XDECREF (((Ready *) object)->value);
  PyObject_Free (object);
}

static PyObject *
ready_await (PyObject *object)
{
  return Py_NewRef (object);
}

static PyObject *
ready_iternext (PyObject *object)
{
  Ready *ready = (Ready *) object;
  PyObject *value = g_steal_pointer (&ready->value), *stop;

  if (value == NULL)
    return PyErr_Format (PyExc_RuntimeError, "gasyncbridge: an event was awaited twice");
  /* StopIteration(value), built so that a tuple stays one value. */
  stop = PyObject_CallOneArg (PyExc_StopIteration, value);
  Py_DECREF (value);
  if (stop != NULL)
    {
      PyErr_SetObject (PyExc_StopIteration, stop);
      Py_DECREF (stop);
    }
  return NULL;
}

#if PY_VERSION_HEX >= 0x030A0000
static PySendResult
ready_send (PyObject  *object,
            PyObject  *arg,
            PyObject **result)
{
  Ready *ready = (Ready *) object;

  if (ready->value == NULL)
    {
      PyErr_SetString (PyExc_RuntimeError, "gasyncbridge: an event was awaited twice");
      *result = NULL;
      return PYGEN_ERROR;
    }
  *result = g_steal_pointer (&ready->value);
  return PYGEN_RETURN;
}
#endif

static PyAsyncMethods ready_async = {
  .am_await = ready_await,
#if PY_VERSION_HEX >= 0x030A0000
  .am_send = ready_send,
#endif
};

static PyTypeObject Ready_Type = {
  GAB_PY_TYPE_HEAD ("gasyncbridge._ReadyEvent", Ready,
                    Py_TPFLAGS_DEFAULT,
                    "An event that is there already (what EventReceiver.__anext__ returns)."),
  .tp_dealloc = ready_dealloc,
  .tp_as_async = &ready_async,
  .tp_iter = PyObject_SelfIter,
  .tp_iternext = ready_iternext,
};

/* ---- taking and waiting ----------------------------------------------- */

/* Loop thread. The next item converted; or NULL with *@empty set (no
 * exception) when there is none yet; or NULL with an exception
 * (StopAsyncIteration at the end, the close error once, a conversion
 * error). */
static PyObject *
receiver_take_one (GabReceiver *receiver,
                   gboolean    *empty)
{
  PyObject *item = NULL;
  GError *error = NULL;

  *empty = FALSE;
  switch (receiver->kind->take (receiver->channel, &item, &error))
    {
    case GAB_RECEIVER_ITEM:
      return item;
    case GAB_RECEIVER_EMPTY:
      *empty = TRUE;
      return NULL;
    case GAB_RECEIVER_END:
    default:
      break;
    }
  /* The close error is raised once; after it, a plain end. */
  if (error != NULL && !receiver->error_raised)
    {
      receiver->error_raised = TRUE;
      gab_error_to_python (error);
    }
  else
    PyErr_SetNone (PyExc_StopAsyncIteration);
  g_clear_error (&error);
  return NULL;
}

/* _take(): (item,) or None if empty; StopAsyncIteration or the close
 * error at the end. */
static PyObject *
receiver_take (PyObject *object,
               PyObject *unused)
{
  gboolean empty;
  PyObject *value = receiver_take_one ((GabReceiver *) object, &empty), *tuple;

  if (value == NULL)
    {
      if (empty)
        Py_RETURN_NONE;
      return NULL;
    }
  tuple = PyTuple_Pack (1, value);
  Py_DECREF (value);
  return tuple;
}

/* _wait(): a future done when there may be an item, or the end. */
static PyObject *
receiver_wait (PyObject *object,
               PyObject *unused)
{
  GabReceiver *receiver = (GabReceiver *) object;
  GabReceiverLink *link = receiver->link;
  PyObject *future;
  gboolean ready;

  future = gab_loop_queue_new_future (link->queue, receiver->kind->wrong_loop);
  if (future == NULL)
    return NULL;
  /* The waiter is set before the channel may push a wakeup; that wakeup
   * runs on this thread, so it finds the waiter there. */
  Py_XSETREF (link->waiter, Py_NewRef (future));
  receiver->slice_count = 0;
  g_mutex_lock (link->lock);
  ready = receiver->kind->ready (receiver->channel);
  link->waiting = !ready;
  g_mutex_unlock (link->lock);
  if (ready)
    {
      Py_CLEAR (link->waiter);
      if (!gab_py_future_set_none (future))
        Py_CLEAR (future);
    }
  return future;
}

/* The consumer stops, as its kind says. */
static void
receiver_stop (PyObject *object)
{
  GabReceiver *receiver = (GabReceiver *) object;

  receiver->kind->stop (receiver->channel);
}

PyObject *
gab_receiver_close (PyObject *object,
                    PyObject *unused)
{
  receiver_stop (object);
  Py_RETURN_NONE;
}

PyObject *
gab_receiver_aclose (PyObject *object,
                     PyObject *unused)
{
  receiver_stop (object);
  /* An awaitable, as async iterators' aclose() are. */
  return gab_py_done_future ();
}

/* ---- the type --------------------------------------------------------- */

static PyObject *
receiver_aiter (PyObject *object)
{
  if (((GabReceiver *) object)->link->callback != NULL)
    /* The short name: "EventReceiver" of "gasyncbridge.EventReceiver". */
    return PyErr_Format (PyExc_TypeError, "gasyncbridge: this %s delivers to a callback; "
                         "it cannot be iterated", strrchr (Py_TYPE (object)->tp_name, '.') + 1);
  return Py_NewRef (object);
}

static PyObject *
receiver_anext (PyObject *object)
{
  GabReceiver *receiver = (GabReceiver *) object;
  gboolean empty, pause = FALSE;
  PyObject *value;

  if (receiver->link->callback != NULL)
    return receiver_aiter (object);
  if (!receiver->kind->sliced)
    return PyObject_CallOneArg (receiver_receive, object);
  /* The slice: after enough items in a row, the next one comes through a
   * coroutine that lets the loop run first. */
  if (receiver->slice_count == 0)
    receiver->slice_start = g_get_monotonic_time ();
  if (++receiver->slice_count > GAB_EVENT_SLICE_EVENTS
      || ((receiver->slice_count & 15) == 0
          && g_get_monotonic_time () - receiver->slice_start >= GAB_EVENT_SLICE_USEC))
    {
      receiver->slice_count = 0;
      pause = TRUE;
    }
  if (!pause)
    {
      value = receiver_take_one (receiver, &empty);
      if (value != NULL)
        return ready_new (value);
      if (!empty)
        return NULL;
    }
  return PyObject_CallFunctionObjArgs (receiver_receive, object,
                                       pause ? Py_True : Py_False, NULL);
}

static PyObject *
receiver_repr (PyObject *object)
{
  GabReceiver *receiver = (GabReceiver *) object;

  return receiver->kind->repr (receiver->channel);
}

static int
receiver_traverse (PyObject *object,
                   visitproc visit,
                   void     *arg)
{
  GabReceiverLink *link = ((GabReceiver *) object)->link;

  Py_VISIT (link->callback);
  Py_VISIT (link->waiter);
  return 0;
}

/* The consumer stops; the waiter and the callback go too, as a future
 * awaited by a task that holds the receiver is a cycle. */
static int
receiver_clear (PyObject *object)
{
  GabReceiverLink *link = ((GabReceiver *) object)->link;

  receiver_stop (object);
  Py_CLEAR (link->waiter);
  Py_CLEAR (link->callback);
  return 0;
}

static void
receiver_dealloc (PyObject *object)
{
  PyObject_GC_UnTrack (object);
  receiver_clear (object);
  /* The link is in the channel: it goes last. */
  g_object_unref (((GabReceiver *) object)->channel);
  Py_TYPE (object)->tp_free (object);
}

/* What python/_receiver.py calls; the kind's methods follow. */
static PyMethodDef receiver_methods[] = {
  { "_take", receiver_take, METH_NOARGS, NULL },
  { "_wait", receiver_wait, METH_NOARGS, NULL },
};

/* These methods, then the kind's @own (NULL-terminated). Made once per
 * type, and kept, as the type is: for the life of the process. */
static PyMethodDef *
receiver_methods_with (const PyMethodDef *own)
{
  gsize n = 0;
  PyMethodDef *all;

  while (own != NULL && own[n].ml_name != NULL)
    n++;
  all = g_new0 (PyMethodDef, G_N_ELEMENTS (receiver_methods) + n + 1);
  memcpy (all, receiver_methods, sizeof receiver_methods);
  if (n > 0)
    memcpy (all + G_N_ELEMENTS (receiver_methods), own, n * sizeof (PyMethodDef));
  return all;
}

static PyAsyncMethods receiver_async = {
  .am_aiter = receiver_aiter,
  .am_anext = receiver_anext,
};

/* ---- the unit --------------------------------------------------------- */

static gboolean
receiver_start (void)
{
  if (receiver_receive == NULL && PyType_Ready (&Ready_Type) == 0)
    receiver_receive = gab_py_run_file_get (&gab_py_source_receiver,
                                            "gasyncbridge._receiver", "receive");
  return receiver_receive != NULL;
}

static GabSubsystem receiver_subsystem = {
  .name = "receiver",
  .start = receiver_start,
};

/* GIL: starts the unit and readies @kind's type. */
static gboolean
receiver_kind_start (const GabReceiverKind *kind)
{
  PyTypeObject *type = kind->type;

  if (!gab_lifecycle_start (&receiver_subsystem))
    return FALSE;
  if (type->tp_flags & Py_TPFLAGS_READY)
    return TRUE;
  /* The slots every kind shares (once: a failed PyType_Ready comes back
   * here); name, doc, getters and its own methods are the kind's. */
  if (type->tp_as_async == NULL)
    {
      type->tp_basicsize = sizeof (GabReceiver);
      type->tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC;
      type->tp_dealloc = receiver_dealloc;
      type->tp_traverse = receiver_traverse;
      type->tp_clear = receiver_clear;
      type->tp_repr = receiver_repr;
      type->tp_as_async = &receiver_async;
      type->tp_methods = receiver_methods_with (type->tp_methods);
    }
  return PyType_Ready (type) == 0;
}

PyObject *
gab_receiver_new (const GabReceiverKind *kind,
                  gpointer               channel,
                  GabReceiverLink       *link,
                  PyObject              *callback)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GabTaskLocals) locals = NULL;
  GabReceiver *receiver;

  if (!receiver_kind_start (kind))
    return NULL;
  if (link->taken)
    return PyErr_Format (PyExc_RuntimeError, "gasyncbridge: this %s already has its "
                         "Python consumer", kind->what);
  if (callback != NULL && !PyCallable_Check (callback))
    return PyErr_Format (PyExc_TypeError, "gasyncbridge: the callback must be callable, "
                         "not %s", Py_TYPE (callback)->tp_name);
  locals = gab_task_locals_resolve (&error);
  if (locals == NULL)
    {
      PyErr_SetString (PyExc_RuntimeError, error->message);
      return NULL;
    }
  receiver = PyObject_GC_New (GabReceiver, kind->type);
  if (receiver == NULL)
    return NULL;
  receiver->kind = kind;
  receiver->channel = g_object_ref (channel);
  receiver->link = link;
  receiver->error_raised = FALSE;
  receiver->slice_count = 0;
  receiver->slice_start = 0;
  link->taken = TRUE;
  link->callback = Py_XNewRef (callback);
  /* Under the lock: producers on other threads read the queue to wake the
   * consumer, and push no wakeup while it is NULL. */
  g_mutex_lock (link->lock);
  link->queue = gab_loop_queue_ref (locals->queue);
  g_mutex_unlock (link->lock);
  PyObject_GC_Track ((PyObject *) receiver);
  return (PyObject *) receiver;
}

gpointer
gab_receiver_get_channel (PyObject *receiver)
{
  return ((GabReceiver *) receiver)->channel;
}

void
gab_receiver_link_clear (GabReceiverLink *link)
{
  g_clear_pointer (&link->queue, gab_loop_queue_unref);
  gab_py_decref (g_steal_pointer (&link->waiter));
  gab_py_decref (g_steal_pointer (&link->callback));
}

/* ---- waking the consumer ---------------------------------------------- */

gboolean
gab_receiver_link_wake_needed (GabReceiverLink *link)
{
  if (!link->waiting || link->wake_pushed || link->queue == NULL)
    return FALSE;
  link->wake_pushed = TRUE;
  return TRUE;
}

void
gab_receiver_link_wake_push (GabReceiverLink *link,
                             gpointer         channel)
{
  g_object_ref (channel);
  gab_loop_queue_push (link->queue, &link->wake_item);
}

void
gab_receiver_link_wake_waiter (GabReceiverLink *link,
                               gboolean         alive)
{
  g_mutex_lock (link->lock);
  link->wake_pushed = FALSE;
  link->waiting = FALSE;
  g_mutex_unlock (link->lock);
  gab_py_waiter_wake (g_steal_pointer (&link->waiter), alive);
}
