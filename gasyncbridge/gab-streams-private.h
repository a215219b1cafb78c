/* gab-streams-private.h: what the stream files of the bridge share.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gasyncbridge/gasyncbridge.h>
#include "gab-python.h"

G_BEGIN_DECLS

/* ---- gab-async-iterator.c -------------------------------------------- */

/* The next item as a GBytes, for GabInputStream: bytes objects are shared,
 * not copied (the GBytes keeps a reference, dropped without the GIL too);
 * other bytes-like objects are copied on the loop thread. NULL and no
 * error at the end. No GIL needed. */
void    gab_async_iterator_next_bytes_async  (GabAsyncIterator     *self,
                                              GCancellable         *cancellable,
                                              GAsyncReadyCallback   callback,
                                              gpointer              user_data);
GBytes *gab_async_iterator_next_bytes_finish (GabAsyncIterator     *self,
                                              GAsyncResult         *result,
                                              GError              **error);
/* Starts closing without waiting and without a callback (what a sync
 * close or dropping the last reference does). Any thread, no GIL. */
void    gab_async_iterator_close_soon        (GabAsyncIterator     *self);
/* GIL: TRUE if the calling thread runs the iterator's event loop, where
 * waiting for the iterator would deadlock. */
gboolean gab_async_iterator_on_loop_thread   (GabAsyncIterator     *self);

/* GIL: the GBytes for a bytes-like object (shared for bytes, else copied),
 * or NULL with @error set (G_IO_ERROR_INVALID_DATA naming @what). */
GBytes *gab_streams_bytes_from_python        (PyObject             *object,
                                              const gchar          *what,
                                              GError              **error);

G_END_DECLS
