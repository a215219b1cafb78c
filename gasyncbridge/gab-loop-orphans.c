/* gab-loop-orphans.c: items whose loop is gone, and references dropped by
 * threads without the GIL. The next holder of the GIL inside the bridge
 * runs them.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gab-loop-orphans.h"

#include <pthread.h>

static GMutex       orphan_lock;
static GabLoopItem *orphan_head;
static gint         orphan_count;   /* atomic, for the cheap check */

/* In a child of fork() only the forking thread is left. Another thread may
 * have held the lock at the fork (pushing, without the GIL; or flushing,
 * with it, when the fork came from a thread without the GIL): then the
 * lock stays held for ever (the child's first flush, from its loop, would
 * hang) and the list may be half-changed. Such a list is dropped: its items
 * are the parent's clean-up, and the child only leaks them. */
static void
orphans_atfork_child (void)
{
  if (g_mutex_trylock (&orphan_lock))
    g_mutex_unlock (&orphan_lock);
  else
    {
      orphan_head = NULL;
      g_atomic_int_set (&orphan_count, 0);
    }
  g_mutex_init (&orphan_lock);
}

/* Registered when the library is loaded: registering on first use could
 * itself be cut in half by a fork() (a child waiting for ever in
 * g_once_init_enter() for a thread it does not have). */
__attribute__ ((constructor)) static void
orphans_register_atfork (void)
{
  pthread_atfork (NULL, NULL, orphans_atfork_child);
}

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
