/* gasyncbridge-gio.c: `gasyncbridge.gio`, GIO for asyncio, and call_gio.
 *
 * The reference binding: each function is a GabStartFunc that starts one
 * GIO call on the runtime thread and a GabFinishFunc that turns its result
 * into Python, glued by gab_future_into_py(). Copy this pattern to wrap any
 * GIO-style async API.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gasyncbridge-module.h"

/* GIL: a path argument (str, bytes or os.PathLike) as a GFile. */
static GFile *
file_from_path (PyObject *path)
{
  PyObject *bytes = NULL;
  GFile *file;

  if (!PyUnicode_FSConverter (path, &bytes))
    return NULL;
  file = g_file_new_for_path (PyBytes_AS_STRING (bytes));
  Py_DECREF (bytes);
  return file;
}

/* ---- load_contents --------------------------------------------------- */

static void
load_contents_start (GCancellable        *cancellable,
                     GAsyncReadyCallback  callback,
                     gpointer             callback_data,
                     gpointer             user_data)
{
  g_file_load_contents_async (G_FILE (user_data), cancellable, callback, callback_data);
}

static PyObject *
load_contents_finish (GObject       *source,
                      GAsyncResult  *result,
                      gpointer       user_data,
                      GError       **error)
{
  g_autofree gchar *contents = NULL;
  gsize length = 0;

  if (!g_file_load_contents_finish (G_FILE (source), result, &contents, &length,
                                    NULL, error))
    return NULL;
  return PyBytes_FromStringAndSize (contents, (Py_ssize_t) length);
}

static PyObject *
gio_load_contents (PyObject *self,
                   PyObject *path)
{
  GFile *file = file_from_path (path);

  if (file == NULL)
    return NULL;
  return gab_future_into_py (load_contents_start, load_contents_finish,
                             file, g_object_unref);
}

/* ---- call_gio -------------------------------------------------------- */

PyObject *
gab_module_call_gio (PyObject        *self,
                     PyObject *const *args,
                     Py_ssize_t       nargs)
{
  PyErr_SetString (PyExc_NotImplementedError, "call_gio is not implemented yet");
  return NULL;
}

static PyMethodDef gio_methods[] = {
  { "load_contents", gio_load_contents, METH_O,
    "load_contents(path)\n--\n\nThe whole contents of a file, as bytes." },
  { NULL }
};

static struct PyModuleDef gio_def = {
  PyModuleDef_HEAD_INIT,
  .m_name = "gasyncbridge.gio",
  .m_doc = "GIO operations as asyncio awaitables, on the gasyncbridge runtime.",
  .m_size = -1,
  .m_methods = gio_methods,
};

PyObject *
gab_module_gio_new (void)
{
  return PyModule_Create (&gio_def);
}
