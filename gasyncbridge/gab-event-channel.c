/* gab-event-channel.c: a bounded channel of events from C code on any
 * thread to one Python consumer on an asyncio loop. Pushing never waits:
 * a full channel drops (or closes), by the overflow policy chosen at
 * creation, and counts what it dropped.
 *
 * The events wait in a ring (grown on demand up to `capacity` slots) under
 * one mutex. The consumer is an async iterator or a callback. A producer
 * that adds an event while the consumer waits pushes one wakeup item to
 * the loop's completion queue, and only one until the consumer has run: a
 * burst of events costs one cross-thread wakeup, like a burst of
 * completions. Events are turned into Python objects on the loop thread,
 * one at a time as the consumer takes them, in slices: a consumer that
 * never runs out of events still lets the loop run other work every
 * GAB_EVENT_SLICE_EVENTS events or GAB_EVENT_SLICE_USEC microseconds.
 *
 * No lock is held while an event is converted or freed, or Python runs.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gasyncbridge.h>
#include "gab-python.h"
#include "gab-loop-queue.h"
#include "gab-lifecycle.h"
#include "gab-task-locals-private.h"
#include "gab-python-sources.h"

/* A slice: how long the consumer runs on before the loop gets a turn. */
#define GAB_EVENT_SLICE_EVENTS 256
#define GAB_EVENT_SLICE_USEC   1000

struct _GabEventChannel
{
  GObject              parent_instance;
  guint                capacity;
  GabEventOverflow     overflow;
  GabEventConvertFunc  convert;
  gpointer             user_data;
  GDestroyNotify       event_free;

  GMutex        lock;
  gpointer     *ring;           /* lock: ring_size slots, length events from head */
  guint         ring_size;      /* lock */
  guint         head;           /* lock */
  guint         length;         /* lock */
  gboolean      closed;         /* lock: no more pushes */
  GError       *close_error;    /* lock: for the consumer, after the events */
  gboolean      consumer_gone;  /* lock */
  gboolean      waiting;        /* lock: the consumer wants a wakeup */
  gboolean      wake_pushed;    /* lock: a wakeup is on its way */
  guint64       dropped;        /* lock */
  gint          open;           /* atomic: !closed && !consumer_gone */

  GabLoopQueue *queue;          /* lock to set; the consumer's loop */
  GabLoopItem   wake_item;
  GabLoopWatch  watch;          /* GIL: hears the loop close */
  PyObject     *waiter;         /* GIL: the future the iterator awaits */
  PyObject     *callback;       /* GIL: the callback consumer, or NULL */
  gboolean      has_consumer;   /* GIL */
  gboolean      error_raised;   /* GIL */
  guint         slice_count;    /* GIL: events handed out in this slice */
  gint64        slice_start;    /* GIL */
};

/**
 * GabEventChannel:
 *
 * A bounded channel of events from C code on any thread to one Python
 * consumer that never makes the sender wait: see gab_event_channel_new(),
 * gab_event_channel_push() and gab_event_channel_to_python().
 *
 * Since: 0.1
 */

/**
 * gab_event_channel_get_type:
 *
 * The #GType of #GabEventChannel.
 *
 * Returns: the type
 *
 * Since: 0.1
 */
G_DEFINE_FINAL_TYPE (GabEventChannel, gab_event_channel, G_TYPE_OBJECT)

static PyObject *event_next;   /* GIL */

/* ---- the ring ---------------------------------------------------------- */

/* Lock held; length < capacity. */
static void
ring_push (GabEventChannel *self,
           gpointer         event)
{
  if (self->length == self->ring_size)
    {
      guint size = MIN (self->capacity, MAX (16, self->ring_size * 2));
      gpointer *ring = g_new (gpointer, size);

      for (guint i = 0; i < self->length; i++)
        ring[i] = self->ring[(self->head + i) % self->ring_size];
      g_free (self->ring);
      self->ring = ring;
      self->ring_size = size;
      self->head = 0;
    }
  self->ring[(self->head + self->length) % self->ring_size] = event;
  self->length++;
}

/* Lock held; NULL when empty. */
static gpointer
ring_pop (GabEventChannel *self)
{
  gpointer event;

  if (self->length == 0)
    return NULL;
  event = self->ring[self->head];
  self->head = (self->head + 1) % self->ring_size;
  self->length--;
  return event;
}

/* Lock held: every event out, to free unlocked with free_events(). */
static GPtrArray *
steal_events (GabEventChannel *self)
{
  GPtrArray *events = NULL;
  gpointer event;

  while ((event = ring_pop (self)) != NULL)
    {
      if (events == NULL)
        events = g_ptr_array_new ();
      g_ptr_array_add (events, event);
    }
  return events;
}

static void
free_events (GabEventChannel *self,
             GPtrArray       *events)
{
  if (events == NULL)
    return;
  if (self->event_free != NULL)
    for (guint i = 0; i < events->len; i++)
      self->event_free (events->pdata[i]);
  g_ptr_array_free (events, TRUE);
}

static void
free_event (GabEventChannel *self,
            gpointer         event)
{
  if (event != NULL && self->event_free != NULL)
    self->event_free (event);
}

/* ---- waking the consumer ---------------------------------------------- */

static void wake_item_run (GabLoopItem *item,
                           gboolean     alive);

/* Lock held: whether to push a wakeup (then call wake_push unlocked). */
static gboolean
wake_needed (GabEventChannel *self)
{
  if (!self->waiting || self->wake_pushed || self->queue == NULL || self->consumer_gone)
    return FALSE;
  self->wake_pushed = TRUE;
  return TRUE;
}

static void
wake_push (GabEventChannel *self)
{
  self->wake_item.run = wake_item_run;
  gab_loop_queue_push (self->queue, &g_object_ref (self)->wake_item);
}

/* GIL, loop thread: hand an exception of the callback to the loop. */
static void
report_callback_error (GabEventChannel *self)
{
  PyObject *value, *context, *loop, *ret = NULL;

  /* Normalized, with its traceback (the 3.12 API, gab-python-compat.h). */
  value = PyErr_GetRaisedException ();
  loop = gab_loop_queue_get_loop (self->queue);
  context = Py_BuildValue ("{s:s,s:O,s:O}",
                           "message", "gasyncbridge: an event callback raised",
                           "exception", value != NULL ? value : Py_None,
                           "callback", self->callback != NULL ? self->callback : Py_None);
  if (loop != NULL && context != NULL)
    ret = PyObject_CallMethod (loop, "call_exception_handler", "O", context);
  if (ret == NULL)
    PyErr_WriteUnraisable (self->callback != NULL ? self->callback : Py_None);
  Py_XDECREF (ret);
  Py_XDECREF (context);
  Py_XDECREF (value);
}

/* GIL, loop thread: one slice of the callback consumer. */
static void
run_callback_slice (GabEventChannel *self)
{
  gint64 start = g_get_monotonic_time ();
  guint n = 0;
  gboolean more = FALSE;

  for (;;)
    {
      gpointer event;
      PyObject *callback, *object, *ret;

      g_mutex_lock (&self->lock);
      if (self->consumer_gone || self->callback == NULL)
        {
          self->wake_pushed = FALSE;
          g_mutex_unlock (&self->lock);
          return;
        }
      if (n >= GAB_EVENT_SLICE_EVENTS
          || (n > 0 && g_get_monotonic_time () - start >= GAB_EVENT_SLICE_USEC))
        {
          more = self->length > 0;
          if (!more)
            {
              self->wake_pushed = FALSE;
              self->waiting = TRUE;
            }
          g_mutex_unlock (&self->lock);
          break;
        }
      event = ring_pop (self);
      if (event == NULL)
        {
          self->wake_pushed = FALSE;
          self->waiting = TRUE;
          g_mutex_unlock (&self->lock);
          break;
        }
      g_mutex_unlock (&self->lock);

      n++;
      object = self->convert (event, self->user_data);
      free_event (self, event);
      if (object == NULL)
        {
          report_callback_error (self);
          continue;
        }
      callback = Py_NewRef (self->callback);
      ret = PyObject_CallOneArg (callback, object);
      Py_DECREF (callback);
      Py_DECREF (object);
      if (ret == NULL)
        report_callback_error (self);
      Py_XDECREF (ret);
    }
  if (more)
    /* wake_pushed stays set: this is the one wakeup on its way. */
    wake_push (self);
}

static void
wake_item_run (GabLoopItem *item,
               gboolean     alive)
{
  GabEventChannel *self = G_STRUCT_MEMBER_P (item, -G_STRUCT_OFFSET (GabEventChannel,
                                                                     wake_item));

  if (!alive)
    {
      g_mutex_lock (&self->lock);
      self->wake_pushed = FALSE;
      g_mutex_unlock (&self->lock);
    }
  else if (self->callback != NULL)
    run_callback_slice (self);
  else
    {
      g_mutex_lock (&self->lock);
      self->wake_pushed = FALSE;
      self->waiting = FALSE;
      g_mutex_unlock (&self->lock);
      gab_py_waiter_wake (g_steal_pointer (&self->waiter), TRUE);
    }
  g_object_unref (self);
}

/* ---- producing -------------------------------------------------------- */

/**
 * gab_event_channel_push:
 * @self: a #GabEventChannel
 * @event: (transfer full): the event, taken in every case
 *
 * Sends @event to the Python consumer, without waiting: if the consumer
 * has fallen `capacity` events behind, the channel's #GabEventOverflow
 * policy drops an event (this one or the oldest) or closes the channel;
 * gab_event_channel_get_dropped() counts the drops. Events arrive in the
 * order they were pushed, from one thread or several. Any thread, no GIL;
 * the consumer's loop thread too. A dropped event, and every event after
 * the channel closed or its consumer went away, is freed at once with the
 * channel's #GDestroyNotify, in this thread.
 *
 * Returns: %TRUE if @event is in the channel; %FALSE if it was dropped
 *
 * Since: 0.1
 */
gboolean
gab_event_channel_push (GabEventChannel *self,
                        gpointer         event)
{
  gpointer drop = NULL;
  gboolean taken = FALSE, wake = FALSE;

  g_return_val_if_fail (GAB_IS_EVENT_CHANNEL (self), FALSE);

  g_mutex_lock (&self->lock);
  if (self->closed || self->consumer_gone)
    drop = event;
  else if (self->length < self->capacity)
    {
      ring_push (self, event);
      taken = TRUE;
    }
  else
    {
      self->dropped++;
      switch (self->overflow)
        {
        case GAB_EVENT_OVERFLOW_DROP_OLDEST:
          drop = ring_pop (self);
          ring_push (self, event);
          taken = TRUE;
          break;
        case GAB_EVENT_OVERFLOW_CLOSE:
          drop = event;
          self->closed = TRUE;
          g_atomic_int_set (&self->open, FALSE);
          self->close_error = g_error_new (G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                                           "Events were lost: the consumer fell more "
                                           "than %u events behind", self->capacity);
          break;
        case GAB_EVENT_OVERFLOW_DROP_NEWEST:
        default:
          drop = event;
          break;
        }
    }
  if (taken || self->closed)
    wake = wake_needed (self);
  g_mutex_unlock (&self->lock);

  free_event (self, drop);
  if (wake)
    wake_push (self);
  return taken;
}

/**
 * gab_event_channel_is_open:
 * @self: a #GabEventChannel
 *
 * Whether pushed events can still reach a consumer: %FALSE once the
 * channel is closed or its Python consumer has gone (then every push is
 * dropped), so that a producer can skip making events nobody will see.
 * Any thread, no lock, no GIL.
 *
 * Returns: %TRUE while events pushed may be delivered
 *
 * Since: 0.1
 */
gboolean
gab_event_channel_is_open (GabEventChannel *self)
{
  g_return_val_if_fail (GAB_IS_EVENT_CHANNEL (self), FALSE);
  return g_atomic_int_get (&self->open);
}

/**
 * gab_event_channel_close:
 * @self: a #GabEventChannel
 * @error: (nullable): what the iterating consumer gets after the events:
 *   %NULL for a plain end of iteration, else the mapped exception
 *
 * Closes the channel: the events already in it are still delivered, then
 * an iterating consumer's `async for` ends (or raises the exception of
 * @error); a callback consumer just gets no more events. Later pushes are
 * dropped. Closing again does nothing. Any thread, no GIL.
 *
 * Since: 0.1
 */
void
gab_event_channel_close (GabEventChannel *self,
                         const GError    *error)
{
  gboolean wake;

  g_return_if_fail (GAB_IS_EVENT_CHANNEL (self));

  g_mutex_lock (&self->lock);
  if (self->closed)
    {
      g_mutex_unlock (&self->lock);
      return;
    }
  self->closed = TRUE;
  g_atomic_int_set (&self->open, FALSE);
  self->close_error = error != NULL ? g_error_copy (error) : NULL;
  wake = wake_needed (self);
  g_mutex_unlock (&self->lock);
  if (wake)
    wake_push (self);
}

/**
 * gab_event_channel_get_dropped:
 * @self: a #GabEventChannel
 *
 * How many events the overflow policy has dropped so far (an event pushed
 * after the channel closed is not counted). Any thread.
 *
 * Returns: the count
 *
 * Since: 0.1
 */
guint64
gab_event_channel_get_dropped (GabEventChannel *self)
{
  guint64 dropped;

  g_return_val_if_fail (GAB_IS_EVENT_CHANNEL (self), 0);
  g_mutex_lock (&self->lock);
  dropped = self->dropped;
  g_mutex_unlock (&self->lock);
  return dropped;
}

/**
 * gab_event_channel_get_capacity:
 * @self: a #GabEventChannel
 *
 * The capacity given to gab_event_channel_new(). Any thread.
 *
 * Returns: how many events may wait for the consumer
 *
 * Since: 0.1
 */
guint
gab_event_channel_get_capacity (GabEventChannel *self)
{
  g_return_val_if_fail (GAB_IS_EVENT_CHANNEL (self), 0);
  return self->capacity;
}

/* ---- the Python consumer ---------------------------------------------- */

typedef struct
{
  PyObject_HEAD
  GabEventChannel *channel;
} Receiver;

/* An awaitable that is ready at once with a value: what __anext__ returns
 * when an event is there, so that `async for` takes it without a
 * coroutine or a future. */
typedef struct
{
  PyObject_HEAD
  PyObject *value;
} Ready;

static PyTypeObject Receiver_Type;
static PyTypeObject Ready_Type;

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
  PyVarObject_HEAD_INIT (NULL, 0)
  .tp_name = "gasyncbridge._ReadyEvent",
  .tp_basicsize = sizeof (Ready),
  .tp_flags = Py_TPFLAGS_DEFAULT,
  .tp_dealloc = ready_dealloc,
  .tp_as_async = &ready_async,
  .tp_iter = PyObject_SelfIter,
  .tp_iternext = ready_iternext,
  .tp_doc = "An event that is there already (what EventReceiver.__anext__ returns).",
};

/* GIL, loop thread. The next event converted; or NULL with *@empty set
 * (no exception) when there is none yet; or NULL with an exception
 * (StopAsyncIteration at the end, the close error, a conversion error). */
static PyObject *
receiver_take_one (Receiver *receiver,
                   gboolean *empty)
{
  GabEventChannel *self = receiver->channel;
  gpointer event;
  GError *error = NULL;
  gboolean closed;
  PyObject *value;

  *empty = FALSE;
  g_mutex_lock (&self->lock);
  event = ring_pop (self);
  closed = self->closed || self->consumer_gone;
  if (event == NULL && self->closed && self->close_error != NULL && !self->error_raised)
    {
      error = g_error_copy (self->close_error);
      self->error_raised = TRUE;
    }
  g_mutex_unlock (&self->lock);

  if (event != NULL)
    {
      value = self->convert (event, self->user_data);
      free_event (self, event);
      return value;
    }
  if (error != NULL)
    {
      gab_error_to_python (error);
      g_error_free (error);
      return NULL;
    }
  if (closed)
    {
      PyErr_SetNone (PyExc_StopAsyncIteration);
      return NULL;
    }
  *empty = TRUE;
  return NULL;
}

static PyObject *
receiver_take (PyObject *object,
               PyObject *unused)
{
  gboolean empty;
  PyObject *value = receiver_take_one ((Receiver *) object, &empty), *tuple;

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

/* _wait(): a future done when there may be an event, or the end. */
static PyObject *
receiver_wait (PyObject *object,
               PyObject *unused)
{
  GabEventChannel *self = ((Receiver *) object)->channel;
  PyObject *future;
  gboolean ready;

  future = gab_loop_queue_new_future (self->queue, "gasyncbridge: events are consumed "
                                      "on the event loop they were made for");
  if (future == NULL)
    return NULL;
  Py_XSETREF (self->waiter, Py_NewRef (future));
  self->slice_count = 0;
  g_mutex_lock (&self->lock);
  ready = self->length > 0 || self->closed || self->consumer_gone;
  self->waiting = !ready;
  g_mutex_unlock (&self->lock);
  if (ready)
    {
      Py_CLEAR (self->waiter);
      if (!gab_py_future_set_none (future))
        Py_CLEAR (future);
    }
  return future;
}

/* GIL: the consumer stops; events in the channel and later pushes are
 * dropped. Idempotent. */
static void
channel_consumer_stop (GabEventChannel *self)
{
  GPtrArray *events;

  g_mutex_lock (&self->lock);
  self->consumer_gone = TRUE;
  g_atomic_int_set (&self->open, FALSE);
  events = steal_events (self);
  g_mutex_unlock (&self->lock);
  free_events (self, events);
  gab_loop_watch_remove (&self->watch);
  Py_CLEAR (self->waiter);
  Py_CLEAR (self->callback);
}

static void
on_loop_closed (GabLoopWatch *watch)
{
  GabEventChannel *self = G_STRUCT_MEMBER_P (watch, -G_STRUCT_OFFSET (GabEventChannel, watch));

  channel_consumer_stop (self);
}

static const GabLoopWatchKind event_watch_kind = {
  .closed = on_loop_closed,
};

static PyObject *
receiver_close (PyObject *object,
                PyObject *unused)
{
  channel_consumer_stop (((Receiver *) object)->channel);
  Py_RETURN_NONE;
}

static PyObject *
receiver_aclose (PyObject *object,
                 PyObject *unused)
{
  channel_consumer_stop (((Receiver *) object)->channel);
  /* An awaitable, as async iterators' aclose() are. */
  return gab_py_done_future ();
}

static PyObject *
receiver_aiter (PyObject *object)
{
  if (((Receiver *) object)->channel->callback != NULL)
    return PyErr_Format (PyExc_TypeError, "gasyncbridge: this EventReceiver delivers to a "
                         "callback; it cannot be iterated");
  return Py_NewRef (object);
}

static PyObject *
receiver_anext (PyObject *object)
{
  Receiver *receiver = (Receiver *) object;
  GabEventChannel *self = receiver->channel;
  gboolean empty, pause = FALSE;
  PyObject *value;

  if (self->callback != NULL)
    return receiver_aiter (object);
  /* The slice: after enough events in a row, the next one comes through a
   * coroutine that lets the loop run first. */
  if (self->slice_count == 0)
    self->slice_start = g_get_monotonic_time ();
  if (++self->slice_count > GAB_EVENT_SLICE_EVENTS
      || ((self->slice_count & 15) == 0
          && g_get_monotonic_time () - self->slice_start >= GAB_EVENT_SLICE_USEC))
    {
      self->slice_count = 0;
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
  return PyObject_CallFunctionObjArgs (event_next, object, pause ? Py_True : Py_False, NULL);
}

static PyObject *
receiver_get_dropped (PyObject *object,
                      void     *closure)
{
  return PyLong_FromUnsignedLongLong (gab_event_channel_get_dropped (((Receiver *) object)->channel));
}

static PyObject *
receiver_get_pending (PyObject *object,
                      void     *closure)
{
  GabEventChannel *self = ((Receiver *) object)->channel;
  guint n;

  g_mutex_lock (&self->lock);
  n = self->length;
  g_mutex_unlock (&self->lock);
  return PyLong_FromUnsignedLong (n);
}

static PyObject *
receiver_get_capacity (PyObject *object,
                       void     *closure)
{
  return PyLong_FromUnsignedLong (((Receiver *) object)->channel->capacity);
}

static PyObject *
receiver_get_closed (PyObject *object,
                     void     *closure)
{
  return PyBool_FromLong (!gab_event_channel_is_open (((Receiver *) object)->channel));
}

static PyObject *
receiver_repr (PyObject *object)
{
  GabEventChannel *self = ((Receiver *) object)->channel;
  guint n;
  guint64 dropped;
  gboolean open = gab_event_channel_is_open (self);

  g_mutex_lock (&self->lock);
  n = self->length;
  dropped = self->dropped;
  g_mutex_unlock (&self->lock);
  return PyUnicode_FromFormat ("<gasyncbridge.EventReceiver %u/%u events, %llu dropped%s>",
                               n, self->capacity, (unsigned long long) dropped,
                               open ? "" : ", closed");
}

static int
receiver_traverse (PyObject *object,
                   visitproc visit,
                   void     *arg)
{
  GabEventChannel *self = ((Receiver *) object)->channel;

  if (self != NULL)
    {
      Py_VISIT (self->callback);
      Py_VISIT (self->waiter);
    }
  return 0;
}

static int
receiver_clear (PyObject *object)
{
  GabEventChannel *self = ((Receiver *) object)->channel;

  if (self != NULL)
    channel_consumer_stop (self);
  return 0;
}

static void
receiver_dealloc (PyObject *object)
{
  Receiver *receiver = (Receiver *) object;

  PyObject_GC_UnTrack (object);
  if (receiver->channel != NULL)
    {
      channel_consumer_stop (receiver->channel);
      g_clear_object (&receiver->channel);
    }
  Py_TYPE (object)->tp_free (object);
}

static PyMethodDef receiver_methods[] = {
  { "_take", receiver_take, METH_NOARGS, NULL },
  { "_wait", receiver_wait, METH_NOARGS, NULL },
  { "close", receiver_close, METH_NOARGS,
    "close()\n--\n\nStop consuming: the events waiting and every later one are dropped." },
  { "aclose", receiver_aclose, METH_NOARGS,
    "aclose()\n--\n\nclose(), as an awaitable (async iterators have one)." },
  { NULL }
};

static PyGetSetDef receiver_getset[] = {
  { "dropped", receiver_get_dropped, NULL,
    "How many events the overflow policy dropped so far.", NULL },
  { "pending", receiver_get_pending, NULL,
    "How many events wait to be taken.", NULL },
  { "capacity", receiver_get_capacity, NULL,
    "How many events may wait before the overflow policy applies.", NULL },
  { "closed", receiver_get_closed, NULL,
    "Whether the channel is closed or the consumer has stopped.", NULL },
  { NULL }
};

static PyAsyncMethods receiver_async = {
  .am_aiter = receiver_aiter,
  .am_anext = receiver_anext,
};

static PyTypeObject Receiver_Type = {
  PyVarObject_HEAD_INIT (NULL, 0)
  .tp_name = "gasyncbridge.EventReceiver",
  .tp_basicsize = sizeof (Receiver),
  .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
  .tp_dealloc = receiver_dealloc,
  .tp_traverse = receiver_traverse,
  .tp_clear = receiver_clear,
  .tp_repr = receiver_repr,
  .tp_as_async = &receiver_async,
  .tp_methods = receiver_methods,
  .tp_getset = receiver_getset,
  .tp_doc = "The Python end of a GabEventChannel: iterate with `async for`, or it\n"
            "calls its callback on the loop.",
};

static gboolean
event_channel_start (void)
{
  PyObject *globals;

  if (event_next != NULL)
    return TRUE;
  if (PyType_Ready (&Receiver_Type) < 0
      || PyType_Ready (&Ready_Type) < 0)
    return FALSE;
  globals = gab_py_run_file (&gab_py_source_receiver, "gasyncbridge._receiver", NULL);
  if (globals == NULL)
    return FALSE;
  event_next = PyDict_GetItemString (globals, "receive");
  Py_XINCREF (event_next);
  Py_DECREF (globals);
  return event_next != NULL;
}

static GabSubsystem event_channel_subsystem = {
  .name = "event-channel",
  .start = event_channel_start,
};

/**
 * gab_event_channel_to_python:
 * @self: a #GabEventChannel
 * @callback: (nullable): a Python callable, or %NULL for an async iterator
 *
 * The Python end of the channel, on the event loop of the current task
 * locals (see gab_task_locals_get_current()), for one consumer. With
 * @callback %NULL it is an async iterator: `async for` receives each event
 * converted by the channel's #GabEventConvertFunc, in order, and after
 * gab_event_channel_close() and the last event it ends, or raises the
 * exception of the close error. With a @callback, the loop calls
 * `callback(event)` for each event instead (an exception it raises goes to
 * the loop's exception handler, and the next event still comes).
 *
 * Either way a producer wakes the loop once per batch of events, not once
 * per event, and the consumer takes at most 256 events (or 1 ms) in a row
 * before the loop runs other work. Its `close()` or `aclose()`, dropping
 * it, or the loop closing stops the consumer: the events waiting, and every
 * later push, are dropped. It also has `dropped`, `pending`, `capacity`
 * and `closed`. Call it once. Needs the GIL.
 *
 * Returns: (transfer full) (nullable): the consumer object, or %NULL with
 *   an exception set (RuntimeError when called twice or with no loop known)
 *
 * Since: 0.1
 */
PyObject *
gab_event_channel_to_python (GabEventChannel *self,
                             PyObject        *callback)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GabTaskLocals) locals = NULL;
  Receiver *receiver;
  gboolean wake;

  g_return_val_if_fail (GAB_IS_EVENT_CHANNEL (self), NULL);
  g_return_val_if_fail (GAB_GIL_HELD (), NULL);

  if (!gab_lifecycle_start (&event_channel_subsystem))
    return NULL;
  if (self->has_consumer)
    return PyErr_Format (PyExc_RuntimeError, "gasyncbridge: this event channel already "
                         "has its Python consumer");
  if (callback != NULL && !PyCallable_Check (callback))
    return PyErr_Format (PyExc_TypeError, "gasyncbridge: the callback must be callable, "
                         "not %s", Py_TYPE (callback)->tp_name);
  locals = gab_task_locals_resolve (&error);
  if (locals == NULL)
    {
      PyErr_SetString (PyExc_RuntimeError, error->message);
      return NULL;
    }
  receiver = PyObject_GC_New (Receiver, &Receiver_Type);
  if (receiver == NULL)
    return NULL;
  receiver->channel = g_object_ref (self);
  self->has_consumer = TRUE;
  self->callback = callback != NULL ? Py_NewRef (callback) : NULL;
  g_mutex_lock (&self->lock);
  self->queue = gab_loop_queue_ref (locals->queue);
  /* A callback consumer always wants a wakeup; an iterator asks for one
   * when it finds the channel empty. */
  self->waiting = callback != NULL;
  wake = self->length > 0 && wake_needed (self);
  g_mutex_unlock (&self->lock);
  PyObject_GC_Track ((PyObject *) receiver);
  self->watch.kind = &event_watch_kind;
  gab_loop_queue_watch (self->queue, &self->watch);
  if (wake)
    wake_push (self);
  return (PyObject *) receiver;
}

/* ---- the type --------------------------------------------------------- */

static void
gab_event_channel_finalize (GObject *object)
{
  GabEventChannel *self = GAB_EVENT_CHANNEL (object);
  gpointer event;

  /* The consumer holds a reference: it has stopped (and is unwatched). */
  while ((event = ring_pop (self)) != NULL)
    free_event (self, event);
  g_free (self->ring);
  g_clear_error (&self->close_error);
  g_clear_pointer (&self->queue, gab_loop_queue_unref);
  gab_py_decref (self->waiter);
  gab_py_decref (self->callback);
  g_mutex_clear (&self->lock);
  G_OBJECT_CLASS (gab_event_channel_parent_class)->finalize (object);
}

static void
gab_event_channel_class_init (GabEventChannelClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = gab_event_channel_finalize;
}

static void
gab_event_channel_init (GabEventChannel *self)
{
  g_mutex_init (&self->lock);
  self->open = TRUE;
}

/**
 * gab_event_channel_new:
 * @capacity: how many events may wait for the consumer (at least 1)
 * @overflow: what a push does when that many are waiting
 * @convert: (scope notified): turns an event into a Python object, on the
 *   loop thread with the GIL
 * @user_data: (closure convert): data for @convert; it must outlive the
 *   channel
 * @event_free: (nullable): frees an event: after @convert, or when it is
 *   dropped, on any thread and without the GIL
 *
 * Makes a bounded channel that C code on any thread pushes events into
 * with gab_event_channel_push(), which never waits, and one Python
 * consumer takes out through gab_event_channel_to_python(), with `async
 * for` or a callback. What an event is, is the caller's: a signal's
 * arguments, a D-Bus message, a file change. Memory is bounded by
 * @capacity events. No GIL needed.
 *
 * Returns: (transfer full): the channel
 *
 * Since: 0.1
 */
GabEventChannel *
gab_event_channel_new (guint                capacity,
                       GabEventOverflow     overflow,
                       GabEventConvertFunc  convert,
                       gpointer             user_data,
                       GDestroyNotify       event_free)
{
  GabEventChannel *self;

  g_return_val_if_fail (capacity > 0, NULL);
  g_return_val_if_fail (overflow <= GAB_EVENT_OVERFLOW_CLOSE, NULL);
  g_return_val_if_fail (convert != NULL, NULL);

  self = g_object_new (GAB_TYPE_EVENT_CHANNEL, NULL);
  self->capacity = capacity;
  self->overflow = overflow;
  self->convert = convert;
  self->user_data = user_data;
  self->event_free = event_free;
  return self;
}
