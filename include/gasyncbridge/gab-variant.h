/* gab-variant.h: GVariant <-> Python value conversion.
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

GAB_EXTERN
PyObject *gab_variant_to_python   (GVariant            *value);
GAB_EXTERN
GVariant *gab_variant_from_python (PyObject            *object,
                                   const GVariantType  *type,
                                   GError             **error);

G_END_DECLS
