/* gab-lifecycle.h: start, shutdown and fork, for every unit of the bridge.
 *
 * Each unit that keeps state across calls (Python types and helpers,
 * pending operations, loop queues, the default task locals) describes
 * itself with one static GabSubsystem and starts it with
 * gab_lifecycle_start() on the way into its entry points. The lifecycle
 * runs the start once, after the units it depends on (a start function
 * starts those itself, first), and from then on calls the unit's hooks at
 * runtime shutdown, at interpreter exit and in a forked child, in the
 * reverse order of the starts: a unit is stopped before the ones it uses.
 *
 * The units call the lifecycle, never the other way round: it knows them
 * only through the hooks they hand it, so no unit calls up into another
 * that sits above it (no include or call circle; doc/design.md).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "gab-python-compat.h"
#include <glib.h>

G_BEGIN_DECLS

typedef struct _GabSubsystem GabSubsystem;

struct _GabSubsystem
{
  const char *name;
  /* GIL, the first time the unit is used: ready its types, load its
   * Python, start the units it needs. FALSE with a Python exception set.
   * Idempotent: Python code run here may let another thread in to start
   * the same unit. */
  gboolean  (*start)       (void);
  /* Runtime thread, when gab_shutdown() begins, no GIL: fail what is
   * pending in C (the Python side hears of it through the loop queues). */
  void      (*closing)     (void);
  /* Then the same, with the GIL (not called if Python is gone). */
  void      (*closing_gil) (void);
  /* Runtime thread, during shutdown: whether nothing of the unit runs
   * any more (NULL: always idle). */
  gboolean  (*idle)        (void);
  /* Runtime thread, at the end of shutdown. */
  void      (*closed)      (void);
  /* Interpreter exit, GIL, after the runtime stopped. */
  void      (*at_exit)     (void);
  /* GIL, in the child after fork(): the parent's runtime is not here. */
  void      (*after_fork)  (void);

  /*< private >*/
  gboolean      started;
  GabSubsystem *next;
};

/* GIL held. Starts the lifecycle (Python lookups, the atexit and fork
 * handlers, the runtime's hooks) and then @subsystem (nullable: the
 * lifecycle alone), once each. FALSE with a Python exception set. */
gboolean gab_lifecycle_start (GabSubsystem *subsystem);

G_END_DECLS
