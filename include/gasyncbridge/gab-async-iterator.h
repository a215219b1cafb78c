/* gab-async-iterator.h: a Python async iterable consumed from C, one item
 * at a time, with backpressure and cancellation.
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
 * GAB_TYPE_ASYNC_ITERATOR:
 *
 * The #GType of #GabAsyncIterator.
 */
#define GAB_TYPE_ASYNC_ITERATOR (gab_async_iterator_get_type ())

GAB_EXTERN
G_DECLARE_FINAL_TYPE (GabAsyncIterator, gab_async_iterator, GAB, ASYNC_ITERATOR, GObject)

GAB_EXTERN
GabAsyncIterator *gab_async_iterator_new                  (PyObject             *aiterable,
                                                           guint                 read_ahead,
                                                           GError              **error);
GAB_EXTERN
guint             gab_async_iterator_get_read_ahead       (GabAsyncIterator     *self);
GAB_EXTERN
void              gab_async_iterator_next_async           (GabAsyncIterator     *self,
                                                           GCancellable         *cancellable,
                                                           GAsyncReadyCallback   callback,
                                                           gpointer              user_data);
GAB_EXTERN
PyObject         *gab_async_iterator_next_finish          (GabAsyncIterator     *self,
                                                           GAsyncResult         *result,
                                                           GError              **error);
GAB_EXTERN
void              gab_async_iterator_next_variant_async   (GabAsyncIterator     *self,
                                                           GCancellable         *cancellable,
                                                           GAsyncReadyCallback   callback,
                                                           gpointer              user_data);
GAB_EXTERN
GVariant         *gab_async_iterator_next_variant_finish  (GabAsyncIterator     *self,
                                                           GAsyncResult         *result,
                                                           GError              **error);
GAB_EXTERN
void              gab_async_iterator_close_async          (GabAsyncIterator     *self,
                                                           GCancellable         *cancellable,
                                                           GAsyncReadyCallback   callback,
                                                           gpointer              user_data);
GAB_EXTERN
gboolean          gab_async_iterator_close_finish         (GabAsyncIterator     *self,
                                                           GAsyncResult         *result,
                                                           GError              **error);

G_END_DECLS
