/* gab-loop-spin.h: waiting a few microseconds, GIL released, for a
 * completion that is about to arrive, so that the loop finds it without
 * going to sleep.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "gab-loop-queue.h"

G_BEGIN_DECLS

/* What the spin knows of a loop: how much is in flight on it, and how
 * well recent guesses went. One per queue; GIL held for every call. */
typedef struct _GabLoopSpin GabLoopSpin;

/* GIL: the spin state of @queue's loop, created on first use. */
GabLoopSpin *gab_loop_spin_get     (GabLoopQueue *queue);
/* GIL, loop thread: an operation (C work whose completion the loop
 * awaits) or an await (a Python task a C caller awaits) starts or ends. */
void         gab_loop_spin_begin   (GabLoopSpin  *spin,
                                    gboolean      is_await);
void         gab_loop_spin_end     (GabLoopSpin  *spin,
                                    gboolean      is_await);
/* GIL, loop thread, right after starting an operation: if it is the only
 * thing in flight and recent ones completed quickly, wait briefly for its
 * completion. */
void         gab_loop_spin_after_start (GabLoopSpin *spin);
/* GIL, loop thread, after completing the last awaited task: the same
 * wait, for a C caller's next call. */
void         gab_loop_spin_after_await (GabLoopSpin *spin);

G_END_DECLS
