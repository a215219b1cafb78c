/* gab-channel.c: a bounded channel of GVariant items from C code on any
 * thread to one Python consumer (`async for`).
 *
 * The items wait in a FIFO of at most `capacity` entries under one mutex.
 * A send that finds it full waits in a second FIFO, its item with it, and
 * completes when the consumer makes room (backpressure), so memory is
 * bounded by the capacity plus the items of the blocked senders.
 *
 * The consumer runs on an asyncio loop. When it finds the channel empty it
 * awaits a future; a producer that adds an item then pushes one wakeup item
 * to the loop's queue — only one while the consumer has not run yet, so a
 * burst of sends costs one wakeup — and the loop resolves the future. The
 * consumer's Python type is gab-receiver.c's, told about this channel by
 * channel_kind.
 *
 * No lock is held while a GTask completes, a cancellable is disconnected,
 * or Python runs.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gab-streams-private.h"
#include "gab-receiver-private.h"

typedef struct
{
  GTask        *task;
  GVariant     *item;
  GCancellable *cancellable;
  gulong        cancel_id;
  GList         link;
} Send;

struct _GabChannel
{
  GObject       parent_instance;
  guint         capacity;

  GMutex        lock;
  GQueue        items;          /* lock: GVariant *, oldest first */
  GQueue        senders;        /* lock: Send * waiting for room */
  gboolean      closed;         /* lock: no more sends */
  GError       *close_error;    /* lock: for the consumer, after the items */
  gboolean      consumer_gone;  /* lock */

  GabReceiverLink consumer;     /* its loop (lock to set), the future it
                                 * awaits, whether it waits and whether a
                                 * wakeup is on its way (lock) */
};

/**
 * GabChannel:
 *
 * A bounded channel of #GVariant items from C code on any thread to one
 * Python consumer: see gab_channel_new(), gab_channel_send_async() and
 * gab_channel_to_python().
 *
 * Since: 0.1
 */

/**
 * gab_channel_get_type:
 *
 * The #GType of #GabChannel.
 *
 * Returns: the type
 */
G_DEFINE_FINAL_TYPE (GabChannel, gab_channel, G_TYPE_OBJECT)

/* ---- senders ---------------------------------------------------------- */

static void
send_free (Send *send)
{
  g_clear_pointer (&send->item, g_variant_unref);
  g_clear_object (&send->cancellable);
  g_free (send);
}

/* Completes @send (taken) with @error (taken) or success. No lock held. */
static void
send_complete (Send   *send,
               GError *error)
{
  if (send->cancel_id != 0)
    g_cancellable_disconnect (send->cancellable, send->cancel_id);
  if (error != NULL)
    g_task_return_error (send->task, error);
  else
    g_task_return_boolean (send->task, TRUE);
  g_object_unref (send->task);
  send_free (send);
}

typedef struct
{
  GabChannel *channel;
  Send       *send;
} CancelData;

/* Any thread. Whoever unlinks a waiting Send (under the lock) completes
 * it: here the cancel, elsewhere the consumer making room or a close. */
static void
on_send_cancelled (GCancellable *cancellable,
                   gpointer      data)
{
  CancelData *cancel = data;
  GabChannel *self = cancel->channel;
  Send *send = cancel->send;
  gboolean mine = FALSE;

  g_mutex_lock (&self->lock);
  if (send->link.data != NULL)
    {
      g_queue_unlink (&self->senders, &send->link);
      send->link.data = NULL;
      mine = TRUE;
    }
  g_mutex_unlock (&self->lock);
  if (mine)
    {
      /* Disconnecting from inside the handler would wait for ourselves:
       * the connection goes with the cancellable. */
      send->cancel_id = 0;
      send_complete (send, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                                "Operation was cancelled"));
    }
}

static void
cancel_data_free (gpointer data)
{
  CancelData *cancel = data;

  g_object_unref (cancel->channel);
  g_free (cancel);
}

/* ---- waking the consumer ---------------------------------------------- */

/* The consumer.wake_item pushed by gab_receiver_link_wake_push(). */
static void
wake_item_run (GabLoopItem *item,
               gboolean     alive)
{
  GabChannel *self = G_STRUCT_MEMBER_P (item, -G_STRUCT_OFFSET (GabChannel,
                                                                consumer.wake_item));

  gab_receiver_link_wake_waiter (&self->consumer, alive);
  g_object_unref (self);
}

/* ---- sending ---------------------------------------------------------- */

/**
 * gab_channel_send_async:
 * @self: a #GabChannel
 * @item: the item (a floating reference is sunk)
 * @cancellable: (nullable): a #GCancellable: cancelling it withdraws an item
 *   still waiting for room
 * @callback: (scope async): called when the item is in the channel
 * @user_data: (closure): data for @callback
 *
 * Sends @item to the Python consumer. Completes at once if the channel has
 * room, else when the consumer has taken enough items to make room, so a
 * fast producer waits for a slow consumer. Items of one producer arrive in
 * the order they were sent. Any thread, no GIL; @callback runs in the
 * caller's thread-default #GMainContext. Fails with %G_IO_ERROR_CLOSED
 * after gab_channel_close(), and with %G_IO_ERROR_BROKEN_PIPE once the
 * Python consumer has gone.
 *
 * Since: 0.1
 */
void
gab_channel_send_async (GabChannel          *self,
                        GVariant            *item,
                        GCancellable        *cancellable,
                        GAsyncReadyCallback  callback,
                        gpointer             user_data)
{
  Send *send;
  GError *error = NULL;
  gboolean queued = FALSE, wake = FALSE;

  g_return_if_fail (GAB_IS_CHANNEL (self));
  g_return_if_fail (item != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  send = g_new0 (Send, 1);
  send->task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (send->task, GAB_TAG (gab_channel_send_async));
  g_task_set_name (send->task, "gab_channel_send_async");
  send->item = g_variant_ref_sink (item);
  if (cancellable != NULL)
    {
      CancelData *cancel = g_new (CancelData, 1);

      /* Connected before the Send can be queued, so that whoever
       * completes it can disconnect; a cancel that fires before it is
       * queued finds nothing to do, and is seen below. */
      cancel->channel = g_object_ref (self);
      cancel->send = send;
      send->cancellable = g_object_ref (cancellable);
      send->cancel_id = g_cancellable_connect (cancellable, G_CALLBACK (on_send_cancelled),
                                               cancel, cancel_data_free);
    }

  g_mutex_lock (&self->lock);
  if (self->consumer_gone)
    error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE,
                                 "The Python consumer of the channel has gone");
  else if (self->closed)
    error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CLOSED,
                                 "The channel is closed");
  else if (cancellable != NULL && g_cancellable_is_cancelled (cancellable))
    error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                 "Operation was cancelled");
  else if (self->items.length < self->capacity && self->senders.length == 0)
    {
      g_queue_push_tail (&self->items, g_steal_pointer (&send->item));
      wake = gab_receiver_link_wake_needed (&self->consumer);
    }
  else
    {
      send->link.data = send;
      g_queue_push_tail_link (&self->senders, &send->link);
      queued = TRUE;
    }
  g_mutex_unlock (&self->lock);

  if (wake)
    gab_receiver_link_wake_push (&self->consumer, self);
  if (!queued)
    send_complete (send, error);
}

/**
 * gab_channel_send_finish:
 * @self: a #GabChannel
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Finishes gab_channel_send_async(). No GIL needed.
 *
 * Returns: %TRUE if the item is in the channel; %FALSE with @error set
 *
 * Since: 0.1
 */
gboolean
gab_channel_send_finish (GabChannel    *self,
                         GAsyncResult  *result,
                         GError       **error)
{
  g_return_val_if_fail (GAB_IS_CHANNEL (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/* Lock held: takes every waiting sender out, to fail them unlocked. */
static GList *
steal_senders (GabChannel *self)
{
  GList *list = NULL, *l;

  while ((l = g_queue_pop_head_link (&self->senders)) != NULL)
    {
      Send *send = l->data;

      /* Unlinked: a cancel that comes now finds nothing to do. */
      send->link.data = NULL;
      list = g_list_prepend (list, send);
    }
  return g_list_reverse (list);
}

static void
fail_senders (GList        *senders,
              const GError *error)
{
  for (GList *l = senders; l != NULL; l = l->next)
    send_complete (l->data, g_error_copy (error));
  g_list_free (senders);
}

/**
 * gab_channel_close:
 * @self: a #GabChannel
 * @error: (nullable): what the consumer gets after the items: %NULL for a
 *   plain end of iteration, else the mapped exception (see gab-error.h)
 *
 * Closes the channel: the items already in it are still delivered, then
 * the consumer's `async for` ends (or raises the exception of @error).
 * Sends still waiting for room, and later sends, fail with
 * %G_IO_ERROR_CLOSED. Closing again does nothing. Any thread, no GIL.
 *
 * Since: 0.1
 */
void
gab_channel_close (GabChannel   *self,
                   const GError *error)
{
  GList *senders;
  gboolean wake;

  g_return_if_fail (GAB_IS_CHANNEL (self));

  g_mutex_lock (&self->lock);
  if (self->closed)
    {
      g_mutex_unlock (&self->lock);
      return;
    }
  self->closed = TRUE;
  self->close_error = error != NULL ? g_error_copy (error) : NULL;
  senders = steal_senders (self);
  wake = gab_receiver_link_wake_needed (&self->consumer);
  g_mutex_unlock (&self->lock);

  if (wake)
    gab_receiver_link_wake_push (&self->consumer, self);
  if (senders != NULL)
    {
      g_autoptr(GError) closed = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CLOSED,
                                                      "The channel was closed");

      fail_senders (senders, closed);
    }
}

/* ---- the Python consumer ---------------------------------------------- */

/* Loop thread: the oldest item, making room for the oldest waiting
 * sender, whose completion runs here, unlocked. */
static GabReceiverTake
receiver_take (gpointer   channel,
               PyObject **value,
               GError   **error)
{
  GabChannel *self = channel;
  GVariant *item;
  Send *moved = NULL;
  gboolean closed;

  g_mutex_lock (&self->lock);
  item = g_queue_pop_head (&self->items);
  if (item != NULL && self->senders.length > 0)
    {
      /* Room for the oldest waiting sender. */
      moved = g_queue_pop_head_link (&self->senders)->data;
      moved->link.data = NULL;
      g_queue_push_tail (&self->items, g_steal_pointer (&moved->item));
    }
  closed = self->closed;
  if (item == NULL && closed && self->close_error != NULL)
    *error = g_error_copy (self->close_error);
  g_mutex_unlock (&self->lock);

  if (moved != NULL)
    send_complete (moved, NULL);
  if (item == NULL)
    return closed ? GAB_RECEIVER_END : GAB_RECEIVER_EMPTY;
  *value = gab_variant_to_python (item);
  g_variant_unref (item);
  return GAB_RECEIVER_ITEM;
}

/* Lock held. */
static gboolean
receiver_ready (gpointer channel)
{
  GabChannel *self = channel;

  return self->items.length > 0 || self->closed;
}

/* The consumer stops: senders fail from now on. */
static void
receiver_stop (gpointer channel)
{
  GabChannel *self = channel;
  GList *senders;

  g_mutex_lock (&self->lock);
  if (self->consumer_gone)
    {
      g_mutex_unlock (&self->lock);
      return;
    }
  self->consumer_gone = TRUE;
  senders = steal_senders (self);
  g_mutex_unlock (&self->lock);
  if (senders != NULL)
    {
      g_autoptr(GError) gone = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE,
                                                    "The Python consumer of the "
                                                    "channel has gone");

      fail_senders (senders, gone);
    }
}

static PyObject *
receiver_repr (gpointer channel)
{
  GabChannel *self = channel;
  guint n;
  gboolean closed;

  g_mutex_lock (&self->lock);
  n = self->items.length;
  closed = self->closed;
  g_mutex_unlock (&self->lock);
  return PyUnicode_FromFormat ("<gasyncbridge.Channel %u/%u items%s>", n, self->capacity,
                               closed ? " closed" : "");
}

static PyMethodDef receiver_methods[] = {
  { "aclose", gab_receiver_aclose, METH_NOARGS,
    "aclose()\n--\n\nStop consuming: senders fail with G_IO_ERROR_BROKEN_PIPE from now on." },
  { NULL }
};

/* The name, doc and methods; gab_receiver_new() fills in the rest. */
static PyTypeObject Receiver_Type = {
  PyVarObject_HEAD_INIT (NULL, 0)
  .tp_name = "gasyncbridge.Channel",
  .tp_methods = receiver_methods,
  .tp_doc = "The Python end of a GabChannel: iterate with `async for`.",
};

static const GabReceiverKind channel_kind = {
  .type = &Receiver_Type,
  .what = "channel",
  .wrong_loop = "gasyncbridge: a channel is consumed on the event loop it was made for",
  .sliced = FALSE,
  .take = receiver_take,
  .ready = receiver_ready,
  .stop = receiver_stop,
  .repr = receiver_repr,
};

/**
 * gab_channel_to_python:
 * @self: a #GabChannel
 *
 * The Python end of the channel, for one consumer on the event loop of the
 * current task locals (see gab_task_locals_get_current()): an async
 * iterator whose items are the sent #GVariants converted to Python (see
 * gab_variant_to_python()), in order. After gab_channel_close() and the
 * last item, iteration ends, or raises the exception of the close error.
 * Its `aclose()`, or dropping it, makes senders fail with
 * %G_IO_ERROR_BROKEN_PIPE. A producer wakes the consumer with one
 * cross-thread wakeup per batch of items, not one per item. Call it once.
 * Needs the GIL.
 *
 * Returns: (transfer full) (nullable): the consumer object, or %NULL with
 *   an exception set (RuntimeError when called twice or with no loop known)
 *
 * Since: 0.1
 */
PyObject *
gab_channel_to_python (GabChannel *self)
{
  g_return_val_if_fail (GAB_IS_CHANNEL (self), NULL);
  g_return_val_if_fail (GAB_GIL_HELD (), NULL);

  return gab_receiver_new (&channel_kind, self, &self->consumer, NULL);
}

/* ---- the type --------------------------------------------------------- */

static void
gab_channel_finalize (GObject *object)
{
  GabChannel *self = GAB_CHANNEL (object);

  /* Senders hold references: none can be waiting here. */
  g_queue_clear_full (&self->items, (GDestroyNotify) g_variant_unref);
  g_clear_error (&self->close_error);
  gab_receiver_link_clear (&self->consumer);
  g_mutex_clear (&self->lock);
  G_OBJECT_CLASS (gab_channel_parent_class)->finalize (object);
}

static void
gab_channel_class_init (GabChannelClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = gab_channel_finalize;
}

static void
gab_channel_init (GabChannel *self)
{
  g_mutex_init (&self->lock);
  self->consumer.lock = &self->lock;
  self->consumer.wake_item.run = wake_item_run;
}

/**
 * gab_channel_new:
 * @capacity: how many items may wait for the consumer (at least 1)
 *
 * Makes a bounded channel that C code on any thread sends #GVariant items
 * into with gab_channel_send_async(), and one Python consumer takes out
 * with `async for` over gab_channel_to_python(). No GIL needed.
 *
 * Returns: (transfer full): the channel
 *
 * Since: 0.1
 */
GabChannel *
gab_channel_new (guint capacity)
{
  GabChannel *self;

  g_return_val_if_fail (capacity > 0, NULL);

  self = g_object_new (GAB_TYPE_CHANNEL, NULL);
  self->capacity = capacity;
  return self;
}

/**
 * gab_channel_get_capacity:
 * @self: a #GabChannel
 *
 * The capacity given to gab_channel_new(). Any thread.
 *
 * Returns: how many items may wait for the consumer
 *
 * Since: 0.1
 */
guint
gab_channel_get_capacity (GabChannel *self)
{
  g_return_val_if_fail (GAB_IS_CHANNEL (self), 0);
  return self->capacity;
}
