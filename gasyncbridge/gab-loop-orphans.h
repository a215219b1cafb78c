/* gab-loop-orphans.h: work that needs the GIL, left by threads without it.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _GabLoopItem GabLoopItem;
struct _GabLoopItem
{
  GabLoopItem *next;
  /* Called once, with the GIL. @alive is TRUE on the loop's own thread
   * from the running loop; FALSE when the loop has gone away (closed, or
   * collected, or the bridge shut down), and the item only cleans up. */
  void (*run) (GabLoopItem *item,
               gboolean     alive);
};

/* Any thread, no GIL: run @item (alive FALSE) under the GIL at the next
 * opportunity. */
void gab_orphan_push   (GabLoopItem *item);
/* GIL held: run orphaned items. Cheap when there are none. */
void gab_orphans_flush (void);

G_END_DECLS
