/* _gab_bench_events.c: C drivers for the events benchmarks (bench/bench_events.py),
 * so that what is timed is the path into asyncio, not Python producing the
 * events:
 *
 *   emitter_type()
 *       Registers GabBenchEmitter, a GObject with a signal "tick" (gint), and
 *       returns its type name (Python makes one with GObject.new).
 *   emit(obj.__gpointer__, n)
 *       A new GLib thread emits "tick" n times (0 .. n-1) on obj, as fast as
 *       it can, and ends.
 *   dbus_calls(conn.__gpointer__, dest, path, interface, method, n, in_flight)
 *       A new GLib thread with a main context of its own calls method(i, i)
 *       n times on conn, keeping in_flight calls outstanding; returns a
 *       handle for dbus_wait().
 *   dbus_wait(handle)
 *       Blocks (without the GIL) until those calls have their replies;
 *       returns (seconds, errors, first error message or None).
 *   dbus_serve_c(conn.__gpointer__, path, xml)
 *       The ceiling: a C thread serves Add(a, b) with no Python at all,
 *       until the returned handle is dropped.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#define PY_SSIZE_T_CLEAN
#include "../gasyncbridge/gab-python-compat.h"  /* Python.h, with the API of newer versions */
#include <gio/gio.h>

/* ---- the emitter -------------------------------------------------------- */

typedef struct
{
  GObject parent_instance;
} GabBenchEmitter;

typedef struct
{
  GObjectClass parent_class;
} GabBenchEmitterClass;

static guint tick_signal;

G_DEFINE_TYPE (GabBenchEmitter, gab_bench_emitter, G_TYPE_OBJECT)

static void
gab_bench_emitter_class_init (GabBenchEmitterClass *klass)
{
  tick_signal = g_signal_new ("tick", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                              NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_INT);
}

static void
gab_bench_emitter_init (GabBenchEmitter *self)
{
}

static PyObject *
b_emitter_type (PyObject *self,
                PyObject *unused)
{
  return PyUnicode_FromString (g_type_name (gab_bench_emitter_get_type ()));
}

typedef struct
{
  GObject *object;
  gint     n;
} Emission;

static gpointer
emit_thread (gpointer data)
{
  Emission *emission = data;

  for (gint i = 0; i < emission->n; i++)
    g_signal_emit (emission->object, tick_signal, 0, i);
  g_object_unref (emission->object);
  g_free (emission);
  return NULL;
}

static PyObject *
b_emit (PyObject *self,
        PyObject *args)
{
  PyObject *capsule;
  int n;
  GObject *object;
  Emission *emission;

  if (!PyArg_ParseTuple (args, "Oi", &capsule, &n))
    return NULL;
  object = PyCapsule_GetPointer (capsule, NULL);
  if (object == NULL)
    return NULL;
  if (!G_TYPE_CHECK_INSTANCE_TYPE (object, gab_bench_emitter_get_type ()))
    return PyErr_Format (PyExc_TypeError, "emit: a GabBenchEmitter is needed");
  emission = g_new (Emission, 1);
  emission->object = g_object_ref (object);
  emission->n = n;
  g_thread_unref (g_thread_new ("gab-bench-emit", emit_thread, emission));
  Py_RETURN_NONE;
}

/* ---- a D-Bus client -------------------------------------------------------- */

typedef struct
{
  GDBusConnection *connection;
  gchar           *dest, *path, *interface, *method;
  gboolean         with_args;     /* "(ii)" arguments and reply, else none and "(s)" */
  gint             n, in_flight;
  gint             sent, done, errors;
  gchar           *first_error;
  GMainContext    *context;
  GMainLoop       *loop;
  GThread         *thread;
  gdouble          seconds;
} Client;

static void client_send (Client *client);

static void
client_reply (GObject      *source,
              GAsyncResult *result,
              gpointer      data)
{
  Client *client = data;
  GError *error = NULL;
  GVariant *reply = g_dbus_connection_call_finish (client->connection, result, &error);

  if (reply == NULL)
    {
      client->errors++;
      if (client->first_error == NULL)
        client->first_error = g_strdup (error->message);
      g_error_free (error);
    }
  else
    g_variant_unref (reply);
  client->done++;
  if (client->done == client->n)
    g_main_loop_quit (client->loop);
  else
    client_send (client);
}

static void
client_send (Client *client)
{
  if (client->sent >= client->n)
    return;
  g_dbus_connection_call (client->connection, client->dest, client->path, client->interface,
                          client->method,
                          client->with_args ? g_variant_new ("(ii)", client->sent, client->sent)
                                            : NULL,
                          client->with_args ? G_VARIANT_TYPE ("(i)") : G_VARIANT_TYPE ("(s)"),
                          G_DBUS_CALL_FLAGS_NONE, 60000, NULL,
                          client_reply, client);
  client->sent++;
}

static gpointer
client_thread (gpointer data)
{
  Client *client = data;
  gint64 start;

  g_main_context_push_thread_default (client->context);
  start = g_get_monotonic_time ();
  for (gint i = 0; i < client->in_flight; i++)
    client_send (client);
  if (client->n > 0)
    g_main_loop_run (client->loop);
  client->seconds = (g_get_monotonic_time () - start) / 1e6;
  g_main_context_pop_thread_default (client->context);
  return NULL;
}

static void
client_free (PyObject *capsule)
{
  Client *client = PyCapsule_GetPointer (capsule, "gab-bench-client");

  if (client == NULL)
    return;
  if (client->thread != NULL)
    g_thread_join (client->thread);
  g_object_unref (client->connection);
  g_main_loop_unref (client->loop);
  g_main_context_unref (client->context);
  g_free (client->dest);
  g_free (client->path);
  g_free (client->interface);
  g_free (client->method);
  g_free (client->first_error);
  g_free (client);
}

static PyObject *
b_dbus_calls (PyObject *self,
              PyObject *args)
{
  PyObject *capsule;
  const char *dest, *path, *interface, *method;
  int n, in_flight, with_args = 1;
  GObject *object;
  Client *client;

  if (!PyArg_ParseTuple (args, "Ozsssii|p", &capsule, &dest, &path, &interface, &method, &n,
                         &in_flight, &with_args))
    return NULL;
  object = PyCapsule_GetPointer (capsule, NULL);
  if (object == NULL)
    return NULL;
  if (!G_IS_DBUS_CONNECTION (object))
    return PyErr_Format (PyExc_TypeError, "dbus_calls: a GDBusConnection is needed");
  client = g_new0 (Client, 1);
  client->connection = g_object_ref (G_DBUS_CONNECTION (object));
  client->dest = g_strdup (dest);
  client->path = g_strdup (path);
  client->interface = g_strdup (interface);
  client->method = g_strdup (method);
  client->with_args = with_args;
  client->n = n;
  client->in_flight = MAX (1, in_flight);
  client->context = g_main_context_new ();
  client->loop = g_main_loop_new (client->context, FALSE);
  client->thread = g_thread_new ("gab-bench-dbus", client_thread, client);
  return PyCapsule_New (client, "gab-bench-client", client_free);
}

static PyObject *
b_dbus_wait (PyObject *self,
             PyObject *capsule)
{
  Client *client = PyCapsule_GetPointer (capsule, "gab-bench-client");

  if (client == NULL)
    return NULL;
  if (client->thread != NULL)
    {
      GThread *thread = g_steal_pointer (&client->thread);

      Py_BEGIN_ALLOW_THREADS
      g_thread_join (thread);
      Py_END_ALLOW_THREADS
    }
  return Py_BuildValue ("(diz)", client->seconds, client->errors, client->first_error);
}

/* ---- a D-Bus server in C: the ceiling ------------------------------------------- */

typedef struct
{
  GDBusConnection *connection;
  GDBusNodeInfo   *node;
  gchar           *path;
  GMainContext    *context;
  GMainLoop       *loop;
  GThread         *thread;
  guint            id;
  GMutex           lock;
  GCond            cond;
  gboolean         ready;
} Server;

static void
server_method_call (GDBusConnection       *connection,
                    const gchar           *sender,
                    const gchar           *path,
                    const gchar           *interface,
                    const gchar           *method,
                    GVariant              *params,
                    GDBusMethodInvocation *invocation,
                    gpointer               data)
{
  gint32 a, b;

  g_variant_get (params, "(ii)", &a, &b);
  g_dbus_method_invocation_return_value (invocation, g_variant_new ("(i)", a + b));
}

static const GDBusInterfaceVTable server_vtable = { .method_call = server_method_call };

static gpointer
server_thread (gpointer data)
{
  Server *server = data;

  g_main_context_push_thread_default (server->context);
  server->id = g_dbus_connection_register_object (server->connection, server->path,
                                                  server->node->interfaces[0], &server_vtable,
                                                  NULL, NULL, NULL);
  g_mutex_lock (&server->lock);
  server->ready = TRUE;
  g_cond_signal (&server->cond);
  g_mutex_unlock (&server->lock);
  g_main_loop_run (server->loop);
  if (server->id != 0)
    g_dbus_connection_unregister_object (server->connection, server->id);
  while (g_main_context_iteration (server->context, FALSE))
    ;
  g_main_context_pop_thread_default (server->context);
  return NULL;
}

static void
server_free (PyObject *capsule)
{
  Server *server = PyCapsule_GetPointer (capsule, "gab-bench-server");

  if (server == NULL)
    return;
  g_main_loop_quit (server->loop);
  g_thread_join (server->thread);
  g_main_loop_unref (server->loop);
  g_main_context_unref (server->context);
  g_dbus_node_info_unref (server->node);
  g_object_unref (server->connection);
  g_free (server->path);
  g_mutex_clear (&server->lock);
  g_cond_clear (&server->cond);
  g_free (server);
}

/* dbus_serve_c(gpointer, path, xml): a C thread serves Add(a, b) -> a + b
 * on the first interface of xml until the handle is dropped. */
static PyObject *
b_dbus_serve_c (PyObject *self,
                PyObject *args)
{
  PyObject *capsule;
  const char *path, *xml;
  GObject *object;
  Server *server;
  GError *error = NULL;
  GDBusNodeInfo *node;

  if (!PyArg_ParseTuple (args, "Oss", &capsule, &path, &xml))
    return NULL;
  object = PyCapsule_GetPointer (capsule, NULL);
  if (object == NULL)
    return NULL;
  if (!G_IS_DBUS_CONNECTION (object))
    return PyErr_Format (PyExc_TypeError, "dbus_serve_c: a GDBusConnection is needed");
  node = g_dbus_node_info_new_for_xml (xml, &error);
  if (node == NULL)
    {
      PyErr_SetString (PyExc_ValueError, error->message);
      g_error_free (error);
      return NULL;
    }
  server = g_new0 (Server, 1);
  server->connection = g_object_ref (G_DBUS_CONNECTION (object));
  server->node = node;
  server->path = g_strdup (path);
  server->context = g_main_context_new ();
  server->loop = g_main_loop_new (server->context, FALSE);
  g_mutex_init (&server->lock);
  g_cond_init (&server->cond);
  server->thread = g_thread_new ("gab-bench-server", server_thread, server);
  Py_BEGIN_ALLOW_THREADS
  g_mutex_lock (&server->lock);
  while (!server->ready)
    g_cond_wait (&server->cond, &server->lock);
  g_mutex_unlock (&server->lock);
  Py_END_ALLOW_THREADS
  return PyCapsule_New (server, "gab-bench-server", server_free);
}

static PyMethodDef methods[] = {
  { "dbus_serve_c", b_dbus_serve_c, METH_VARARGS,
    "dbus_serve_c(gpointer, path, xml)\n--\n\nA C thread serves Add until the handle goes." },
  { "emitter_type", b_emitter_type, METH_NOARGS,
    "emitter_type()\n--\n\nThe type name of GabBenchEmitter (signal tick(int))." },
  { "emit", b_emit, METH_VARARGS,
    "emit(gpointer, n)\n--\n\nA new GLib thread emits tick n times." },
  { "dbus_calls", b_dbus_calls, METH_VARARGS,
    "dbus_calls(gpointer, dest, path, interface, method, n, in_flight, with_args=True)\n--\n\n"
    "A C thread calls method(i, i) -> (i) n times (without args: method() -> (s));\n"
    "see dbus_wait()." },
  { "dbus_wait", b_dbus_wait, METH_O,
    "dbus_wait(handle)\n--\n\n(seconds, errors, first error) once the calls are done." },
  { NULL }
};

static struct PyModuleDef module_def = {
  PyModuleDef_HEAD_INIT,
  .m_name = "_gab_bench_events",
  .m_doc = "C drivers for the events benchmarks.",
  .m_size = -1,
  .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__gab_bench_events (void)
{
  return PyModule_Create (&module_def);
}
