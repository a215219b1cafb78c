/* gab-loop-watch.h: things in flight on a loop that must hear when it
 * closes, and a periodic sweep over them.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "gab-python-compat.h"
#include <glib.h>

G_BEGIN_DECLS

/* Something in flight on a loop that must hear when the loop closes: an
 * operation whose future the loop is waiting for, a Python task a C caller
 * awaits. All fields belong to the set; GIL held for every call. */
typedef struct _GabLoopWatch GabLoopWatch;

/* What a kind of watch does; one static instance per kind. */
typedef struct
{
  /* The loop was closed (or collected) with this still watched; the watch
   * is already off the list. Never NULL. */
  void     (*closed)    (GabLoopWatch *watch);
  /* Both NULL, or both set: now and then, on the loop's thread and from
   * the loop, @candidate picks watches to look at (no Python calls in
   * it), and @sweep looks (Python allowed); FALSE keeps watching. */
  gboolean (*candidate) (GabLoopWatch *watch);
  gboolean (*sweep)     (GabLoopWatch *watch);
  /* Nullable: visits the Python references the watched thing holds that
   * lead back to the loop (a future, a task). The queue's reader, which
   * the loop holds, reports them to the garbage collector as its own: a
   * loop dropped without close() while they are held is then garbage like
   * any reference cycle, and collecting it closes the queue (closed()
   * above lets go of them). */
  int      (*traverse)  (GabLoopWatch *watch,
                         visitproc     visit,
                         void         *arg);
} GabLoopWatchKind;

struct _GabLoopWatch
{
  GabLoopWatch           *prev;
  GabLoopWatch           *next;
  GabLoopWatch          **list;   /* the list it is on, NULL when on none */
  const GabLoopWatchKind *kind;
};

/* The watches of one loop. Its owner (the loop's queue) is kept alive by
 * a pending sweep timer through @owner_ref/@owner_unref. */
typedef struct
{
  GabLoopWatch *head;
  PyObject     *loop;          /* borrowed; NULL once the loop is gone */
  gboolean      sweep_armed;   /* a call_later of the sweep is pending */
  gpointer      owner;
  gpointer    (*owner_ref)   (gpointer owner);
  void        (*owner_unref) (gpointer owner);
} GabLoopWatchSet;

/* GIL, loop thread: add @watch, which must be on no list. If the loop is
 * already gone, its kind's closed() runs at once. */
void gab_loop_watch_set_add    (GabLoopWatchSet *set,
                                GabLoopWatch    *watch);
/* GIL: the loop is gone: every watch hears closed(). Idempotent. */
void gab_loop_watch_set_close  (GabLoopWatchSet *set);
/* GIL, child after fork(): drop every watch without a word (what they
 * stand for is failed by its own after-fork code). */
void gab_loop_watch_set_forget (GabLoopWatchSet *set);
/* GIL: take @watch off its list; nothing if it is on none. */
void gab_loop_watch_remove     (GabLoopWatch    *watch);
/* GIL: ready the sweep's Python type (the loop queues' start). */
gboolean gab_loop_watch_types_ready (void);

G_END_DECLS
