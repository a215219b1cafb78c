/* gasyncbridge-gio.c: `gasyncbridge.gio`, GIO for asyncio.
 *
 * The reference binding: everything here uses the public C API only, and
 * every function follows the same pattern.
 *
 *   1. The Python call, on the loop thread with the GIL: check and convert
 *      the arguments into plain C data (GFile, GBytes, gchar **) kept in one
 *      struct per call. Bad arguments raise TypeError or ValueError here,
 *      before anything starts, and nothing after this needs Python.
 *   2. A GabStartFunc, on the runtime thread, without the GIL: start the
 *      GIO call with the cancellable and callback it is given. GIO calls
 *      back on the runtime thread, whose GMainContext is thread-default
 *      there. Operations of several steps (list_dir, copy, communicate)
 *      chain their GIO calls on that thread and complete a GTask of their
 *      own at the end, which is the callback the bridge gave them.
 *   3. A GabFinishFunc, on the loop thread with the GIL: call *_finish and
 *      convert the result to Python. A GError returned from here becomes
 *      the mapped exception (FileNotFoundError, ...) with .domain and .code.
 *
 * gab_future_into_py() glues the three. Here it is
 * gab_future_into_py_full() with GAB_FUTURE_CANCEL_WAITS, because these
 * operations have cleanup to do when they are cancelled (remove a partial
 * file, kill and reap a child).
 * A plain bridge future is cancelled at once, so the awaiting task would
 * see CancelledError while GIO is still cleaning up; an Operation's
 * cancel() only asks GIO to stop, and the future completes, cancelled, when
 * GIO has reported back. A binding with no such cleanup calls
 * gab_future_into_py() directly (as examples/gio-binding does).
 *
 * The struct of a call is created with the GIL, used by the runtime thread
 * from start until its GIO callback, then by the loop thread in finish;
 * the bridge frees it with the GIL once neither can run. Python objects in
 * it are only touched with the GIL.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gasyncbridge-module.h"


/* ---- the submodule ---------------------------------------------------- */

static PyMethodDef gio_methods[] = {
  { "load_contents", gab_module_load_contents, METH_O, gab_module_load_contents_doc },
  { "replace_contents", (PyCFunction) (void (*) (void)) gab_module_replace_contents,
    METH_VARARGS | METH_KEYWORDS, gab_module_replace_contents_doc },
  { "query_info", (PyCFunction) (void (*) (void)) gab_module_query_info,
    METH_VARARGS | METH_KEYWORDS, gab_module_query_info_doc },
  { "list_dir", gab_module_list_dir, METH_O, gab_module_list_dir_doc },
  { "copy", (PyCFunction) (void (*) (void)) gab_module_copy,
    METH_VARARGS | METH_KEYWORDS, gab_module_copy_doc },
  { "communicate", (PyCFunction) (void (*) (void)) gab_module_communicate,
    METH_VARARGS | METH_KEYWORDS, gab_module_communicate_doc },
  { "resolve", (PyCFunction) (void (*) (void)) gab_module_resolve,
    METH_VARARGS | METH_KEYWORDS, gab_module_resolve_doc },
  { "dbus_call", (PyCFunction) (void (*) (void)) gab_module_dbus_call,
    METH_VARARGS | METH_KEYWORDS, gab_module_dbus_call_doc },
  { "_copy_progress", gab_module_copy_progress, METH_VARARGS,
    "_copy_progress(id, current, total)\n--\n\n"
    "Internal: delivers copy progress on the loop (see copy())." },
  { NULL }
};

static struct PyModuleDef gio_def = {
  PyModuleDef_HEAD_INIT,
  .m_name = "gasyncbridge.gio",
  .m_doc = "GIO operations as asyncio awaitables, on the gasyncbridge runtime.\n\n"
           "Each function returns an Operation (an asyncio.Future) at once: bad\n"
           "arguments raise TypeError or ValueError at the call, before anything\n"
           "starts. The GIO work runs on the runtime thread; await the result on\n"
           "any asyncio loop (uvloop too). GErrors raise the mapped exceptions\n"
           "(FileNotFoundError, PermissionError, ..., else gasyncbridge.GLibError),\n"
           "each with .domain and .code. Cancelling the awaiting task cancels the\n"
           "GIO operation and waits until it has cleaned up.",
  .m_size = -1,
  .m_methods = gio_methods,
};

PyObject *
gab_module_gio_new (void)
{
  PyObject *module = PyModule_Create (&gio_def);
  PyObject *operation_type;

  if (module == NULL)
    return NULL;
  operation_type = gab_future_get_operation_class ();
  if (!gab_module_files_init ()
      || operation_type == NULL
      || PyModule_AddObject (module, "Operation", Py_NewRef (operation_type)) < 0)
    {
      Py_DECREF (module);
      return NULL;
    }
  return module;
}

