/* _gab_eventmod.c: a test-only extension module for GabEventChannel
 * (public API only): C threads pushing numbered events, and a count of the
 * events alive so that the tests see each one freed exactly once.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#define PY_SSIZE_T_CLEAN
#include "../../gasyncbridge/gab-python-compat.h"  /* Python.h, with the API of newer versions */
#include <gasyncbridge/gasyncbridge.h>

typedef struct
{
  gint producer;
  gint seq;
} Event;

static gint alive;   /* atomic: events made and not yet freed */

static Event *
event_new (gint producer,
           gint seq)
{
  Event *event = g_new (Event, 1);

  event->producer = producer;
  event->seq = seq;
  g_atomic_int_inc (&alive);
  return event;
}

static void
event_free (gpointer data)
{
  g_free (data);
  g_atomic_int_add (&alive, -1);
}

static PyObject *
event_convert (gpointer data,
               gpointer user_data)
{
  Event *event = data;

  if (event->seq < 0)
    {
      PyErr_Format (PyExc_ValueError, "event %d of producer %d cannot be converted",
                    event->seq, event->producer);
      return NULL;
    }
  return Py_BuildValue ("(ii)", event->producer, event->seq);
}

typedef struct
{
  GabEventChannel *channel;
  gint             producer;
  gint             count;
  gint            *running;   /* shared; the last producer closes */
  gboolean         close;
} Producer;

static gpointer
producer_run (gpointer data)
{
  Producer *self = data;

  for (gint i = 0; i < self->count; i++)
    gab_event_channel_push (self->channel, event_new (self->producer, i));
  if (g_atomic_int_dec_and_test (self->running))
    {
      if (self->close)
        gab_event_channel_close (self->channel, NULL);
      g_free (self->running);
    }
  g_object_unref (self->channel);
  g_free (self);
  return NULL;
}

static gboolean
parse_overflow (const char       *name,
                GabEventOverflow *overflow)
{
  if (g_strcmp0 (name, "drop-newest") == 0)
    *overflow = GAB_EVENT_OVERFLOW_DROP_NEWEST;
  else if (g_strcmp0 (name, "drop-oldest") == 0)
    *overflow = GAB_EVENT_OVERFLOW_DROP_OLDEST;
  else if (g_strcmp0 (name, "close") == 0)
    *overflow = GAB_EVENT_OVERFLOW_CLOSE;
  else
    {
      PyErr_Format (PyExc_ValueError, "unknown overflow %s", name);
      return FALSE;
    }
  return TRUE;
}

/* producers(threads, per_thread, capacity, overflow, callback=None,
 *           wait=False, close=True): the Python end of a channel that that
 * many C threads push (producer, seq) events into; the last one closes it
 * (if close). With wait, the threads have finished when this returns. */
static PyObject *
t_producers (PyObject *module,
             PyObject *args)
{
  int threads, per_thread, capacity, wait = 0, close = 1;
  const char *overflow_name;
  PyObject *callback = Py_None, *receiver;
  GabEventOverflow overflow;
  GabEventChannel *channel;
  GThread **handles;
  gint *running;

  if (!PyArg_ParseTuple (args, "iiis|Opp", &threads, &per_thread, &capacity, &overflow_name,
                         &callback, &wait, &close))
    return NULL;
  if (!parse_overflow (overflow_name, &overflow))
    return NULL;
  channel = gab_event_channel_new ((guint) capacity, overflow, event_convert, NULL, event_free);
  g_assert_cmpuint (gab_event_channel_get_capacity (channel), ==, (guint) capacity);
  receiver = gab_event_channel_to_python (channel, callback == Py_None ? NULL : callback);
  if (receiver == NULL)
    {
      g_object_unref (channel);
      return NULL;
    }
  running = g_new (gint, 1);
  *running = threads;
  handles = g_new0 (GThread *, threads);
  for (int i = 0; i < threads; i++)
    {
      Producer *producer = g_new0 (Producer, 1);

      producer->channel = g_object_ref (channel);
      producer->producer = i;
      producer->count = per_thread;
      producer->running = running;
      producer->close = close;
      handles[i] = g_thread_new ("gab-test-producer", producer_run, producer);
    }
  Py_BEGIN_ALLOW_THREADS
  for (int i = 0; i < threads; i++)
    {
      if (wait)
        g_thread_join (handles[i]);
      else
        g_thread_unref (handles[i]);
    }
  Py_END_ALLOW_THREADS
  g_free (handles);
  g_object_unref (channel);
  return receiver;
}

/* burst(n, capacity, overflow, callback, bad=-1): n events pushed from
 * this thread before it returns (the loop sees them only afterwards);
 * event number `bad` fails to convert. Returns (receiver, pushed, dropped). */
static PyObject *
t_burst (PyObject *module,
         PyObject *args)
{
  int n, capacity, bad = -1, pushed = 0;
  const char *overflow_name;
  PyObject *callback, *receiver, *ret;
  GabEventOverflow overflow;
  GabEventChannel *channel;

  if (!PyArg_ParseTuple (args, "iisO|i", &n, &capacity, &overflow_name, &callback, &bad))
    return NULL;
  if (!parse_overflow (overflow_name, &overflow))
    return NULL;
  channel = gab_event_channel_new ((guint) capacity, overflow, event_convert, NULL, event_free);
  receiver = gab_event_channel_to_python (channel, callback == Py_None ? NULL : callback);
  if (receiver == NULL)
    {
      g_object_unref (channel);
      return NULL;
    }
  for (int i = 0; i < n; i++)
    pushed += gab_event_channel_push (channel, event_new (0, i == bad ? -1 : i));
  g_assert_true (gab_event_channel_is_open (channel)
                 || overflow == GAB_EVENT_OVERFLOW_CLOSE);
  ret = Py_BuildValue ("(Nik)", receiver, pushed,
                       (unsigned long) gab_event_channel_get_dropped (channel));
  g_object_unref (channel);
  return ret;
}

/* closed_with(message): a channel with two events, closed with a
 * GLibError(message) after them. */
static PyObject *
t_closed_with (PyObject *module,
               PyObject *args)
{
  const char *message;
  GabEventChannel *channel;
  PyObject *receiver;
  GError *error;

  if (!PyArg_ParseTuple (args, "s", &message))
    return NULL;
  channel = gab_event_channel_new (4, GAB_EVENT_OVERFLOW_CLOSE, event_convert, NULL, event_free);
  gab_event_channel_push (channel, event_new (0, 0));
  gab_event_channel_push (channel, event_new (0, 1));
  error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_FAILED, message);
  gab_event_channel_close (channel, error);
  gab_event_channel_close (channel, NULL);   /* again: nothing */
  g_error_free (error);
  g_assert_false (gab_event_channel_is_open (channel));
  g_assert_false (gab_event_channel_push (channel, event_new (0, 2)));
  receiver = gab_event_channel_to_python (channel, NULL);
  if (receiver != NULL)
    {
      g_assert_null (gab_event_channel_to_python (channel, NULL));   /* only one */
      g_assert_true (PyErr_ExceptionMatches (PyExc_RuntimeError));
      PyErr_Clear ();
    }
  g_object_unref (channel);
  return receiver;
}

static PyObject *
t_alive (PyObject *module,
         PyObject *unused)
{
  return PyLong_FromLong (g_atomic_int_get (&alive));
}

static PyMethodDef methods[] = {
  { "producers", t_producers, METH_VARARGS, NULL },
  { "burst", t_burst, METH_VARARGS, NULL },
  { "closed_with", t_closed_with, METH_VARARGS, NULL },
  { "alive", t_alive, METH_NOARGS, "Events made and not yet freed." },
  { NULL }
};

static struct PyModuleDef module_def = {
  PyModuleDef_HEAD_INIT, "_gab_eventmod", NULL, -1, methods,
};

PyMODINIT_FUNC
PyInit__gab_eventmod (void)
{
  return PyModule_Create (&module_def);
}
