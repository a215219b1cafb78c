/* gasyncbridge-event-source.h: the shared core of the module's event
 * sources: something that feeds a GabEventChannel (a GObject signal
 * handler, a D-Bus subscription, an exported D-Bus object) and holds the
 * channel's Python receiver, until it is stopped, once and idempotently.
 *
 * One Python base type, gasyncbridge._EventSource, has the GC slots, the
 * `receiver` and `active` attributes and stop(); each kind is a subtype
 * that embeds GabEventSource first, gives its stop and is_active through a
 * GabEventSourceClass, and adds its own names for them (disconnect(),
 * unsubscribe(), connected...). A kind leaves tp_dealloc, tp_traverse,
 * tp_clear and Py_TPFLAGS_HAVE_GC unset: CPython gives it the base's.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "gasyncbridge-module.h"

G_BEGIN_DECLS

typedef struct _GabEventSourceClass GabEventSourceClass;

/* The fields every kind starts with. */
typedef struct
{
  PyObject_HEAD
  const GabEventSourceClass *klass;
  GabEventChannel           *channel;    /* strong */
  PyObject                  *receiver;   /* strong; the channel's EventReceiver */
} GabEventSource;

/* What a kind does; one static instance per kind. */
struct _GabEventSourceClass
{
  /* GIL held. Stops feeding the channel and closes it; idempotent, and
   * must cope with a source whose fields are still zero (a failed
   * construction). Called by stop() and its aliases, by tp_clear and by
   * tp_dealloc; it may release the GIL or call Python. */
  void     (*stop)      (GabEventSource *source);
  /* GIL held: whether the source still feeds its channel. */
  gboolean (*is_active) (GabEventSource *source);
  /* GIL held, in tp_dealloc after stop and after the channel and the
   * receiver are dropped: frees what the kind holds besides them. NULL:
   * nothing. */
  void     (*finalize)  (GabEventSource *source);
};

/* The base type, for a kind's tp_base. */
extern PyTypeObject gab_event_source_type;

/* GIL: a new source of @type (a subtype of gab_event_source_type) with
 * every field zero but @klass, already tracked by the GC, for the caller
 * to fill in; NULL with an exception set. A source given up half-filled
 * goes with Py_DECREF(). */
gpointer  gab_event_source_new      (PyTypeObject              *type,
                                     const GabEventSourceClass *klass);

/* For a kind's own names in its method and getset tables: stop() and
 * `active` under another name. */
PyObject *gab_event_source_stop_py  (PyObject *object,
                                     PyObject *unused);
PyObject *gab_event_source_get_active (PyObject *object,
                                       void     *closure);

/* 0, or -1 with an exception set. */
int       gab_event_source_init     (void);

G_END_DECLS
