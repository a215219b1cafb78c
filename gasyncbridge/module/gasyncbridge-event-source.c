/* gasyncbridge-event-source.c: the base type of the module's event
 * sources (see gasyncbridge-event-source.h): signals() connections, D-Bus
 * subscriptions and exported objects.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gasyncbridge-event-source.h"

gpointer
gab_event_source_new (PyTypeObject              *type,
                      const GabEventSourceClass *klass)
{
  /* PyType_GenericAlloc zeroes the object and tracks it: a half-filled
   * source is safe to traverse, clear and deallocate. */
  GabEventSource *self = (GabEventSource *) type->tp_alloc (type, 0);

  if (self != NULL)
    self->klass = klass;
  return self;
}

int
gab_event_source_init (void)
{
  return PyType_Ready (&gab_event_source_type);
}

PyObject *
gab_event_source_stop_py (PyObject *object,
                          PyObject *unused)
{
  GabEventSource *self = (GabEventSource *) object;

  self->klass->stop (self);
  Py_RETURN_NONE;
}

PyObject *
gab_event_source_get_active (PyObject *object,
                             void     *closure)
{
  GabEventSource *self = (GabEventSource *) object;

  return PyBool_FromLong (self->klass->is_active (self));
}

static PyObject *
event_source_get_receiver (PyObject *object,
                           void     *closure)
{
  GabEventSource *self = (GabEventSource *) object;

  return Py_NewRef (self->receiver != NULL ? self->receiver : Py_None);
}

static int
event_source_traverse (PyObject *object,
                       visitproc visit,
                       void     *arg)
{
  Py_VISIT (((GabEventSource *) object)->receiver);
  return 0;
}

/* tp_clear, and the start of tp_dealloc. Stopped before the receiver
 * goes: an exported object's stop closes it, so that the calls still
 * queued get their error replies. */
static void
event_source_release (GabEventSource *self)
{
  self->klass->stop (self);
  Py_CLEAR (self->receiver);
}

static int
event_source_clear (PyObject *object)
{
  event_source_release ((GabEventSource *) object);
  return 0;
}

static void
event_source_dealloc (PyObject *object)
{
  GabEventSource *self = (GabEventSource *) object;

  PyObject_GC_UnTrack (object);
  event_source_release (self);
  /* The kind's fields go only once nothing feeds the channel any more. */
  g_clear_object (&self->channel);
  if (self->klass->finalize != NULL)
    self->klass->finalize (self);
  Py_TYPE (object)->tp_free (object);
}

static PyMethodDef event_source_methods[] = {
  { "stop", gab_event_source_stop_py, METH_NOARGS,
    "stop()\n--\n\nStop feeding the receiver now; idempotent." },
  { NULL }
};

static PyGetSetDef event_source_getset[] = {
  { "receiver", event_source_get_receiver, NULL, "The EventReceiver of the events.", NULL },
  { "active", gab_event_source_get_active, NULL, "Whether the source still feeds it.", NULL },
  { NULL }
};

PyTypeObject gab_event_source_type = {
  GAB_PY_TYPE_HEAD ("gasyncbridge._EventSource", GabEventSource,
                    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
                    "Something on the runtime thread feeding an EventReceiver, stopped once."),
  .tp_methods = event_source_methods,
  .tp_getset = event_source_getset,
  /* The kinds inherit these and the GC flag: CPython copies the flag,
   * tp_traverse and tp_clear together, when a subtype sets none of them. */
  .tp_traverse = event_source_traverse,
  .tp_clear = event_source_clear,
  .tp_dealloc = event_source_dealloc,
};
