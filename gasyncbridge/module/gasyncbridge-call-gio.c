/* gasyncbridge-call-gio.c: `gasyncbridge.call_gio`, any PyGObject
 * `*_async` method awaited from a stock asyncio (or uvloop) loop.
 *
 * PyGObject's callbacks come back in the GMainContext that was
 * thread-default where the `*_async` method was called. The asyncio thread
 * has none that anybody iterates, so the method is called on the runtime
 * thread instead, with the GIL (the runtime keeps a thread state for that,
 * so PyGILState_Ensure there is cheap), and its callback, which PyGObject
 * also runs with the GIL, arrives there too.
 *
 *   loop thread, GIL      call_gio(): find the `*_finish` that goes with
 *                          the method, make a Gio.Cancellable, check the
 *                          arguments; start an Operation.
 *   runtime thread, GIL   start: method(*args, cancellable=, callback=).
 *   runtime thread, GIL   the callback: `*_finish` (GIO's convention: in the
 *                          callback), keep its result or exception, complete
 *                          the bridge's GTask.
 *   loop thread, GIL      finish: hand over the result, or raise the
 *                          exception; a GLib.Error is mapped like every
 *                          GError of the bridge.
 *
 * The cancellable is a Gio.Cancellable made in Python, whose GCancellable
 * the Operation cancels from C (on the runtime thread): no PyGObject C API
 * (and no pygobject headers at build time) is needed, and PyGObject gets
 * an object it made itself.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gasyncbridge-module.h"

#include <string.h>

const char gab_module_call_gio_doc[] =
"call_gio(async_method, /, *args)\n--\n\n"
"Await any PyGObject *_async method on a stock asyncio or uvloop loop.\n\n"
"async_method is a bound method such as file.load_contents_async (or a\n"
"static one such as Gio.DBusConnection.new_for_address), args are its\n"
"arguments before the cancellable; call_gio supplies the cancellable and\n"
"the callback, calls the method on the gasyncbridge runtime thread, and\n"
"returns what the matching *_finish method returns (foo_async and foo\n"
"pair with foo_finish, replace_contents_bytes_async with\n"
"replace_contents_finish), exactly as PyGObject gives it: a tuple for\n"
"finish functions with out arguments, e.g. (True, contents, etag).\n\n"
"A GLib.Error raised by the finish function is raised as the exception\n"
"the gasyncbridge mapping gives its GError (FileNotFoundError,\n"
"PermissionError, ..., else gasyncbridge.GLibError), with .domain and\n"
".code, and the original GLib.Error as __cause__. Other exceptions, such\n"
"as a TypeError for arguments of the wrong type, are raised as they are.\n"
"Cancelling the awaiting task cancels the operation's cancellable; the\n"
"task sees CancelledError when the operation has stopped (the result is a\n"
"gasyncbridge.gio.Operation). A method without a cancellable cannot be\n"
"stopped: its result is a plain asyncio.Future, cancelled at once.\n\n"
"Examples::\n\n"
"    from gi.repository import Gio, GLib\n"
"    from gasyncbridge import call_gio\n\n"
"    f = Gio.File.new_for_path('/etc/hostname')\n"
"    ok, contents, etag = await call_gio(f.load_contents_async)\n"
"    info = await call_gio(f.query_info_async, 'standard::size',\n"
"                          Gio.FileQueryInfoFlags.NONE, GLib.PRIORITY_DEFAULT)\n"
"    stream = await call_gio(f.read_async, GLib.PRIORITY_DEFAULT)\n"
"    chunk = await call_gio(stream.read_bytes_async, 4096, GLib.PRIORITY_DEFAULT)\n\n"
"    client = Gio.SocketClient()\n"
"    conn = await call_gio(client.connect_to_host_async, 'localhost', 8080)\n\n"
"    proc = Gio.Subprocess.new(['cat'], Gio.SubprocessFlags.STDIN_PIPE\n"
"                              | Gio.SubprocessFlags.STDOUT_PIPE)\n"
"    ok, out, err = await call_gio(proc.communicate_async, GLib.Bytes(b'hi'))\n\n"
"    conn = await call_gio(Gio.DBusConnection.new_for_address, address,\n"
"                          Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT, None)\n"
"    reply = await call_gio(conn.call, None, '/org/example', 'org.example.Foo',\n"
"                           'Ping', None, None, Gio.DBusCallFlags.NONE, -1)\n";

/* `*_async` methods whose finish is not `*_finish` (found by walking all
 * of Gio's typelib). */
static const struct
{
  const char *async;
  const char *finish;
} finish_names[] = {
  { "replace_contents_bytes_async", "replace_contents_finish" },
};

static PyObject *gio_cancellable_type;   /* Gio.Cancellable */
static PyObject *glib_error_type;        /* GLib.Error */
static const char ready_tag[] = "gasyncbridge.call_gio";

typedef struct
{
  PyObject *method;
  PyObject *args;            /* tuple */
  PyObject *kwargs;          /* cancellable=, callback= */
  PyObject *capsule;         /* the callback's self; context: this struct */
  PyObject *method_name;
  PyObject *finish_name;
  PyObject *finish_static;   /* a function's finish; NULL for methods */
  gboolean  is_method;
  GCancellable *cancellable; /* the Gio.Cancellable's; NULL: it has none */

  /* runtime thread, GIL; then the loop thread */
  GTask    *task;
  PyObject *result;
  PyObject *exception;
} CallGio;

static void
call_gio_free (gpointer data)
{
  CallGio *self = data;

  /* GIL held. A callback that PyGObject might still hold finds nothing. */
  if (self->capsule != NULL)
    PyCapsule_SetContext (self->capsule, NULL);
  Py_XDECREF (self->method);
  Py_XDECREF (self->args);
  Py_XDECREF (self->kwargs);
  Py_XDECREF (self->capsule);
  Py_XDECREF (self->method_name);
  Py_XDECREF (self->finish_name);
  Py_XDECREF (self->finish_static);
  Py_XDECREF (self->result);
  Py_XDECREF (self->exception);
  g_clear_object (&self->cancellable);
  g_free (self);
}

/* Runtime thread, GIL: hand the outcome to the bridge. */
static void
call_gio_complete (CallGio *self)
{
  GTask *task = g_steal_pointer (&self->task);

  if (PyErr_Occurred ())
    self->exception = PyErr_GetRaisedException ();
  /* The result is in self; the task only says "done". */
  g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static PyObject *
find_finish (CallGio  *self,
             PyObject *source)
{
  if (self->is_method && source != Py_None)
    {
      PyObject *finish = PyObject_GetAttr (source, self->finish_name);

      if (finish != NULL)
        return finish;
      if (!PyErr_ExceptionMatches (PyExc_AttributeError))
        return NULL;
      PyErr_Clear ();
    }
  if (self->finish_static != NULL)
    return Py_NewRef (self->finish_static);
  PyErr_Format (PyExc_TypeError, "call_gio: cannot find %U to finish %U on %R",
                self->finish_name, self->method_name, source);
  return NULL;
}

/* The GAsyncReadyCallback, as PyGObject calls it: on the runtime thread,
 * with the GIL, as (source_object, result). */
static PyObject *
call_gio_ready (PyObject *capsule,
                PyObject *args)
{
  CallGio *self = PyCapsule_GetContext (capsule);
  PyObject *finish;

  if (self == NULL || self->task == NULL)
    Py_RETURN_NONE;   /* called twice, or after the end: nothing to do */
  if (PyTuple_GET_SIZE (args) < 2)
    {
      PyErr_Format (PyExc_TypeError,
                    "call_gio: %U called back with %zd arguments instead of "
                    "(source_object, result)", self->method_name, PyTuple_GET_SIZE (args));
      call_gio_complete (self);
      Py_RETURN_NONE;
    }
  finish = find_finish (self, PyTuple_GET_ITEM (args, 0));
  if (finish != NULL)
    {
      self->result = PyObject_CallOneArg (finish, PyTuple_GET_ITEM (args, 1));
      Py_DECREF (finish);
    }
  call_gio_complete (self);
  Py_RETURN_NONE;
}

static PyMethodDef call_gio_ready_def = {
  "call_gio_callback", call_gio_ready, METH_VARARGS, NULL
};

static void
call_gio_forward_cancel (GCancellable *bridge_cancellable,
                         gpointer      cancellable)
{
  g_cancellable_cancel (cancellable);
}

static void
call_gio_start (GCancellable        *cancellable,
                GAsyncReadyCallback  callback,
                gpointer             callback_data,
                gpointer             user_data)
{
  CallGio *self = user_data;
  PyGILState_STATE state;
  PyObject *ret;

  /* The method watches the Gio.Cancellable made for it; the bridge's
   * (Operation.cancel(), the future dropped, shutdown) is passed on. The
   * handler's reference goes with the bridge's cancellable. */
  if (self->cancellable != NULL)
    g_cancellable_connect (cancellable, G_CALLBACK (call_gio_forward_cancel),
                           g_object_ref (self->cancellable), g_object_unref);
  self->task = g_task_new (NULL, NULL, callback, callback_data);
  /* The user asked for Python to run here: the method call itself. */
  state = PyGILState_Ensure ();
  ret = PyObject_Call (self->method, self->args, self->kwargs);
  if (ret == NULL)
    /* Raised before anything started (arguments PyGObject refused): the
     * callback will not come, so this is the outcome. */
    call_gio_complete (self);
  Py_XDECREF (ret);
  PyGILState_Release (state);
}

/* GIL: the exception the bridge raises for a GLib.Error: the mapping of
 * its GError, with the GLib.Error as the cause. NULL if it is none. */
static PyObject *
map_glib_error (PyObject *exception)
{
  PyObject *domain = NULL, *code = NULL, *message = NULL, *mapped = NULL;
  const char *domain_s, *message_s;
  long code_l;

  if (glib_error_type == NULL || PyObject_IsInstance (exception, glib_error_type) != 1)
    return NULL;
  domain = PyObject_GetAttrString (exception, "domain");
  code = PyObject_GetAttrString (exception, "code");
  message = PyObject_GetAttrString (exception, "message");
  if (domain == NULL || code == NULL || message == NULL
      || !PyUnicode_Check (domain) || !PyLong_Check (code) || !PyUnicode_Check (message))
    goto out;
  domain_s = PyUnicode_AsUTF8 (domain);
  message_s = PyUnicode_AsUTF8 (message);
  code_l = PyLong_AsLong (code);
  if (domain_s == NULL || message_s == NULL || (code_l == -1 && PyErr_Occurred ()))
    goto out;
  {
    g_autoptr(GError) error = g_error_new_literal (g_quark_from_string (domain_s),
                                                   (gint) code_l, message_s);

    mapped = gab_error_new_python_exception (error);
  }
  if (mapped != NULL)
    PyException_SetCause (mapped, Py_NewRef (exception));

out:
  PyErr_Clear ();
  Py_XDECREF (domain);
  Py_XDECREF (code);
  Py_XDECREF (message);
  return mapped;
}

static PyObject *
call_gio_finish (GObject       *source,
                 GAsyncResult  *result,
                 gpointer       user_data,
                 GError       **error)
{
  CallGio *self = user_data;

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  if (self->exception != NULL)
    {
      PyObject *mapped = map_glib_error (self->exception);
      PyObject *raise = mapped != NULL ? mapped : self->exception;

      PyErr_SetObject ((PyObject *) Py_TYPE (raise), raise);
      Py_XDECREF (mapped);
      return NULL;
    }
  if (self->result == NULL)
    {
      PyErr_SetString (PyExc_SystemError, "call_gio: no result");
      return NULL;
    }
  return Py_NewRef (self->result);
}

/* GIL: the GObject inside a PyGObject wrapper, through its __gpointer__
 * capsule (transfer none). */
static gpointer
pygobject_get_pointer (PyObject *object)
{
  PyObject *capsule = PyObject_GetAttrString (object, "__gpointer__");
  gpointer pointer = NULL;

  if (capsule != NULL && PyCapsule_CheckExact (capsule))
    pointer = PyCapsule_GetPointer (capsule, PyCapsule_GetName (capsule));
  Py_XDECREF (capsule);
  if (pointer == NULL && !PyErr_Occurred ())
    PyErr_SetString (PyExc_RuntimeError, "call_gio: a PyGObject object without __gpointer__");
  return pointer;
}

static gboolean
ensure_gi_types (void)
{
  PyObject *module;

  if (gio_cancellable_type != NULL && glib_error_type != NULL)
    return TRUE;
  module = PyImport_ImportModule ("gi.repository.Gio");
  if (module == NULL)
    return FALSE;
  gio_cancellable_type = PyObject_GetAttrString (module, "Cancellable");
  Py_DECREF (module);
  module = PyImport_ImportModule ("gi.repository.GLib");
  if (module == NULL)
    return FALSE;
  glib_error_type = PyObject_GetAttrString (module, "Error");
  Py_DECREF (module);
  return gio_cancellable_type != NULL && glib_error_type != NULL;
}

/* GIL: a method's name string with `_async` and `_finish` handled. */
static PyObject *
finish_name_for (const char *name)
{
  gsize len = strlen (name);

  for (gsize i = 0; i < G_N_ELEMENTS (finish_names); i++)
    if (strcmp (name, finish_names[i].async) == 0)
      return PyUnicode_FromString (finish_names[i].finish);
  if (len > 6 && strcmp (name + len - 6, "_async") == 0)
    len -= 6;
  {
    g_autofree gchar *finish = g_strdup_printf ("%.*s_finish", (int) len, name);

    return PyUnicode_FromString (finish);
  }
}

/* GIL: fills in what gi's FunctionInfo tells about @method: whether it is
 * asynchronous at all, how many positional arguments it takes before the
 * cancellable, whether it has a cancellable, and where its finish is. */
static gboolean
inspect_gi_method (CallGio    *self,
                   Py_ssize_t  nargs,
                   gboolean   *has_cancellable)
{
  PyObject *arguments = NULL, *seq = NULL, *flag = NULL, *ns = NULL;
  PyObject *ns_module = NULL, *container = NULL, *owner = NULL;
  Py_ssize_t n, positional = -1;
  gboolean has_callback = FALSE, ok = FALSE;

  *has_cancellable = FALSE;
  arguments = PyObject_CallMethod (self->method, "get_arguments", NULL);
  if (arguments == NULL)
    goto out;
  seq = PySequence_Fast (arguments, "get_arguments() must be a sequence");
  if (seq == NULL)
    goto out;
  n = PySequence_Fast_GET_SIZE (seq);
  for (Py_ssize_t i = 0, in_args = 0; i < n; i++)
    {
      PyObject *arg = PySequence_Fast_GET_ITEM (seq, i);
      PyObject *name = PyObject_CallMethod (arg, "get_name", NULL);
      PyObject *direction = PyObject_CallMethod (arg, "get_direction", NULL);
      const char *s = name != NULL && PyUnicode_Check (name) ? PyUnicode_AsUTF8 (name) : NULL;
      long dir = direction != NULL ? PyLong_AsLong (direction) : -1;

      Py_XDECREF (direction);
      if (s == NULL)
        {
          Py_XDECREF (name);
          goto out;
        }
      if (strcmp (s, "cancellable") == 0)
        *has_cancellable = TRUE;
      if (strcmp (s, "callback") == 0)
        has_callback = TRUE;
      if (positional < 0 && (strcmp (s, "cancellable") == 0 || strcmp (s, "callback") == 0))
        positional = in_args;
      if (dir != 1)   /* GI_DIRECTION_OUT is 1: not passed from Python */
        in_args++;
      Py_DECREF (name);
    }
  PyErr_Clear ();
  if (!has_callback)
    {
      PyErr_Format (PyExc_TypeError,
                    "call_gio: %U is not an asynchronous GIO method: it takes no "
                    "callback (pass the *_async method, e.g. file.load_contents_async)",
                    self->method_name);
      goto out;
    }
  if (nargs > positional)
    {
      PyErr_Format (PyExc_TypeError,
                    "call_gio: %U takes at most %zd arguments before its "
                    "cancellable, %zd given; call_gio supplies the cancellable "
                    "and the callback", self->method_name, positional, nargs);
      goto out;
    }

  /* Where the finish lives: on the source object for a method (found in
   * the callback), on the class or the namespace for a function. */
  flag = PyObject_CallMethod (self->method, "is_method", NULL);
  if (flag == NULL)
    goto out;
  self->is_method = PyObject_IsTrue (flag);
  ns = PyObject_CallMethod (self->method, "get_namespace", NULL);
  container = PyObject_CallMethod (self->method, "get_container", NULL);
  if (ns == NULL || container == NULL)
    goto out;
  {
    PyObject *module_name = PyUnicode_FromFormat ("gi.repository.%S", ns);

    if (module_name == NULL)
      goto out;
    ns_module = PyImport_Import (module_name);
    Py_DECREF (module_name);
  }
  if (ns_module == NULL)
    goto out;
  if (container != Py_None)
    {
      PyObject *cname = PyObject_CallMethod (container, "get_name", NULL);

      owner = cname != NULL ? PyObject_GetAttr (ns_module, cname) : NULL;
      Py_XDECREF (cname);
      if (owner == NULL)
        goto out;
    }
  else
    owner = Py_NewRef (ns_module);

  if (self->is_method)
    {
      if (!PyObject_HasAttr (owner, self->finish_name))
        {
          PyErr_Format (PyExc_TypeError, "call_gio: %R has no %U to go with %U",
                        owner, self->finish_name, self->method_name);
          goto out;
        }
    }
  else
    {
      self->finish_static = PyObject_GetAttr (owner, self->finish_name);
      if (self->finish_static == NULL && owner != ns_module)
        {
          PyErr_Clear ();
          self->finish_static = PyObject_GetAttr (ns_module, self->finish_name);
        }
      if (self->finish_static == NULL)
        {
          PyErr_Clear ();
          PyErr_Format (PyExc_TypeError, "call_gio: cannot find %U to go with %U",
                        self->finish_name, self->method_name);
          goto out;
        }
    }
  ok = TRUE;

out:
  Py_XDECREF (arguments);
  Py_XDECREF (seq);
  Py_XDECREF (flag);
  Py_XDECREF (ns);
  Py_XDECREF (ns_module);
  Py_XDECREF (container);
  Py_XDECREF (owner);
  return ok;
}

PyObject *
gab_module_call_gio (PyObject        *module,
                     PyObject *const *args,
                     Py_ssize_t       nargs)
{
  PyObject *method, *name = NULL, *callback = NULL;
  GCancellable *cancellable = NULL;
  gboolean has_cancellable = TRUE, is_gi;
  const char *name_s;
  CallGio *self;

  if (nargs < 1)
    {
      PyErr_SetString (PyExc_TypeError, "call_gio() missing the async method to call");
      return NULL;
    }
  method = args[0];
  if (!PyCallable_Check (method))
    {
      PyErr_Format (PyExc_TypeError,
                    "call_gio: the async method must be callable, not %s "
                    "(pass file.load_contents_async, not its result)",
                    Py_TYPE (method)->tp_name);
      return NULL;
    }

  self = g_new0 (CallGio, 1);
  self->method = Py_NewRef (method);
  self->args = PyTuple_New (nargs - 1);
  if (self->args == NULL)
    goto fail;
  for (Py_ssize_t i = 1; i < nargs; i++)
    PyTuple_SET_ITEM (self->args, i - 1, Py_NewRef (args[i]));

  /* A PyGObject method is a gi.FunctionInfo: it knows its arguments. */
  is_gi = PyObject_HasAttrString (method, "get_arguments")
          && PyObject_HasAttrString (method, "is_method")
          && PyObject_HasAttrString (method, "get_container");
  name = is_gi ? PyObject_CallMethod (method, "get_name", NULL)
               : PyObject_GetAttrString (method, "__name__");
  if (name == NULL || !PyUnicode_Check (name))
    {
      PyErr_Clear ();
      PyErr_Format (PyExc_TypeError,
                    "call_gio: %R is not a PyGObject *_async method", method);
      goto fail;
    }
  self->method_name = Py_NewRef (name);
  name_s = PyUnicode_AsUTF8 (name);
  if (name_s == NULL)
    goto fail;
  self->finish_name = finish_name_for (name_s);
  if (self->finish_name == NULL)
    goto fail;
  if (is_gi)
    {
      if (!inspect_gi_method (self, nargs - 1, &has_cancellable))
        goto fail;
    }
  else
    {
      /* A bound Python method of the same convention (cancellable= and
       * callback= keywords), such as a PyGObject override: its object
       * must have the finish. */
      PyObject *owner = PyObject_GetAttrString (method, "__self__");

      PyErr_Clear ();
      self->is_method = TRUE;
      if (owner != NULL && owner != Py_None && !PyModule_Check (owner))
        self->finish_static = PyObject_GetAttr (owner, self->finish_name);
      Py_XDECREF (owner);
      if (self->finish_static == NULL)
        {
          PyErr_Clear ();
          PyErr_Format (PyExc_TypeError,
                        "call_gio: %R is not a PyGObject *_async method (nor a bound "
                        "method whose object has %U)", method, self->finish_name);
          goto fail;
        }
    }

  callback = NULL;
  self->capsule = PyCapsule_New ((void *) ready_tag, ready_tag, NULL);
  if (self->capsule == NULL || PyCapsule_SetContext (self->capsule, self) < 0)
    goto fail;
  callback = PyCFunction_New (&call_gio_ready_def, self->capsule);
  self->kwargs = PyDict_New ();
  if (callback == NULL || self->kwargs == NULL
      || PyDict_SetItemString (self->kwargs, "callback", callback) < 0)
    goto fail;
  Py_CLEAR (callback);
  if (has_cancellable)
    {
      PyObject *py_cancellable;

      if (!ensure_gi_types ())
        goto fail;
      py_cancellable = PyObject_CallNoArgs (gio_cancellable_type);
      if (py_cancellable == NULL)
        goto fail;
      if (PyDict_SetItemString (self->kwargs, "cancellable", py_cancellable) < 0)
        {
          Py_DECREF (py_cancellable);
          goto fail;
        }
      cancellable = pygobject_get_pointer (py_cancellable);
      Py_DECREF (py_cancellable);   /* kwargs keeps it */
      if (cancellable == NULL || !G_IS_CANCELLABLE (cancellable))
        {
          if (!PyErr_Occurred ())
            PyErr_SetString (PyExc_RuntimeError, "call_gio: Gio.Cancellable without a GCancellable");
          goto fail;
        }
      self->cancellable = g_object_ref (cancellable);
    }
  else if (!ensure_gi_types ())
    PyErr_Clear ();   /* only for mapping GLib.Error; not fatal */
  Py_DECREF (name);
  /* Without a cancellable the operation cannot be stopped, so a cancel
   * cannot wait for it: a plain future drops the result at once. */
  return gab_module_gio_future (call_gio_start, call_gio_finish, self,
                                  call_gio_free,
                                  cancellable != NULL ? GAB_FUTURE_CANCEL_WAITS
                                                      : GAB_FUTURE_NONE);

fail:
  Py_XDECREF (callback);
  Py_XDECREF (name);
  call_gio_free (self);
  return NULL;
}
