/* gabdbus.c: Python bindings for an asynchronous C API, with gasyncbridge.
 *
 * A small extension module of its own, built on gasyncbridge's public
 * headers only, that wraps one GIO async API the `gasyncbridge` module
 * does not: a D-Bus method call over a peer-to-peer connection
 * (g_dbus_connection_new_for_address + g_dbus_connection_call). It needs
 * no bus daemon: any D-Bus address works, such as a GDBusServer's.
 *
 *     reply = await gabdbus.call(address, "/org/example/Calc",
 *                                "org.example.Calc", "Add", (20, 22),
 *                                signature="(ii)")
 *
 * The pattern is the one of gasyncbridge/module/gasyncbridge-gio.c:
 *
 *   1. gabdbus_call(), on the asyncio thread with the GIL: check the
 *      arguments and turn them into C data (strings, a GVariant), raising
 *      TypeError/ValueError before anything starts.
 *   2. call_start(), a GabStartFunc, on gasyncbridge's runtime thread
 *      without the GIL: start GIO. Two steps here (connect, then call),
 *      chained in GIO callbacks on that thread, then our own GTask returns.
 *   3. call_finish(), a GabFinishFunc, back on the asyncio thread with the
 *      GIL: the reply GVariant as Python values. A GError returned from
 *      here raises the exception gasyncbridge maps it to.
 *
 * gab_future_into_py() glues the three and returns an asyncio.Future.
 * Cancelling it cancels the GCancellable given to call_start(), on the
 * runtime thread, and the future is cancelled at once (GIO stops in the
 * background; nothing here needs cleaning up before the caller goes on).
 *
 * Built by meson with dependency('gasyncbridge-1'); see README.md for the
 * pkg-config command line.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <gasyncbridge/gasyncbridge.h>

typedef struct
{
  gchar           *address;
  gchar           *object_path;
  gchar           *interface;
  gchar           *method;
  GVariant        *parameters;     /* a tuple (not floating), or NULL */
  GVariantType    *reply_type;     /* NULL: whatever comes */
  gint             timeout_ms;

  /* runtime thread, then (once the task has returned) the loop thread */
  GTask           *task;
  GDBusConnection *connection;
  GVariant        *reply;
} Call;

/* Called by gasyncbridge with the GIL, when neither function can run. */
static void
call_free (gpointer data)
{
  Call *self = data;

  g_free (self->address);
  g_free (self->object_path);
  g_free (self->interface);
  g_free (self->method);
  g_clear_pointer (&self->parameters, g_variant_unref);
  g_clear_pointer (&self->reply_type, g_variant_type_free);
  g_clear_object (&self->connection);
  g_clear_pointer (&self->reply, g_variant_unref);
  g_free (self);
}

/* ---- runtime thread -------------------------------------------------- */

static void
call_return (Call   *self,
             GError *error)
{
  GTask *task = g_steal_pointer (&self->task);

  if (self->connection != NULL)
    /* One connection per call in this small example: close it, and do not
     * wait (a real binding would keep a connection object). */
    g_dbus_connection_close (self->connection, NULL, NULL, NULL);
  if (error != NULL)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static void
call_replied (GObject      *source,
              GAsyncResult *result,
              gpointer      data)
{
  Call *self = data;
  GError *error = NULL;

  self->reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result, &error);
  call_return (self, error);
}

static void
call_connected (GObject      *source,
                GAsyncResult *result,
                gpointer      data)
{
  Call *self = data;
  GError *error = NULL;

  self->connection = g_dbus_connection_new_for_address_finish (result, &error);
  if (self->connection == NULL)
    {
      call_return (self, error);
      return;
    }
  /* Step two, on the same thread: GIO calls back where it was started. */
  g_dbus_connection_call (self->connection, NULL, self->object_path, self->interface,
                          self->method, self->parameters, self->reply_type,
                          G_DBUS_CALL_FLAGS_NONE, self->timeout_ms,
                          g_task_get_cancellable (self->task), call_replied, self);
}

static void
call_start (GCancellable        *cancellable,
            GAsyncReadyCallback  callback,
            gpointer             callback_data,
            gpointer             user_data)
{
  Call *self = user_data;

  /* Our own GTask, completed after both steps; its callback is the
   * bridge's, which carries the result over to the asyncio thread. */
  self->task = g_task_new (NULL, cancellable, callback, callback_data);
  g_dbus_connection_new_for_address (self->address,
                                     G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT,
                                     NULL, cancellable, call_connected, self);
}

/* ---- asyncio thread, GIL --------------------------------------------- */

static PyObject *
call_finish (GObject       *source,
             GAsyncResult  *result,
             gpointer       user_data,
             GError       **error)
{
  Call *self = user_data;

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  /* A tuple GVariant becomes a Python tuple. */
  return gab_variant_to_python (self->reply);
}

/* A GVariant tuple type string, or NULL with ValueError set. */
static GVariantType *
tuple_type (const char *what,
            const char *text)
{
  if (!g_variant_type_string_is_valid (text)
      || !g_variant_type_is_tuple (G_VARIANT_TYPE (text)))
    {
      PyErr_Format (PyExc_ValueError, "call: %s must be a GVariant tuple type such as "
                    "'(ii)', not '%s'", what, text);
      return NULL;
    }
  return g_variant_type_new (text);
}

PyDoc_STRVAR (call_doc,
"call(address, object_path, interface, method, args=None, *, signature=None,\n"
"     reply_type=None, timeout_ms=-1)\n--\n\n"
"Call a D-Bus method over a peer-to-peer connection to address and return\n"
"its reply as a tuple.\n\n"
"args is a tuple of the arguments (None: no arguments); signature, a\n"
"GVariant tuple type such as '(ii)', says their D-Bus types (default:\n"
"guessed from the Python values). reply_type checks the reply's type.\n"
"D-Bus errors raise gasyncbridge.GLibError (or the mapped OSError).\n"
"Cancelling the awaiting task cancels the call.");

static PyObject *
gabdbus_call (PyObject *module,
              PyObject *args,
              PyObject *kwargs)
{
  static char *kwlist[] = { "address", "object_path", "interface", "method", "args",
                            "signature", "reply_type", "timeout_ms", NULL };
  const char *address, *object_path, *interface, *method;
  const char *signature = NULL, *reply_type = NULL;
  PyObject *call_args = Py_None;
  int timeout_ms = -1;
  g_autoptr(GVariantType) args_type = NULL;
  Call *self;

  if (!PyArg_ParseTupleAndKeywords (args, kwargs, "ssss|O$zzi:call", kwlist,
                                    &address, &object_path, &interface, &method,
                                    &call_args, &signature, &reply_type, &timeout_ms))
    return NULL;
  if (!g_dbus_is_address (address))
    return PyErr_Format (PyExc_ValueError, "call: '%s' is not a D-Bus address", address);
  if (!g_variant_is_object_path (object_path))
    return PyErr_Format (PyExc_ValueError, "call: '%s' is not an object path", object_path);
  if (!g_dbus_is_interface_name (interface))
    return PyErr_Format (PyExc_ValueError, "call: '%s' is not an interface name", interface);
  if (!g_dbus_is_member_name (method))
    return PyErr_Format (PyExc_ValueError, "call: '%s' is not a method name", method);
  if (call_args != Py_None && !PyTuple_Check (call_args))
    return PyErr_Format (PyExc_TypeError, "call: args must be a tuple or None, not %s",
                         Py_TYPE (call_args)->tp_name);
  if (signature != NULL && (args_type = tuple_type ("signature", signature)) == NULL)
    return NULL;

  self = g_new0 (Call, 1);
  self->address = g_strdup (address);
  self->object_path = g_strdup (object_path);
  self->interface = g_strdup (interface);
  self->method = g_strdup (method);
  self->timeout_ms = timeout_ms;
  if (reply_type != NULL && (self->reply_type = tuple_type ("reply_type", reply_type)) == NULL)
    goto fail;
  if (call_args != Py_None)
    {
      g_autoptr(GError) error = NULL;

      /* Python values to a GVariant, here, with the GIL: a value that
       * does not fit the signature is a TypeError of this call. */
      self->parameters = gab_variant_from_python (call_args, args_type, &error);
      if (self->parameters == NULL)
        {
          PyErr_Format (PyExc_TypeError, "call: args: %s", error->message);
          goto fail;
        }
    }
  return gab_future_into_py (call_start, call_finish, self, call_free);

fail:
  call_free (self);
  return NULL;
}

static PyMethodDef methods[] = {
  { "call", (PyCFunction) (void (*) (void)) gabdbus_call, METH_VARARGS | METH_KEYWORDS,
    call_doc },
  { NULL }
};

static struct PyModuleDef module_def = {
  PyModuleDef_HEAD_INIT,
  .m_name = "gabdbus",
  .m_doc = "D-Bus method calls for asyncio: an example binding built on gasyncbridge.",
  .m_size = -1,
  .m_methods = methods,
};

PyMODINIT_FUNC
PyInit_gabdbus (void)
{
  return PyModule_Create (&module_def);
}
