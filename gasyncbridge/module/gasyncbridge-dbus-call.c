/* gasyncbridge-dbus-call.c: a D-Bus method call awaited from asyncio, with
 * no Python on the runtime thread.
 *
 * call_gio (conn.call, ...) works for D-Bus too, but it runs PyGObject on
 * the runtime thread: the GIL is taken there twice per call, and with
 * thousands of calls in flight the two threads pass the GIL back and forth
 * (each pass can wait a switch interval) and the loop stalls. Here the
 * arguments become a GVariant on the loop thread (gab_variant_from_python),
 * g_dbus_connection_call() runs on the runtime thread without the GIL, and
 * the reply becomes Python values on the loop thread in finish.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gasyncbridge-module.h"

#include <string.h>

typedef struct
{
  GDBusConnection *connection;
  gchar           *bus_name;
  gchar           *object_path;
  gchar           *interface_name;
  gchar           *method_name;
  GVariant        *parameters;     /* nullable, non-floating */
  GVariantType    *reply_type;     /* nullable */
  GDBusCallFlags   flags;
  gint             timeout_msec;
} DBusCall;

static void
dbus_call_free (gpointer data)
{
  DBusCall *self = data;

  g_clear_object (&self->connection);
  g_free (self->bus_name);
  g_free (self->object_path);
  g_free (self->interface_name);
  g_free (self->method_name);
  g_clear_pointer (&self->parameters, g_variant_unref);
  g_clear_pointer (&self->reply_type, g_variant_type_free);
  g_free (self);
}

/* Runtime thread, no GIL. */
static void
dbus_call_start (GCancellable        *cancellable,
                 GAsyncReadyCallback  callback,
                 gpointer             callback_data,
                 gpointer             user_data)
{
  DBusCall *self = user_data;

  g_dbus_connection_call (self->connection, self->bus_name, self->object_path,
                          self->interface_name, self->method_name, self->parameters,
                          self->reply_type, self->flags, self->timeout_msec,
                          cancellable, callback, callback_data);
}

/* Loop thread, GIL. */
static PyObject *
dbus_call_finish (GObject       *source,
                  GAsyncResult  *result,
                  gpointer       user_data,
                  GError       **error)
{
  g_autoptr(GVariant) reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source),
                                                             result, error);

  if (reply == NULL)
    return NULL;
  /* A reply is always a tuple: it becomes a Python tuple. */
  return gab_variant_to_python (reply);
}

/* GIL: the GObject of a PyGObject wrapper, of @type, a new reference, or
 * NULL with TypeError set. */
static gpointer
gobject_from_python (PyObject    *object,
                     GType        type,
                     const char  *what)
{
  PyObject *capsule = PyObject_GetAttrString (object, "__gpointer__");
  gpointer pointer = NULL;

  if (capsule != NULL && PyCapsule_CheckExact (capsule))
    pointer = PyCapsule_GetPointer (capsule, NULL);
  Py_XDECREF (capsule);
  PyErr_Clear ();
  if (pointer == NULL || !G_TYPE_CHECK_INSTANCE_TYPE (pointer, type))
    {
      PyErr_Format (PyExc_TypeError, "%s must be a %s, not %s", what, g_type_name (type),
                    Py_TYPE (object)->tp_name);
      return NULL;
    }
  return g_object_ref (pointer);
}

/* GIL: FALSE with ValueError unless @type_string is NULL or a tuple type. */
static gboolean
check_tuple_type (const char *type_string,
                  const char *what)
{
  if (type_string == NULL
      || (g_variant_type_string_is_valid (type_string)
          && g_variant_type_is_tuple (G_VARIANT_TYPE (type_string))))
    return TRUE;
  PyErr_Format (PyExc_ValueError,
                "dbus_call: %s must be a GVariant tuple type such as '(su)', not '%s'",
                what, type_string);
  return FALSE;
}

const char gab_module_dbus_call_doc[] =
"dbus_call(connection, bus_name, object_path, interface_name, method_name,\n"
"          args=(), *, signature=None, reply_type=None, timeout=-1)\n--\n\n"
"Call a D-Bus method and return its reply, a tuple of Python values.\n\n"
"connection is a Gio.DBusConnection. args are the in-arguments, converted\n"
"to the GVariant tuple type signature (e.g. '(su)'; without it the types are\n"
"inferred from the values). reply_type, if given, is the tuple type the\n"
"reply must have. timeout is in milliseconds (-1: D-Bus's default). Errors\n"
"of the callee raise gasyncbridge.GLibError in the G_DBUS_ERROR domain\n"
"(its message names the remote error). Nothing runs in Python on the\n"
"runtime thread, so thousands of calls in flight do not compete for the\n"
"GIL. Example::\n\n"
"    (bus_id,) = await gio.dbus_call(conn, 'org.freedesktop.DBus',\n"
"                                    '/org/freedesktop/DBus',\n"
"                                    'org.freedesktop.DBus', 'GetId')";

PyObject *
gab_module_dbus_call (PyObject *self,
                      PyObject *args,
                      PyObject *kwargs)
{
  static char *kwlist[] = { "connection", "bus_name", "object_path", "interface_name",
                            "method_name", "args", "signature", "reply_type",
                            "timeout", NULL };
  PyObject *conn_obj, *call_args = NULL;
  const char *bus_name, *object_path, *interface_name, *method_name;
  const char *signature = NULL, *reply_type = NULL;
  int timeout = -1;
  g_autoptr(GError) error = NULL;
  DBusCall *call;

  if (!PyArg_ParseTupleAndKeywords (args, kwargs, "Ozsss|O$zzi:dbus_call", kwlist,
                                    &conn_obj, &bus_name, &object_path, &interface_name,
                                    &method_name, &call_args, &signature, &reply_type,
                                    &timeout))
    return NULL;
  if (bus_name != NULL && !g_dbus_is_name (bus_name))
    return PyErr_Format (PyExc_ValueError, "dbus_call: '%s' is not a valid bus name",
                         bus_name);
  if (!g_variant_is_object_path (object_path))
    return PyErr_Format (PyExc_ValueError, "dbus_call: '%s' is not a valid object path",
                         object_path);
  if (!g_dbus_is_interface_name (interface_name))
    return PyErr_Format (PyExc_ValueError, "dbus_call: '%s' is not a valid interface name",
                         interface_name);
  if (!g_dbus_is_member_name (method_name))
    return PyErr_Format (PyExc_ValueError, "dbus_call: '%s' is not a valid method name",
                         method_name);
  if (!check_tuple_type (signature, "signature") || !check_tuple_type (reply_type, "reply_type"))
    return NULL;
  if (call_args != NULL && !PyTuple_Check (call_args) && !PyList_Check (call_args))
    return PyErr_Format (PyExc_TypeError, "dbus_call: args must be a tuple or list, not %s",
                         Py_TYPE (call_args)->tp_name);

  call = g_new0 (DBusCall, 1);
  call->connection = gobject_from_python (conn_obj, G_TYPE_DBUS_CONNECTION,
                                          "dbus_call: connection");
  if (call->connection == NULL)
    goto fail;
  if (call_args != NULL && (PySequence_Size (call_args) > 0 || signature != NULL))
    {
      PyObject *tuple = PySequence_Tuple (call_args);

      if (tuple == NULL)
        goto fail;
      call->parameters = gab_variant_from_python (tuple,
                                                  signature != NULL ? G_VARIANT_TYPE (signature)
                                                                    : G_VARIANT_TYPE_TUPLE,
                                                  &error);
      Py_DECREF (tuple);
      if (call->parameters == NULL)
        {
          PyErr_Format (PyExc_TypeError, "dbus_call: args: %s", error->message);
          goto fail;
        }
    }
  else if (signature != NULL && strcmp (signature, "()") != 0)
    {
      PyErr_Format (PyExc_TypeError, "dbus_call: no args for signature '%s'", signature);
      goto fail;
    }
  call->bus_name = g_strdup (bus_name);
  call->object_path = g_strdup (object_path);
  call->interface_name = g_strdup (interface_name);
  call->method_name = g_strdup (method_name);
  call->reply_type = reply_type != NULL ? g_variant_type_new (reply_type) : NULL;
  call->flags = G_DBUS_CALL_FLAGS_NONE;
  call->timeout_msec = timeout;
  /* A plain bridge future: a cancelled call has nothing to clean up. */
  return gab_module_gio_future (dbus_call_start, dbus_call_finish, call, dbus_call_free,
                                GAB_FUTURE_NONE);

fail:
  dbus_call_free (call);
  return NULL;
}
