/* gab-receiver-private.h: the Python end of a channel, for gab-channel.c
 * and gab-event-channel.c (gab-receiver.c).
 *
 * A receiver is an async iterator over one channel, consumed on the loop
 * its channel was handed to. The receiver core owns the Python side (the
 * type's slots, `_take`/`_wait`, `aclose`, `__anext__` through
 * python/_receiver.py, the GC); a channel kind describes its channel with
 * one static GabReceiverKind, whose hooks the core calls with the GIL on
 * the loop thread.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "gab-python.h"
#include "gab-loop-queue.h"

G_BEGIN_DECLS

/* A slice of a sliced receiver (and of the event channel's callback
 * consumer): how many events, or microseconds, the consumer runs on
 * before the loop gets a turn. */
#define GAB_EVENT_SLICE_EVENTS 256
#define GAB_EVENT_SLICE_USEC   1000

typedef enum
{
  GAB_RECEIVER_ITEM,    /* the next item, converted (NULL if that raised) */
  GAB_RECEIVER_EMPTY,   /* none yet: the consumer will wait */
  GAB_RECEIVER_END,     /* no more: closed, or the consumer stopped */
} GabReceiverTake;

typedef struct
{
  /* The Python type of the kind: its name, doc, methods and getters are
   * the kind's; gab_receiver_start() fills in the rest and readies it. */
  PyTypeObject *type;
  /* The RuntimeError of `_wait()` on a loop other than the channel's. */
  const char   *wrong_loop;
  /* TRUE: `__anext__` hands out an item that is there at once, without
   * a coroutine, and yields to the loop every GAB_EVENT_SLICE_*. */
  gboolean      sliced;

  /* Every hook: GIL; @channel is the kind's GObject. */

  /* The consumer's loop queue, and the slot of the future `_wait()`
   * returned, which the channel's wakeup resolves. */
  GabLoopQueue *(*queue)    (gpointer channel);
  PyObject    **(*waiter)   (gpointer channel);
  /* Loop thread: takes the next item (into *@item), or says there is none
   * yet or no more; at the end *@error gets a copy of the close error, if
   * there is one. The channel's lock is not held while converting. */
  GabReceiverTake (*take)   (gpointer   channel,
                             PyObject **item,
                             GError   **error);
  /* Under the channel's lock: TRUE if an item or the end is there; else
   * FALSE, and the channel now wants a wakeup for the next one. */
  gboolean      (*ready)    (gpointer channel);
  /* The consumer stops (aclose, close, collection). Idempotent. */
  void          (*stop)     (gpointer channel);
  PyObject     *(*repr)     (gpointer channel);
  /* Nullable hook: the callback consumer (borrowed), or NULL for an
   * iterator; a receiver with a callback cannot be iterated. */
  PyObject     *(*callback) (gpointer channel);
} GabReceiverKind;

/* GIL: starts the unit (its Python, the ready awaitable) and readies
 * @kind's type. FALSE with an exception set. */
gboolean  gab_receiver_start       (const GabReceiverKind *kind);
/* GIL, after gab_receiver_start(): a new receiver of @channel (it keeps a
 * reference), or NULL with an exception set. */
PyObject *gab_receiver_new         (const GabReceiverKind *kind,
                                    gpointer               channel);
/* GIL: the channel of @receiver, one of @kind's (borrowed). */
gpointer  gab_receiver_get_channel (PyObject              *receiver);

/* The methods, for the kinds' method tables (METH_NOARGS). */
PyObject *gab_receiver_take        (PyObject              *receiver,
                                    PyObject              *unused);
PyObject *gab_receiver_wait        (PyObject              *receiver,
                                    PyObject              *unused);
PyObject *gab_receiver_close       (PyObject              *receiver,
                                    PyObject              *unused);
PyObject *gab_receiver_aclose      (PyObject              *receiver,
                                    PyObject              *unused);

G_END_DECLS
