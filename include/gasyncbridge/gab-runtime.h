/* gab-runtime.h: the GLib side of the bridge — a GMainContext on a
 * background thread that runs GIO work. Pure GLib: no Python here.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#if !defined(GAB_INSIDE) && !defined(GAB_COMPILATION)
# error "Only <gasyncbridge/gasyncbridge.h> can be included directly."
#endif

#include <glib.h>
#include <gasyncbridge/gab-version.h>

G_BEGIN_DECLS

GAB_EXTERN
gboolean      gab_init              (GError        **error);
GAB_EXTERN
gboolean      gab_init_with_context (GMainContext   *context,
                                     GError        **error);
GAB_EXTERN
GMainContext *gab_get_context       (void);
GAB_EXTERN
void          gab_invoke            (GSourceFunc     func,
                                     gpointer        data,
                                     GDestroyNotify  notify);
GAB_EXTERN
gboolean      gab_is_runtime_thread (void);
GAB_EXTERN
void          gab_shutdown          (void);

GAB_EXTERN
gboolean      gab_check_fork_child  (GError        **error);

G_END_DECLS
