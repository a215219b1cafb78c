/* gab-event-channel.h: a bounded, never-blocking channel of events from C
 * code on any thread to Python on an asyncio loop, delivered in batches.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#if !defined(GAB_INSIDE) && !defined(GAB_COMPILATION)
# error "Only <gasyncbridge/gasyncbridge.h> can be included directly."
#endif

#include <Python.h>
#include <gio/gio.h>
#include <gasyncbridge/gab-version.h>

G_BEGIN_DECLS

/**
 * GAB_TYPE_EVENT_CHANNEL:
 *
 * The #GType of #GabEventChannel.
 *
 * Since: 0.1
 */
#define GAB_TYPE_EVENT_CHANNEL (gab_event_channel_get_type ())

GAB_EXTERN
G_DECLARE_FINAL_TYPE (GabEventChannel, gab_event_channel, GAB, EVENT_CHANNEL, GObject)

/**
 * GabEventOverflow:
 * @GAB_EVENT_OVERFLOW_DROP_NEWEST: a full channel drops the event being
 *   pushed; the events already in it stay
 * @GAB_EVENT_OVERFLOW_DROP_OLDEST: a full channel drops its oldest event to
 *   make room for the new one
 * @GAB_EVENT_OVERFLOW_CLOSE: a full channel drops the event and closes: the
 *   consumer gets the events already in it, then an error
 *   (%G_IO_ERROR_NO_SPACE, `OSError` with errno `ENOSPC` in Python)
 *
 * What gab_event_channel_push() does when the consumer has fallen
 * `capacity` events behind. The pushing thread never waits.
 *
 * Since: 0.1
 */
typedef enum
{
  GAB_EVENT_OVERFLOW_DROP_NEWEST,
  GAB_EVENT_OVERFLOW_DROP_OLDEST,
  GAB_EVENT_OVERFLOW_CLOSE,
} GabEventOverflow;

/**
 * GabEventConvertFunc:
 * @event: an event given to gab_event_channel_push()
 * @user_data: the data given to gab_event_channel_new()
 *
 * Turns an event into the Python object the consumer receives. Runs on the
 * consumer's loop thread with the GIL, once per delivered event, as late
 * as possible (events that are dropped are never converted). The event is
 * freed with the channel's #GDestroyNotify afterwards; the function may
 * steal what it needs from it first.
 *
 * Returns: (transfer full) (nullable): the object, or %NULL with a Python
 *   exception set, which the consumer then raises (an iterator) or hands to
 *   the loop's exception handler (a callback)
 *
 * Since: 0.1
 */
typedef PyObject *(*GabEventConvertFunc) (gpointer event,
                                          gpointer user_data);

GAB_EXTERN
GabEventChannel *gab_event_channel_new         (guint                capacity,
                                                GabEventOverflow     overflow,
                                                GabEventConvertFunc  convert,
                                                gpointer             user_data,
                                                GDestroyNotify       event_free);
GAB_EXTERN
gboolean         gab_event_channel_push        (GabEventChannel     *self,
                                                gpointer             event);
GAB_EXTERN
gboolean         gab_event_channel_is_open     (GabEventChannel     *self);
GAB_EXTERN
void             gab_event_channel_close       (GabEventChannel     *self,
                                                const GError        *error);
GAB_EXTERN
guint64          gab_event_channel_get_dropped (GabEventChannel     *self);
GAB_EXTERN
guint            gab_event_channel_get_capacity (GabEventChannel    *self);
GAB_EXTERN
PyObject        *gab_event_channel_to_python   (GabEventChannel     *self,
                                                PyObject            *callback);

G_END_DECLS
