/* gasyncbridge-signals.c: GObject signals into asyncio, for
 * gasyncbridge.signals() and wait_signal() (gasyncbridge/_signals.py).
 *
 * A signal handler written in C, a GClosure with its own marshaller, runs
 * in the emitting thread without the GIL: it copies the emission's
 * GValues (references for objects, copies for strings and boxed values)
 * into an event and pushes it into a GabEventChannel. The loop converts
 * the values to Python with PyGObject's own converter when the consumer
 * takes the event, so a handler costs the emitter a few hundred
 * nanoseconds and no Python, and a burst of emissions costs the loop one
 * wakeup.
 *
 * PyGObject is imported when first needed, never by `import gasyncbridge`.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gasyncbridge-module.h"
#include "gasyncbridge-event-source.h"

#include <stddef.h>
#include <pygobject.h>   /* defines _PyGObject_API, shared with the D-Bus file */

/* ---- PyGObject ----------------------------------------------------------- */

gboolean
gab_module_gi_ensure (void)
{
  PyObject *gobject;

  if (_PyGObject_API != NULL)
    return TRUE;
  gobject = pygobject_init (3, 0, 0);
  if (gobject == NULL)
    return FALSE;
  Py_DECREF (gobject);
  return TRUE;
}

GObject *
gab_module_gobject_get (PyObject    *object,
                        GType        type,
                        const char  *what)
{
  GObject *gobject;

  if (!gab_module_gi_ensure ())
    return NULL;
  if (!PyObject_TypeCheck (object, &PyGObject_Type))
    {
      PyErr_Format (PyExc_TypeError, "%s: a GObject is needed, not %s", what,
                    Py_TYPE (object)->tp_name);
      return NULL;
    }
  gobject = pygobject_get (object);
  if (gobject == NULL || !G_TYPE_CHECK_INSTANCE_TYPE (gobject, type))
    {
      PyErr_Format (PyExc_TypeError, "%s: a %s is needed, not %s", what, g_type_name (type),
                    gobject != NULL ? G_OBJECT_TYPE_NAME (gobject) : "an empty wrapper");
      return NULL;
    }
  return gobject;
}

PyObject *
gab_module_value_to_python (const GValue *value)
{
  return pyg_value_as_pyobject (value, TRUE);
}

/* ---- events ---------------------------------------------------------------- */

typedef struct
{
  const char *name;      /* interned: the signal as subscribed, "notify::x" */
  guint       n_values;
  GValue      values[];
} SignalEvent;

static void
signal_event_free (gpointer data)
{
  SignalEvent *event = data;

  /* Any thread, no GIL: unreffing a GObject with a Python wrapper takes
   * the GIL by itself (PyGObject's toggle reference). */
  for (guint i = 0; i < event->n_values; i++)
    g_value_unset (&event->values[i]);
  g_free (event);
}

static PyTypeObject *SignalEvent_Type;

static PyStructSequence_Field signal_event_fields[] = {
  { "signal", "the signal's name, as given to signals() (with its ::detail)" },
  { "args", "the emission's arguments after the instance, as PyGObject gives them" },
  { NULL }
};

static PyStructSequence_Desc signal_event_desc = {
  "gasyncbridge.SignalEvent",
  "SignalEvent(signal, args): one emission, from gasyncbridge.signals().",
  signal_event_fields,
  2,
};

/* Loop thread, GIL. */
static PyObject *
signal_event_convert (gpointer data,
                      gpointer user_data)
{
  SignalEvent *event = data;
  PyObject *args, *name, *result;

  args = PyTuple_New (event->n_values);
  if (args == NULL)
    return NULL;
  for (guint i = 0; i < event->n_values; i++)
    {
      PyObject *item = gab_module_value_to_python (&event->values[i]);

      if (item == NULL)
        {
          if (!PyErr_Occurred ())
            PyErr_Format (PyExc_TypeError, "gasyncbridge: cannot convert a %s argument "
                          "of %s", G_VALUE_TYPE_NAME (&event->values[i]), event->name);
          Py_DECREF (args);
          return NULL;
        }
      PyTuple_SET_ITEM (args, i, item);
    }
  if (user_data != NULL)
    /* wait_signal(): the argument tuple alone. */
    return args;
  name = PyUnicode_InternFromString (event->name);
  result = name != NULL ? PyStructSequence_New (SignalEvent_Type) : NULL;
  if (result == NULL)
    {
      Py_XDECREF (name);
      Py_DECREF (args);
      return NULL;
    }
  PyStructSequence_SET_ITEM (result, 0, name);
  PyStructSequence_SET_ITEM (result, 1, args);
  return result;
}

/* ---- the handler ------------------------------------------------------------- */

typedef struct
{
  GClosure         closure;
  GabEventChannel *channel;
  const char      *name;
} SignalClosure;

/* The emitting thread, no GIL. */
static void
signal_closure_marshal (GClosure     *closure,
                        GValue       *return_value,
                        guint         n_param_values,
                        const GValue *param_values,
                        gpointer      invocation_hint,
                        gpointer      marshal_data)
{
  SignalClosure *self = (SignalClosure *) closure;
  SignalEvent *event;
  guint n = n_param_values > 0 ? n_param_values - 1 : 0;

  if (!gab_event_channel_is_open (self->channel))
    return;
  event = g_malloc0 (offsetof (SignalEvent, values) + n * sizeof (GValue));
  event->name = self->name;
  event->n_values = n;
  for (guint i = 0; i < n; i++)
    {
      g_value_init (&event->values[i], G_VALUE_TYPE (&param_values[i + 1]));
      g_value_copy (&param_values[i + 1], &event->values[i]);
    }
  /* A signal with a return value gets the default one: an observer
   * cannot answer for the loop. */
  gab_event_channel_push (self->channel, event);
}

static void
signal_closure_finalize (gpointer  data,
                         GClosure *closure)
{
  g_object_unref (((SignalClosure *) closure)->channel);
}

/* ---- the connection object ----------------------------------------------------- */

/* An event source (gasyncbridge-event-source.h) whose feeders are C
 * signal handlers. */
typedef struct
{
  GabEventSource   source;
  GObject         *object;     /* strong, until disconnected */
  gulong          *handlers;
  guint            n_handlers;
} SignalConnection;

static void
connection_disconnect (GabEventSource *source)
{
  SignalConnection *self = (SignalConnection *) source;

  if (source->channel != NULL)
    /* Emissions under way in other threads find it closed. */
    gab_event_channel_close (source->channel, NULL);
  if (self->object != NULL)
    {
      for (guint i = 0; i < self->n_handlers; i++)
        if (self->handlers[i] != 0 && g_signal_handler_is_connected (self->object,
                                                                     self->handlers[i]))
          g_signal_handler_disconnect (self->object, self->handlers[i]);
      g_clear_object (&self->object);
    }
  g_clear_pointer (&self->handlers, g_free);
  self->n_handlers = 0;
}

static gboolean
connection_is_connected (GabEventSource *source)
{
  return ((SignalConnection *) source)->object != NULL;
}

static const GabEventSourceClass connection_class = {
  .stop = connection_disconnect,
  .is_active = connection_is_connected,
};

static PyMethodDef connection_methods[] = {
  { "disconnect", gab_event_source_stop_py, METH_NOARGS,
    "disconnect()\n--\n\nDisconnect the handlers now; idempotent." },
  { NULL }
};

static PyGetSetDef connection_getset[] = {
  { "connected", gab_event_source_get_active, NULL, "Whether the handlers are connected.",
    NULL },
  { NULL }
};

static PyTypeObject SignalConnection_Type = {
  GAB_PY_TYPE_HEAD ("gasyncbridge._SignalConnection", SignalConnection,
                    Py_TPFLAGS_DEFAULT,
                    "C signal handlers feeding an EventReceiver (see gasyncbridge.signals)."),
  .tp_base = &gab_event_source_type,
  .tp_methods = connection_methods,
  .tp_getset = connection_getset,
};

static gboolean
overflow_from_python (PyObject         *value,
                      GabEventOverflow *overflow)
{
  const char *s = PyUnicode_Check (value) ? PyUnicode_AsUTF8 (value) : NULL;

  if (s != NULL && strcmp (s, "drop-newest") == 0)
    *overflow = GAB_EVENT_OVERFLOW_DROP_NEWEST;
  else if (s != NULL && strcmp (s, "drop-oldest") == 0)
    *overflow = GAB_EVENT_OVERFLOW_DROP_OLDEST;
  else if (s != NULL && strcmp (s, "raise") == 0)
    *overflow = GAB_EVENT_OVERFLOW_CLOSE;
  else
    {
      PyErr_Clear ();
      PyErr_Format (PyExc_ValueError, "overflow must be 'raise', 'drop-oldest' or "
                    "'drop-newest', not %R", value);
      return FALSE;
    }
  return TRUE;
}

gboolean
gab_module_overflow_from_python (PyObject         *value,
                                 GabEventOverflow *overflow)
{
  return overflow_from_python (value, overflow);
}

/* _connect_signals(obj, names, maxsize, overflow, callback, args_only) */
PyObject *
gab_module_connect_signals (PyObject        *module,
                            PyObject *const *args,
                            Py_ssize_t       nargs)
{
  SignalConnection *self;
  GabEventChannel *channel;
  GObject *object;
  PyObject *names, *callback;
  Py_ssize_t n, maxsize;
  GabEventOverflow overflow;
  int args_only;

  if (nargs != 6)
    return PyErr_Format (PyExc_TypeError, "_connect_signals takes 6 arguments");
  object = gab_module_gobject_get (args[0], G_TYPE_OBJECT, "signals");
  if (object == NULL)
    return NULL;
  names = args[1];
  if (!PyTuple_Check (names) || PyTuple_GET_SIZE (names) == 0)
    return PyErr_Format (PyExc_TypeError, "signals: name at least one signal");
  maxsize = PyLong_AsSsize_t (args[2]);
  if (maxsize == -1 && PyErr_Occurred ())
    return NULL;
  if (maxsize < 1 || maxsize > G_MAXINT)
    return PyErr_Format (PyExc_ValueError, "maxsize must be at least 1 (and fit an int), "
                         "not %zd", maxsize);
  if (!overflow_from_python (args[3], &overflow))
    return NULL;
  callback = args[4] == Py_None ? NULL : args[4];
  args_only = PyObject_IsTrue (args[5]);
  if (args_only < 0)
    return NULL;

  n = PyTuple_GET_SIZE (names);
  {
    g_autofree guint *ids = g_new0 (guint, n);
    g_autofree GQuark *details = g_new0 (GQuark, n);
    g_autofree const char **interned = g_new0 (const char *, n);

    for (Py_ssize_t i = 0; i < n; i++)
      {
        PyObject *item = PyTuple_GET_ITEM (names, i);
        const char *name = PyUnicode_Check (item) ? PyUnicode_AsUTF8 (item) : NULL;

        if (name == NULL)
          {
            PyErr_Clear ();
            return PyErr_Format (PyExc_TypeError, "signals: a signal name is a str, not %s",
                                 Py_TYPE (item)->tp_name);
          }
        if (!g_signal_parse_name (name, G_OBJECT_TYPE (object), &ids[i], &details[i], TRUE))
          return PyErr_Format (PyExc_ValueError, "signals: %s has no signal %R",
                               G_OBJECT_TYPE_NAME (object), item);
        interned[i] = g_intern_string (name);
      }

    self = gab_event_source_new (&SignalConnection_Type, &connection_class);
    if (self == NULL)
      return NULL;
    channel = gab_event_channel_new ((guint) maxsize, overflow, signal_event_convert,
                                     args_only ? GINT_TO_POINTER (1) : NULL,
                                     signal_event_free);
    self->source.channel = channel;
    self->source.receiver = gab_event_channel_to_python (channel, callback);
    if (self->source.receiver == NULL)
      {
        Py_DECREF (self);
        return NULL;
      }
    /* Connected now, from this thread: GLib's signal handler list is
     * thread-safe, and an emission that follows this call is seen. */
    self->object = g_object_ref (object);
    self->handlers = g_new0 (gulong, n);
    self->n_handlers = (guint) n;
    for (Py_ssize_t i = 0; i < n; i++)
      {
        SignalClosure *closure;

        closure = (SignalClosure *) g_closure_new_simple (sizeof (SignalClosure), NULL);
        closure->channel = g_object_ref (channel);
        closure->name = interned[i];
        g_closure_set_marshal (&closure->closure, signal_closure_marshal);
        g_closure_add_finalize_notifier (&closure->closure, NULL, signal_closure_finalize);
        self->handlers[i] = g_signal_connect_closure_by_id (object, ids[i], details[i],
                                                            &closure->closure, FALSE);
      }
  }
  return (PyObject *) self;
}

/* ---- objects made on the runtime thread ------------------------------------- */

static GQuark
made_in_runtime_quark (void)
{
  return g_quark_from_static_string ("gasyncbridge-made-in-runtime");
}

void
gab_module_mark_made_in_runtime (PyObject *result)
{
  /* Without PyGObject loaded, the result is no GObject. */
  if (_PyGObject_API == NULL || !PyObject_TypeCheck (result, &PyGObject_Type)
      || pygobject_get (result) == NULL)
    return;
  g_object_set_qdata (pygobject_get (result), made_in_runtime_quark (), GINT_TO_POINTER (1));
}

/* _made_in_runtime(obj): whether run_in_runtime() returned obj. */
static PyObject *
module_made_in_runtime (PyObject *module,
                        PyObject *object)
{
  GObject *gobject = gab_module_gobject_get (object, G_TYPE_OBJECT, "_made_in_runtime");

  if (gobject == NULL)
    return NULL;
  return PyBool_FromLong (g_object_get_qdata (gobject, made_in_runtime_quark ()) != NULL);
}

/* _default_context_idle(): whether nothing runs GLib's global default
 * main context now (a GMainLoop on it would own it). */
static PyObject *
module_default_context_idle (PyObject *module,
                             PyObject *unused)
{
  GMainContext *context = g_main_context_default ();
  gboolean idle = FALSE;

  /* This thread owning it means it runs it (gbulb's loop does). */
  if (context != gab_get_context () && !g_main_context_is_owner (context)
      && g_main_context_acquire (context))
    {
      idle = TRUE;
      g_main_context_release (context);
    }
  return PyBool_FromLong (idle);
}

static PyMethodDef signals_methods[] = {
  { "_made_in_runtime", module_made_in_runtime, METH_O, NULL },
  { "_default_context_idle", module_default_context_idle, METH_NOARGS, NULL },
  { NULL }
};

int
gab_module_signals_init (PyObject *module)
{
  if (gab_event_source_init () < 0 || PyType_Ready (&SignalConnection_Type) < 0)
    return -1;
  SignalEvent_Type = PyStructSequence_NewType (&signal_event_desc);
  if (SignalEvent_Type == NULL
      || PyModule_AddObject (module, "SignalEvent", Py_NewRef (SignalEvent_Type)) < 0
      || PyModule_AddFunctions (module, signals_methods) < 0)
    return -1;
  return 0;
}
