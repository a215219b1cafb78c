/* gasyncbridge-operation.c: gio.Operation, an asyncio.Future whose
 * cancel() waits until GIO has cleaned up (see gasyncbridge-gio.c). *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gasyncbridge-module.h"

/* ---- Operation: an asyncio.Future with cancellation that waits ------- */

static PyObject *operation_type;     /* gasyncbridge.gio.Operation */
static PyObject *future_cancel;      /* asyncio.Future.cancel, unbound */
static PyObject *cancelled_error_type; /* asyncio.CancelledError */
static PyObject *s_inner;            /* "_gab_inner": the bridge future */
static PyObject *s_cancellable;      /* "_gab_cancellable": capsule or None */
static PyObject *s_cancel_msg;       /* "_gab_cancel_msg": set once cancel() ran */

typedef struct
{
  GabStartFunc    start;
  GabFinishFunc   finish;
  gpointer        user_data;
  GDestroyNotify  user_data_free;
  GCancellable   *cancellable;       /* ours; NULL: use the bridge's */
} OperationData;

static void
forward_cancel (GCancellable *bridge_cancellable,
                gpointer      data)
{
  g_cancellable_cancel (G_CANCELLABLE (data));
}

static void
operation_start (GCancellable        *cancellable,
                 GAsyncReadyCallback  callback,
                 gpointer             callback_data,
                 gpointer             user_data)
{
  OperationData *self = user_data;

  if (self->cancellable == NULL)
    {
      self->start (cancellable, callback, callback_data, self->user_data);
      return;
    }
  /* The bridge cancels its cancellable when the future is collected or
   * the runtime shuts down: pass that on to the one GIO watches. Never
   * disconnected: the handler's reference goes with the bridge's
   * cancellable, and cancelling twice is harmless. */
  g_cancellable_connect (cancellable, G_CALLBACK (forward_cancel),
                         g_object_ref (self->cancellable), g_object_unref);
  self->start (self->cancellable, callback, callback_data, self->user_data);
}

static PyObject *
operation_finish (GObject       *source,
                  GAsyncResult  *result,
                  gpointer       user_data,
                  GError       **error)
{
  OperationData *self = user_data;

  return self->finish (source, result, self->user_data, error);
}

static void
operation_data_free (gpointer data)
{
  OperationData *self = data;

  /* With the GIL, as the bridge promises. */
  if (self->user_data_free != NULL)
    self->user_data_free (self->user_data);
  g_clear_object (&self->cancellable);
  g_free (self);
}

static gboolean
cancel_on_runtime (gpointer data)
{
  g_cancellable_cancel (G_CANCELLABLE (data));
  return G_SOURCE_REMOVE;
}

static void
cancellable_capsule_free (PyObject *capsule)
{
  g_object_unref (PyCapsule_GetPointer (capsule, "GCancellable"));
}

/* GIL: object.name (arg), whatever arg is (PyObject_CallMethod with "O"
 * would unpack a tuple into several arguments). */
static PyObject *
call_method_one (PyObject   *object,
                 const char *name,
                 PyObject   *arg)
{
  PyObject *func = PyObject_GetAttrString (object, name), *ret;

  if (func == NULL)
    return NULL;
  ret = PyObject_CallOneArg (func, arg);
  Py_DECREF (func);
  return ret;
}

/* Future.cancel (self, msg) of the base class. */
static PyObject *
base_cancel (PyObject *self,
             PyObject *msg)
{
  if (msg == NULL || msg == Py_None)
    return PyObject_CallOneArg (future_cancel, self);
  return PyObject_CallFunctionObjArgs (future_cancel, self, msg, NULL);
}

/* Operation.cancel (self, msg=None). Like Task.cancel(): returns True and
 * the future completes later, cancelled, once GIO has stopped. */
static PyObject *
operation_cancel (PyObject         *unused,
                  PyObject *const  *args,
                  Py_ssize_t        nargs,
                  PyObject         *kwnames)
{
  PyObject *self, *msg = Py_None, *done, *capsule, *ret = NULL;
  Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE (kwnames) : 0;
  int has_msg;

  if (nargs < 1 || nargs + nkw > 2)
    {
      PyErr_SetString (PyExc_TypeError, "cancel() takes at most one argument (msg)");
      return NULL;
    }
  self = args[0];
  if (nargs == 2)
    msg = args[1];
  else if (nkw == 1)
    {
      if (!PyUnicode_Check (PyTuple_GET_ITEM (kwnames, 0))
          || PyUnicode_CompareWithASCIIString (PyTuple_GET_ITEM (kwnames, 0), "msg") != 0)
        {
          PyErr_SetString (PyExc_TypeError, "cancel() got an unexpected keyword argument");
          return NULL;
        }
      msg = args[1];
    }

  done = PyObject_CallMethod (self, "done", NULL);
  if (done == NULL)
    return NULL;
  if (PyObject_IsTrue (done))
    {
      Py_DECREF (done);
      Py_RETURN_FALSE;
    }
  Py_DECREF (done);

  has_msg = PyObject_HasAttr (self, s_cancel_msg);
  if (has_msg)
    Py_RETURN_TRUE;   /* already on its way */
  if (PyObject_SetAttr (self, s_cancel_msg, msg) < 0)
    return NULL;

  capsule = PyObject_GetAttr (self, s_cancellable);
  if (capsule == NULL)
    return NULL;
  if (capsule == Py_None)
    {
      /* Not cancellable by GIO: drop the result now, as a bridge future
       * does; the done callback below cancels us. */
      PyObject *inner = PyObject_GetAttr (self, s_inner);

      if (inner != NULL)
        ret = PyObject_CallMethod (inner, "cancel", NULL);
      Py_XDECREF (inner);
    }
  else
    {
      GCancellable *cancellable = PyCapsule_GetPointer (capsule, "GCancellable");

      /* GIO's cancellation handlers must run on the runtime thread, where
       * the operation lives. */
      if (cancellable != NULL)
        {
          gab_invoke (cancel_on_runtime, g_object_ref (cancellable), g_object_unref);
          ret = Py_NewRef (Py_None);
        }
    }
  Py_DECREF (capsule);
  if (ret == NULL)
    return NULL;
  Py_DECREF (ret);
  Py_RETURN_TRUE;
}

static PyMethodDef operation_cancel_def = {
  "cancel", (PyCFunction) (void (*) (void)) operation_cancel,
  METH_FASTCALL | METH_KEYWORDS,
  "cancel(self, /, msg=None)\n--\n\n"
  "Ask the GIO operation to stop. Returns False if the future is already\n"
  "done, else True; like Task.cancel(), the future is not done yet: it\n"
  "completes, cancelled, once GIO has stopped and cleaned up (a partial\n"
  "file removed, a child process killed and reaped). An awaiting task sees\n"
  "CancelledError only then."
};

/* The bridge future is done: complete the Operation that waits on it. The
 * callback holds the Operation weakly, so that the bridge, which holds it
 * as the future's owner, sees when Python drops it and cancels the GIO
 * call. */
static PyObject *
operation_inner_done (PyObject *weakref,
                      PyObject *inner)
{
  PyObject *self, *value, *exception = NULL, *ret = NULL;
  int cancelled, done;

  /* Take the outcome in any case, so that asyncio never warns that the
   * bridge future's exception was not retrieved: the Operation has it. */
  value = PyObject_CallMethod (inner, "cancelled", NULL);
  if (value == NULL)
    return NULL;
  cancelled = PyObject_IsTrue (value);
  Py_DECREF (value);
  if (!cancelled)
    {
      exception = PyObject_CallMethod (inner, "exception", NULL);
      if (exception == NULL)
        return NULL;
    }

  if (PyWeakref_GetRef (weakref, &self) <= 0)
    {
      Py_XDECREF (exception);
      if (PyErr_Occurred ())   /* not a weak reference */
        return NULL;
      Py_RETURN_NONE;
    }
  value = PyObject_CallMethod (self, "done", NULL);
  done = value != NULL ? PyObject_IsTrue (value) : -1;
  Py_XDECREF (value);
  if (done != 0)
    goto out;

  if (PyObject_HasAttr (self, s_cancel_msg))
    {
      /* cancel() said True: cancelled it is, whatever GIO had come to. */
      PyObject *msg = PyObject_GetAttr (self, s_cancel_msg);

      if (msg != NULL)
        ret = base_cancel (self, msg);
      Py_XDECREF (msg);
    }
  else if (cancelled
           || PyObject_IsInstance (exception, cancelled_error_type) == 1)
    /* G_IO_ERROR_CANCELLED without our cancel(): the bridge cancelled
     * (say, at shutdown); a cancel all the same. */
    ret = base_cancel (self, NULL);
  else if (exception != Py_None)
    ret = call_method_one (self, "set_exception", exception);
  else
    {
      value = PyObject_CallMethod (inner, "result", NULL);
      if (value != NULL)
        ret = call_method_one (self, "set_result", value);
      Py_XDECREF (value);
    }

out:
  Py_XDECREF (exception);
  Py_DECREF (self);
  if (ret == NULL)
    return NULL;
  Py_DECREF (ret);
  Py_RETURN_NONE;
}

static PyMethodDef operation_inner_done_def = {
  "_operation_done", operation_inner_done, METH_O, NULL
};

PyObject *
gab_module_operation_new (GabStartFunc    start,
                          GabFinishFunc   finish,
                          gpointer        user_data,
                          GDestroyNotify  user_data_free,
                          GCancellable   *cancellable)
{
  OperationData *data = g_new0 (OperationData, 1);
  PyObject *inner, *loop = NULL, *kwargs = NULL, *empty = NULL, *self = NULL;
  PyObject *capsule = NULL, *weakref = NULL, *callback = NULL, *ret;

  data->start = start;
  data->finish = finish;
  data->user_data = user_data;
  data->user_data_free = user_data_free;
  data->cancellable = cancellable;
  /* On failure the bridge frees data (and user_data) itself. */
  inner = gab_future_into_py (operation_start, operation_finish, data,
                              operation_data_free);
  if (inner == NULL)
    return NULL;

  loop = PyObject_CallMethod (inner, "get_loop", NULL);
  empty = PyTuple_New (0);
  kwargs = loop != NULL ? Py_BuildValue ("{s:O}", "loop", loop) : NULL;
  if (empty == NULL || kwargs == NULL)
    goto out;
  self = PyObject_Call (operation_type, empty, kwargs);
  if (self == NULL)
    goto out;
  if (cancellable != NULL)
    capsule = PyCapsule_New (g_object_ref (cancellable), "GCancellable",
                             cancellable_capsule_free);
  else
    capsule = Py_NewRef (Py_None);
  if (capsule == NULL
      || PyObject_SetAttr (self, s_cancellable, capsule) < 0
      || PyObject_SetAttr (self, s_inner, inner) < 0
      /* The bridge holds the Operation while GIO runs, and cancels when
       * Python drops it (our callback below holds it only weakly). */
      || !gab_future_set_owner (inner, self))
    goto fail;
  weakref = PyWeakref_NewRef (self, NULL);
  if (weakref == NULL)
    goto fail;
  callback = PyCFunction_New (&operation_inner_done_def, weakref);
  if (callback == NULL)
    goto fail;
  ret = call_method_one (inner, "add_done_callback", callback);
  if (ret == NULL)
    goto fail;
  Py_DECREF (ret);
  goto out;

fail:
  Py_CLEAR (self);
out:
  /* Dropping the bridge future on failure cancels the operation. */
  Py_XDECREF (callback);
  Py_XDECREF (weakref);
  Py_XDECREF (capsule);
  Py_XDECREF (kwargs);
  Py_XDECREF (empty);
  Py_XDECREF (loop);
  Py_DECREF (inner);
  return self;
}

static gboolean
operation_type_init (void)
{
  PyObject *asyncio, *future_type = NULL, *func = NULL, *method = NULL;
  PyObject *dict = NULL;

  s_inner = PyUnicode_InternFromString ("_gab_inner");
  s_cancellable = PyUnicode_InternFromString ("_gab_cancellable");
  s_cancel_msg = PyUnicode_InternFromString ("_gab_cancel_msg");
  if (s_inner == NULL || s_cancellable == NULL || s_cancel_msg == NULL)
    return FALSE;
  asyncio = PyImport_ImportModule ("asyncio");
  if (asyncio == NULL)
    return FALSE;
  future_type = PyObject_GetAttrString (asyncio, "Future");
  cancelled_error_type = PyObject_GetAttrString (asyncio, "CancelledError");
  Py_DECREF (asyncio);
  if (cancelled_error_type == NULL)
    {
      Py_XDECREF (future_type);
      return FALSE;
    }
  if (future_type == NULL)
    return FALSE;
  future_cancel = PyObject_GetAttrString (future_type, "cancel");
  func = PyCFunction_New (&operation_cancel_def, NULL);
  /* An instancemethod binds like a Python function: self comes first. */
  method = func != NULL ? PyInstanceMethod_New (func) : NULL;
  dict = method != NULL ? Py_BuildValue (
    "{s:O,s:s,s:s}", "cancel", method, "__module__", "gasyncbridge.gio", "__doc__",
    "An asyncio.Future for a GIO operation of gasyncbridge.\n\n"
    "What the functions of gasyncbridge.gio and gasyncbridge.call_gio return.\n"
    "It differs from asyncio.Future in cancel() only: that asks GIO to stop\n"
    "and returns True, and the future completes, cancelled, once GIO has\n"
    "stopped, as a Task does. So when an awaiting task sees CancelledError,\n"
    "the operation's cleanup is done: no partial file of a copy is left, a\n"
    "child of communicate() has been killed and reaped.") : NULL;
  if (future_cancel != NULL && dict != NULL)
    operation_type = PyObject_CallFunction ((PyObject *) &PyType_Type, "s(O)O",
                                            "Operation", future_type, dict);
  Py_XDECREF (dict);
  Py_XDECREF (method);
  Py_XDECREF (func);
  Py_DECREF (future_type);
  return operation_type != NULL;
}


PyObject *
gab_module_operation_type (void)
{
  if (operation_type == NULL && !operation_type_init ())
    return NULL;
  return operation_type;
}

/* Runtime thread: complete *@task_slot with the error kept in *@error_slot,
 * or with success; both slots are emptied. */
void
gab_module_task_return_outcome (GTask  **task_slot,
                                GError **error_slot)
{
  GTask *task = g_steal_pointer (task_slot);

  if (*error_slot != NULL)
    g_task_return_error (task, g_steal_pointer (error_slot));
  else
    g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}
