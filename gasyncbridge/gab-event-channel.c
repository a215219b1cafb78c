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
 * GAB_EVENT_SLICE_EVENTS events or GAB_EVENT_SLICE_USEC microseconds. The
 * iterator's Python type is gab-receiver.c's, told about this channel by
 * event_kind.
 *
 * No lock is held while an event is converted or freed, or Python runs.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gasyncbridge.h>
#include "gab-receiver-private.h"

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
  guint64       dropped;        /* lock */
  gint          open;           /* atomic: !closed && !consumer_gone */

  GabReceiverLink consumer;     /* its loop (lock to set), the future the
                                 * iterator awaits, or the callback;
                                 * whether it wants a wakeup and whether
                                 * one is on its way (lock) */
  GabLoopWatch  watch;          /* GIL: hears the loop close */
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

/* Lock held: whether to push a wakeup (then call
 * gab_receiver_link_wake_push() unlocked); a consumer that has gone wants
 * none. */
static gboolean
wake_needed (GabEventChannel *self)
{
  return !self->consumer_gone && gab_receiver_link_wake_needed (&self->consumer);
}

/* GIL, loop thread: hand an exception of the callback to the loop. */
static void
report_callback_error (GabEventChannel *self)
{
  /* A reference of our own: the exception handler may close the receiver. */
  PyObject *callback = Py_NewRef (self->consumer.callback != NULL ? self->consumer.callback
                                                                   : Py_None);
  PyObject *value, *context, *loop, *ret = NULL;

  /* Normalized, with its traceback (the 3.12 API, gab-python-compat.h). */
  value = PyErr_GetRaisedException ();
  loop = gab_loop_queue_get_loop (self->consumer.queue);
  context = Py_BuildValue ("{s:s,s:O,s:O}",
                           "message", "gasyncbridge: an event callback raised",
                           "exception", value != NULL ? value : Py_None,
                           "callback", callback);
  if (loop != NULL && context != NULL)
    ret = PyObject_CallMethod (loop, "call_exception_handler", "O", context);
  if (ret == NULL)
    PyErr_WriteUnraisable (callback);
  Py_XDECREF (ret);
  Py_XDECREF (context);
  Py_XDECREF (value);
  Py_DECREF (callback);
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
      if (self->consumer_gone || self->consumer.callback == NULL)
        {
          self->consumer.wake_pushed = FALSE;
          g_mutex_unlock (&self->lock);
          return;
        }
      if (n >= GAB_EVENT_SLICE_EVENTS
          || (n > 0 && g_get_monotonic_time () - start >= GAB_EVENT_SLICE_USEC))
        {
          more = self->length > 0;
          if (!more)
            {
              self->consumer.wake_pushed = FALSE;
              self->consumer.waiting = TRUE;
            }
          g_mutex_unlock (&self->lock);
          break;
        }
      event = ring_pop (self);
      if (event == NULL)
        {
          self->consumer.wake_pushed = FALSE;
          self->consumer.waiting = TRUE;
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
      callback = Py_NewRef (self->consumer.callback);
      ret = PyObject_CallOneArg (callback, object);
      Py_DECREF (callback);
      Py_DECREF (object);
      if (ret == NULL)
        report_callback_error (self);
      Py_XDECREF (ret);
    }
  if (more)
    /* wake_pushed stays set: this is the one wakeup on its way. */
    gab_receiver_link_wake_push (&self->consumer, self);
}

/* The consumer.wake_item pushed by gab_receiver_link_wake_push(). */
static void
wake_item_run (GabLoopItem *item,
               gboolean     alive)
{
  GabEventChannel *self = G_STRUCT_MEMBER_P (item, -G_STRUCT_OFFSET (GabEventChannel,
                                                                     consumer.wake_item));

  if (!alive)
    {
      g_mutex_lock (&self->lock);
      self->consumer.wake_pushed = FALSE;
      g_mutex_unlock (&self->lock);
    }
  else if (self->consumer.callback != NULL)
    run_callback_slice (self);
  else
    gab_receiver_link_wake_waiter (&self->consumer, TRUE);
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
    gab_receiver_link_wake_push (&self->consumer, self);
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
    gab_receiver_link_wake_push (&self->consumer, self);
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

/* Loop thread: the oldest event, converted and freed unlocked. */
static GabReceiverTake
receiver_take (gpointer   channel,
               PyObject **value,
               GError   **error)
{
  GabEventChannel *self = channel;
  gpointer event;
  gboolean closed;

  g_mutex_lock (&self->lock);
  event = ring_pop (self);
  closed = self->closed || self->consumer_gone;
  if (event == NULL && self->closed && self->close_error != NULL)
    *error = g_error_copy (self->close_error);
  g_mutex_unlock (&self->lock);

  if (event == NULL)
    return closed ? GAB_RECEIVER_END : GAB_RECEIVER_EMPTY;
  *value = self->convert (event, self->user_data);
  free_event (self, event);
  return GAB_RECEIVER_ITEM;
}

/* Lock held. */
static gboolean
receiver_ready (gpointer channel)
{
  GabEventChannel *self = channel;

  return self->length > 0 || self->closed || self->consumer_gone;
}

/* GIL: the consumer stops; events in the channel and later pushes are
 * dropped. Idempotent. */
static void
channel_consumer_stop (gpointer channel)
{
  GabEventChannel *self = channel;
  GPtrArray *events;

  g_mutex_lock (&self->lock);
  self->consumer_gone = TRUE;
  g_atomic_int_set (&self->open, FALSE);
  events = steal_events (self);
  g_mutex_unlock (&self->lock);
  free_events (self, events);
  gab_loop_watch_remove (&self->watch);
  Py_CLEAR (self->consumer.waiter);
  Py_CLEAR (self->consumer.callback);
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
receiver_repr (gpointer channel)
{
  GabEventChannel *self = channel;
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

static PyObject *
receiver_get_dropped (PyObject *object,
                      void     *closure)
{
  return PyLong_FromUnsignedLongLong (gab_event_channel_get_dropped (gab_receiver_get_channel (object)));
}

static PyObject *
receiver_get_pending (PyObject *object,
                      void     *closure)
{
  GabEventChannel *self = gab_receiver_get_channel (object);
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
  return PyLong_FromUnsignedLong (gab_event_channel_get_capacity (gab_receiver_get_channel (object)));
}

static PyObject *
receiver_get_closed (PyObject *object,
                     void     *closure)
{
  return PyBool_FromLong (!gab_event_channel_is_open (gab_receiver_get_channel (object)));
}

static PyMethodDef receiver_methods[] = {
  { "close", gab_receiver_close, METH_NOARGS,
    "close()\n--\n\nStop consuming: the events waiting and every later one are dropped." },
  { "aclose", gab_receiver_aclose, METH_NOARGS,
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

/* The name, doc, methods and getters; gab_receiver_new() fills in the
 * rest. */
static PyTypeObject Receiver_Type = {
  PyVarObject_HEAD_INIT (NULL, 0)
  .tp_name = "gasyncbridge.EventReceiver",
  .tp_methods = receiver_methods,
  .tp_getset = receiver_getset,
  .tp_doc = "The Python end of a GabEventChannel: iterate with `async for`, or it\n"
            "calls its callback on the loop.",
};

static const GabReceiverKind event_kind = {
  .type = &Receiver_Type,
  .what = "event channel",
  .wrong_loop = "gasyncbridge: events are consumed on the event loop they were made for",
  .sliced = TRUE,
  .take = receiver_take,
  .ready = receiver_ready,
  .stop = channel_consumer_stop,
  .repr = receiver_repr,
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
  PyObject *receiver;
  gboolean wake;

  g_return_val_if_fail (GAB_IS_EVENT_CHANNEL (self), NULL);
  g_return_val_if_fail (GAB_GIL_HELD (), NULL);

  receiver = gab_receiver_new (&event_kind, self, &self->consumer, callback);
  if (receiver == NULL)
    return NULL;
  g_mutex_lock (&self->lock);
  /* A callback consumer always wants a wakeup; an iterator asks for one
   * when it finds the channel empty. */
  self->consumer.waiting = callback != NULL;
  wake = self->length > 0 && wake_needed (self);
  g_mutex_unlock (&self->lock);
  self->watch.kind = &event_watch_kind;
  gab_loop_queue_watch (self->consumer.queue, &self->watch);
  if (wake)
    gab_receiver_link_wake_push (&self->consumer, self);
  return receiver;
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
  gab_receiver_link_clear (&self->consumer);
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
  self->consumer.lock = &self->lock;
  self->consumer.wake_item.run = wake_item_run;
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
