/* _gab_bench.c: C drivers for the benchmarks, written against the public
 * API only, like any binding.
 *
 * What the test module (_gab_testmod) cannot measure by itself:
 *
 *   await_seq(coro_fn, n), await_conc(coro_fn, n)
 *       C awaits Python. The runtime thread awaits n coroutines made by
 *       calling coro_fn(), one after the other (a callback chain of
 *       gab_into_future_async) or all at once, and times that in C.
 *   call_seq(module, function, n), call_conc(module, function, n)
 *       The same through gab_call_async(), which needs no GIL in C.
 *   park(n), fire()
 *       The completion path alone (runtime thread -> loop queue -> loop):
 *       park() makes n futures whose C operations start and then wait;
 *       fire() completes all of them in one go on the runtime thread and
 *       resolves to the monotonic time (ns) at which it began.
 *   spin_fd(fd, usec)
 *       Experiment: spin on the loop queue's eventfd instead of sleeping.
 *   hold_gtasks(n), release_gtasks()
 *       The memory of a pending GIO operation itself (GTask + GCancellable).
 *   cg_zero(), cg_dump(name), on_valgrind()
 *       callgrind client requests, so that the instruction count of one
 *       phase of a run can be cut out of the whole.
 *
 * All awaitables returned resolve to a float: seconds measured in C with
 * CLOCK_MONOTONIC, the clock of time.perf_counter() on Linux.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "../gasyncbridge/gab-python-compat.h"  /* Python.h, with the API of newer versions */
#include <gasyncbridge/gasyncbridge.h>
#include <time.h>

#ifdef HAVE_CALLGRIND
# include <valgrind/callgrind.h>
#endif

static gint64
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64) ts.tv_sec * G_GINT64_CONSTANT (1000000000) + ts.tv_nsec;
}

/* ---- C awaits Python: a driver on the runtime thread ------------------ */

typedef struct
{
  /* What to await: coro_fn() through gab_into_future_async(), or
   * module.function() through gab_call_async(). */
  PyObject      *coro_fn;
  gchar         *module;
  gchar         *function;

  gint           n;
  gint           started;
  gint           done;
  gboolean       concurrent;

  GabTaskLocals *locals;    /* the Python caller's, captured at start */
  GTask         *task;      /* completes when all n are done */
  GError        *error;     /* the first failure */
  gint64         t0;
  gint64         t1;
} Driver;

static void
driver_free (gpointer data)
{
  Driver *self = data;

  /* gab_future_into_py() calls this with the GIL held. */
  Py_XDECREF (self->coro_fn);
  g_free (self->module);
  g_free (self->function);
  g_clear_pointer (&self->locals, gab_task_locals_unref);
  g_clear_error (&self->error);
  g_free (self);
}

static void driver_py_done   (GObject *source, GAsyncResult *result, gpointer data);
static void driver_call_done (GObject *source, GAsyncResult *result, gpointer data);

/* Runtime thread, GIL held: start one more await of coro_fn(). The task
 * locals are pushed so that the coroutine goes to the caller's loop: in a
 * callback, unlike in a GabStartFunc, none are current by themselves. */
static void
driver_py_launch (Driver *self)
{
  PyObject *coro;

  self->started++;
  coro = PyObject_CallNoArgs (self->coro_fn);
  if (coro == NULL)
    {
      PyErr_Clear ();
      coro = Py_NewRef (Py_None);   /* fails the await: not awaitable */
    }
  gab_task_locals_push (self->locals);
  gab_into_future_async (coro, NULL, driver_py_done, self);
  gab_task_locals_pop (self->locals);
  Py_DECREF (coro);
}

/* Runtime thread, no GIL needed. */
static void
driver_call_launch (Driver *self)
{
  self->started++;
  gab_task_locals_push (self->locals);
  gab_call_async (self->module, self->function, NULL, NULL, driver_call_done, self);
  gab_task_locals_pop (self->locals);
}

static void
driver_complete (Driver *self)
{
  GTask *task = g_steal_pointer (&self->task);

  self->t1 = now_ns ();
  if (self->error != NULL)
    g_task_return_error (task, g_steal_pointer (&self->error));
  else
    g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static void
driver_py_done (GObject      *source,
                GAsyncResult *result,
                gpointer      data)
{
  Driver *self = data;
  GError *error = NULL;
  PyGILState_STATE state;
  PyObject *value;

  /* One GIL acquisition per completion: collect the result and, in the
   * sequential driver, start the next await under the same GIL. */
  state = PyGILState_Ensure ();
  value = gab_into_future_finish (result, &error);
  Py_XDECREF (value);
  if (error != NULL && self->error == NULL)
    self->error = g_steal_pointer (&error);
  g_clear_error (&error);
  self->done++;
  if (!self->concurrent && self->started < self->n && self->error == NULL)
    driver_py_launch (self);
  PyGILState_Release (state);

  if (self->done == self->started
      && (self->started == self->n || self->error != NULL))
    driver_complete (self);
}

static void
driver_call_done (GObject      *source,
                  GAsyncResult *result,
                  gpointer      data)
{
  Driver *self = data;
  GError *error = NULL;
  GVariant *value;

  value = gab_call_finish (result, &error);
  g_clear_pointer (&value, g_variant_unref);
  if (error != NULL && self->error == NULL)
    self->error = g_steal_pointer (&error);
  g_clear_error (&error);
  self->done++;
  if (!self->concurrent && self->started < self->n && self->error == NULL)
    driver_call_launch (self);

  if (self->done == self->started
      && (self->started == self->n || self->error != NULL))
    driver_complete (self);
}

/* GabStartFunc: runtime thread, the caller's task locals current. */
static void
driver_start (GCancellable        *cancellable,
              GAsyncReadyCallback  callback,
              gpointer             callback_data,
              gpointer             user_data)
{
  Driver *self = user_data;
  PyGILState_STATE state;
  gint batch;

  self->task = g_task_new (NULL, cancellable, callback, callback_data);
  state = PyGILState_Ensure ();
  self->locals = gab_task_locals_get_current ();
  if (self->locals == NULL || self->n <= 0)
    {
      PyGILState_Release (state);
      if (self->locals == NULL)
        self->error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_FAILED,
                                           "no task locals on the runtime thread");
      self->t0 = now_ns ();
      driver_complete (self);
      return;
    }

  self->t0 = now_ns ();
  batch = self->concurrent ? self->n : 1;
  if (self->coro_fn != NULL)
    {
      for (gint i = 0; i < batch; i++)
        driver_py_launch (self);
      PyGILState_Release (state);
    }
  else
    {
      PyGILState_Release (state);
      for (gint i = 0; i < batch; i++)
        driver_call_launch (self);
    }
}

static PyObject *
driver_finish (GObject       *source,
               GAsyncResult  *result,
               gpointer       user_data,
               GError       **error)
{
  Driver *self = user_data;

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  return PyFloat_FromDouble ((self->t1 - self->t0) / 1e9);
}

static PyObject *
driver_new_py (PyObject *args,
               gboolean  concurrent)
{
  PyObject *coro_fn;
  Driver *self;
  int n;

  if (!PyArg_ParseTuple (args, "Oi", &coro_fn, &n))
    return NULL;
  if (!PyCallable_Check (coro_fn))
    {
      PyErr_SetString (PyExc_TypeError, "coro_fn must be callable");
      return NULL;
    }
  self = g_new0 (Driver, 1);
  self->coro_fn = Py_NewRef (coro_fn);
  self->n = n;
  self->concurrent = concurrent;
  return gab_future_into_py (driver_start, driver_finish, self, driver_free);
}

static PyObject *
driver_new_call (PyObject *args,
                 gboolean  concurrent)
{
  const char *module, *function;
  Driver *self;
  int n;

  if (!PyArg_ParseTuple (args, "ssi", &module, &function, &n))
    return NULL;
  self = g_new0 (Driver, 1);
  self->module = g_strdup (module);
  self->function = g_strdup (function);
  self->n = n;
  self->concurrent = concurrent;
  return gab_future_into_py (driver_start, driver_finish, self, driver_free);
}

static PyObject *
b_await_seq (PyObject *self,
             PyObject *args)
{
  return driver_new_py (args, FALSE);
}

static PyObject *
b_await_conc (PyObject *self,
              PyObject *args)
{
  return driver_new_py (args, TRUE);
}

static PyObject *
b_call_seq (PyObject *self,
            PyObject *args)
{
  return driver_new_call (args, FALSE);
}

static PyObject *
b_call_conc (PyObject *self,
             PyObject *args)
{
  return driver_new_call (args, TRUE);
}

/* ---- the completion path: park(n), then fire() ------------------------ */

/* Runtime thread only: the GTasks of parked operations. */
static GPtrArray *parked;

static void
park_start (GCancellable        *cancellable,
            GAsyncReadyCallback  callback,
            gpointer             callback_data,
            gpointer             user_data)
{
  if (parked == NULL)
    parked = g_ptr_array_new ();
  g_ptr_array_add (parked, g_task_new (NULL, cancellable, callback, callback_data));
}

static PyObject *
park_finish (GObject       *source,
             GAsyncResult  *result,
             gpointer       user_data,
             GError       **error)
{
  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  Py_RETURN_NONE;
}

static PyObject *
b_park (PyObject *self,
        PyObject *arg)
{
  Py_ssize_t n = PyLong_AsSsize_t (arg);
  PyObject *list;

  if (n < 0)
    return PyErr_Occurred () ? NULL : PyList_New (0);
  list = PyList_New (n);
  if (list == NULL)
    return NULL;
  for (Py_ssize_t i = 0; i < n; i++)
    {
      PyObject *future = gab_future_into_py (park_start, park_finish, NULL, NULL);

      if (future == NULL)
        {
          Py_DECREF (list);
          return NULL;
        }
      PyList_SET_ITEM (list, i, future);
    }
  return list;
}

typedef struct
{
  gint64 t_fire;
} Fire;

static void
fire_start (GCancellable        *cancellable,
            GAsyncReadyCallback  callback,
            gpointer             callback_data,
            gpointer             user_data)
{
  Fire *self = user_data;
  GTask *task = g_task_new (NULL, cancellable, callback, callback_data);

  /* The parked tasks were made in earlier iterations of the runtime's
   * context, so GTask calls their callbacks right here, one after the
   * other: each pushes its operation to the loop queue. */
  self->t_fire = now_ns ();
  if (parked != NULL)
    {
      for (guint i = 0; i < parked->len; i++)
        {
          GTask *p = parked->pdata[i];

          g_task_return_boolean (p, TRUE);
          g_object_unref (p);
        }
      g_ptr_array_set_size (parked, 0);
    }
  g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static PyObject *
fire_finish (GObject       *source,
             GAsyncResult  *result,
             gpointer       user_data,
             GError       **error)
{
  Fire *self = user_data;

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  return PyLong_FromLongLong (self->t_fire);
}

static PyObject *
b_fire (PyObject *self,
        PyObject *unused)
{
  return gab_future_into_py (fire_start, fire_finish, g_new0 (Fire, 1), g_free);
}

/* ---- experiment: spin on the loop side before it sleeps --------------- */

/* spin_fd(fd, usec): without the GIL, poll @fd without blocking for up to
 * @usec microseconds; TRUE as soon as it is readable. The benchmark uses
 * it on the loop queue's eventfd, from a callback of the loop, to show
 * what a loop that spins briefly instead of sleeping in epoll would gain. */
static PyObject *
b_spin_fd (PyObject *self,
           PyObject *args)
{
  int fd, usec, ready = 0;
  gint64 until;

  if (!PyArg_ParseTuple (args, "ii", &fd, &usec))
    return NULL;
  Py_BEGIN_ALLOW_THREADS
  until = now_ns () + (gint64) usec * 1000;
  do
    {
      GPollFD pfd = { fd, G_IO_IN, 0 };

      ready = g_poll (&pfd, 1, 0) > 0;
    }
  while (!ready && now_ns () < until);
  Py_END_ALLOW_THREADS
  return PyBool_FromLong (ready);
}

/* ---- memory: what the GIO side of an operation costs by itself -------- */

/* GTasks, each with a GCancellable, as a pending GIO operation holds them:
 * the part of an in-flight operation that any bridge (or none) would pay. */
static GPtrArray *held;

static PyObject *
b_hold_gtasks (PyObject *self,
               PyObject *arg)
{
  Py_ssize_t n = PyLong_AsSsize_t (arg);

  if (n < 0)
    return PyErr_Occurred () ? NULL : Py_NewRef (Py_None);
  if (held == NULL)
    held = g_ptr_array_new ();
  for (Py_ssize_t i = 0; i < n; i++)
    {
      GCancellable *cancellable = g_cancellable_new ();

      g_ptr_array_add (held, g_task_new (NULL, cancellable, NULL, NULL));
      g_object_unref (cancellable);
    }
  Py_RETURN_NONE;
}

static PyObject *
b_release_gtasks (PyObject *self,
                  PyObject *unused)
{
  if (held != NULL)
    {
      for (guint i = 0; i < held->len; i++)
        {
          /* Never returned: returning here would queue idle sources on
           * a context that this thread does not iterate. */
          g_object_unref (held->pdata[i]);
        }
      g_ptr_array_set_size (held, 0);
    }
  Py_RETURN_NONE;
}

/* ---- callgrind client requests ---------------------------------------- */

static PyObject *
b_on_valgrind (PyObject *self,
               PyObject *unused)
{
#ifdef HAVE_CALLGRIND
  return PyBool_FromLong (RUNNING_ON_VALGRIND);
#else
  Py_RETURN_FALSE;
#endif
}

static PyObject *
b_cg_zero (PyObject *self,
           PyObject *unused)
{
#ifdef HAVE_CALLGRIND
  CALLGRIND_ZERO_STATS;
#endif
  Py_RETURN_NONE;
}

static PyObject *
b_cg_dump (PyObject *self,
           PyObject *arg)
{
  const char *name = PyUnicode_AsUTF8 (arg);

  if (name == NULL)
    return NULL;
#ifdef HAVE_CALLGRIND
  CALLGRIND_DUMP_STATS_AT (name);
#endif
  Py_RETURN_NONE;
}

static PyObject *
b_now_ns (PyObject *self,
          PyObject *unused)
{
  return PyLong_FromLongLong (now_ns ());
}

static PyMethodDef methods[] = {
  { "await_seq", b_await_seq, METH_VARARGS,
    "await_seq(coro_fn, n)\n--\n\nThe runtime thread awaits coro_fn() n times, "
    "one after the other. Resolves to the seconds it took, timed in C." },
  { "await_conc", b_await_conc, METH_VARARGS,
    "await_conc(coro_fn, n)\n--\n\nThe runtime thread awaits n coro_fn() at once." },
  { "call_seq", b_call_seq, METH_VARARGS,
    "call_seq(module, function, n)\n--\n\ngab_call_async n times, one after the other." },
  { "call_conc", b_call_conc, METH_VARARGS,
    "call_conc(module, function, n)\n--\n\ngab_call_async n times at once." },
  { "park", b_park, METH_O,
    "park(n)\n--\n\nn futures whose operations start and wait for fire()." },
  { "fire", b_fire, METH_NOARGS,
    "fire()\n--\n\nCompletes the parked operations at once; resolves to the "
    "CLOCK_MONOTONIC time (ns) at which it began." },
  { "spin_fd", b_spin_fd, METH_VARARGS,
    "spin_fd(fd, usec)\n--\n\nPoll fd without blocking (and without the GIL) for up to "
    "usec microseconds; True once readable." },
  { "hold_gtasks", b_hold_gtasks, METH_O,
    "hold_gtasks(n)\n--\n\nMake n pending GTasks with a GCancellable each (memory baseline)." },
  { "release_gtasks", b_release_gtasks, METH_NOARGS, "Free what hold_gtasks() made." },
  { "on_valgrind", b_on_valgrind, METH_NOARGS, "Whether this runs under valgrind." },
  { "cg_zero", b_cg_zero, METH_NOARGS, "CALLGRIND_ZERO_STATS." },
  { "cg_dump", b_cg_dump, METH_O, "CALLGRIND_DUMP_STATS_AT(name)." },
  { "now_ns", b_now_ns, METH_NOARGS, "CLOCK_MONOTONIC in ns." },
  { NULL }
};

static struct PyModuleDef module_def = {
  PyModuleDef_HEAD_INIT,
  .m_name = "_gab_bench",
  .m_doc = "C drivers for the gasyncbridge benchmarks.",
  .m_size = -1,
  .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__gab_bench (void)
{
  return PyModule_Create (&module_def);
}
