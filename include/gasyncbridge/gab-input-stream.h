/* gab-input-stream.h: a GInputStream whose bytes come from a Python async
 * iterable of bytes-like chunks.
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
 * GAB_TYPE_INPUT_STREAM:
 *
 * The #GType of #GabInputStream.
 */
#define GAB_TYPE_INPUT_STREAM (gab_input_stream_get_type ())

GAB_EXTERN
G_DECLARE_FINAL_TYPE (GabInputStream, gab_input_stream, GAB, INPUT_STREAM, GInputStream)

GAB_EXTERN
GInputStream *gab_input_stream_new (PyObject  *aiterable,
                                    GError   **error);

G_END_DECLS
