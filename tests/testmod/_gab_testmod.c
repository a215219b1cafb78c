/* _gab_testmod.c: a small extension module of C operations for the tests
 * and the benchmarks. It is written like any binding: public API only.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "../../gasyncbridge/gab-python-compat.h"  /* Python.h, with the API of newer versions */
#include <gasyncbridge/gasyncbridge.h>
#include <pthread.h>

/* ---- stats shared with the tests ------------------------------------- */

static GMutex stats_lock;
static GCond  never_cond;      /* never_finished changed */
static gint   never_started;
static gint   never_finished;
static gchar *never_cancel_thread;

static void
current_thread_name (gchar **out)
{
  gchar name[32] = "";

  pthread_getname_np (pthread_self (), name, sizeof name);
  g_free (*out);
  *out = g_strdup (name);
}

/* ---- ready(value): completes at once --------------------------------- */

static void
ready_start (GCancellable        *cancellable,
             GAsyncReadyCallback  callback,
             gpointer             callback_data,
             gpointer             user_data)
{
  GTask *task = g_task_new (NULL, cancellable, callback, callback_data);

  g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static PyObject *
ready_finish (GObject       *source,
              GAsyncResult  *result,
              gpointer       user_data,
              GError       **error)
{
  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  return Py_NewRef ((PyObject *) user_data);
}

static void
decref (gpointer data)
{
  Py_DECREF ((PyObject *) data);   /* the GIL is held for user_data_free */
}

static PyObject *
t_ready (PyObject *self,
         PyObject *value)
{
  return gab_future_into_py (ready_start, ready_finish, Py_NewRef (value), decref);
}

/* ---- never(): pending until cancelled -------------------------------- */

typedef struct
{
  GTask  *task;
  gulong  handler;
} Never;

static gboolean
never_return (gpointer data)
{
  GTask *task = data;

  g_mutex_lock (&stats_lock);
  never_finished++;
  g_cond_broadcast (&never_cond);
  g_mutex_unlock (&stats_lock);
  g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_CANCELLED, "never: cancelled");
  g_object_unref (task);
  return G_SOURCE_REMOVE;
}

static void
never_cancelled (GCancellable *cancellable,
                 gpointer      data)
{
  /* Not from inside the handler: complete on the next iteration. */
  g_mutex_lock (&stats_lock);
  current_thread_name (&never_cancel_thread);
  g_mutex_unlock (&stats_lock);
  GSource *idle = g_idle_source_new ();

  g_source_set_callback (idle, never_return, data, NULL);
  g_source_attach (idle, g_main_context_get_thread_default ());
  g_source_unref (idle);
}

static void
never_start (GCancellable        *cancellable,
             GAsyncReadyCallback  callback,
             gpointer             callback_data,
             gpointer             user_data)
{
  GTask *task = g_task_new (NULL, cancellable, callback, callback_data);

  g_mutex_lock (&stats_lock);
  never_started++;
  g_mutex_unlock (&stats_lock);
  g_cancellable_connect (cancellable, G_CALLBACK (never_cancelled), task, NULL);
}


static PyObject *
t_never (PyObject *self,
         PyObject *unused)
{
  return gab_future_into_py (never_start, gab_future_finish_none, NULL, NULL);
}

/* ready_flags(value, flags), never_flags(flags): ready() and never() made
 * by gab_future_into_py_full() with @flags. */
static PyObject *
t_ready_flags (PyObject *self,
               PyObject *args)
{
  PyObject *value;
  unsigned int flags;

  if (!PyArg_ParseTuple (args, "OI", &value, &flags))
    return NULL;
  return gab_future_into_py_full (ready_start, ready_finish, Py_NewRef (value),
                                  decref, flags);
}

static PyObject *
t_never_flags (PyObject *self,
               PyObject *args)
{
  unsigned int flags;

  if (!PyArg_ParseTuple (args, "I", &flags))
    return NULL;
  return gab_future_into_py_full (never_start, gab_future_finish_none, NULL, NULL, flags);
}

/* ---- gated(flags): reports back only when the test says so ------------ */

static GMutex  gated_lock;
static GCond   gated_cond;
static GTask  *gated_task;          /* the pending one, or NULL */
static gboolean gated_cancelled;    /* its cancellable was cancelled */

static void
gated_on_cancel (GCancellable *cancellable,
                 gpointer      data)
{
  g_mutex_lock (&gated_lock);
  gated_cancelled = TRUE;
  g_cond_broadcast (&gated_cond);
  g_mutex_unlock (&gated_lock);
}

static void
gated_start (GCancellable        *cancellable,
             GAsyncReadyCallback  callback,
             gpointer             callback_data,
             gpointer             user_data)
{
  GTask *task = g_task_new (NULL, cancellable, callback, callback_data);

  /* Not cancelled by GIO: the test decides what the operation comes to. */
  g_task_set_check_cancellable (task, FALSE);
  g_mutex_lock (&gated_lock);
  gated_task = task;
  gated_cancelled = FALSE;
  g_cond_broadcast (&gated_cond);
  g_mutex_unlock (&gated_lock);
  g_cancellable_connect (cancellable, G_CALLBACK (gated_on_cancel), NULL, NULL);
}

static PyObject *
t_gated (PyObject *self,
         PyObject *args)
{
  unsigned int flags;

  if (!PyArg_ParseTuple (args, "I", &flags))
    return NULL;
  return gab_future_into_py_full (gated_start, gab_future_finish_none, NULL, NULL, flags);
}

/* gated_wait(cancelled, timeout): until a gated operation has started (and,
 * if @cancelled, its cancellable was cancelled); False on timeout. */
static PyObject *
t_gated_wait (PyObject *self,
              PyObject *args)
{
  int cancelled;
  double timeout;
  gboolean reached;
  gint64 deadline;

  if (!PyArg_ParseTuple (args, "pd", &cancelled, &timeout))
    return NULL;
  Py_BEGIN_ALLOW_THREADS
  deadline = g_get_monotonic_time () + (gint64) (timeout * G_USEC_PER_SEC);
  g_mutex_lock (&gated_lock);
  while (!(gated_task != NULL && (gated_cancelled || !cancelled))
         && g_cond_wait_until (&gated_cond, &gated_lock, deadline))
    ;
  reached = gated_task != NULL && (gated_cancelled || !cancelled);
  g_mutex_unlock (&gated_lock);
  Py_END_ALLOW_THREADS
  return PyBool_FromLong (reached);
}

/* gated_finish(cancelled): the gated operation reports back: success, or
 * G_IO_ERROR_CANCELLED. False if none is pending. */
static PyObject *
t_gated_finish (PyObject *self,
                PyObject *args)
{
  int cancelled;
  GTask *task;

  if (!PyArg_ParseTuple (args, "p", &cancelled))
    return NULL;
  g_mutex_lock (&gated_lock);
  task = g_steal_pointer (&gated_task);
  g_mutex_unlock (&gated_lock);
  if (task == NULL)
    Py_RETURN_FALSE;
  /* GTask calls back in the runtime thread's context, not here. */
  if (cancelled)
    g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_CANCELLED, "gated: cancelled");
  else
    g_task_return_boolean (task, TRUE);
  g_object_unref (task);
  Py_RETURN_TRUE;
}

/* wait_never_finished(n, timeout): True once n "never" operations have
 * ended (cancelled), False after timeout seconds. Waits without the GIL. */
static PyObject *
t_wait_never_finished (PyObject *self,
                       PyObject *args)
{
  long long n;
  double timeout;
  gboolean reached;
  gint64 deadline;

  if (!PyArg_ParseTuple (args, "Ld", &n, &timeout))
    return NULL;
  Py_BEGIN_ALLOW_THREADS
  deadline = g_get_monotonic_time () + (gint64) (timeout * G_USEC_PER_SEC);
  g_mutex_lock (&stats_lock);
  while (never_finished < n && g_cond_wait_until (&never_cond, &stats_lock, deadline))
    ;
  reached = never_finished >= n;
  g_mutex_unlock (&stats_lock);
  Py_END_ALLOW_THREADS
  return PyBool_FromLong (reached);
}

static PyObject *
t_stats (PyObject *self,
         PyObject *unused)
{
  PyObject *ret;

  g_mutex_lock (&stats_lock);
  ret = Py_BuildValue ("{s:i,s:i,s:s}", "never_started", never_started,
                       "never_finished", never_finished, "never_cancel_thread",
                       never_cancel_thread ? never_cancel_thread : "");
  g_mutex_unlock (&stats_lock);
  return ret;
}

/* ---- fail(domain, code, message) ------------------------------------- */

typedef struct
{
  GQuark  domain;
  gint    code;
  gchar  *message;
} Fail;

static void
fail_free (gpointer data)
{
  Fail *self = data;

  g_free (self->message);
  g_free (self);
}

static void
fail_start (GCancellable        *cancellable,
            GAsyncReadyCallback  callback,
            gpointer             callback_data,
            gpointer             user_data)
{
  Fail *self = user_data;
  GTask *task = g_task_new (NULL, cancellable, callback, callback_data);

  g_task_return_new_error (task, self->domain, self->code, "%s", self->message);
  g_object_unref (task);
}

static PyObject *
t_fail (PyObject *self,
        PyObject *args)
{
  const char *domain, *message;
  int code;
  Fail *data;

  if (!PyArg_ParseTuple (args, "sis", &domain, &code, &message))
    return NULL;
  data = g_new0 (Fail, 1);
  data->domain = g_quark_from_string (domain);
  data->code = code;
  data->message = g_strdup (message);
  return gab_future_into_py (fail_start, gab_future_finish_none, data, fail_free);
}

/* ---- finish_raises(exception) ---------------------------------------- */

static PyObject *
raise_finish (GObject       *source,
              GAsyncResult  *result,
              gpointer       user_data,
              GError       **error)
{
  PyObject *exc = user_data;

  PyErr_SetObject ((PyObject *) Py_TYPE (exc), exc);
  return NULL;
}

static PyObject *
t_finish_raises (PyObject *self,
                 PyObject *exc)
{
  if (!PyExceptionInstance_Check (exc))
    {
      PyErr_SetString (PyExc_TypeError, "an exception instance is required");
      return NULL;
    }
  return gab_future_into_py (ready_start, raise_finish, Py_NewRef (exc), decref);
}

/* ---- await_py(awaitable): the runtime thread awaits Python ------------ */

typedef struct
{
  PyObject     *awaitable;
  PyObject     *result;
  GTask        *task;
} AwaitPy;

static void
await_py_free (gpointer data)
{
  AwaitPy *self = data;

  Py_XDECREF (self->awaitable);
  Py_XDECREF (self->result);
  g_free (self);
}

static void
await_py_done (GObject      *source,
               GAsyncResult *result,
               gpointer      data)
{
  AwaitPy *self = data;
  GTask *task = self->task;
  GError *error = NULL;
  PyGILState_STATE state = PyGILState_Ensure ();

  self->result = gab_into_future_finish (result, &error);
  PyGILState_Release (state);
  if (error != NULL)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static void
await_py_start (GCancellable        *cancellable,
                GAsyncReadyCallback  callback,
                gpointer             callback_data,
                gpointer             user_data)
{
  AwaitPy *self = user_data;
  PyGILState_STATE state;

  self->task = g_task_new (NULL, cancellable, callback, callback_data);
  /* Runtime thread: the awaitable runs on the caller's loop (task locals
   * are current here), and the callback comes back to this thread. */
  state = PyGILState_Ensure ();
  gab_into_future_async (self->awaitable, cancellable, await_py_done, self);
  PyGILState_Release (state);
}

static PyObject *
await_py_finish (GObject       *source,
                 GAsyncResult  *result,
                 gpointer       user_data,
                 GError       **error)
{
  AwaitPy *self = user_data;

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  return Py_NewRef (self->result);
}

static PyObject *
t_await_py (PyObject *self,
            PyObject *awaitable)
{
  AwaitPy *data = g_new0 (AwaitPy, 1);

  data->awaitable = Py_NewRef (awaitable);
  return gab_future_into_py (await_py_start, await_py_finish, data, await_py_free);
}

/* ---- call(module, function, args): gab_call_async from the runtime ---- */

typedef struct
{
  gchar    *module;
  gchar    *function;
  GVariant *args;
  GVariant *result;
  GTask    *task;
} CallPy;

static void
call_py_free (gpointer data)
{
  CallPy *self = data;

  g_free (self->module);
  g_free (self->function);
  g_clear_pointer (&self->args, g_variant_unref);
  g_clear_pointer (&self->result, g_variant_unref);
  g_free (self);
}

static void
call_py_done (GObject      *source,
              GAsyncResult *result,
              gpointer      data)
{
  CallPy *self = data;
  GTask *task = self->task;
  GError *error = NULL;

  /* No GIL needed: the result is a GVariant. */
  self->result = gab_call_finish (result, &error);
  if (error != NULL)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static void
call_py_start (GCancellable        *cancellable,
               GAsyncReadyCallback  callback,
               gpointer             callback_data,
               gpointer             user_data)
{
  CallPy *self = user_data;

  self->task = g_task_new (NULL, cancellable, callback, callback_data);
  gab_call_async (self->module, self->function,
                  self->args,
                  cancellable, call_py_done, self);
}

static PyObject *
call_py_finish (GObject       *source,
                GAsyncResult  *result,
                gpointer       user_data,
                GError       **error)
{
  CallPy *self = user_data;

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  if (self->result == NULL)
    Py_RETURN_NONE;
  return gab_variant_to_python (self->result);
}

static PyObject *
t_call (PyObject *self,
        PyObject *args)
{
  const char *module, *function, *type = NULL;
  PyObject *call_args = Py_None;
  GError *error = NULL;
  CallPy *data;

  if (!PyArg_ParseTuple (args, "ss|Oz", &module, &function, &call_args, &type))
    return NULL;
  data = g_new0 (CallPy, 1);
  data->module = g_strdup (module);
  data->function = g_strdup (function);
  if (call_args != Py_None)
    {
      data->args = gab_variant_from_python (call_args,
                                            type ? G_VARIANT_TYPE (type) : NULL,
                                            &error);
      if (data->args == NULL)
        {
          call_py_free (data);
          return gab_error_to_python (error);
        }
    }
  return gab_future_into_py (call_py_start, call_py_finish, data, call_py_free);
}

/* ---- on the loop thread: callbacks resolve asyncio futures ------------ */

static void
here_done (GObject      *source,
           GAsyncResult *result,
           gpointer      data)
{
  PyObject *future = data;
  GError *error = NULL;
  PyObject *value, *ret;

  /* Runs from the asyncio loop (the thread has no GLib context of its
   * own), with the GIL. */
  g_assert (PyGILState_Check ());
  if (g_task_get_source_tag (G_TASK (result)) == G_GNUC_EXTENSION ((gpointer) gab_call_async))
    {
      GVariant *v = gab_call_finish (result, &error);

      value = error == NULL ? (v ? gab_variant_to_python (v) : Py_NewRef (Py_None)) : NULL;
      g_clear_pointer (&v, g_variant_unref);
    }
  else
    value = gab_into_future_finish (result, &error);
  if (value != NULL)
    {
      PyObject *name = PyUnicode_FromString ("set_result");

      /* OneArg: a tuple result must not be unpacked into arguments. */
      ret = name != NULL ? PyObject_CallMethodOneArg (future, name, value) : NULL;
      Py_XDECREF (name);
    }
  else
    {
      PyObject *exc = gab_error_new_python_exception (error);

      ret = PyObject_CallMethod (future, "set_exception", "O", exc);
      Py_XDECREF (exc);
      g_error_free (error);
    }
  Py_XDECREF (ret);
  Py_XDECREF (value);
  PyErr_Clear ();
  Py_DECREF (future);
}

static PyObject *
new_future (void)
{
  PyObject *loop = gab_get_current_loop (), *future;

  if (loop == NULL)
    return NULL;
  future = PyObject_CallMethod (loop, "create_future", NULL);
  Py_DECREF (loop);
  return future;
}

static PyObject *
t_into_future_here (PyObject *self,
                    PyObject *args)
{
  PyObject *awaitable, *cancellable_obj = Py_None, *future;
  GCancellable *cancellable = NULL;

  if (!PyArg_ParseTuple (args, "O|O", &awaitable, &cancellable_obj))
    return NULL;
  future = new_future ();
  if (future == NULL)
    return NULL;
  if (PyCapsule_CheckExact (cancellable_obj))
    cancellable = PyCapsule_GetPointer (cancellable_obj, "GCancellable");
  gab_into_future_async (awaitable, cancellable, here_done, Py_NewRef (future));
  return future;
}

static PyObject *
t_call_here (PyObject *self,
             PyObject *args)
{
  const char *module, *function;
  PyObject *future;

  if (!PyArg_ParseTuple (args, "ss", &module, &function))
    return NULL;
  future = new_future ();
  if (future == NULL)
    return NULL;
  gab_call_async (module, function, NULL, NULL, here_done, Py_NewRef (future));
  return future;
}

/* A GCancellable for tests, as a capsule, and a way to cancel it. */
static void
capsule_unref (PyObject *capsule)
{
  g_object_unref (PyCapsule_GetPointer (capsule, "GCancellable"));
}

static PyObject *
t_cancellable_new (PyObject *self,
                   PyObject *unused)
{
  return PyCapsule_New (g_cancellable_new (), "GCancellable", capsule_unref);
}

static PyObject *
t_cancellable_cancel (PyObject *self,
                      PyObject *capsule)
{
  GCancellable *cancellable = PyCapsule_GetPointer (capsule, "GCancellable");

  if (cancellable == NULL)
    return NULL;
  g_cancellable_cancel (cancellable);
  Py_RETURN_NONE;
}

/* ---- iterate(aiterable): the runtime thread consumes an async iterator - */

typedef struct
{
  PyObject         *aiterable;
  GabAsyncIterator *iterator;
  GTask            *task;
  guint             count;
  gchar            *error;    /* "domain code: message" of how it ended */
} Iterate;

static void
iterate_free (gpointer data)
{
  Iterate *self = data;

  Py_XDECREF (self->aiterable);
  g_clear_object (&self->iterator);
  g_free (self->error);
  g_free (self);
}

static void iterate_next (GObject *source, GAsyncResult *result, gpointer data);

static void
iterate_more (Iterate *self)
{
  gab_async_iterator_next_variant_async (self->iterator, g_task_get_cancellable (self->task),
                                         iterate_next, self);
}

static void
iterate_next (GObject      *source,
              GAsyncResult *result,
              gpointer      data)
{
  Iterate *self = data;
  GError *error = NULL;
  GVariant *item = gab_async_iterator_next_variant_finish (self->iterator, result, &error);
  GTask *task;

  if (item != NULL)
    {
      g_variant_unref (item);
      self->count++;
      iterate_more (self);
      return;
    }
  if (error != NULL)
    self->error = g_strdup_printf ("%s %d: %s", g_quark_to_string (error->domain),
                                   error->code, error->message);
  g_clear_error (&error);
  /* Returning may complete the operation at once, and free @self with it:
   * nothing of @self is touched after. */
  task = g_steal_pointer (&self->task);
  g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static void
iterate_start (GCancellable        *cancellable,
               GAsyncReadyCallback  callback,
               gpointer             callback_data,
               gpointer             user_data)
{
  Iterate *self = user_data;
  PyGILState_STATE state;
  GError *error = NULL;

  self->task = g_task_new (NULL, cancellable, callback, callback_data);
  state = PyGILState_Ensure ();
  self->iterator = gab_async_iterator_new (self->aiterable, 0, &error);
  PyGILState_Release (state);
  if (self->iterator == NULL)
    {
      GTask *task = g_steal_pointer (&self->task);

      g_task_return_error (task, error);
      g_object_unref (task);
      return;
    }
  iterate_more (self);
}

static PyObject *
iterate_finish (GObject       *source,
                GAsyncResult  *result,
                gpointer       user_data,
                GError       **error)
{
  Iterate *self = user_data;

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  return Py_BuildValue ("(Is)", self->count, self->error);
}

static PyObject *
t_iterate (PyObject *self,
           PyObject *aiterable)
{
  Iterate *data = g_new0 (Iterate, 1);

  data->aiterable = Py_NewRef (aiterable);
  return gab_future_into_py (iterate_start, iterate_finish, data, iterate_free);
}

/* ---- conversions ------------------------------------------------------ */

static PyObject *
t_variant_roundtrip (PyObject *self,
                     PyObject *args)
{
  PyObject *value;
  const char *type = NULL;
  GError *error = NULL;
  GVariant *v;
  PyObject *ret;

  if (!PyArg_ParseTuple (args, "O|z", &value, &type))
    return NULL;
  if (type != NULL && !g_variant_type_string_is_valid (type))
    {
      PyErr_SetString (PyExc_ValueError, "bad type string");
      return NULL;
    }
  v = gab_variant_from_python (value, type ? G_VARIANT_TYPE (type) : NULL, &error);
  if (v == NULL)
    return gab_error_to_python (error);
  ret = Py_BuildValue ("(sN)", g_variant_get_type_string (v), gab_variant_to_python (v));
  g_variant_unref (v);
  return ret;
}

static PyObject *
t_error_roundtrip (PyObject *self,
                   PyObject *exc)
{
  GError *error = NULL;
  PyObject *ret;

  PyErr_SetObject ((PyObject *) Py_TYPE (exc), exc);
  gab_error_set_from_python (&error);
  ret = Py_BuildValue ("(siN)", g_quark_to_string (error->domain), error->code,
                       gab_error_new_python_exception (error));
  g_error_free (error);
  return ret;
}

static PyObject *
t_error_from_gerror (PyObject *self,
                     PyObject *args)
{
  const char *domain, *message;
  int code;
  GError *error;
  PyObject *ret;

  if (!PyArg_ParseTuple (args, "sis", &domain, &code, &message))
    return NULL;
  error = g_error_new_literal (g_quark_from_string (domain), code, message);
  ret = gab_error_new_python_exception (error);
  g_error_free (error);
  return ret;
}

/* ---- slow(record, usec): completes at once on the runtime thread; its
 * finish calls record() and then keeps the loop thread busy for @usec.
 * wait_slow_queued(n, timeout) waits until n of them were handed to the
 * loop, so that a test can line up a batch of completions. */

static GMutex slow_lock;
static GCond  slow_cond;
static gint   slow_queued;

typedef struct
{
  PyObject *record;
  gint64    usec;
} Slow;

static void
slow_free (gpointer data)
{
  Slow *slow = data;

  Py_DECREF (slow->record);
  g_free (slow);
}

static void
slow_start (GCancellable        *cancellable,
            GAsyncReadyCallback  callback,
            gpointer             callback_data,
            gpointer             user_data)
{
  GTask *task = g_task_new (NULL, cancellable, NULL, NULL);

  g_task_return_boolean (task, TRUE);
  /* Called here, not from an idle: once it returns, the completion is in
   * the loop's queue. */
  callback (NULL, G_ASYNC_RESULT (task), callback_data);
  g_object_unref (task);
  g_mutex_lock (&slow_lock);
  slow_queued++;
  g_cond_broadcast (&slow_cond);
  g_mutex_unlock (&slow_lock);
}

static PyObject *
slow_finish (GObject       *source,
             GAsyncResult  *result,
             gpointer       user_data,
             GError       **error)
{
  Slow *slow = user_data;
  PyObject *ret;
  gint64 until;

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  ret = PyObject_CallNoArgs (slow->record);
  until = g_get_monotonic_time () + slow->usec;
  while (g_get_monotonic_time () < until)
    ;
  return ret;
}

static PyObject *
t_slow (PyObject *self,
        PyObject *args)
{
  PyObject *record;
  long long usec;
  Slow *slow;

  if (!PyArg_ParseTuple (args, "OL:slow", &record, &usec))
    return NULL;
  slow = g_new0 (Slow, 1);
  slow->record = Py_NewRef (record);
  slow->usec = usec;
  return gab_future_into_py (slow_start, slow_finish, slow, slow_free);
}

static PyObject *
t_wait_slow_queued (PyObject *self,
                    PyObject *args)
{
  int n;
  double timeout;
  gint64 deadline;
  gboolean ok;

  if (!PyArg_ParseTuple (args, "id:wait_slow_queued", &n, &timeout))
    return NULL;
  deadline = g_get_monotonic_time () + (gint64) (timeout * G_USEC_PER_SEC);
  Py_BEGIN_ALLOW_THREADS
  g_mutex_lock (&slow_lock);
  while (slow_queued < n && g_cond_wait_until (&slow_cond, &slow_lock, deadline))
    ;
  ok = slow_queued >= n;
  slow_queued = 0;
  g_mutex_unlock (&slow_lock);
  Py_END_ALLOW_THREADS
  return PyBool_FromLong (ok);
}

static PyMethodDef methods[] = {
  { "ready", t_ready, METH_O, "An operation that completes at once with value." },
  { "never", t_never, METH_NOARGS, "An operation that ends only when cancelled." },
  { "slow", t_slow, METH_VARARGS, "slow(record, usec): a ready operation whose finish calls record() and busy-waits." },
  { "wait_slow_queued", t_wait_slow_queued, METH_VARARGS, "wait_slow_queued(n, timeout): until n slow() completions were queued." },
  { "stats", t_stats, METH_NOARGS, NULL },
  { "ready_flags", t_ready_flags, METH_VARARGS, "ready(value) with GabFutureFlags." },
  { "never_flags", t_never_flags, METH_VARARGS, "never() with GabFutureFlags." },
  { "gated", t_gated, METH_VARARGS, "gated(flags): reports back on gated_finish()." },
  { "gated_wait", t_gated_wait, METH_VARARGS, "gated_wait(cancelled, timeout)." },
  { "gated_finish", t_gated_finish, METH_VARARGS, "gated_finish(cancelled)." },
  { "wait_never_finished", t_wait_never_finished, METH_VARARGS,
    "wait_never_finished(n, timeout): until n never() operations ended; False on timeout." },
  { "fail", t_fail, METH_VARARGS, "An operation failing with GError(domain, code, message)." },
  { "finish_raises", t_finish_raises, METH_O, NULL },
  { "await_py", t_await_py, METH_O, "The runtime thread awaits a Python awaitable." },
  { "iterate", t_iterate, METH_O,
    "The runtime thread consumes an async iterable: (items, how it ended or None)." },
  { "call", t_call, METH_VARARGS, "gab_call_async from the runtime thread." },
  { "into_future_here", t_into_future_here, METH_VARARGS, NULL },
  { "call_here", t_call_here, METH_VARARGS, NULL },
  { "cancellable_new", t_cancellable_new, METH_NOARGS, NULL },
  { "cancellable_cancel", t_cancellable_cancel, METH_O, NULL },
  { "variant_roundtrip", t_variant_roundtrip, METH_VARARGS, NULL },
  { "error_roundtrip", t_error_roundtrip, METH_O, NULL },
  { "error_from_gerror", t_error_from_gerror, METH_VARARGS, NULL },
  { NULL }
};

static struct PyModuleDef module_def = {
  PyModuleDef_HEAD_INIT, "_gab_testmod", NULL, -1, methods,
};

PyMODINIT_FUNC
PyInit__gab_testmod (void)
{
  PyObject *module = PyModule_Create (&module_def);

  if (module != NULL
      && PyModule_AddIntConstant (module, "FUTURE_CANCEL_WAITS", GAB_FUTURE_CANCEL_WAITS) < 0)
    Py_CLEAR (module);
  return module;
}
