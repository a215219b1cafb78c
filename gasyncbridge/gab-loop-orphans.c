/* gab-loop-orphans.c: items whose loop is gone, and references dropped by
 * threads without the GIL. The next holder of the GIL inside the bridge
 * runs them.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gab-loop-orphans.h"

static GMutex       orphan_lock;
static GabLoopItem *orphan_head;
static gint         orphan_count;   /* atomic, for the cheap check */

void
gab_orphan_push (GabLoopItem *item)
{
  g_mutex_lock (&orphan_lock);
  item->next = orphan_head;
  orphan_head = item;
  g_atomic_int_inc (&orphan_count);
  g_mutex_unlock (&orphan_lock);
}

void
gab_orphans_flush (void)
{
  GabLoopItem *items;

  if (g_atomic_int_get (&orphan_count) == 0)
    return;
  g_mutex_lock (&orphan_lock);
  items = orphan_head;
  orphan_head = NULL;
  g_atomic_int_set (&orphan_count, 0);
  g_mutex_unlock (&orphan_lock);

  /* Run outside the lock: an item may orphan more. */
  while (items != NULL)
    {
      GabLoopItem *item = items;

      items = item->next;
      item->run (item, FALSE);
    }
}
