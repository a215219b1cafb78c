/* gab-stream.h: any GInputStream as an asyncio-style StreamReader, any
 * GOutputStream as a StreamWriter.
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
 * GAB_STREAM_DEFAULT_LIMIT:
 *
 * The default buffer limit of a stream reader, in bytes, as asyncio's
 * (64 KiB): the longest line readline() and readuntil() accept.
 *
 * Since: 0.1
 */
#define GAB_STREAM_DEFAULT_LIMIT 65536

GAB_EXTERN
PyObject *gab_stream_reader_new       (GInputStream  *stream,
                                       gssize         limit);
GAB_EXTERN
PyObject *gab_stream_writer_new       (GOutputStream *stream);
GAB_EXTERN
PyObject *gab_stream_reader_get_class (void);
GAB_EXTERN
PyObject *gab_stream_writer_get_class (void);

G_END_DECLS
