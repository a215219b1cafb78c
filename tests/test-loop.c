/* test-loop.c: event loops from C — gab_run(), gab_run_until_complete(),
 * gab_run_forever(), gab_get_current_loop(), gab_task_locals_get_current(),
 * and the other topology: a GLib main thread with asyncio on a background
 * thread (gab_init_with_context() + gab_start_asyncio_thread()).
 *
 * Embeds Python; the main thread releases the GIL after start-up, and each
 * test takes it when it needs it, as a C program would.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "../gasyncbridge/gab-python-compat.h"  /* Python.h, with the API of newer versions */
#include <gasyncbridge/gasyncbridge.h>

#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static PyObject *helpers;   /* the looptest_py module */

static gboolean
on_main_thread (void)
{
  return syscall (SYS_gettid) == getpid ();
}

/* ---- _looptest: C operations, public API only ------------------------ */

/* ready(value): completes at once. */
static void
ready_start (GCancellable        *cancellable,
             GAsyncReadyCallback  callback,
             gpointer             callback_data,
             gpointer             user_data)
{
  GTask *task = g_task_new (NULL, cancellable, callback, callback_data);

  g_task_return_boolean (task, gab_is_runtime_thread ());
  g_object_unref (task);
}

static PyObject *
ready_finish (GObject       *source,
              GAsyncResult  *result,
              gpointer       user_data,
              GError       **error)
{
  if (!g_task_propagate_boolean (G_TASK (result), error))
    {
      if (error != NULL && *error == NULL)
        g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                             "the start function did not run on the runtime thread");
      return NULL;
    }
  return Py_NewRef ((PyObject *) user_data);
}

static void
decref (gpointer data)
{
  Py_XDECREF ((PyObject *) data);   /* user_data_free is called with the GIL */
}

static PyObject *
t_ready (PyObject *self,
         PyObject *value)
{
  return gab_future_into_py (ready_start, ready_finish, Py_NewRef (value), decref);
}

/* locals_in_start(): what gab_get_current_loop() and
 * gab_task_locals_get_current() say inside a GabStartFunc. */
typedef struct
{
  PyObject *loop;        /* or the RuntimeError */
  PyObject *var_value;   /* looptest_py.var in the locals' context */
} Probe;

static void
probe_free (gpointer data)
{
  Probe *probe = data;

  Py_XDECREF (probe->loop);
  Py_XDECREF (probe->var_value);
  g_free (probe);
}

static void
probe_start (GCancellable        *cancellable,
             GAsyncReadyCallback  callback,
             gpointer             callback_data,
             gpointer             user_data)
{
  Probe *probe = user_data;
  GTask *task = g_task_new (NULL, cancellable, callback, callback_data);
  PyGILState_STATE state;
  GabTaskLocals *locals;
  PyObject *var;

  g_assert_true (gab_is_runtime_thread ());
  state = PyGILState_Ensure ();
  probe->loop = gab_get_current_loop ();
  g_assert_nonnull (probe->loop);
  locals = gab_task_locals_get_current ();
  g_assert_nonnull (locals);
  g_assert_true (gab_task_locals_get_loop (locals) == probe->loop);
  var = PyObject_GetAttrString (helpers, "var");
  probe->var_value = PyObject_GetItem (gab_task_locals_get_context (locals), var);
  g_assert_nonnull (probe->var_value);
  Py_DECREF (var);
  gab_task_locals_unref (locals);
  PyGILState_Release (state);

  g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static PyObject *
probe_finish (GObject       *source,
              GAsyncResult  *result,
              gpointer       user_data,
              GError       **error)
{
  Probe *probe = user_data;

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  return PyTuple_Pack (2, probe->loop, probe->var_value);
}

static PyObject *
t_locals_in_start (PyObject *self,
                   PyObject *unused)
{
  return gab_future_into_py (probe_start, probe_finish, g_new0 (Probe, 1), probe_free);
}

/* call_from_runtime(module, function): gab_call_async() from the start
 * function, where the caller's task locals are current.
 * invoke_call(module, function): the same from a gab_invoke() callback,
 * where no locals are current: the default ones apply. */
typedef struct
{
  gchar    *module;
  gchar    *function;
  gboolean  via_invoke;
} CallSpec;

static void
call_spec_free (gpointer data)
{
  CallSpec *spec = data;

  g_free (spec->module);
  g_free (spec->function);
  g_free (spec);
}

static void
call_done (GObject      *source,
           GAsyncResult *result,
           gpointer      data)
{
  GTask *task = data;
  GError *error = NULL;
  GVariant *value = gab_call_finish (result, &error);

  g_assert_true (gab_is_runtime_thread ());
  if (error != NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, value, (GDestroyNotify) g_variant_unref);
  g_object_unref (task);
}

static gboolean
invoke_call_run (gpointer data)
{
  GTask *task = data;
  CallSpec *spec = g_task_get_task_data (task);

  gab_call_async (spec->module, spec->function, NULL, NULL, call_done, task);
  return G_SOURCE_REMOVE;
}

static void
call_start (GCancellable        *cancellable,
            GAsyncReadyCallback  callback,
            gpointer             callback_data,
            gpointer             user_data)
{
  CallSpec *spec = user_data;
  GTask *task = g_task_new (NULL, cancellable, callback, callback_data);

  g_task_set_task_data (task, spec, NULL);
  if (spec->via_invoke)
    gab_invoke (invoke_call_run, task, NULL);
  else
    gab_call_async (spec->module, spec->function, NULL, NULL, call_done, task);
}

static PyObject *
call_finish (GObject       *source,
             GAsyncResult  *result,
             gpointer       user_data,
             GError       **error)
{
  GVariant *value = g_task_propagate_pointer (G_TASK (result), error);
  PyObject *object;

  if (value == NULL)
    {
      if (error != NULL && *error != NULL)
        return NULL;
      Py_RETURN_NONE;
    }
  object = gab_variant_to_python (value);
  g_variant_unref (value);
  return object;
}

static PyObject *
make_call (PyObject *args,
           gboolean  via_invoke)
{
  const char *module, *function;
  CallSpec *spec;

  if (!PyArg_ParseTuple (args, "ss", &module, &function))
    return NULL;
  spec = g_new0 (CallSpec, 1);
  spec->module = g_strdup (module);
  spec->function = g_strdup (function);
  spec->via_invoke = via_invoke;
  return gab_future_into_py (call_start, call_finish, spec, call_spec_free);
}

static PyObject *
t_call_from_runtime (PyObject *self,
                     PyObject *args)
{
  return make_call (args, FALSE);
}

static PyObject *
t_invoke_call (PyObject *self,
               PyObject *args)
{
  return make_call (args, TRUE);
}

/* main_thread_op(): whether the start function ran on the main thread. */
static void
main_thread_start (GCancellable        *cancellable,
                   GAsyncReadyCallback  callback,
                   gpointer             callback_data,
                   gpointer             user_data)
{
  GTask *task = g_task_new (NULL, cancellable, callback, callback_data);

  g_task_return_boolean (task, on_main_thread () && gab_is_runtime_thread ());
  g_object_unref (task);
}

static PyObject *
main_thread_finish (GObject       *source,
                    GAsyncResult  *result,
                    gpointer       user_data,
                    GError       **error)
{
  gboolean yes = g_task_propagate_boolean (G_TASK (result), error);

  if (error != NULL && *error != NULL)
    return NULL;
  return PyBool_FromLong (yes);
}

static PyObject *
t_main_thread_op (PyObject *self,
                  PyObject *unused)
{
  return gab_future_into_py (main_thread_start, main_thread_finish, NULL, NULL);
}

static PyObject *
t_current_loop (PyObject *self,
                PyObject *unused)
{
  return gab_get_current_loop ();
}

static PyObject *
t_nested_run (PyObject *self,
              PyObject *awaitable)
{
  return gab_run (awaitable);
}

/* start_stopper(loop), on the loop: the runtime thread, with no task
 * locals of its own, awaits Python (the default locals: @loop, which
 * gab_run_forever() runs), then stops the loop. */
static gint64 stopper_seen_loop_id;

static void
stopper_called (GObject      *source,
                GAsyncResult *result,
                gpointer      data)
{
  PyObject *loop = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) value = gab_call_finish (result, &error);
  PyGILState_STATE state;
  PyObject *stop, *ret;

  g_assert_no_error (error);
  g_assert_true (gab_is_runtime_thread ());
  stopper_seen_loop_id = g_variant_get_int64 (value);

  state = PyGILState_Ensure ();
  stop = PyObject_GetAttrString (loop, "stop");
  ret = PyObject_CallMethod (loop, "call_soon_threadsafe", "O", stop);
  g_assert_nonnull (ret);
  Py_DECREF (ret);
  Py_DECREF (stop);
  Py_DECREF (loop);
  PyGILState_Release (state);
}

static gboolean
stopper_run (gpointer data)
{
  gab_call_async ("looptest_py", "loop_id", NULL, NULL, stopper_called, data);
  return G_SOURCE_REMOVE;
}

static PyObject *
t_start_stopper (PyObject *self,
                 PyObject *loop)
{
  gab_invoke (stopper_run, Py_NewRef (loop), NULL);
  Py_RETURN_NONE;
}

static PyMethodDef looptest_methods[] = {
  { "ready", t_ready, METH_O, NULL },
  { "locals_in_start", t_locals_in_start, METH_NOARGS, NULL },
  { "call_from_runtime", t_call_from_runtime, METH_VARARGS, NULL },
  { "invoke_call", t_invoke_call, METH_VARARGS, NULL },
  { "main_thread_op", t_main_thread_op, METH_NOARGS, NULL },
  { "current_loop", t_current_loop, METH_NOARGS, NULL },
  { "nested_run", t_nested_run, METH_O, NULL },
  { "start_stopper", t_start_stopper, METH_O, NULL },
  { NULL, NULL, 0, NULL },
};

static struct PyModuleDef looptest_module = {
  PyModuleDef_HEAD_INIT, "_looptest", NULL, -1, looptest_methods,
};

static PyObject *
looptest_init (void)
{
  return PyModule_Create (&looptest_module);
}

/* ---- Python side ------------------------------------------------------ */

static const char helpers_source[] =
  "import asyncio, contextvars, threading, warnings\n"
  "import _looptest\n"
  "\n"
  "var = contextvars.ContextVar('looptest_var', default='unset')\n"
  "state = {}\n"
  "\n"
  "def read_var():\n"
  "    return var.get()\n"
  "\n"
  "async def read_var_async():\n"
  "    await asyncio.sleep(0)\n"
  "    return var.get()\n"
  "\n"
  "async def loop_id():\n"
  "    await asyncio.sleep(0)\n"
  "    return id(asyncio.get_running_loop())\n"
  "\n"
  "async def where():\n"
  "    await asyncio.sleep(0)\n"
  "    return (threading.current_thread() is threading.main_thread(),\n"
  "            id(asyncio.get_running_loop()))\n"
  "\n"
  "async def add_ready(a, b):\n"
  "    return await _looptest.ready(a) + b\n"
  "\n"
  "async def fail():\n"
  "    await asyncio.sleep(0)\n"
  "    raise ValueError('from a coroutine')\n"
  "\n"
  "async def info():\n"
  "    # a C future, and C awaiting Python, on this loop\n"
  "    await _looptest.ready(None)\n"
  "    loop = asyncio.get_running_loop()\n"
  "    via_default = await _looptest.invoke_call('looptest_py', 'loop_id')\n"
  "    via_locals = await _looptest.call_from_runtime('looptest_py', 'loop_id')\n"
  "    return (loop, via_default == id(loop), via_locals == id(loop),\n"
  "            threading.current_thread() is threading.main_thread())\n"
  "\n"
  "async def leave_work():\n"
  "    loop = asyncio.get_running_loop()\n"
  "    async def pending():\n"
  "        try:\n"
  "            await loop.create_future()\n"
  "        finally:\n"
  "            state['task_cancelled'] = True\n"
  "    async def agen():\n"
  "        try:\n"
  "            yield 1\n"
  "            yield 2\n"
  "        finally:\n"
  "            state['agen_closed'] = True\n"
  "    state['task'] = asyncio.ensure_future(pending())\n"
  "    state['agen'] = agen()\n"
  "    await state['agen'].__anext__()\n"
  "    await loop.run_in_executor(None, lambda: None)\n"
  "    state['executor_threads'] = list(loop._default_executor._threads)\n"
  "    state['loop'] = loop\n"
  "    await asyncio.sleep(0)\n"
  "    return 'left work behind'\n"
  "\n"
  "def cleaned_up():\n"
  "    return (state.get('task_cancelled', False) and state.get('agen_closed', False)\n"
  "            and not any(t.is_alive() for t in state['executor_threads'])\n"
  "            and state['loop'].is_closed())\n"
  "\n"
  "async def probe_locals():\n"
  "    var.set('caller')\n"
  "    loop, value = await _looptest.locals_in_start()\n"
  "    from_start = await _looptest.call_from_runtime('looptest_py', 'read_var')\n"
  "    from_start_async = await _looptest.call_from_runtime('looptest_py',\n"
  "                                                         'read_var_async')\n"
  "    return (loop is asyncio.get_running_loop(), value, from_start, from_start_async,\n"
  "            _looptest.current_loop() is asyncio.get_running_loop())\n"
  "\n"
  "async def nested():\n"
  "    async def inner():\n"
  "        return 1\n"
  "    with warnings.catch_warnings(record=True) as caught:\n"
  "        warnings.simplefilter('always')\n"
  "        try:\n"
  "            _looptest.nested_run(inner())\n"
  "        except RuntimeError as e:\n"
  "            error = str(e)\n"
  "        else:\n"
  "            error = None\n"
  "        import gc; gc.collect()\n"
  "    return error, [str(w.message) for w in caught]\n"
  "\n"
  "cancelled = 0\n"
  "async def sleep_forever():\n"
  "    global cancelled\n"
  "    try:\n"
  "        await asyncio.get_running_loop().create_future()\n"
  "    except asyncio.CancelledError:\n"
  "        cancelled += 1\n"
  "        raise\n"
  "\n"
  "async def op_on_main_thread():\n"
  "    return await _looptest.main_thread_op()\n"
  "\n"
  "a_entered = threading.Event()\n"
  "b_entered = threading.Event()\n"
  "a_left = threading.Event()\n"
  "\n"
  "async def overlap_a():\n"
  "    a_entered.set()\n"
  "    b_entered.wait()\n"
  "    return 'a'\n"
  "\n"
  "async def overlap_b():\n"
  "    b_entered.set()\n"
  "    a_left.wait()\n"
  "    seen = await _looptest.invoke_call('looptest_py', 'loop_id')\n"
  "    return seen == id(asyncio.get_running_loop())\n";

/* GIL held. */
static PyObject *
py_eval (const char *expression)
{
  PyObject *dict = PyModule_GetDict (helpers);
  PyObject *result = PyRun_String (expression, Py_eval_input, dict, dict);

  if (result == NULL)
    {
      PyErr_Print ();
      g_error ("cannot evaluate Python expression: %s", expression);
    }
  return result;
}

/* GIL held: the value of @expression is true. */
static void
assert_py_true (const char *expression)
{
  PyObject *value = py_eval (expression);

  if (PyObject_IsTrue (value) != 1)
    {
      PyObject *repr = PyObject_Repr (value);

      g_error ("%s is %s", expression, repr ? PyUnicode_AsUTF8 (repr) : "?");
    }
  Py_DECREF (value);
}

/* GIL held: gab_run (helpers.@call), the result or a test failure. */
static PyObject *
run_call (const char *call)
{
  PyObject *coro = py_eval (call);
  PyObject *result = gab_run (coro);

  Py_DECREF (coro);
  if (result == NULL)
    {
      PyErr_Print ();
      g_error ("gab_run (%s) failed", call);
    }
  return result;
}

/* ---- gab_run ------------------------------------------------------------ */

static void
test_run_result (void)
{
  PyGILState_STATE state = PyGILState_Ensure ();
  PyObject *result = run_call ("add_ready(40, 2)");

  g_assert_cmpint (PyLong_AsLong (result), ==, 42);
  Py_DECREF (result);
  PyGILState_Release (state);
}

/* A new loop each time, closed afterwards; C futures and C awaiting Python
 * (through the task locals, and through the default) go to it. */
static void
test_run_repeatedly (void)
{
  PyGILState_STATE state = PyGILState_Ensure ();
  PyObject *loops[3];

  for (guint i = 0; i < G_N_ELEMENTS (loops); i++)
    {
      PyObject *result = run_call ("info()");
      int via_default, via_locals, main_thread;

      g_assert_true (PyArg_ParseTuple (result, "Oppp", &loops[i], &via_default,
                                       &via_locals, &main_thread));
      Py_INCREF (loops[i]);
      g_assert_true (via_default);
      g_assert_true (via_locals);
      g_assert_true (main_thread);
      Py_DECREF (result);
      for (guint j = 0; j < i; j++)
        g_assert_true (loops[j] != loops[i]);
    }
  for (guint i = 0; i < G_N_ELEMENTS (loops); i++)
    {
      PyObject *closed = PyObject_CallMethod (loops[i], "is_closed", NULL);

      g_assert_true (closed == Py_True);
      Py_DECREF (closed);
      Py_DECREF (loops[i]);
    }
  PyGILState_Release (state);
}

/* asyncio.run semantics: remaining tasks cancelled, async generators and
 * the default executor shut down, the loop closed. */
static void
test_run_cleans_up (void)
{
  PyGILState_STATE state = PyGILState_Ensure ();
  PyObject *result = run_call ("leave_work()");

  g_assert_cmpstr (PyUnicode_AsUTF8 (result), ==, "left work behind");
  Py_DECREF (result);
  assert_py_true ("cleaned_up()");
  PyGILState_Release (state);
}

/* After a run, no loop is the default any more: C code with no loop of its
 * own gets a clear error, not a closed loop. */
static void
test_run_default_is_cleared (void)
{
  PyGILState_STATE state = PyGILState_Ensure ();
  PyObject *result = run_call ("loop_id()");
  PyObject *loop;
  GabTaskLocals *locals;

  Py_DECREF (result);
  loop = gab_get_current_loop ();
  g_assert_null (loop);
  g_assert_true (PyErr_ExceptionMatches (PyExc_RuntimeError));
  PyErr_Clear ();
  locals = gab_task_locals_get_current ();
  g_assert_null (locals);
  PyGILState_Release (state);
}

static void
test_run_errors (void)
{
  PyGILState_STATE state = PyGILState_Ensure ();
  PyObject *not_awaitable = PyLong_FromLong (7);
  PyObject *coro, *result;

  /* Not awaitable: TypeError. */
  result = gab_run (not_awaitable);
  g_assert_null (result);
  g_assert_true (PyErr_ExceptionMatches (PyExc_TypeError));
  PyErr_Clear ();
  Py_DECREF (not_awaitable);

  /* The coroutine's exception comes out as is. */
  coro = py_eval ("fail()");
  result = gab_run (coro);
  Py_DECREF (coro);
  g_assert_null (result);
  g_assert_true (PyErr_ExceptionMatches (PyExc_ValueError));
  PyErr_Clear ();

  /* From inside a running loop: RuntimeError, and no warning about a
   * coroutine of ours that was never awaited. */
  result = run_call ("nested()");
  {
    PyObject *message, *warnings;

    g_assert_true (PyArg_ParseTuple (result, "OO", &message, &warnings));
    g_assert_true (PyUnicode_Check (message));
    g_assert_nonnull (strstr (PyUnicode_AsUTF8 (message), "running event loop"));
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE (warnings); i++)
      g_assert_null (strstr (PyUnicode_AsUTF8 (PyList_GET_ITEM (warnings, i)), "run_main"));
  }
  Py_DECREF (result);

  /* The bridge is still usable. */
  result = run_call ("add_ready(1, 1)");
  g_assert_cmpint (PyLong_AsLong (result), ==, 2);
  Py_DECREF (result);
  PyGILState_Release (state);
}

/* ---- gab_run from threads of our own ---------------------------------- */

typedef struct
{
  guint    index;
  gboolean ok;
  gint64   loop_ids[2];
} ThreadRun;

static gpointer
thread_run_main (gpointer data)
{
  ThreadRun *run = data;
  PyGILState_STATE state = PyGILState_Ensure ();

  run->ok = TRUE;
  for (guint i = 0; i < 2; i++)
    {
      PyObject *result = run_call ("info()");
      PyObject *loop;
      int via_default, via_locals, main_thread;

      if (!PyArg_ParseTuple (result, "Oppp", &loop, &via_default, &via_locals, &main_thread))
        g_error ("info() returned something else");
      run->loop_ids[i] = (gint64) (gintptr) loop;
      /* Through the task locals, C always lands on its caller's loop. With
       * several loops running at once, the default is the newest one, so
       * via_default is only checked where a single loop runs. */
      run->ok = run->ok && via_locals && !main_thread;
      Py_DECREF (result);
    }
  PyGILState_Release (state);
  return NULL;
}

static void
test_run_from_threads (void)
{
  ThreadRun runs[3];
  GThread *threads[G_N_ELEMENTS (runs)];

  for (guint i = 0; i < G_N_ELEMENTS (runs); i++)
    {
      runs[i] = (ThreadRun) { .index = i };
      threads[i] = g_thread_new ("gab-run", thread_run_main, &runs[i]);
    }
  /* The test holds no GIL: the threads take turns with it. */
  for (guint i = 0; i < G_N_ELEMENTS (runs); i++)
    {
      g_thread_join (threads[i]);
      g_assert_true (runs[i].ok);
    }
}

/* One thread alone: the default is its loop, too. */
static gpointer
single_thread_main (gpointer data)
{
  gboolean *ok = data;
  PyGILState_STATE state = PyGILState_Ensure ();
  PyObject *result = run_call ("info()");
  PyObject *loop;
  int via_default, via_locals, main_thread;

  *ok = PyArg_ParseTuple (result, "Oppp", &loop, &via_default, &via_locals, &main_thread)
        && via_default && via_locals && !main_thread;
  Py_DECREF (result);
  PyGILState_Release (state);
  return NULL;
}

static void
test_run_from_a_thread (void)
{
  gboolean ok = FALSE;

  g_thread_join (g_thread_new ("gab-run", single_thread_main, &ok));
  g_assert_true (ok);
}

/* Loops whose runs overlap on two threads, A entering first and leaving
 * first: while B still runs, its loop is the default; when both are done,
 * none is. */
static gpointer
overlap_a_main (gpointer data)
{
  PyGILState_STATE state = PyGILState_Ensure ();
  PyObject *result = run_call ("overlap_a()");

  Py_DECREF (result);
  Py_DECREF (py_eval ("a_left.set()"));
  PyGILState_Release (state);
  return NULL;
}

static gpointer
overlap_b_main (gpointer data)
{
  gboolean *ok = data;
  PyGILState_STATE state = PyGILState_Ensure ();
  PyObject *result = run_call ("overlap_b()");

  *ok = result == Py_True;
  Py_DECREF (result);
  PyGILState_Release (state);
  return NULL;
}

static void
test_run_overlapping (void)
{
  GThread *a, *b;
  gboolean b_ok = FALSE;
  PyGILState_STATE state;

  a = g_thread_new ("run-a", overlap_a_main, NULL);
  state = PyGILState_Ensure ();
  Py_DECREF (py_eval ("a_entered.wait()"));   /* without the GIL, meanwhile */
  PyGILState_Release (state);
  b = g_thread_new ("run-b", overlap_b_main, &b_ok);
  g_thread_join (a);
  g_thread_join (b);
  g_assert_true (b_ok);

  state = PyGILState_Ensure ();
  g_assert_null (gab_get_current_loop ());
  g_assert_true (PyErr_ExceptionMatches (PyExc_RuntimeError));
  PyErr_Clear ();
  PyGILState_Release (state);
}

/* ---- run_until_complete, run_forever ----------------------------------- */

static void
test_run_until_complete (void)
{
  PyGILState_STATE state = PyGILState_Ensure ();
  PyObject *loop = py_eval ("asyncio.new_event_loop()");
  PyObject *coro, *result, *closed, *ret;

  for (guint i = 0; i < 2; i++)
    {
      PyObject *info_loop;
      int via_default, via_locals, main_thread;

      coro = py_eval ("info()");
      result = gab_run_until_complete (loop, coro);
      Py_DECREF (coro);
      g_assert_nonnull (result);
      g_assert_true (PyArg_ParseTuple (result, "Oppp", &info_loop, &via_default,
                                       &via_locals, &main_thread));
      g_assert_true (info_loop == loop);
      g_assert_true (via_default);
      g_assert_true (via_locals);
      Py_DECREF (result);
    }
  /* The loop is the caller's: still open. */
  closed = PyObject_CallMethod (loop, "is_closed", NULL);
  g_assert_true (closed == Py_False);
  Py_DECREF (closed);
  ret = PyObject_CallMethod (loop, "close", NULL);
  Py_XDECREF (ret);

  /* A closed loop: the error is asyncio's, and our coroutine is not left
   * un-awaited. */
  coro = py_eval ("loop_id()");
  result = gab_run_until_complete (loop, coro);
  g_assert_null (result);
  g_assert_true (PyErr_ExceptionMatches (PyExc_RuntimeError));
  PyErr_Clear ();
  ret = PyObject_CallMethod (coro, "close", NULL);
  Py_XDECREF (ret);
  Py_DECREF (coro);
  Py_DECREF (loop);
  PyGILState_Release (state);
}

/* A C task on the runtime thread stops run_forever with
 * loop.call_soon_threadsafe (loop.stop), after awaiting Python on that
 * loop through the default task locals. */
static void
test_run_forever (void)
{
  PyGILState_STATE state = PyGILState_Ensure ();
  PyObject *loop = py_eval ("asyncio.new_event_loop()");
  PyObject *start_stopper = py_eval ("_looptest.start_stopper");
  PyObject *ret;

  stopper_seen_loop_id = 0;
  /* Scheduled on the loop, so it starts once the loop runs. */
  ret = PyObject_CallMethod (loop, "call_soon", "OO", start_stopper, loop);
  g_assert_nonnull (ret);
  Py_DECREF (ret);
  Py_DECREF (start_stopper);

  ret = gab_run_forever (loop);
  g_assert_true (ret == Py_None);
  Py_DECREF (ret);
  g_assert_cmpint (stopper_seen_loop_id, ==, (gint64) (gintptr) loop);

  /* Stopped, not closed: it runs again. */
  {
    PyObject *coro = py_eval ("add_ready(2, 3)");
    PyObject *result = gab_run_until_complete (loop, coro);

    g_assert_cmpint (PyLong_AsLong (result), ==, 5);
    Py_DECREF (result);
    Py_DECREF (coro);
  }
  ret = PyObject_CallMethod (loop, "close", NULL);
  Py_XDECREF (ret);
  Py_DECREF (loop);
  PyGILState_Release (state);
}

/* ---- current loop, task locals --------------------------------------- */

static void
test_current_loop_and_locals (void)
{
  PyGILState_STATE state = PyGILState_Ensure ();
  PyObject *result = run_call ("probe_locals()");

  /* In the start function (runtime thread): the caller's loop, and the
   * caller's context (the contextvar it set). Python called from there
   * runs in that context too; and in Python code on the loop,
   * gab_get_current_loop() is the running loop. */
  {
    int same_loop, current_is_running;
    const char *value, *from_start, *from_start_async;

    g_assert_true (PyArg_ParseTuple (result, "psssp", &same_loop, &value, &from_start,
                                     &from_start_async, &current_is_running));
    g_assert_true (same_loop);
    g_assert_cmpstr (value, ==, "caller");
    g_assert_cmpstr (from_start, ==, "caller");
    g_assert_cmpstr (from_start_async, ==, "caller");
    g_assert_true (current_is_running);
  }
  Py_DECREF (result);
  PyGILState_Release (state);
}

static gpointer
no_loop_thread_main (gpointer data)
{
  PyGILState_STATE state = PyGILState_Ensure ();
  PyObject *loop = gab_get_current_loop ();
  gboolean *ok = data;

  *ok = loop == NULL && PyErr_ExceptionMatches (PyExc_RuntimeError);
  PyErr_Clear ();
  *ok = *ok && gab_task_locals_get_current () == NULL;
  PyGILState_Release (state);
  return NULL;
}

static void
test_current_loop_none (void)
{
  gboolean ok = FALSE;

  g_thread_join (g_thread_new ("no-loop", no_loop_thread_main, &ok));
  g_assert_true (ok);
}

/* ---- the other topology: GLib main thread, asyncio thread ------------- */

typedef struct
{
  GMainLoop *main_loop;
  guint      pending;
  gint64     loop_id;
  gboolean   all_off_main;
  gboolean   callbacks_on_main;
  GError    *error;
} Topology;

static void
where_done (GObject      *source,
            GAsyncResult *result,
            gpointer      data)
{
  Topology *topo = data;
  g_autoptr(GVariant) value = gab_call_finish (result, topo->error ? NULL : &topo->error);
  gboolean python_on_main;
  gint64 loop_id;

  topo->callbacks_on_main = topo->callbacks_on_main && on_main_thread ();
  if (value != NULL)
    {
      g_variant_get (value, "(bx)", &python_on_main, &loop_id);
      topo->all_off_main = topo->all_off_main && !python_on_main && loop_id == topo->loop_id;
    }
  if (--topo->pending == 0)
    g_main_loop_quit (topo->main_loop);
}

static void
op_done (GObject      *source,
         GAsyncResult *result,
         gpointer      data)
{
  Topology *topo = data;
  g_autoptr(GVariant) value = gab_call_finish (result, topo->error ? NULL : &topo->error);

  topo->callbacks_on_main = topo->callbacks_on_main && on_main_thread ();
  /* The C future's start ran on the main thread: the runtime is its
   * context. */
  topo->all_off_main = topo->all_off_main && value != NULL && g_variant_get_boolean (value);
  if (--topo->pending == 0)
    g_main_loop_quit (topo->main_loop);
}

/* Runs a round of calls from the main thread and its GMainLoop. */
static void
topology_round (PyObject *loop)
{
  Topology topo = { 0 };

  topo.main_loop = g_main_loop_new (NULL, FALSE);
  topo.loop_id = (gint64) (gintptr) loop;
  topo.all_off_main = TRUE;
  topo.callbacks_on_main = TRUE;
  for (guint i = 0; i < 5; i++)
    {
      topo.pending++;
      gab_call_async ("looptest_py", "where", NULL, NULL, where_done, &topo);
    }
  topo.pending++;
  gab_call_async ("looptest_py", "op_on_main_thread", NULL, NULL, op_done, &topo);
  g_main_loop_run (topo.main_loop);
  g_main_loop_unref (topo.main_loop);

  g_assert_no_error (topo.error);
  g_assert_true (topo.all_off_main);
  g_assert_true (topo.callbacks_on_main);
}

static void
assert_loop_state (PyObject   *loop,
                   const char *method,
                   gboolean    expected)
{
  PyGILState_STATE state = PyGILState_Ensure ();
  PyObject *value = PyObject_CallMethod (loop, method, NULL);

  g_assert_nonnull (value);
  g_assert_cmpint (value == Py_True, ==, expected);
  Py_DECREF (value);
  PyGILState_Release (state);
}

static void
drop_loop (PyObject *loop)
{
  PyGILState_STATE state = PyGILState_Ensure ();

  Py_DECREF (loop);
  PyGILState_Release (state);
}

static void
use_default_context_runtime (void)
{
  g_autoptr(GError) error = NULL;

  gab_shutdown ();
  g_assert_true (gab_init_with_context (g_main_context_default (), &error));
  g_assert_no_error (error);
}

static void
use_own_runtime (void)
{
  g_autoptr(GError) error = NULL;

  gab_shutdown ();
  g_assert_true (gab_init (&error));
  g_assert_no_error (error);
}

static void
test_asyncio_thread (void)
{
  g_autoptr(GError) error = NULL;
  PyObject *loop, *again, *restarted;

  use_default_context_runtime ();

  loop = gab_start_asyncio_thread (&error);
  g_assert_no_error (error);
  g_assert_nonnull (loop);
  again = gab_start_asyncio_thread (&error);
  g_assert_no_error (error);
  g_assert_true (again == loop);
  drop_loop (again);
  assert_loop_state (loop, "is_running", TRUE);

  topology_round (loop);

  gab_stop_asyncio_thread ();
  assert_loop_state (loop, "is_closed", TRUE);
  drop_loop (loop);
  /* Stopping twice is harmless. */
  gab_stop_asyncio_thread ();

  /* It starts again, with a new loop. */
  restarted = gab_start_asyncio_thread (&error);
  g_assert_no_error (error);
  topology_round (restarted);
  gab_stop_asyncio_thread ();
  assert_loop_state (restarted, "is_closed", TRUE);
  drop_loop (restarted);

  use_own_runtime ();
}

/* A caller that holds the GIL: gab_start_asyncio_thread() lets go of it
 * while the loop thread starts, instead of deadlocking. */
static void
test_asyncio_thread_gil_held (void)
{
  g_autoptr(GError) error = NULL;
  PyGILState_STATE state;
  PyObject *loop;

  use_default_context_runtime ();
  state = PyGILState_Ensure ();
  loop = gab_start_asyncio_thread (&error);
  g_assert_no_error (error);
  g_assert_nonnull (loop);
  g_assert_true (PyGILState_Check ());
  PyGILState_Release (state);

  topology_round (loop);

  state = PyGILState_Ensure ();
  gab_stop_asyncio_thread ();
  PyGILState_Release (state);
  assert_loop_state (loop, "is_closed", TRUE);
  drop_loop (loop);
  use_own_runtime ();
}

/* Stopping cancels what still runs on the loop, as asyncio.run() does:
 * the Python task sees CancelledError, and the C caller's callback comes,
 * on the main thread, with G_IO_ERROR_CANCELLED. */
typedef struct
{
  gboolean  done;
  GError   *error;
} Pending;

static void
pending_done (GObject      *source,
              GAsyncResult *result,
              gpointer      data)
{
  Pending *pending = data;
  g_autoptr(GVariant) value G_GNUC_UNUSED = gab_call_finish (result, &pending->error);

  g_assert_true (on_main_thread ());
  pending->done = TRUE;
}

static void
test_asyncio_thread_stop_cancels (void)
{
  g_autoptr(GError) error = NULL;
  Pending pending = { 0 };
  PyGILState_STATE state;
  PyObject *loop;

  use_default_context_runtime ();
  loop = gab_start_asyncio_thread (&error);
  g_assert_no_error (error);

  state = PyGILState_Ensure ();
  assert_py_true ("cancelled == 0");
  PyGILState_Release (state);

  gab_call_async ("looptest_py", "sleep_forever", NULL, NULL, pending_done, &pending);
  /* A round trip after it, so that sleep_forever() is waiting when the
   * loop stops (calls start in order). */
  topology_round (loop);
  gab_stop_asyncio_thread ();
  while (!pending.done)
    g_main_context_iteration (NULL, TRUE);
  g_assert_error (pending.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&pending.error);

  state = PyGILState_Ensure ();
  assert_py_true ("cancelled == 1");
  PyGILState_Release (state);
  drop_loop (loop);
  use_own_runtime ();
}

/* ---- main ------------------------------------------------------------- */

int
main (int   argc,
      char *argv[])
{
  PyThreadState *main_state;
  PyObject *code, *ret;
  int status;

  g_test_init (&argc, &argv, NULL);

  PyImport_AppendInittab ("_looptest", looptest_init);
  Py_InitializeEx (0);
  helpers = PyImport_AddModule ("looptest_py");   /* borrowed, kept by sys.modules */
  g_assert_nonnull (helpers);
  Py_INCREF (helpers);
  /* PyEval_EvalCode() gives a module without them only None before 3.10. */
  PyDict_SetItemString (PyModule_GetDict (helpers), "__builtins__", PyEval_GetBuiltins ());
  code = Py_CompileString (helpers_source, "looptest_py", Py_file_input);
  ret = code != NULL ? PyEval_EvalCode (code, PyModule_GetDict (helpers),
                                        PyModule_GetDict (helpers)) : NULL;
  if (ret == NULL)
    {
      PyErr_Print ();
      return 1;
    }
  Py_DECREF (ret);
  Py_DECREF (code);

  g_test_add_func ("/loop/run/result", test_run_result);
  g_test_add_func ("/loop/run/repeatedly", test_run_repeatedly);
  g_test_add_func ("/loop/run/cleans-up", test_run_cleans_up);
  g_test_add_func ("/loop/run/default-is-cleared", test_run_default_is_cleared);
  g_test_add_func ("/loop/run/errors", test_run_errors);
  g_test_add_func ("/loop/run/from-a-thread", test_run_from_a_thread);
  g_test_add_func ("/loop/run/from-threads", test_run_from_threads);
  g_test_add_func ("/loop/run/overlapping", test_run_overlapping);
  g_test_add_func ("/loop/run-until-complete", test_run_until_complete);
  g_test_add_func ("/loop/run-forever/stopped-by-runtime", test_run_forever);
  g_test_add_func ("/loop/current-loop/locals", test_current_loop_and_locals);
  g_test_add_func ("/loop/current-loop/none", test_current_loop_none);
  g_test_add_func ("/loop/asyncio-thread/basic", test_asyncio_thread);
  g_test_add_func ("/loop/asyncio-thread/gil-held", test_asyncio_thread_gil_held);
  g_test_add_func ("/loop/asyncio-thread/stop-cancels", test_asyncio_thread_stop_cancels);

  /* The tests take the GIL as they need it, like C code would. */
  main_state = PyEval_SaveThread ();
  status = g_test_run ();
  PyEval_RestoreThread (main_state);

  gab_shutdown ();
  Py_DECREF (helpers);
  if (Py_FinalizeEx () < 0)
    status = 1;
  return status;
}
