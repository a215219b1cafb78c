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

/* What a channel keeps for its Python end, in its instance struct. */
typedef struct
{
  GMutex       *lock;          /* the channel's, which guards its items */
  GabLoopQueue *queue;         /* the consumer's loop: set under `lock` */
  gboolean      waiting;       /* lock: the consumer wants a wakeup */
  gboolean      wake_pushed;   /* lock: a wakeup is on its way */
  GabLoopItem   wake_item;     /* the wakeup; its run is the channel's */
  PyObject     *waiter;        /* GIL: the future `_wait()` returned, for the wakeup */
  PyObject     *callback;      /* GIL: the callback consumer, or NULL */
  gboolean      taken;         /* GIL: the one receiver has been made */
} GabReceiverLink;

typedef struct
{
  /* The Python type of the kind: its name, doc, methods and getters are
   * the kind's; the core fills in the rest (and `_take` and `_wait`
   * before its methods) and readies it. */
  PyTypeObject *type;
  /* "channel": the RuntimeError of a second gab_receiver_new() says it. */
  const char   *what;
  /* The RuntimeError of `_wait()` on a loop other than the channel's. */
  const char   *wrong_loop;
  /* TRUE: `__anext__` hands out an item that is there at once, without
   * a coroutine, and yields to the loop every GAB_EVENT_SLICE_*. */
  gboolean      sliced;
  /* Every hook: GIL, loop thread; @channel is the kind's GObject. */

  /* Takes the next item (into *@item), or says there is none yet or no
   * more; at the end *@error gets a copy of the close error, if there is
   * one. The channel's lock is not held while converting. */
  GabReceiverTake (*take)   (gpointer   channel,
                             PyObject **item,
                             GError   **error);
  /* Under the channel's lock: whether an item or the end is there (if
   * not, the consumer waits for a wakeup). */
  gboolean      (*ready)    (gpointer channel);
  /* The consumer stops (aclose, close, collection). Idempotent. */
  void          (*stop)     (gpointer channel);
  PyObject     *(*repr)     (gpointer channel);
} GabReceiverKind;

/* GIL: the Python end of @channel, whose @link it is, for one consumer on
 * the loop of the current task locals, with @callback (nullable; callable)
 * as its callback consumer. It keeps a reference to @channel. NULL with an
 * exception set: RuntimeError if @channel has its consumer already or no
 * loop is known. */
PyObject *gab_receiver_new         (const GabReceiverKind *kind,
                                    gpointer               channel,
                                    GabReceiverLink       *link,
                                    PyObject              *callback);
/* GIL: the channel of @receiver, one of @kind's (borrowed). */
gpointer  gab_receiver_get_channel (PyObject              *receiver);
/* Any thread, no GIL (references go through gab_py_decref): frees what
 * @link holds, when its channel is finalized. */
void      gab_receiver_link_clear  (GabReceiverLink       *link);

/* Waking the consumer: a producer that finds it waiting pushes one wakeup
 * item to its loop, and no other until the wakeup has run, so that a
 * burst of items costs one cross-thread wakeup. */

/* The channel's lock held: whether to push a wakeup (then call
 * gab_receiver_link_wake_push() unlocked). TRUE when the consumer waits,
 * its loop is known and no wakeup is on its way; one is, from now on. */
gboolean  gab_receiver_link_wake_needed (GabReceiverLink  *link);
/* Any thread, no lock: pushes @link's wake_item to the consumer's loop,
 * with a reference to @channel (the GObject @link is in) that the item's
 * run drops. */
void      gab_receiver_link_wake_push   (GabReceiverLink  *link,
                                         gpointer          channel);
/* GIL, loop thread, from the wake_item's run: wakes an iterating
 * consumer. It waits no more, and the future it awaits is resolved (if
 * @alive) and let go. */
void      gab_receiver_link_wake_waiter (GabReceiverLink  *link,
                                         gboolean          alive);

/* Methods for the kinds' method tables (METH_NOARGS); the core puts
 * `_take` and `_wait` before them. */
PyObject *gab_receiver_close       (PyObject              *receiver,
                                    PyObject              *unused);
PyObject *gab_receiver_aclose      (PyObject              *receiver,
                                    PyObject              *unused);

G_END_DECLS
