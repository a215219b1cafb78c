/* gab-loop-spin.c: the adaptive wait of the loop thread for a completion
 * that is about to arrive.
 *
 * A lone operation that completes in a few microseconds would otherwise
 * cost the loop a sleep and a wakeup. Right after starting one, if it is
 * the only thing in flight and recent ones were quick, the loop waits a
 * few microseconds with the GIL released; on a hit the eventfd is readable
 * before the loop polls it. Misses make it try only now and then.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gasyncbridge.h>
#include "gab-python.h"
#include "gab-loop-queue.h"
#include "gab-loop-spin.h"

/* How long the wait lasts. GAB_LOOP_SPIN_USEC overrides it; 0 turns it off. */
#define GAB_LOOP_SPIN_USEC_DEFAULT 30
#define GAB_LOOP_SPIN_PROBE_EVERY  32

struct _GabLoopSpin
{
  GabLoopQueue *queue;     /* borrowed: the spin is freed with its queue */
  guint         ops;       /* C operations in flight on this loop */
  guint         awaits;    /* Python tasks that C callers await */
  gint          score;     /* > 0 after hits, < 0 after misses */
  guint         skipped;
};

static gint64 loop_spin_usec = -1;

static gpointer
spin_new (GabLoopQueue *queue)
{
  GabLoopSpin *spin = g_new0 (GabLoopSpin, 1);

  spin->queue = queue;
  return spin;
}

GabLoopSpin *
gab_loop_spin_get (GabLoopQueue *queue)
{
  return gab_loop_queue_get_data (queue, spin_new, g_free);
}

void
gab_loop_spin_begin (GabLoopSpin *spin,
                     gboolean     is_await)
{
  if (is_await)
    spin->awaits++;
  else
    spin->ops++;
}

void
gab_loop_spin_end (GabLoopSpin *spin,
                   gboolean     is_await)
{
  if (is_await)
    spin->awaits--;
  else
    spin->ops--;
}

static void
spin_wait (GabLoopSpin *spin)
{
  gint64 deadline;
  gboolean hit;

  if (G_UNLIKELY (loop_spin_usec < 0))
    {
      const gchar *env = g_getenv ("GAB_LOOP_SPIN_USEC");

      loop_spin_usec = env != NULL ? MAX (0, g_ascii_strtoll (env, NULL, 10))
                                   : GAB_LOOP_SPIN_USEC_DEFAULT;
    }
  if (loop_spin_usec == 0 || gab_loop_queue_get_loop (spin->queue) == NULL)
    return;
  /* After misses (slow operations), spin only now and then, to notice when
   * operations become quick again. */
  if (spin->score < 0 && ++spin->skipped % GAB_LOOP_SPIN_PROBE_EVERY != 0)
    return;

  /* Let other Python threads run while we wait; the runtime thread needs
   * no GIL to complete an operation, and a C caller that needs it for its
   * callback gets it now rather than when the loop next sleeps. */
  Py_BEGIN_ALLOW_THREADS
  deadline = g_get_monotonic_time () + loop_spin_usec;
  while (!gab_loop_queue_has_items (spin->queue)
         && g_get_monotonic_time () < deadline)
    ;
  Py_END_ALLOW_THREADS

  /* On a hit the loop finds the completion without going to sleep. It
   * still runs from the loop, never inside the caller's call. */
  hit = gab_loop_queue_has_items (spin->queue);
  spin->score = hit ? MIN (spin->score + 1, 4) : MAX (spin->score - 2, -4);
}

void
gab_loop_spin_after_start (GabLoopSpin *spin)
{
  /* Only for one operation at a time: with others in flight the loop has
   * work to do, and waiting would only delay it. */
  if (spin->ops == 1 && spin->awaits == 0)
    spin_wait (spin);
}

void
gab_loop_spin_after_await (GabLoopSpin *spin)
{
  /* A C caller that awaits Python one call at a time sends its next call
   * a few microseconds after it hears of this one. (Operations in flight
   * do not stop it: the C caller's own driver may be one of them.) */
  if (spin->awaits == 0)
    spin_wait (spin);
}
