/* gab-error-private.h: exceptions and GErrors, for
 * the bridge's units (gab-error.c).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "gab-python-compat.h"
#include <glib.h>
#include "gab-lifecycle.h"

G_BEGIN_DECLS

/* GIL held, or not even Python: starts the error unit and @subsystem
 * (gab-lifecycle.h), reporting a failure as a GError. */
gboolean gab_error_start_subsystem (GabSubsystem *subsystem,
                                    GError      **error);
/* GIL held: the GError for an exception object (mapped or kept). */
GError  *gab_error_from_exception (PyObject *exception);
/* The message of a Python exception object, "Type: str(exc)". */
gchar   *gab_exception_describe (PyObject *exception);

G_END_DECLS
