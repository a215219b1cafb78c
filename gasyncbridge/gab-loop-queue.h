/* gab-loop-queue.h: completions crossing into an asyncio loop, in
 * batches, delivered in time-bounded slices.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "gab-python-compat.h"
#include <gio/gio.h>

#include "gab-loop-orphans.h"
#include "gab-loop-watch.h"

G_BEGIN_DECLS

typedef struct _GabLoopQueue GabLoopQueue;

/* The delivery budget of one loop iteration, in microseconds: after it,
 * what is left waits for the next iteration (order kept), so that other
 * callbacks and timers of the loop run in between. GAB_LOOP_BUDGET_USEC
 * overrides it. */
#define GAB_LOOP_BUDGET_USEC_DEFAULT 1000

GabLoopQueue *gab_loop_queue_get          (PyObject     *loop);   /* GIL; transfer none; NULL + exception */
GabLoopQueue *gab_loop_queue_ref          (GabLoopQueue *queue);  /* any thread */
void          gab_loop_queue_unref        (GabLoopQueue *queue);  /* any thread */
PyObject     *gab_loop_queue_get_loop     (GabLoopQueue *queue);  /* GIL; borrowed; NULL once gone */
/* Any thread: TRUE while something is queued (a peek, no lock). */
gboolean      gab_loop_queue_has_items    (GabLoopQueue *queue);
/* GIL: a private GMainContext for GTask callbacks of C code called on
 * this loop's thread, where GLib's default context is not iterated. */
GMainContext *gab_loop_queue_get_dispatch_context (GabLoopQueue *queue);
/* GIL, on the loop's thread: dispatch what is ready in that context. */
void          gab_loop_queue_dispatch     (GabLoopQueue *queue);
/* Any thread, no GIL: @item runs on the loop's thread, from the loop, in
 * the order pushed; a loop already gone gets it as an orphan. */
void          gab_loop_queue_push         (GabLoopQueue *queue,
                                           GabLoopItem  *item);
/* Like gab_loop_queue_push(), but FALSE (item not taken) when the loop is
 * gone, so that a caller without the GIL can fail at once. */
gboolean      gab_loop_queue_try_push     (GabLoopQueue *queue,
                                           GabLoopItem  *item);
/* GIL: the one slot of per-loop data for a unit above the queue (the
 * spin): created by @create on first use, freed with the queue. */
gpointer      gab_loop_queue_get_data     (GabLoopQueue *queue,
                                           gpointer    (*create) (GabLoopQueue *queue),
                                           GDestroyNotify destroy);
/* GIL, loop thread: add @watch to this loop's watches. */
void          gab_loop_queue_watch        (GabLoopQueue *queue,
                                           GabLoopWatch *watch);
/* GIL held: start the unit (gab-lifecycle.h), which at interpreter exit
 * cleans up the items of loops that are not running and in a forked child
 * unhooks every queue from its loop. FALSE with an exception set. */
gboolean      gab_loop_queues_start       (void);
/* GIL, loop thread: a new future of @queue's loop, which must be the
 * running one (else RuntimeError saying @misuse). New ref, or NULL. */
PyObject     *gab_loop_queue_new_future   (GabLoopQueue *queue,
                                           const char   *misuse);

G_END_DECLS
