/* gasyncbridge-dbus.c: D-Bus signal subscriptions and exported objects,
 * served on the runtime thread and crossed to asyncio in batches, for
 * gasyncbridge.dbus (gasyncbridge/dbus.py).
 *
 * GDBus calls a subscription's callback, and an exported object's method
 * calls, in the GMainContext that was thread-default where it was
 * registered. Both are registered here on the runtime thread, whose
 * context the bridge iterates. Their callbacks, in C and without the GIL,
 * push events into a GabEventChannel: a D-Bus signal becomes a
 * DBusSignal for `async for`, a method call a MethodCall that the loop
 * hands to the Python dispatcher (a callback consumer), which runs the
 * handler's coroutine and replies through the MethodCall.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#define NO_IMPORT_PYGOBJECT
#include "gasyncbridge-module.h"
#include "gasyncbridge-event-source.h"

#include <pygobject.h>
#include <string.h>

#define PROPERTIES_INTERFACE "org.freedesktop.DBus.Properties"

/* ---- subscriptions ------------------------------------------------------- */

typedef struct
{
  gchar    *sender;
  gchar    *path;
  gchar    *interface;
  gchar    *member;
  GVariant *params;
} SignalMessage;

static void
signal_message_free (gpointer data)
{
  SignalMessage *message = data;

  g_free (message->sender);
  g_free (message->path);
  g_free (message->interface);
  g_free (message->member);
  g_clear_pointer (&message->params, g_variant_unref);
  g_free (message);
}

static PyTypeObject *DBusSignal_Type;

static PyStructSequence_Field dbus_signal_fields[] = {
  { "sender", "the unique bus name of the sender (None on a peer-to-peer connection)" },
  { "path", "the object path that emitted the signal" },
  { "interface", "the interface of the signal" },
  { "member", "the signal's name" },
  { "params", "the signal's arguments, a tuple of Python values" },
  { NULL }
};

static PyStructSequence_Desc dbus_signal_desc = {
  "gasyncbridge.dbus.DBusSignal",
  "DBusSignal(sender, path, interface, member, params): one D-Bus signal.",
  dbus_signal_fields,
  5,
};

static PyObject *
str_or_none (const char *s)
{
  return s != NULL ? PyUnicode_FromString (s) : Py_NewRef (Py_None);
}

/* GDBus takes its connection lock in these calls, and its worker thread
 * can hold that lock while it drops the last reference to an object that
 * PyGObject wraps, which then waits for the GIL: called with the GIL, they
 * could deadlock, so the GIL is released around each (they never call
 * back into Python). */
static void
unsubscribe_without_gil (GDBusConnection *connection,
                         guint            id)
{
  Py_BEGIN_ALLOW_THREADS
  g_dbus_connection_signal_unsubscribe (connection, id);
  Py_END_ALLOW_THREADS
}

static void
unregister_without_gil (GDBusConnection *connection,
                        GArray          *ids)
{
  Py_BEGIN_ALLOW_THREADS
  for (guint i = 0; i < ids->len; i++)
    g_dbus_connection_unregister_object (connection, g_array_index (ids, guint, i));
  Py_END_ALLOW_THREADS
}

static gboolean
emit_without_gil (GDBusConnection *connection,
                  const char      *path,
                  const char      *interface,
                  const char      *name,
                  GVariant        *params,
                  GError         **error)
{
  gboolean ok;

  Py_BEGIN_ALLOW_THREADS
  ok = g_dbus_connection_emit_signal (connection, NULL, path, interface, name, params, error);
  Py_END_ALLOW_THREADS
  return ok;
}

/* Loop thread, GIL. */
static PyObject *
signal_message_convert (gpointer data,
                        gpointer user_data)
{
  SignalMessage *message = data;
  PyObject *result, *items[5];

  items[0] = str_or_none (message->sender);
  items[1] = str_or_none (message->path);
  items[2] = str_or_none (message->interface);
  items[3] = str_or_none (message->member);
  items[4] = message->params != NULL ? gab_variant_to_python (message->params)
                                     : PyTuple_New (0);
  result = PyStructSequence_New (DBusSignal_Type);
  for (int i = 0; i < 5; i++)
    {
      if (items[i] == NULL || result == NULL)
        {
          for (int j = 0; j < 5; j++)
            Py_XDECREF (items[j]);
          Py_XDECREF (result);
          return NULL;
        }
    }
  for (int i = 0; i < 5; i++)
    PyStructSequence_SET_ITEM (result, i, items[i]);
  return result;
}

/* Runtime thread, no GIL. */
static void
on_dbus_signal (GDBusConnection *connection,
                const gchar     *sender,
                const gchar     *path,
                const gchar     *interface,
                const gchar     *member,
                GVariant        *params,
                gpointer         user_data)
{
  GabEventChannel *channel = user_data;
  SignalMessage *message;

  if (!gab_event_channel_is_open (channel))
    return;
  message = g_new (SignalMessage, 1);
  message->sender = g_strdup (sender);
  message->path = g_strdup (path);
  message->interface = g_strdup (interface);
  message->member = g_strdup (member);
  message->params = params != NULL ? g_variant_ref (params) : NULL;
  gab_event_channel_push (channel, message);
}

/* An event source (gasyncbridge-event-source.h) fed by a GDBus signal
 * subscription. */
typedef struct
{
  GabEventSource   source;
  GDBusConnection *connection;
  guint            id;
} Subscription;

static PyTypeObject Subscription_Type;

static void
subscription_cancel (GabEventSource *source)
{
  Subscription *self = (Subscription *) source;

  if (source->channel != NULL)
    gab_event_channel_close (source->channel, NULL);
  if (self->id != 0)
    {
      /* Thread-safe in GDBus; the callback's data goes in the runtime's
       * context later. */
      unsubscribe_without_gil (self->connection, self->id);
      self->id = 0;
    }
}

static gboolean
subscription_is_active (GabEventSource *source)
{
  return ((Subscription *) source)->id != 0;
}

static void
subscription_finalize (GabEventSource *source)
{
  g_clear_object (&((Subscription *) source)->connection);
}

static const GabEventSourceClass subscription_class = {
  .stop = subscription_cancel,
  .is_active = subscription_is_active,
  .finalize = subscription_finalize,
};

/* `receiver` and `active` come from the base type. */
static PyMethodDef subscription_methods[] = {
  { "unsubscribe", gab_event_source_stop_py, METH_NOARGS,
    "unsubscribe()\n--\n\nStop the subscription now; idempotent." },
  { NULL }
};

static PyTypeObject Subscription_Type = {
  GAB_PY_TYPE_HEAD ("gasyncbridge._DBusSubscription", Subscription,
                    Py_TPFLAGS_DEFAULT,
                    "A D-Bus signal subscription on the runtime thread (see gasyncbridge.dbus)."),
  .tp_base = &gab_event_source_type,
  .tp_methods = subscription_methods,
};

typedef struct
{
  GDBusConnection *connection;
  gchar           *sender, *interface, *member, *path, *arg0;
  GDBusSignalFlags flags;
  GabEventChannel *channel;
  PyObject        *receiver;     /* GIL */
  guint            id;           /* until handed to the Subscription */
  GTask           *task;
} SubscribeCall;

static void
subscribe_call_free (gpointer data)
{
  SubscribeCall *call = data;

  /* GIL held (gab_future_into_py's promise). Not handed over: undo. */
  if (call->id != 0)
    unsubscribe_without_gil (call->connection, call->id);
  if (call->channel != NULL)
    {
      if (call->id != 0)
        gab_event_channel_close (call->channel, NULL);
      g_object_unref (call->channel);
    }
  Py_XDECREF (call->receiver);
  g_clear_object (&call->connection);
  g_free (call->sender);
  g_free (call->interface);
  g_free (call->member);
  g_free (call->path);
  g_free (call->arg0);
  g_free (call);
}

static void
subscribe_round_trip_done (GObject      *source,
                           GAsyncResult *result,
                           gpointer      data)
{
  GTask *task = data;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;

  reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result, &error);
  /* Any answer means the bus has our match rule; a closed connection is
   * the caller's to find out. Only a cancel is reported. */
  if (error != NULL && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    g_task_return_error (task, g_steal_pointer (&error));
  else
    g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

/* Runtime thread. */
static void
subscribe_start (GCancellable        *cancellable,
                 GAsyncReadyCallback  callback,
                 gpointer             callback_data,
                 gpointer             user_data)
{
  SubscribeCall *call = user_data;
  GTask *task = g_task_new (NULL, cancellable, callback, callback_data);

  call->id = g_dbus_connection_signal_subscribe (call->connection, call->sender,
                                                 call->interface, call->member, call->path,
                                                 call->arg0, call->flags, on_dbus_signal,
                                                 g_object_ref (call->channel),
                                                 g_object_unref);
  if (g_dbus_connection_get_unique_name (call->connection) != NULL
      && !g_dbus_connection_is_closed (call->connection))
    {
      /* A round trip to the bus: once it answers, it has processed our
       * AddMatch, so any signal sent after this await reaches us. */
      g_dbus_connection_call (call->connection, "org.freedesktop.DBus",
                              "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId",
                              NULL, G_VARIANT_TYPE ("(s)"), G_DBUS_CALL_FLAGS_NONE, -1,
                              cancellable, subscribe_round_trip_done, task);
      return;
    }
  g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

/* Loop thread, GIL. */
static PyObject *
subscribe_finish (GObject       *source,
                  GAsyncResult  *result,
                  gpointer       user_data,
                  GError       **error)
{
  SubscribeCall *call = user_data;
  Subscription *self;

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  self = gab_event_source_new (&Subscription_Type, &subscription_class);
  if (self == NULL)
    return NULL;
  self->connection = g_object_ref (call->connection);
  self->id = call->id;
  call->id = 0;
  self->source.channel = g_steal_pointer (&call->channel);
  self->source.receiver = g_steal_pointer (&call->receiver);
  return (PyObject *) self;
}

/* GIL: the maxsize argument of _dbus_subscribe and _dbus_register. */
static gboolean
maxsize_from_python (PyObject *value,
                     guint    *maxsize)
{
  Py_ssize_t n = PyLong_AsSsize_t (value);

  if (n == -1 && PyErr_Occurred ())
    return FALSE;
  if (n < 1 || n > G_MAXINT)
    {
      PyErr_Format (PyExc_ValueError, "maxsize must be at least 1, not %zd", n);
      return FALSE;
    }
  *maxsize = (guint) n;
  return TRUE;
}

static gboolean
optional_string (PyObject    *value,
                 const char  *what,
                 gchar      **out)
{
  const char *s;

  *out = NULL;
  if (value == Py_None)
    return TRUE;
  s = PyUnicode_Check (value) ? PyUnicode_AsUTF8 (value) : NULL;
  if (s == NULL)
    {
      PyErr_Clear ();
      PyErr_Format (PyExc_TypeError, "subscribe: %s must be a str or None, not %s", what,
                    Py_TYPE (value)->tp_name);
      return FALSE;
    }
  *out = g_strdup (s);
  return TRUE;
}

/* _dbus_subscribe(connection, sender, interface, member, path, arg0,
 *                 maxsize, overflow): a future of a _DBusSubscription. */
PyObject *
gab_module_dbus_subscribe (PyObject        *module,
                           PyObject *const *args,
                           Py_ssize_t       nargs)
{
  GDBusConnection *connection;
  SubscribeCall *call;
  guint maxsize;
  GabEventOverflow overflow;

  if (nargs != 8)
    return PyErr_Format (PyExc_TypeError, "_dbus_subscribe takes 8 arguments");
  connection = (GDBusConnection *) gab_module_gobject_get (args[0], G_TYPE_DBUS_CONNECTION,
                                                           "subscribe");
  if (connection == NULL)
    return NULL;
  if (!maxsize_from_python (args[6], &maxsize)
      || !gab_module_overflow_from_python (args[7], &overflow))
    return NULL;

  call = g_new0 (SubscribeCall, 1);
  call->connection = g_object_ref (connection);
  if (!optional_string (args[1], "sender", &call->sender)
      || !optional_string (args[2], "interface", &call->interface)
      || !optional_string (args[3], "member", &call->member)
      || !optional_string (args[4], "path", &call->path)
      || !optional_string (args[5], "arg0", &call->arg0))
    {
      subscribe_call_free (call);
      return NULL;
    }
  call->flags = G_DBUS_SIGNAL_FLAGS_NONE;
  call->channel = gab_event_channel_new (maxsize, overflow, signal_message_convert,
                                         NULL, signal_message_free);
  call->receiver = gab_event_channel_to_python (call->channel, NULL);
  if (call->receiver == NULL)
    {
      subscribe_call_free (call);
      return NULL;
    }
  return gab_future_into_py (subscribe_start, subscribe_finish, call, subscribe_call_free);
}

/* ---- exported objects ----------------------------------------------------- */

typedef struct
{
  GDBusMethodInvocation *invocation;
} CallEvent;

static void
call_event_free (gpointer data)
{
  CallEvent *event = data;

  /* Not taken by a MethodCall: dropped (too many calls waiting) or the
   * object is being unexported. The caller hears so at once. */
  if (event->invocation != NULL)
    g_dbus_method_invocation_return_dbus_error (g_steal_pointer (&event->invocation),
                                                "org.freedesktop.DBus.Error.LimitsExceeded",
                                                "gasyncbridge: the call was not served: too "
                                                "many calls are waiting, or the object is "
                                                "being unexported");
  g_free (event);
}

typedef struct
{
  PyObject_HEAD
  GDBusMethodInvocation *invocation;   /* until replied */
  GDBusNodeInfo         *node;
  PyObject              *args;
} MethodCall;

static PyTypeObject MethodCall_Type;

/* Loop thread, GIL. user_data: the registration's GDBusNodeInfo. */
static PyObject *
call_event_convert (gpointer data,
                    gpointer user_data)
{
  CallEvent *event = data;
  MethodCall *call;
  PyObject *args;

  args = gab_variant_to_python (g_dbus_method_invocation_get_parameters (event->invocation));
  if (args == NULL)
    return NULL;
  call = PyObject_New (MethodCall, &MethodCall_Type);
  if (call == NULL)
    {
      Py_DECREF (args);
      return NULL;
    }
  call->invocation = g_steal_pointer (&event->invocation);
  call->node = g_dbus_node_info_ref (user_data);
  call->args = args;
  return (PyObject *) call;
}

static void
method_call_dealloc (PyObject *object)
{
  MethodCall *self = (MethodCall *) object;

  if (self->invocation != NULL)
    g_dbus_method_invocation_return_dbus_error (g_steal_pointer (&self->invocation),
                                                "org.freedesktop.DBus.Error.Failed",
                                                "gasyncbridge: the handler gave no reply");
  g_dbus_node_info_unref (self->node);
  Py_XDECREF (self->args);
  PyObject_Free (object);
}

static GDBusMethodInvocation *
method_call_take (MethodCall *self)
{
  if (self->invocation == NULL)
    {
      PyErr_SetString (PyExc_RuntimeError, "gasyncbridge: this call has been replied to");
      return NULL;
    }
  return g_steal_pointer (&self->invocation);
}

static GDBusInterfaceInfo *
method_call_target_interface (MethodCall *self)
{
  const char *name;
  GVariant *params;
  g_autofree gchar *target = NULL;

  if (self->invocation == NULL)
    return NULL;
  name = g_dbus_method_invocation_get_interface_name (self->invocation);
  if (g_strcmp0 (name, PROPERTIES_INTERFACE) != 0)
    return g_dbus_node_info_lookup_interface (self->node, name);
  params = g_dbus_method_invocation_get_parameters (self->invocation);
  g_variant_get_child (params, 0, "s", &target);
  return g_dbus_node_info_lookup_interface (self->node, target);
}

/* GIL: the reply for @value, by the method's out-signature (or the
 * property's signature for Properties.Get and GetAll). */
static GVariant *
method_call_reply_variant (MethodCall  *self,
                           PyObject    *value,
                           GError     **error)
{
  GDBusMethodInvocation *invocation = self->invocation;
  const GDBusPropertyInfo *property = g_dbus_method_invocation_get_property_info (invocation);
  const char *interface = g_dbus_method_invocation_get_interface_name (invocation);
  const char *method = g_dbus_method_invocation_get_method_name (invocation);
  const GDBusMethodInfo *info;
  g_autoptr(GString) signature = NULL;
  g_autoptr(GVariant) converted = NULL;
  PyObject *tuple;
  guint n = 0;

  if (g_strcmp0 (interface, PROPERTIES_INTERFACE) == 0)
    {
      if (g_strcmp0 (method, "Get") == 0 && property != NULL)
        {
          GVariant *inner = gab_variant_from_python (value, G_VARIANT_TYPE (property->signature),
                                                     error);

          return inner != NULL ? g_variant_new ("(@v)", g_variant_new_variant (inner)) : NULL;
        }
      if (g_strcmp0 (method, "GetAll") == 0)
        {
          GDBusInterfaceInfo *target = method_call_target_interface (self);
          GVariantBuilder builder;

          if (!PyDict_Check (value))
            {
              g_set_error (error, GAB_ERROR, GAB_ERROR_CONVERSION,
                           "GetAll needs a dict of property values, not %s",
                           Py_TYPE (value)->tp_name);
              return NULL;
            }
          g_variant_builder_init (&builder, G_VARIANT_TYPE ("a{sv}"));
          for (guint i = 0; target != NULL && target->properties != NULL
                            && target->properties[i] != NULL; i++)
            {
              GDBusPropertyInfo *p = target->properties[i];
              PyObject *item = PyDict_GetItemString (value, p->name);
              GVariant *v;

              if (item == NULL)
                continue;
              v = gab_variant_from_python (item, G_VARIANT_TYPE (p->signature), error);
              if (v == NULL)
                {
                  g_variant_builder_clear (&builder);
                  return NULL;
                }
              g_variant_builder_add (&builder, "{sv}", p->name, v);
              g_variant_unref (v);
            }
          return g_variant_new ("(a{sv})", &builder);
        }
      /* Set */
      return g_variant_new ("()");
    }

  info = g_dbus_method_invocation_get_method_info (invocation);
  signature = g_string_new ("(");
  for (; info != NULL && info->out_args != NULL && info->out_args[n] != NULL; n++)
    g_string_append (signature, info->out_args[n]->signature);
  g_string_append_c (signature, ')');
  if (n == 0)
    {
      if (value != Py_None)
        {
          g_set_error (error, GAB_ERROR, GAB_ERROR_CONVERSION,
                       "%s returns nothing, not %s", method, Py_TYPE (value)->tp_name);
          return NULL;
        }
      return g_variant_new ("()");
    }
  if (n == 1)
    tuple = PyTuple_Pack (1, value);
  else
    tuple = Py_NewRef (value);
  if (tuple == NULL)
    {
      PyErr_Clear ();
      g_set_error (error, GAB_ERROR, GAB_ERROR_CONVERSION, "out of memory");
      return NULL;
    }
  converted = gab_variant_from_python (tuple, G_VARIANT_TYPE (signature->str), error);
  Py_DECREF (tuple);
  return converted != NULL ? g_variant_ref (converted) : NULL;
}

static PyObject *
method_call_return_value (PyObject *object,
                          PyObject *value)
{
  MethodCall *self = (MethodCall *) object;
  g_autoptr(GError) error = NULL;
  GVariant *reply;

  if (self->invocation == NULL)
    {
      method_call_take (self);   /* sets the error */
      return NULL;
    }
  reply = method_call_reply_variant (self, value, &error);
  if (reply == NULL)
    {
      /* The caller hears of it too, and the handler's author from the
       * exception. */
      g_autofree gchar *message = g_strdup_printf ("gasyncbridge: the reply of %s does not "
                                                   "fit its signature: %s",
                                                   g_dbus_method_invocation_get_method_name (self->invocation),
                                                   error->message);

      g_dbus_method_invocation_return_dbus_error (method_call_take (self),
                                                  "org.freedesktop.DBus.Error.Failed", message);
      PyErr_SetString (PyExc_TypeError, message);
      return NULL;
    }
  /* Thread-safe: GDBus's worker thread sends it. */
  g_dbus_method_invocation_return_value (method_call_take (self), reply);
  Py_RETURN_NONE;
}

static PyObject *
method_call_return_dbus_error (PyObject        *object,
                               PyObject *const *args,
                               Py_ssize_t       nargs)
{
  MethodCall *self = (MethodCall *) object;
  const char *name, *message;
  GDBusMethodInvocation *invocation;

  if (nargs != 2 || !PyUnicode_Check (args[0]) || !PyUnicode_Check (args[1]))
    return PyErr_Format (PyExc_TypeError, "return_dbus_error(name: str, message: str)");
  name = PyUnicode_AsUTF8 (args[0]);
  message = PyUnicode_AsUTF8 (args[1]);
  if (name == NULL || message == NULL)
    return NULL;
  if (!g_dbus_is_error_name (name))
    return PyErr_Format (PyExc_ValueError, "%R is not a valid D-Bus error name", args[0]);
  invocation = method_call_take (self);
  if (invocation == NULL)
    return NULL;
  g_dbus_method_invocation_return_dbus_error (invocation, name, message);
  Py_RETURN_NONE;
}

static PyObject *
method_call_return_gerror (PyObject        *object,
                           PyObject *const *args,
                           Py_ssize_t       nargs)
{
  MethodCall *self = (MethodCall *) object;
  const char *domain, *message;
  long code;
  GDBusMethodInvocation *invocation;

  if (nargs != 3 || !PyUnicode_Check (args[0]) || !PyLong_Check (args[1])
      || !PyUnicode_Check (args[2]))
    return PyErr_Format (PyExc_TypeError, "return_gerror(domain: str, code: int, message: str)");
  domain = PyUnicode_AsUTF8 (args[0]);
  code = PyLong_AsLong (args[1]);
  message = PyUnicode_AsUTF8 (args[2]);
  if (domain == NULL || message == NULL || (code == -1 && PyErr_Occurred ()))
    return NULL;
  if (code < G_MININT || code > G_MAXINT)
    return PyErr_Format (PyExc_ValueError, "the code %ld does not fit a gint", code);
  invocation = method_call_take (self);
  if (invocation == NULL)
    return NULL;
  /* G_DBUS_ERROR codes become their org.freedesktop.DBus.Error names;
   * other domains an encoded name that GLib peers decode back. */
  g_dbus_method_invocation_return_error_literal (invocation, g_quark_from_string (domain),
                                                 (gint) code, message);
  Py_RETURN_NONE;
}

static PyObject *
method_call_get (PyObject *object,
                 void     *closure)
{
  MethodCall *self = (MethodCall *) object;
  GDBusMethodInvocation *invocation = self->invocation;
  const char *which = closure;

  if (strcmp (which, "args") == 0)
    return Py_NewRef (self->args);
  if (strcmp (which, "replied") == 0)
    return PyBool_FromLong (invocation == NULL);
  if (invocation == NULL)
    Py_RETURN_NONE;
  if (strcmp (which, "method") == 0)
    return str_or_none (g_dbus_method_invocation_get_method_name (invocation));
  if (strcmp (which, "interface") == 0)
    return str_or_none (g_dbus_method_invocation_get_interface_name (invocation));
  if (strcmp (which, "path") == 0)
    return str_or_none (g_dbus_method_invocation_get_object_path (invocation));
  if (strcmp (which, "sender") == 0)
    return str_or_none (g_dbus_method_invocation_get_sender (invocation));
  if (strcmp (which, "property") == 0)
    {
      const GDBusPropertyInfo *p = g_dbus_method_invocation_get_property_info (invocation);

      return str_or_none (p != NULL ? p->name : NULL);
    }
  if (strcmp (which, "readable_properties") == 0)
    {
      GDBusInterfaceInfo *target = method_call_target_interface (self);
      PyObject *list = PyList_New (0);

      for (guint i = 0; list != NULL && target != NULL && target->properties != NULL
                        && target->properties[i] != NULL; i++)
        {
          PyObject *name;

          if (!(target->properties[i]->flags & G_DBUS_PROPERTY_INFO_FLAGS_READABLE))
            continue;
          name = PyUnicode_FromString (target->properties[i]->name);
          if (name == NULL || PyList_Append (list, name) < 0)
            Py_CLEAR (list);
          Py_XDECREF (name);
        }
      return list;
    }
  Py_RETURN_NONE;
}

static PyMethodDef method_call_methods[] = {
  { "return_value", method_call_return_value, METH_O,
    "return_value($self, value, /)\n--\n\nReply with value, converted by the out-signature: None for\n"
    "no out argument, the value for one, a tuple for several." },
  { "return_dbus_error", (PyCFunction) (void (*) (void)) method_call_return_dbus_error,
    METH_FASTCALL, "return_dbus_error($self, name, message, /)\n--\n\nReply with a D-Bus error." },
  { "return_gerror", (PyCFunction) (void (*) (void)) method_call_return_gerror,
    METH_FASTCALL,
    "return_gerror($self, domain, code, message, /)\n--\n\nReply with a GError (a G_DBUS_ERROR code\n"
    "becomes its org.freedesktop.DBus.Error name)." },
  { NULL }
};

static PyGetSetDef method_call_getset[] = {
  { "method", method_call_get, NULL, "The method's name.", "method" },
  { "interface", method_call_get, NULL, "The interface called.", "interface" },
  { "path", method_call_get, NULL, "The object path called.", "path" },
  { "sender", method_call_get, NULL, "The caller's bus name.", "sender" },
  { "args", method_call_get, NULL, "The in-arguments, a tuple of Python values.", "args" },
  { "property_name", method_call_get, NULL,
    "For Properties.Get and Set, the property's name.", "property" },
  { "readable_properties", method_call_get, NULL,
    "For Properties.GetAll, the readable properties' names.", "readable_properties" },
  { "replied", method_call_get, NULL, "Whether the call has its reply.", "replied" },
  { NULL }
};

static PyTypeObject MethodCall_Type = {
  GAB_PY_TYPE_HEAD ("gasyncbridge.dbus.MethodCall", MethodCall,
                    Py_TPFLAGS_DEFAULT,
                    "One D-Bus method call to an exported object, replied to once."),
  .tp_dealloc = method_call_dealloc,
  .tp_methods = method_call_methods,
  .tp_getset = method_call_getset,
};

/* Runtime thread, no GIL. */
static void
on_method_call (GDBusConnection       *connection,
                const gchar           *sender,
                const gchar           *path,
                const gchar           *interface,
                const gchar           *method,
                GVariant              *params,
                GDBusMethodInvocation *invocation,
                gpointer               user_data)
{
  GabEventChannel *channel = user_data;
  CallEvent *event = g_new (CallEvent, 1);

  event->invocation = invocation;   /* ours to reply to */
  gab_event_channel_push (channel, event);
}

/* get_property and set_property are NULL: GDBus then routes the
 * Properties calls to method_call, so that they too are answered
 * asynchronously, from the loop. */
static const GDBusInterfaceVTable vtable = {
  .method_call = on_method_call,
};

/* An event source (gasyncbridge-event-source.h) fed by the method calls
 * to an exported object. */
typedef struct
{
  GabEventSource   source;
  GDBusConnection *connection;
  GDBusNodeInfo   *node;
  gchar           *path;
  GArray          *ids;        /* guint; empty once unregistered */
} Registration;

static PyTypeObject Registration_Type;

static void
registration_cancel (GabEventSource *source)
{
  Registration *self = (Registration *) source;

  /* Calls not handed to the dispatcher yet get an error reply now, and
   * the node info they would be converted with may go. */
  if (source->receiver != NULL)
    {
      PyObject *ret = PyObject_CallMethod (source->receiver, "close", NULL);

      if (ret == NULL)
        PyErr_Clear ();
      Py_XDECREF (ret);
    }
  if (self->ids != NULL)
    {
      unregister_without_gil (self->connection, self->ids);
      g_array_set_size (self->ids, 0);
    }
  if (source->channel != NULL)
    gab_event_channel_close (source->channel, NULL);
}

static gboolean
registration_is_registered (GabEventSource *source)
{
  Registration *self = (Registration *) source;

  return self->ids != NULL && self->ids->len > 0;
}

static void
registration_finalize (GabEventSource *source)
{
  Registration *self = (Registration *) source;

  g_clear_object (&self->connection);
  g_clear_pointer (&self->node, g_dbus_node_info_unref);
  g_clear_pointer (&self->ids, g_array_unref);
  g_clear_pointer (&self->path, g_free);
}

static const GabEventSourceClass registration_class = {
  .stop = registration_cancel,
  .is_active = registration_is_registered,
  .finalize = registration_finalize,
};

static PyObject *
registration_get_path (PyObject *object,
                       void     *closure)
{
  return PyUnicode_FromString (((Registration *) object)->path);
}

static GDBusInterfaceInfo *
registration_find_signal (Registration       *self,
                          const char         *interface,
                          const char         *name,
                          GDBusSignalInfo   **signal)
{
  for (guint i = 0; self->node->interfaces != NULL && self->node->interfaces[i] != NULL; i++)
    {
      GDBusInterfaceInfo *iface = self->node->interfaces[i];

      if (interface != NULL && strcmp (iface->name, interface) != 0)
        continue;
      *signal = g_dbus_interface_info_lookup_signal (iface, name);
      if (*signal != NULL)
        return iface;
    }
  return NULL;
}

/* emit_signal(name, args, interface) */
static PyObject *
registration_emit_signal (PyObject        *object,
                          PyObject *const *args,
                          Py_ssize_t       nargs)
{
  Registration *self = (Registration *) object;
  const char *name, *interface = NULL;
  GDBusInterfaceInfo *iface;
  GDBusSignalInfo *signal = NULL;
  g_autoptr(GString) signature = g_string_new ("(");
  g_autoptr(GVariant) params = NULL;
  g_autoptr(GError) error = NULL;

  if (nargs != 3 || !PyUnicode_Check (args[0]) || !PyTuple_Check (args[1])
      || (args[2] != Py_None && !PyUnicode_Check (args[2])))
    return PyErr_Format (PyExc_TypeError, "_emit_signal(name, args: tuple, interface)");
  name = PyUnicode_AsUTF8 (args[0]);
  if (args[2] != Py_None)
    interface = PyUnicode_AsUTF8 (args[2]);
  if (name == NULL || (args[2] != Py_None && interface == NULL))
    return NULL;
  iface = registration_find_signal (self, interface, name, &signal);
  if (iface == NULL)
    return PyErr_Format (PyExc_ValueError, "emit_signal: no signal %R in the exported "
                         "interface%s", args[0], interface != NULL ? "" : "s");
  for (guint i = 0; signal->args != NULL && signal->args[i] != NULL; i++)
    g_string_append (signature, signal->args[i]->signature);
  g_string_append_c (signature, ')');
  params = gab_variant_from_python (args[1], G_VARIANT_TYPE (signature->str), &error);
  if (params == NULL)
    return PyErr_Format (PyExc_TypeError, "emit_signal %s: %s", name, error->message);
  if (!emit_without_gil (self->connection, self->path, iface->name, name, params, &error))
    return gab_error_to_python (error);
  Py_RETURN_NONE;
}

/* properties_changed(interface, changed: dict, invalidated: sequence) */
static PyObject *
registration_properties_changed (PyObject        *object,
                                 PyObject *const *args,
                                 Py_ssize_t       nargs)
{
  Registration *self = (Registration *) object;
  const char *interface;
  GDBusInterfaceInfo *iface;
  GVariantBuilder changed, invalidated;
  PyObject *key, *value, *list;
  Py_ssize_t pos = 0;
  g_autoptr(GError) error = NULL;

  if (nargs != 3 || !PyUnicode_Check (args[0]) || !PyDict_Check (args[1]))
    return PyErr_Format (PyExc_TypeError,
                         "_properties_changed(interface: str, changed: dict, invalidated)");
  interface = PyUnicode_AsUTF8 (args[0]);
  if (interface == NULL)
    return NULL;
  iface = g_dbus_node_info_lookup_interface (self->node, interface);
  if (iface == NULL)
    return PyErr_Format (PyExc_ValueError, "properties_changed: %R is not exported here",
                         args[0]);
  list = PySequence_List (args[2]);
  if (list == NULL)
    return NULL;
  g_variant_builder_init (&changed, G_VARIANT_TYPE ("a{sv}"));
  g_variant_builder_init (&invalidated, G_VARIANT_TYPE ("as"));
  while (PyDict_Next (args[1], &pos, &key, &value))
    {
      const char *pname = PyUnicode_Check (key) ? PyUnicode_AsUTF8 (key) : NULL;
      GDBusPropertyInfo *p = pname != NULL ? g_dbus_interface_info_lookup_property (iface, pname)
                                           : NULL;
      GVariant *v;

      if (p == NULL)
        {
          PyErr_Clear ();
          PyErr_Format (PyExc_ValueError, "properties_changed: %s has no property %R",
                        interface, key);
          goto fail;
        }
      v = gab_variant_from_python (value, G_VARIANT_TYPE (p->signature), &error);
      if (v == NULL)
        {
          PyErr_Format (PyExc_TypeError, "properties_changed %s: %s", pname, error->message);
          goto fail;
        }
      g_variant_builder_add (&changed, "{sv}", pname, v);
      g_variant_unref (v);
    }
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE (list); i++)
    {
      PyObject *item = PyList_GET_ITEM (list, i);
      const char *pname = PyUnicode_Check (item) ? PyUnicode_AsUTF8 (item) : NULL;

      if (pname == NULL)
        {
          PyErr_Clear ();
          PyErr_Format (PyExc_TypeError, "properties_changed: invalidated names are str");
          goto fail;
        }
      g_variant_builder_add (&invalidated, "s", pname);
    }
  Py_DECREF (list);
  if (!emit_without_gil (self->connection, self->path, PROPERTIES_INTERFACE,
                         "PropertiesChanged",
                         g_variant_new ("(sa{sv}as)", interface, &changed, &invalidated),
                         &error))
    return gab_error_to_python (error);
  Py_RETURN_NONE;

fail:
  Py_DECREF (list);
  g_variant_builder_clear (&changed);
  g_variant_builder_clear (&invalidated);
  return NULL;
}

static PyMethodDef registration_methods[] = {
  { "unregister", gab_event_source_stop_py, METH_NOARGS,
    "unregister()\n--\n\nUnexport the object now; idempotent." },
  { "_emit_signal", (PyCFunction) (void (*) (void)) registration_emit_signal,
    METH_FASTCALL, NULL },
  { "_properties_changed", (PyCFunction) (void (*) (void)) registration_properties_changed,
    METH_FASTCALL, NULL },
  { NULL }
};

static PyGetSetDef registration_getset[] = {
  { "registered", gab_event_source_get_active, NULL, "Whether the object is exported.",
    NULL },
  { "path", registration_get_path, NULL, "The object path.", NULL },
  { NULL }
};

static PyTypeObject Registration_Type = {
  GAB_PY_TYPE_HEAD ("gasyncbridge._DBusRegistration", Registration,
                    Py_TPFLAGS_DEFAULT,
                    "An object exported on the runtime thread (see gasyncbridge.dbus.export)."),
  .tp_base = &gab_event_source_type,
  .tp_methods = registration_methods,
  .tp_getset = registration_getset,
};

typedef struct
{
  GDBusConnection *connection;
  GDBusNodeInfo   *node;
  gchar           *path;
  GabEventChannel *channel;
  PyObject        *receiver;   /* GIL */
  GArray          *ids;        /* until handed over */
} RegisterCall;

static void
register_call_free (gpointer data)
{
  RegisterCall *call = data;

  if (call->ids != NULL)
    {
      unregister_without_gil (call->connection, call->ids);
      g_array_unref (call->ids);
    }
  if (call->channel != NULL)
    {
      gab_event_channel_close (call->channel, NULL);
      g_object_unref (call->channel);
    }
  Py_XDECREF (call->receiver);
  g_clear_object (&call->connection);
  g_clear_pointer (&call->node, g_dbus_node_info_unref);
  g_free (call->path);
  g_free (call);
}

/* Runtime thread. */
static void
register_start (GCancellable        *cancellable,
                GAsyncReadyCallback  callback,
                gpointer             callback_data,
                gpointer             user_data)
{
  RegisterCall *call = user_data;
  GTask *task = g_task_new (NULL, cancellable, callback, callback_data);
  GError *error = NULL;

  call->ids = g_array_new (FALSE, FALSE, sizeof (guint));
  for (guint i = 0; call->node->interfaces[i] != NULL; i++)
    {
      guint id = g_dbus_connection_register_object (call->connection, call->path,
                                                    call->node->interfaces[i], &vtable,
                                                    g_object_ref (call->channel),
                                                    g_object_unref, &error);

      if (id == 0)
        break;
      g_array_append_val (call->ids, id);
    }
  gab_module_task_return_outcome (&task, &error);
}

/* Loop thread, GIL. */
static PyObject *
register_finish (GObject       *source,
                 GAsyncResult  *result,
                 gpointer       user_data,
                 GError       **error)
{
  RegisterCall *call = user_data;
  Registration *self;

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  self = gab_event_source_new (&Registration_Type, &registration_class);
  if (self == NULL)
    return NULL;
  self->connection = g_object_ref (call->connection);
  self->node = g_dbus_node_info_ref (call->node);
  self->path = g_strdup (call->path);
  self->ids = g_steal_pointer (&call->ids);
  self->source.channel = g_steal_pointer (&call->channel);
  self->source.receiver = g_steal_pointer (&call->receiver);
  return (PyObject *) self;
}

/* _dbus_register(connection, path, interface_xml, callback, maxsize): a
 * future of a _DBusRegistration whose calls go to callback(MethodCall). */
PyObject *
gab_module_dbus_register (PyObject        *module,
                          PyObject *const *args,
                          Py_ssize_t       nargs)
{
  GDBusConnection *connection;
  RegisterCall *call;
  const char *path, *xml;
  guint maxsize;
  GError *error = NULL;
  GDBusNodeInfo *node;

  if (nargs != 5)
    return PyErr_Format (PyExc_TypeError, "_dbus_register takes 5 arguments");
  connection = (GDBusConnection *) gab_module_gobject_get (args[0], G_TYPE_DBUS_CONNECTION,
                                                           "export");
  if (connection == NULL)
    return NULL;
  if (!PyUnicode_Check (args[1]) || !PyUnicode_Check (args[2]))
    return PyErr_Format (PyExc_TypeError, "export: the path and the interface XML are str");
  path = PyUnicode_AsUTF8 (args[1]);
  xml = PyUnicode_AsUTF8 (args[2]);
  if (path == NULL || xml == NULL)
    return NULL;
  if (!g_variant_is_object_path (path))
    return PyErr_Format (PyExc_ValueError, "export: %R is not a D-Bus object path", args[1]);
  if (!maxsize_from_python (args[4], &maxsize))
    return NULL;
  node = g_dbus_node_info_new_for_xml (xml, &error);
  if (node == NULL)
    {
      PyObject *ret = gab_error_to_python (error);

      g_error_free (error);
      return ret;
    }
  if (node->interfaces == NULL || node->interfaces[0] == NULL)
    {
      g_dbus_node_info_unref (node);
      return PyErr_Format (PyExc_ValueError, "export: the XML names no interface");
    }
  call = g_new0 (RegisterCall, 1);
  call->connection = g_object_ref (connection);
  call->node = node;
  call->path = g_strdup (path);
  call->channel = gab_event_channel_new (maxsize, GAB_EVENT_OVERFLOW_DROP_NEWEST,
                                         call_event_convert, node, call_event_free);
  call->receiver = gab_event_channel_to_python (call->channel, args[3]);
  if (call->receiver == NULL)
    {
      register_call_free (call);
      return NULL;
    }
  return gab_future_into_py (register_start, register_finish, call, register_call_free);
}

int
gab_module_dbus_init (PyObject *module)
{
  if (gab_event_source_init () < 0 || PyType_Ready (&Subscription_Type) < 0
      || PyType_Ready (&MethodCall_Type) < 0
      || PyType_Ready (&Registration_Type) < 0)
    return -1;
  DBusSignal_Type = PyStructSequence_NewType (&dbus_signal_desc);
  if (DBusSignal_Type == NULL
      || PyModule_AddObject (module, "_DBusSignal", Py_NewRef (DBusSignal_Type)) < 0
      || PyModule_AddObject (module, "_MethodCall", Py_NewRef (&MethodCall_Type)) < 0)
    return -1;
  return 0;
}
