/* gasyncbridge-module.c: `gasyncbridge._gasyncbridge`, the extension
 * module of the `gasyncbridge` package (gasyncbridge/__init__.py re-exports
 * it, beside the parts written in Python).
 *
 * A face of the library: everything here uses the public C API only, the
 * way a binding author would.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gasyncbridge-module.h"

#include <math.h>

/* ---- sleep ----------------------------------------------------------- */

typedef struct
{
  gdouble   seconds;
  PyObject *result;
  GTask    *task;      /* runtime thread */
  GSource  *timeout;
  GSource  *cancel;
} Sleep;

static void
sleep_free (gpointer data)
{
  Sleep *self = data;

  Py_XDECREF (self->result);   /* called with the GIL */
  g_free (self);
}

/* Runtime thread: whichever of the timeout and the cancel comes first
 * completes the task and removes the other. */
static void
sleep_complete (Sleep  *self,
                GError *error)
{
  gab_module_source_clear (&self->timeout);
  gab_module_source_clear (&self->cancel);
  gab_module_task_return_outcome (&self->task, &error);
}

static gboolean
sleep_timeout_cb (gpointer data)
{
  sleep_complete (data, NULL);
  return G_SOURCE_REMOVE;
}

static gboolean
sleep_cancel_cb (GCancellable *cancellable,
                 gpointer      data)
{
  sleep_complete (data, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                             "The sleep was cancelled"));
  return G_SOURCE_REMOVE;
}

static void
sleep_start (GCancellable        *cancellable,
             GAsyncReadyCallback  callback,
             gpointer             callback_data,
             gpointer             user_data)
{
  Sleep *self = user_data;
  GMainContext *ctx = g_main_context_get_thread_default ();

  self->task = g_task_new (NULL, cancellable, callback, callback_data);
  if (self->seconds <= 0)
    {
      sleep_complete (self, NULL);   /* no sources yet */
      return;
    }
  if (self->seconds < G_MAXUINT / 1000.0)
    self->timeout = g_timeout_source_new ((guint) ceil (self->seconds * 1000.0));
  else if (self->seconds < (gdouble) G_MAXUINT)
    self->timeout = g_timeout_source_new_seconds ((guint) ceil (self->seconds));
  /* else: longer than GLib can time, and as good as forever */
  if (self->timeout != NULL)
    {
      g_source_set_callback (self->timeout, sleep_timeout_cb, self, NULL);
      g_source_attach (self->timeout, ctx);
    }
  self->cancel = g_cancellable_source_new (cancellable);
  g_source_set_callback (self->cancel, G_SOURCE_FUNC (sleep_cancel_cb), self, NULL);
  g_source_attach (self->cancel, ctx);
}

static PyObject *
sleep_finish (GObject       *source,
              GAsyncResult  *result,
              gpointer       user_data,
              GError       **error)
{
  Sleep *self = user_data;

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  return Py_NewRef (self->result);
}

PyDoc_STRVAR (sleep_doc,
"sleep(seconds, result=None)\n--\n\n"
"Wait `seconds` on a GLib timeout of the runtime thread, then return\n"
"`result`. Like asyncio.sleep, a negative delay is 0 and float('inf') waits\n"
"until cancelled. Cancelling the awaiting task removes the timeout.");

static PyObject *
module_sleep (PyObject *self,
              PyObject *args,
              PyObject *kwargs)
{
  static char *kwlist[] = { "seconds", "result", NULL };
  PyObject *delay, *result = Py_None;
  Sleep *data;
  gdouble seconds;

  if (!PyArg_ParseTupleAndKeywords (args, kwargs, "O|O:sleep", kwlist, &delay, &result))
    return NULL;
  if (!PyLong_Check (delay) && !PyFloat_Check (delay))
    {
      PyErr_Format (PyExc_TypeError,
                    "sleep: seconds must be an int or a float, not %s",
                    Py_TYPE (delay)->tp_name);
      return NULL;
    }
  seconds = PyFloat_AsDouble (delay);
  if (seconds == -1.0 && PyErr_Occurred ())
    return NULL;
  if (isnan (seconds))
    {
      PyErr_SetString (PyExc_ValueError, "sleep: seconds must not be NaN");
      return NULL;
    }

  data = g_new0 (Sleep, 1);
  data->seconds = seconds;
  data->result = Py_NewRef (result);
  return gab_future_into_py (sleep_start, sleep_finish, data, sleep_free);
}

/* ---- run_in_runtime -------------------------------------------------- */

typedef struct
{
  PyObject *func;
  PyObject *args;       /* tuple: (func, *args) for context.run */
  PyObject *context;    /* a copy of the caller's context */
  PyObject *result;     /* or */
  PyObject *exception;
} RunCall;

static void
run_call_free (gpointer data)
{
  RunCall *self = data;

  /* The GIL is held: gab_future_into_py promises it to user_data_free. */
  Py_XDECREF (self->func);
  Py_XDECREF (self->args);
  Py_XDECREF (self->context);
  Py_XDECREF (self->result);
  Py_XDECREF (self->exception);
  g_free (self);
}

static void
run_call_start (GCancellable        *cancellable,
                GAsyncReadyCallback  callback,
                gpointer             callback_data,
                gpointer             user_data)
{
  RunCall *self = user_data;
  GTask *task = g_task_new (NULL, cancellable, callback, callback_data);
  PyGILState_STATE state;
  PyObject *run;

  /* The runtime thread takes the GIL because the user asked to run Python
   * here; the bridge keeps one thread state for it, so this is cheap. */
  state = PyGILState_Ensure ();
  run = PyObject_GetAttrString (self->context, "run");
  if (run != NULL)
    self->result = PyObject_Call (run, self->args, NULL);
  Py_XDECREF (run);
  if (self->result == NULL)
    self->exception = PyErr_GetRaisedException ();
  PyGILState_Release (state);

  g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static PyObject *
run_call_finish (GObject       *source,
                 GAsyncResult  *result,
                 gpointer       user_data,
                 GError       **error)
{
  RunCall *self = user_data;

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  if (self->exception != NULL)
    {
      /* The very exception object, traceback and all. */
      PyErr_SetObject ((PyObject *) Py_TYPE (self->exception), self->exception);
      return NULL;
    }
  gab_module_mark_made_in_runtime (self->result);
  return Py_NewRef (self->result);
}

PyDoc_STRVAR (run_in_runtime_doc,
"run_in_runtime(func, /, *args)\n--\n\n"
"Call func(*args) on the GLib runtime thread and return its result, or raise\n"
"the very exception it raised. It runs in a copy of the caller's\n"
"contextvars context, as asyncio.to_thread does.");

static PyObject *
module_run_in_runtime (PyObject        *self,
                       PyObject *const *args,
                       Py_ssize_t       nargs)
{
  RunCall *data;

  if (nargs < 1)
    {
      PyErr_SetString (PyExc_TypeError, "run_in_runtime: missing the function to call");
      return NULL;
    }
  if (!PyCallable_Check (args[0]))
    {
      PyErr_Format (PyExc_TypeError, "run_in_runtime: %s object is not callable",
                    Py_TYPE (args[0])->tp_name);
      return NULL;
    }
  data = g_new0 (RunCall, 1);
  data->func = Py_NewRef (args[0]);
  data->args = PyTuple_New (nargs);
  data->context = PyContext_CopyCurrent ();
  if (data->args == NULL || data->context == NULL)
    {
      run_call_free (data);
      return NULL;
    }
  for (Py_ssize_t i = 0; i < nargs; i++)
    PyTuple_SET_ITEM (data->args, i, Py_NewRef (args[i]));
  return gab_future_into_py (run_call_start, run_call_finish, data, run_call_free);
}

/* ---- the module ------------------------------------------------------ */

static PyObject *
module_shutdown (PyObject *self,
                 PyObject *unused)
{
  if (gab_is_runtime_thread ())
    {
      PyErr_SetString (PyExc_RuntimeError,
                       "gasyncbridge.shutdown() cannot run on the runtime thread: "
                       "it would wait for itself");
      return NULL;
    }
  Py_BEGIN_ALLOW_THREADS
  gab_shutdown ();
  Py_END_ALLOW_THREADS
  Py_RETURN_NONE;
}

static PyObject *
module_init_runtime (PyObject *self,
                     PyObject *unused)
{
  g_autoptr(GError) error = NULL;

  if (!gab_init (&error))
    return gab_error_to_python (error);
  Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
  { "sleep", (PyCFunction) (void (*) (void)) module_sleep,
    METH_VARARGS | METH_KEYWORDS, sleep_doc },
  { "run_in_runtime", (PyCFunction) (void (*) (void)) module_run_in_runtime,
    METH_FASTCALL, run_in_runtime_doc },
  { "call_gio", (PyCFunction) (void (*) (void)) gab_module_call_gio,
    METH_FASTCALL, gab_module_call_gio_doc },
  { "_connect_signals", (PyCFunction) (void (*) (void)) gab_module_connect_signals,
    METH_FASTCALL, NULL },
  { "_dbus_subscribe", (PyCFunction) (void (*) (void)) gab_module_dbus_subscribe,
    METH_FASTCALL, NULL },
  { "_dbus_register", (PyCFunction) (void (*) (void)) gab_module_dbus_register,
    METH_FASTCALL, NULL },
  { "init", module_init_runtime, METH_NOARGS,
    "init()\n--\n\nStart the runtime (or restart it after shutdown()). Usually implicit." },
  { "shutdown", module_shutdown, METH_NOARGS,
    "shutdown()\n--\n\nStop the runtime: pending operations fail with a GLibError\n"
    "(G_IO_ERROR_CLOSED). Runs by itself at interpreter exit." },
  { NULL }
};

/* Multi-phase initialization: module_exec() runs in every interpreter that
 * imports the module, so a sub-interpreter is refused at import with an
 * ImportError (gab_error_get_glib_error_class() goes through the bridge's
 * interpreter check), instead of getting a copy of the main interpreter's
 * module, as a single-phase module would. */
static int
module_exec (PyObject *module)
{
  PyObject *gio, *modules, *glib_error;

  glib_error = gab_error_get_glib_error_class ();
  if (glib_error == NULL
      || PyModule_AddObject (module, "GLibError", Py_NewRef (glib_error)) < 0)
    return -1;
  if (PyModule_AddStringConstant (module, "__version__", GAB_VERSION_STRING) < 0)
    return -1;
  if (gab_module_signals_init (module) < 0 || gab_module_dbus_init (module) < 0)
    return -1;

  /* `import gasyncbridge.gio` finds the submodule in sys.modules. */
  gio = gab_module_gio_new ();
  if (gio == NULL)
    return -1;
  if (gab_module_streams_init (module, gio) < 0
      || gab_module_subprocess_init (gio) < 0)
    {
      Py_DECREF (gio);
      return -1;
    }
  modules = PyImport_GetModuleDict ();
  if (PyDict_SetItemString (modules, "gasyncbridge.gio", gio) < 0
      || PyModule_AddObject (module, "gio", gio) < 0)
    {
      Py_DECREF (gio);
      return -1;
    }
  return 0;
}

static PyModuleDef_Slot module_slots[] = {
  /* A function in a void * slot, as CPython defines it (-Wpedantic). */
  { Py_mod_exec, G_GNUC_EXTENSION ((void *) module_exec) },
#if PY_VERSION_HEX >= 0x030C0000
  { Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED },
#endif
  { 0, NULL },
};

static struct PyModuleDef module_def = {
  PyModuleDef_HEAD_INIT,
  .m_name = "gasyncbridge._gasyncbridge",
  .m_doc = "asyncio and GLib/GIO awaiting each other.\n\n"
           "GIO work runs on a background GLib thread (the runtime); asyncio keeps\n"
           "its own loop, any loop, on its own thread.",
  .m_size = 0,
  .m_methods = module_methods,
  .m_slots = module_slots,
};

PyMODINIT_FUNC
PyInit__gasyncbridge (void)
{
  return PyModuleDef_Init (&module_def);
}
