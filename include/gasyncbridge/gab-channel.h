/* gab-channel.h: a bounded channel of GVariant items from C (any thread)
 * to Python (`async for`).
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
 * GAB_TYPE_CHANNEL:
 *
 * The #GType of #GabChannel.
 */
#define GAB_TYPE_CHANNEL (gab_channel_get_type ())

GAB_EXTERN
G_DECLARE_FINAL_TYPE (GabChannel, gab_channel, GAB, CHANNEL, GObject)

GAB_EXTERN
GabChannel *gab_channel_new          (guint                 capacity);
GAB_EXTERN
guint       gab_channel_get_capacity (GabChannel           *self);
GAB_EXTERN
void        gab_channel_send_async   (GabChannel           *self,
                                      GVariant             *item,
                                      GCancellable         *cancellable,
                                      GAsyncReadyCallback   callback,
                                      gpointer              user_data);
GAB_EXTERN
gboolean    gab_channel_send_finish  (GabChannel           *self,
                                      GAsyncResult         *result,
                                      GError              **error);
GAB_EXTERN
void        gab_channel_close        (GabChannel           *self,
                                      const GError         *error);
GAB_EXTERN
PyObject   *gab_channel_to_python    (GabChannel           *self);

G_END_DECLS
