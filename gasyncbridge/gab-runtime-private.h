/* gab-runtime-private.h: what the bridge layer needs from the runtime.
 * Pure GLib, like the runtime itself.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>
#include <gasyncbridge/gab-version.h>
#include <gasyncbridge/gab-runtime.h>

G_BEGIN_DECLS

/* A unit of work for the runtime thread. Embedded in the caller's own struct
 * so that queueing allocates nothing; `run` is called once, on the runtime
 * thread, in FIFO order with every other item. */
typedef struct _GabRuntimeItem GabRuntimeItem;
struct _GabRuntimeItem
{
  GabRuntimeItem *next;
  void          (*run) (GabRuntimeItem *item);
};

/* Hooks the bridge layer installs, so that the runtime can stay free of
 * Python while shutdown still does the right thing with Python work. */
typedef struct
{
  /* Runtime thread, at the start of shutdown: fail pending operations. */
  void     (*closing)     (void);
  /* Runtime thread: TRUE once no operation still waits for a GIO callback. */
  gboolean (*idle)        (void);
  /* Runtime thread, when the shutdown grace period is over. */
  void     (*closed)      (void);
  /* Runtime thread, just before it exits: drop per-thread state. */
  void     (*thread_exit) (void);
  /* Caller of gab_shutdown(), around the join: release and retake the GIL. */
  gpointer (*block_begin) (void);
  void     (*block_end)   (gpointer token);
} GabRuntimeHooks;

void     gab_runtime_set_hooks (const GabRuntimeHooks *hooks);
gboolean gab_runtime_ensure    (GError               **error);
gboolean gab_runtime_push      (GabRuntimeItem        *item);
gboolean gab_runtime_is_closing (void);
/* TRUE while gab_shutdown() runs (not before, not after). */
gboolean gab_runtime_is_shutting_down (void);
/* In a child of fork(): the items the parent's inbox held (once). */
GabRuntimeItem *gab_runtime_take_forked_items (void);

G_END_DECLS
