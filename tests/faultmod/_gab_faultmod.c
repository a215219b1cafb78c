/* _gab_faultmod.c: fault injection for the fault and stress suites
 * (pytests/test_faults.py, test_stress.py, test_bad_input.py).
 *
 * Written like any binding, with the public API only. What it adds to
 * _gab_testmod:
 *
 *   gate_new() / gate_open(gate)   operations held until a gate opens, so a
 *   gated(gate, value)             test decides when completions arrive (a
 *                                  storm after a loop closed, across a stop)
 *   wait_delivered(n, timeout)     blocks (without the GIL) until n operations
 *                                  have handed their result to the bridge: a
 *                                  test synchronises on that event, not on
 *                                  a sleep
 *   op(mode, arg)                  an operation whose finish misbehaves
 *   fail_raw(domain, code, bytes)  a GError whose message is not UTF-8
 *   deaf()                         an operation that ignores cancellation
 *   call_in_thread(module, func, args, locals)
 *                                  a C worker thread awaits Python through
 *                                  gab_call_async (its own GMainContext,
 *                                  blocked until the callback), as a C
 *                                  program's thread would; cancelling the
 *                                  future cancels the Python side
 *   locals_new(loop)               task locals of a loop, as a capsule
 *   hold_gil(seconds)              C code that keeps the GIL, busy
 *   stats()                        counters of all of the above (tests
 *                                  compare before and after)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "../../gasyncbridge/gab-python-compat.h"  /* Python.h, with the API of newer versions */
#include <gasyncbridge/gasyncbridge.h>
#include <pthread.h>

/* ---- counters --------------------------------------------------------- */

static GMutex counter_lock;
static GCond  counter_cond;
static gint64 n_started;      /* gated and deaf operations started */
static gint64 n_delivered;    /* their results handed to the bridge */
static gint64 n_cancel_seen;  /* cancellations that reached them */
static gint64 n_freed;        /* their user_data freed */
static gint64 n_finished;     /* their finish functions called */
static gint64 n_threads;      /* call_in_thread workers finished */
static gchar *cancel_thread;  /* name of the thread of the last cancel */

static void
count (gint64 *counter)
{
  g_mutex_lock (&counter_lock);
  (*counter)++;
  g_cond_broadcast (&counter_cond);
  g_mutex_unlock (&counter_lock);
}

/* ---- gates ------------------------------------------------------------ */

/* Everything but the reference count is touched on the runtime thread
 * only: start, cancel (a cancellable source) and open (gab_invoke) all run
 * there, so a gate needs no lock. */
typedef struct
{
  gint      ref_count;
  gboolean  open;
  GQueue    waiting;    /* of Gated */
} Gate;

static Gate *
gate_ref (Gate *gate)
{
  g_atomic_int_inc (&gate->ref_count);
  return gate;
}

static void
gate_unref (gpointer data)
{
  Gate *gate = data;

  if (g_atomic_int_dec_and_test (&gate->ref_count))
    {
      g_assert (gate->waiting.length == 0);
      g_free (gate);
    }
}

static void
gate_capsule_free (PyObject *capsule)
{
  gate_unref (PyCapsule_GetPointer (capsule, "fm.Gate"));
}

static PyObject *
f_gate_new (PyObject *self,
            PyObject *unused)
{
  Gate *gate = g_new0 (Gate, 1);

  gate->ref_count = 1;
  g_queue_init (&gate->waiting);
  return PyCapsule_New (gate, "fm.Gate", gate_capsule_free);
}

typedef struct
{
  Gate               *gate;
  PyObject           *value;       /* GIL */
  GTask              *task;        /* runtime thread, until completed */
  GSource            *cancel;      /* runtime thread */
  GList               link;
  GAsyncReadyCallback callback;    /* the bridge's */
  gpointer            callback_data;
} Gated;

/* Runtime thread: our GTask completed; hand it to the bridge. */
static void
relay_ready (GObject      *source,
             GAsyncResult *result,
             gpointer      data)
{
  Gated *self = data;
  GAsyncReadyCallback callback = self->callback;
  gpointer callback_data = self->callback_data;

  /* After this call `self` may be freed by the loop thread: touch nothing. */
  callback (source, result, callback_data);
  count (&n_delivered);
}

static void
gated_complete (Gated  *self,
                GError *error)
{
  GTask *task = g_steal_pointer (&self->task);

  if (task == NULL)
    {
      g_clear_error (&error);
      return;
    }
  if (self->link.data != NULL)
    {
      g_queue_unlink (&self->gate->waiting, &self->link);
      self->link.data = NULL;
    }
  if (self->cancel != NULL)
    {
      g_source_destroy (self->cancel);
      g_clear_pointer (&self->cancel, g_source_unref);
    }
  if (error != NULL)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static gboolean
gated_cancelled (GCancellable *cancellable,
                 gpointer      data)
{
  gchar name[32] = "";

  g_mutex_lock (&counter_lock);
  pthread_getname_np (pthread_self (), name, sizeof name);
  g_free (cancel_thread);
  cancel_thread = g_strdup (name);
  n_cancel_seen++;
  g_cond_broadcast (&counter_cond);
  g_mutex_unlock (&counter_lock);
  gated_complete (data, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                             "gated: cancelled"));
  return G_SOURCE_REMOVE;
}

static void
gated_start (GCancellable        *cancellable,
             GAsyncReadyCallback  callback,
             gpointer             callback_data,
             gpointer             user_data)
{
  Gated *self = user_data;

  count (&n_started);
  self->callback = callback;
  self->callback_data = callback_data;
  self->task = g_task_new (NULL, cancellable, relay_ready, self);
  if (self->gate->open)
    {
      gated_complete (self, NULL);
      return;
    }
  self->link.data = self;
  g_queue_push_tail_link (&self->gate->waiting, &self->link);
  self->cancel = g_cancellable_source_new (cancellable);
  g_source_set_callback (self->cancel, G_SOURCE_FUNC (gated_cancelled), self, NULL);
  g_source_attach (self->cancel, g_main_context_get_thread_default ());
}

static PyObject *
gated_finish (GObject       *source,
              GAsyncResult  *result,
              gpointer       user_data,
              GError       **error)
{
  Gated *self = user_data;

  count (&n_finished);
  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  return Py_NewRef (self->value);
}

static void
gated_free (gpointer data)
{
  Gated *self = data;

  /* With the GIL, once neither start nor finish can run again. */
  g_assert (self->task == NULL && self->cancel == NULL);
  Py_XDECREF (self->value);
  gate_unref (self->gate);
  g_free (self);
  count (&n_freed);
}

static PyObject *
f_gated (PyObject *self,
         PyObject *args)
{
  PyObject *capsule, *value = Py_None;
  Gated *data;
  Gate *gate;

  if (!PyArg_ParseTuple (args, "O|O:gated", &capsule, &value))
    return NULL;
  gate = PyCapsule_GetPointer (capsule, "fm.Gate");
  if (gate == NULL)
    return NULL;
  data = g_new0 (Gated, 1);
  data->gate = gate_ref (gate);
  data->value = Py_NewRef (value);
  return gab_future_into_py (gated_start, gated_finish, data, gated_free);
}

static gboolean
gate_open_run (gpointer data)
{
  Gate *gate = data;
  GList *l;

  gate->open = TRUE;
  while ((l = g_queue_peek_head_link (&gate->waiting)) != NULL)
    gated_complete (l->data, NULL);
  return G_SOURCE_REMOVE;
}

static PyObject *
f_gate_open (PyObject *self,
             PyObject *capsule)
{
  Gate *gate = PyCapsule_GetPointer (capsule, "fm.Gate");

  if (gate == NULL)
    return NULL;
  /* In order with every other request to the runtime thread. */
  gab_invoke (gate_open_run, gate_ref (gate), gate_unref);
  Py_RETURN_NONE;
}

/* ---- waiting for events, without the GIL ------------------------------ */

static gboolean
wait_counter (gint64 *counter,
              gint64  target,
              gdouble timeout)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) (timeout * G_USEC_PER_SEC);
  gboolean ok = TRUE;

  g_mutex_lock (&counter_lock);
  while (*counter < target && ok)
    ok = g_cond_wait_until (&counter_cond, &counter_lock, deadline);
  ok = *counter >= target;
  g_mutex_unlock (&counter_lock);
  return ok;
}

static PyObject *
wait_for (gint64  *counter,
          PyObject *args)
{
  long long target;
  double timeout = 30.0;
  gboolean ok;

  if (!PyArg_ParseTuple (args, "L|d", &target, &timeout))
    return NULL;
  Py_BEGIN_ALLOW_THREADS
  ok = wait_counter (counter, target, timeout);
  Py_END_ALLOW_THREADS
  return PyBool_FromLong (ok);
}

static PyObject *
f_wait_delivered (PyObject *self,
                  PyObject *args)
{
  return wait_for (&n_delivered, args);
}

static PyObject *
f_wait_started (PyObject *self,
                PyObject *args)
{
  return wait_for (&n_started, args);
}

static PyObject *
f_wait_cancel_seen (PyObject *self,
                    PyObject *args)
{
  return wait_for (&n_cancel_seen, args);
}

static PyObject *
f_stats (PyObject *self,
         PyObject *unused)
{
  PyObject *ret;

  g_mutex_lock (&counter_lock);
  ret = Py_BuildValue ("{s:L,s:L,s:L,s:L,s:L,s:L,s:s}",
                       "started", (long long) n_started,
                       "delivered", (long long) n_delivered,
                       "cancel_seen", (long long) n_cancel_seen,
                       "freed", (long long) n_freed,
                       "finished", (long long) n_finished,
                       "threads", (long long) n_threads,
                       "cancel_thread", cancel_thread ? cancel_thread : "");
  g_mutex_unlock (&counter_lock);
  return ret;
}

/* ---- op(mode, arg): finish functions that misbehave -------------------- */

typedef enum
{
  MODE_VALUE,      /* return arg */
  MODE_RAISE,      /* raise arg (an exception instance) */
  MODE_NULL,       /* return NULL, no GError, no exception */
  MODE_BOTH,       /* a GError and a Python exception at once */
  MODE_GERROR,     /* a GError of G_IO_ERROR_FAILED */
} Mode;

typedef struct
{
  Mode      mode;
  PyObject *arg;
} Misbehave;

static void
misbehave_free (gpointer data)
{
  Misbehave *self = data;

  Py_XDECREF (self->arg);
  g_free (self);
  count (&n_freed);
}

static void
now_start (GCancellable        *cancellable,
           GAsyncReadyCallback  callback,
           gpointer             callback_data,
           gpointer             user_data)
{
  GTask *task = g_task_new (NULL, cancellable, callback, callback_data);

  g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static PyObject *
misbehave_finish (GObject       *source,
                  GAsyncResult  *result,
                  gpointer       user_data,
                  GError       **error)
{
  Misbehave *self = user_data;

  count (&n_finished);
  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  switch (self->mode)
    {
    case MODE_VALUE:
      return Py_NewRef (self->arg);
    case MODE_RAISE:
      PyErr_SetObject ((PyObject *) Py_TYPE (self->arg), self->arg);
      return NULL;
    case MODE_NULL:
      return NULL;
    case MODE_BOTH:
      PyErr_SetString (PyExc_KeyError, "finish: a Python exception too");
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "finish: both");
      return NULL;
    case MODE_GERROR:
    default:
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED, "finish: a GError");
      return NULL;
    }
}

static PyObject *
f_op (PyObject *self,
      PyObject *args)
{
  static const char *modes[] = { "value", "raise", "null", "both", "gerror" };
  const char *mode;
  PyObject *arg = Py_None;
  Misbehave *data;
  guint i;

  if (!PyArg_ParseTuple (args, "s|O:op", &mode, &arg))
    return NULL;
  for (i = 0; i < G_N_ELEMENTS (modes); i++)
    if (g_str_equal (mode, modes[i]))
      break;
  if (i == G_N_ELEMENTS (modes))
    {
      PyErr_Format (PyExc_ValueError, "op: unknown mode %s", mode);
      return NULL;
    }
  if (i == MODE_RAISE && !PyExceptionInstance_Check (arg))
    {
      PyErr_SetString (PyExc_TypeError, "op: mode 'raise' needs an exception instance");
      return NULL;
    }
  data = g_new0 (Misbehave, 1);
  data->mode = i;
  data->arg = Py_NewRef (arg);
  return gab_future_into_py (now_start, misbehave_finish, data, misbehave_free);
}

/* ---- fail_raw(domain, code, message): any bytes as a GError message ---- */

typedef struct
{
  GQuark  domain;
  gint    code;
  gchar  *message;   /* not necessarily UTF-8, as GLib's messages sometimes are */
} FailRaw;

static void
fail_raw_free (gpointer data)
{
  FailRaw *self = data;

  g_free (self->message);
  g_free (self);
  count (&n_freed);
}

static PyObject *
fail_raw_finish (GObject       *source,
                 GAsyncResult  *result,
                 gpointer       user_data,
                 GError       **error)
{
  FailRaw *self = user_data;

  count (&n_finished);
  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  g_set_error_literal (error, self->domain, self->code, self->message);
  return NULL;
}

static PyObject *
f_fail_raw (PyObject *self,
            PyObject *args)
{
  const char *domain, *message;
  Py_ssize_t length;
  int code;
  FailRaw *data;

  if (!PyArg_ParseTuple (args, "siy#:fail_raw", &domain, &code, &message, &length))
    return NULL;
  data = g_new0 (FailRaw, 1);
  data->domain = g_quark_from_string (domain);
  data->code = code;
  data->message = g_strndup (message, length);
  return gab_future_into_py (now_start, fail_raw_finish, data, fail_raw_free);
}

/* ---- deaf(): ignores cancellation; completes only on deaf_release() ---- */

static GPtrArray *deaf_tasks;   /* runtime thread */

static void
deaf_start (GCancellable        *cancellable,
            GAsyncReadyCallback  callback,
            gpointer             callback_data,
            gpointer             user_data)
{
  count (&n_started);
  if (deaf_tasks == NULL)
    deaf_tasks = g_ptr_array_new ();
  g_ptr_array_add (deaf_tasks, g_task_new (NULL, NULL, callback, callback_data));
}

static PyObject *
deaf_finish (GObject       *source,
             GAsyncResult  *result,
             gpointer       user_data,
             GError       **error)
{
  count (&n_finished);
  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  return PyUnicode_FromString ("deaf");
}

static void
deaf_free (gpointer data)
{
  count (&n_freed);
}

static PyObject *
f_deaf (PyObject *self,
        PyObject *unused)
{
  return gab_future_into_py (deaf_start, deaf_finish, NULL, deaf_free);
}

static gboolean
deaf_release_run (gpointer data)
{
  GPtrArray *tasks = g_steal_pointer (&deaf_tasks);

  for (guint i = 0; tasks != NULL && i < tasks->len; i++)
    {
      GTask *task = tasks->pdata[i];

      g_task_return_boolean (task, TRUE);
      g_object_unref (task);
    }
  if (tasks != NULL)
    g_ptr_array_unref (tasks);
  return G_SOURCE_REMOVE;
}

static PyObject *
f_deaf_release (PyObject *self,
                PyObject *unused)
{
  gab_invoke (deaf_release_run, NULL, NULL);
  Py_RETURN_NONE;
}

/* ---- call_in_thread: a C worker thread awaits Python ------------------ */

typedef struct
{
  gchar         *module;
  gchar         *function;
  GVariant      *args;
  GabTaskLocals *locals;     /* explicit, or the caller's (captured in start) */
  GCancellable  *cancellable; /* the operation's: cancels the Python side */
  GTask         *task;       /* completes on the runtime thread's context */
  /* the worker's wait */
  GMainContext  *context;
  gboolean       done;
  GVariant      *result;
  GError        *error;
} InThread;

static void
in_thread_free (gpointer data)
{
  InThread *self = data;

  g_free (self->module);
  g_free (self->function);
  g_clear_pointer (&self->args, g_variant_unref);
  g_clear_pointer (&self->locals, gab_task_locals_unref);
  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->result, g_variant_unref);
  g_clear_error (&self->error);
  g_free (self);
}

static void
in_thread_done (GObject      *source,
                GAsyncResult *result,
                gpointer      data)
{
  InThread *self = data;

  g_assert_true (g_main_context_is_owner (self->context));
  self->result = gab_call_finish (result, &self->error);
  self->done = TRUE;
}

static gpointer
in_thread_main (gpointer data)
{
  InThread *self = data;
  GTask *task = self->task;

  /* As a C program's thread: its own context, the caller's task locals,
   * then block until the callback ran here. No GIL at any point. */
  self->context = g_main_context_new ();
  g_main_context_push_thread_default (self->context);
  if (self->locals != NULL)
    gab_task_locals_push (self->locals);
  gab_call_async (self->module, self->function,
                  self->args != NULL ? g_variant_ref (self->args) : NULL,
                  self->cancellable, in_thread_done, self);
  while (!self->done)
    g_main_context_iteration (self->context, TRUE);
  if (self->locals != NULL)
    gab_task_locals_pop (self->locals);
  g_main_context_pop_thread_default (self->context);
  g_main_context_unref (self->context);
  self->context = NULL;

  if (self->error != NULL)
    g_task_return_error (task, g_steal_pointer (&self->error));
  else
    g_task_return_boolean (task, TRUE);
  g_object_unref (task);
  count (&n_threads);
  return NULL;
}

static void
in_thread_start (GCancellable        *cancellable,
                 GAsyncReadyCallback  callback,
                 gpointer             callback_data,
                 gpointer             user_data)
{
  InThread *self = user_data;

  self->task = g_task_new (NULL, NULL, callback, callback_data);
  self->cancellable = g_object_ref (cancellable);
  if (self->locals == NULL)
    /* The Python caller's loop and context (current here, in a start). */
    self->locals = gab_task_locals_get_current ();
  g_thread_unref (g_thread_new ("fm-worker", in_thread_main, self));
}

static PyObject *
in_thread_finish (GObject       *source,
                  GAsyncResult  *result,
                  gpointer       user_data,
                  GError       **error)
{
  InThread *self = user_data;

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  return gab_variant_to_python (self->result);
}

static void
locals_capsule_free (PyObject *capsule)
{
  gab_task_locals_unref (PyCapsule_GetPointer (capsule, "fm.TaskLocals"));
}

static PyObject *
f_locals_new (PyObject *self,
              PyObject *loop)
{
  GabTaskLocals *locals = gab_task_locals_new (loop, NULL);

  if (locals == NULL)
    return NULL;
  return PyCapsule_New (locals, "fm.TaskLocals", locals_capsule_free);
}

static PyObject *
f_call_in_thread (PyObject *self,
                  PyObject *args,
                  PyObject *kwargs)
{
  static char *kwlist[] = { "module", "function", "args", "locals", NULL };
  const char *module, *function;
  PyObject *call_args = Py_None, *locals = Py_None;
  InThread *data;

  if (!PyArg_ParseTupleAndKeywords (args, kwargs, "ss|OO:call_in_thread", kwlist,
                                    &module, &function, &call_args, &locals))
    return NULL;
  data = g_new0 (InThread, 1);
  data->module = g_strdup (module);
  data->function = g_strdup (function);
  if (call_args != Py_None)
    {
      GError *error = NULL;

      data->args = gab_variant_from_python (call_args, NULL, &error);
      if (data->args == NULL)
        {
          in_thread_free (data);
          return gab_error_to_python (error);
        }
      g_variant_ref_sink (data->args);
    }
  if (locals != Py_None)
    {
      GabTaskLocals *l = PyCapsule_GetPointer (locals, "fm.TaskLocals");

      if (l == NULL)
        {
          in_thread_free (data);
          return NULL;
        }
      data->locals = gab_task_locals_ref (l);
    }
  return gab_future_into_py (in_thread_start, in_thread_finish, data, in_thread_free);
}

/* ---- hold_gil(seconds): C code that does not let go of the GIL --------- */

static PyObject *
f_hold_gil (PyObject *self,
            PyObject *arg)
{
  double seconds = PyFloat_AsDouble (arg);
  gint64 end;

  if (seconds == -1.0 && PyErr_Occurred ())
    return NULL;
  end = g_get_monotonic_time () + (gint64) (seconds * G_USEC_PER_SEC);
  while (g_get_monotonic_time () < end)
    ;
  Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
  { "gate_new", f_gate_new, METH_NOARGS, "A closed gate." },
  { "gate_open", f_gate_open, METH_O, "Open a gate: its operations complete (on the runtime)." },
  { "gated", f_gated, METH_VARARGS, "gated(gate, value=None): completes with value when the gate opens." },
  { "wait_delivered", f_wait_delivered, METH_VARARGS,
    "wait_delivered(n, timeout=30): until n results were handed to the bridge; False on timeout." },
  { "wait_started", f_wait_started, METH_VARARGS, "wait_started(n, timeout=30)" },
  { "wait_cancel_seen", f_wait_cancel_seen, METH_VARARGS, "wait_cancel_seen(n, timeout=30)" },
  { "stats", f_stats, METH_NOARGS, "The counters." },
  { "op", f_op, METH_VARARGS, "op(mode, arg=None): value, raise, null, both, gerror." },
  { "fail_raw", f_fail_raw, METH_VARARGS,
    "fail_raw(domain, code, message: bytes): fails with a GError of that message." },
  { "deaf", f_deaf, METH_NOARGS, "An operation that ignores cancellation." },
  { "deaf_release", f_deaf_release, METH_NOARGS, "Complete the deaf operations." },
  { "locals_new", f_locals_new, METH_O, "Task locals of a loop, as a capsule." },
  { "call_in_thread", (PyCFunction) (void (*) (void)) f_call_in_thread,
    METH_VARARGS | METH_KEYWORDS,
    "call_in_thread(module, function, args=None, locals=None): a C thread awaits Python." },
  { "hold_gil", f_hold_gil, METH_O, "Spin in C for seconds, holding the GIL." },
  { NULL }
};

static struct PyModuleDef module_def = {
  PyModuleDef_HEAD_INIT, "_gab_faultmod", "Fault injection for gasyncbridge tests.", -1, methods,
};

PyMODINIT_FUNC
PyInit__gab_faultmod (void)
{
  return PyModule_Create (&module_def);
}
