/* gab-error.h: GError <-> Python exception mapping.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#if !defined(GAB_INSIDE) && !defined(GAB_COMPILATION)
# error "Only <gasyncbridge/gasyncbridge.h> can be included directly."
#endif

#include <Python.h>
#include <glib.h>
#include <gasyncbridge/gab-version.h>

G_BEGIN_DECLS

/**
 * GAB_PYTHON_ERROR:
 *
 * Error domain for Python exceptions carried in a #GError. It is a GLib
 * extended error: the #GError keeps a reference to the exception object, so
 * turning it back into Python raises the very same object, traceback and all.
 *
 * Since: 0.1
 */
#define GAB_PYTHON_ERROR (gab_python_error_quark ())

/**
 * GabPythonError:
 * @GAB_PYTHON_ERROR_EXCEPTION: a Python exception was raised; the message is
 *   "ExceptionType: str(exception)".
 *
 * Codes of the %GAB_PYTHON_ERROR domain.
 *
 * Since: 0.1
 */
typedef enum
{
  GAB_PYTHON_ERROR_EXCEPTION,
} GabPythonError;

/**
 * GAB_ERROR:
 *
 * Error domain for failures of the bridge itself (no loop to run on, a value
 * that cannot be converted, a runtime that has been shut down).
 *
 * Since: 0.1
 */
#define GAB_ERROR (gab_error_quark ())

/**
 * GabError:
 * @GAB_ERROR_NO_LOOP: no asyncio event loop is known to run the awaitable on.
 * @GAB_ERROR_CONVERSION: a value cannot be converted between Python and
 *   #GVariant; the message names the type.
 * @GAB_ERROR_NOT_AWAITABLE: the object given is not awaitable.
 * @GAB_ERROR_PYTHON_NOT_INITIALIZED: the Python interpreter is not running.
 *
 * Codes of the %GAB_ERROR domain.
 *
 * Since: 0.1
 */
typedef enum
{
  GAB_ERROR_NO_LOOP,
  GAB_ERROR_CONVERSION,
  GAB_ERROR_NOT_AWAITABLE,
  GAB_ERROR_PYTHON_NOT_INITIALIZED,
} GabError;

GAB_EXTERN
GQuark    gab_python_error_quark          (void);
GAB_EXTERN
GQuark    gab_error_quark                 (void);
GAB_EXTERN
void      gab_error_set_from_python       (GError       **error);
GAB_EXTERN
PyObject *gab_error_to_python             (const GError  *error);
GAB_EXTERN
PyObject *gab_error_new_python_exception  (const GError  *error);
GAB_EXTERN
PyObject *gab_python_error_get_exception  (const GError  *error);
GAB_EXTERN
PyObject *gab_error_get_glib_error_class  (void);

G_END_DECLS
