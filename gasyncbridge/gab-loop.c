/* gab-loop.c: running asyncio event loops from C.
 *
 * Two topologies. By default Python keeps the main thread: C calls
 * gab_run() or gab_run_until_complete() there and the runtime thread does
 * the GLib work. A GLib or GTK program whose main thread runs its own
 * GMainLoop instead calls gab_init_with_context (g_main_context_default ())
 * and gab_start_asyncio_thread(): asyncio then runs on "gab-asyncio".
 *
 * While a loop runs through these functions, its task locals are the
 * default (gab_task_locals_set_default()), so C code with no other
 * knowledge of a loop — an async main on the runtime thread, say — sends its
 * Python work there.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gab-private.h"

static const char helpers_source[] =
  "async def run_main(aw, enter, leave):\n"
  "    token = enter()\n"
  "    try:\n"
  "        return await aw\n"
  "    finally:\n"
  "        leave(token)\n";

static PyObject *run_main;   /* the coroutine function above */

/* enter(): make the running loop, in the current context, the default
 * task locals; return the previous default in a capsule. */
static void
capsule_free (PyObject *capsule)
{
  GabTaskLocals *locals = PyCapsule_GetPointer (capsule, "gab-task-locals");

  if (locals != NULL)
    gab_task_locals_unref (locals);
}

static GabTaskLocals *
default_swap (GabTaskLocals *locals)
{
  /* gab_task_locals_set_default() has no getter of the old value: keep our
   * own record of what we set. */
  static GabTaskLocals *ours;
  GabTaskLocals *prev = ours;

  ours = locals != NULL ? gab_task_locals_ref (locals) : NULL;
  gab_task_locals_set_default (locals);
  return prev;
}

static PyObject *
enter_func (PyObject *self,
            PyObject *unused)
{
  PyObject *loop = gab_py_running_loop ();
  GabTaskLocals *locals, *prev;

  if (loop == NULL)
    {
      PyErr_SetString (PyExc_RuntimeError, "gasyncbridge: no running loop");
      return NULL;
    }
  locals = gab_task_locals_new (loop, NULL);
  Py_DECREF (loop);
  if (locals == NULL)
    return NULL;
  prev = default_swap (locals);
  gab_task_locals_unref (locals);
  if (prev == NULL)
    Py_RETURN_NONE;
  return PyCapsule_New (prev, "gab-task-locals", capsule_free);
}

static PyObject *
leave_func (PyObject *self,
            PyObject *token)
{
  GabTaskLocals *prev = NULL, *ours;

  if (PyCapsule_CheckExact (token))
    prev = PyCapsule_GetPointer (token, "gab-task-locals");
  ours = default_swap (prev);
  if (ours != NULL)
    gab_task_locals_unref (ours);
  Py_RETURN_NONE;
}

static PyMethodDef enter_def = { "_enter", enter_func, METH_NOARGS, NULL };
static PyMethodDef leave_def = { "_leave", leave_func, METH_O, NULL };

static gboolean
helpers_init (void)
{
  PyObject *globals, *ret;

  if (run_main != NULL)
    return TRUE;
  if (!gab_python_ensure ())
    return FALSE;
  globals = PyDict_New ();
  if (globals == NULL)
    return FALSE;
  PyDict_SetItemString (globals, "__builtins__", PyEval_GetBuiltins ());
  ret = PyRun_String (helpers_source, Py_file_input, globals, globals);
  if (ret != NULL)
    {
      Py_DECREF (ret);
      run_main = PyDict_GetItemString (globals, "run_main");
      Py_XINCREF (run_main);
    }
  Py_DECREF (globals);
  return run_main != NULL;
}

/* run_main(awaitable, enter, leave): a coroutine that keeps the default
 * task locals pointing at its loop while it runs. */
static PyObject *
wrap_main (PyObject *awaitable)
{
  PyObject *enter, *leave, *coro;

  if (!helpers_init ())
    return NULL;
  if (Py_TYPE (awaitable)->tp_as_async == NULL
      || Py_TYPE (awaitable)->tp_as_async->am_await == NULL)
    {
      PyErr_Format (PyExc_TypeError,
                    "gasyncbridge: an awaitable is required, not %s",
                    Py_TYPE (awaitable)->tp_name);
      return NULL;
    }
  enter = PyCFunction_New (&enter_def, NULL);
  leave = PyCFunction_New (&leave_def, NULL);
  coro = enter != NULL && leave != NULL
         ? PyObject_CallFunctionObjArgs (run_main, awaitable, enter, leave, NULL)
         : NULL;
  Py_XDECREF (enter);
  Py_XDECREF (leave);
  return coro;
}

/**
 * gab_run_until_complete:
 * @loop: an asyncio event loop that is not running
 * @awaitable: what to run
 *
 * `loop.run_until_complete (awaitable)`, with @loop as the default task
 * locals meanwhile, and the runtime started. Needs the GIL.
 *
 * Returns: (transfer full) (nullable): the result, or %NULL with the
 *   exception set
 */
PyObject *
gab_run_until_complete (PyObject *loop,
                        PyObject *awaitable)
{
  g_autoptr(GError) error = NULL;
  PyObject *coro, *ret;

  g_return_val_if_fail (loop != NULL, NULL);
  g_return_val_if_fail (awaitable != NULL, NULL);

  if (!gab_runtime_ensure (&error))
    return gab_error_to_python (error);
  coro = wrap_main (awaitable);
  if (coro == NULL)
    return NULL;
  ret = PyObject_CallMethod (loop, "run_until_complete", "O", coro);
  Py_DECREF (coro);
  return ret;
}

/**
 * gab_run:
 * @awaitable: what to run
 *
 * `asyncio.run (awaitable)`: a new event loop runs @awaitable, then
 * remaining tasks are cancelled, async generators and the default executor
 * are shut down, and the loop is closed. Works repeatedly and from any
 * thread. The runtime is started, and the loop is the default task locals
 * while it runs. Needs the GIL.
 *
 * Returns: (transfer full) (nullable): the result, or %NULL with the
 *   exception set
 */
PyObject *
gab_run (PyObject *awaitable)
{
  g_autoptr(GError) error = NULL;
  PyObject *coro, *ret;

  g_return_val_if_fail (awaitable != NULL, NULL);

  if (!gab_runtime_ensure (&error))
    return gab_error_to_python (error);
  coro = wrap_main (awaitable);
  if (coro == NULL)
    return NULL;
  ret = PyObject_CallMethod (gab_py.asyncio, "run", "O", coro);
  Py_DECREF (coro);
  return ret;
}

/**
 * gab_run_forever:
 * @loop: an asyncio event loop that is not running
 *
 * `loop.run_forever ()` with @loop as the default task locals, until
 * something calls `loop.stop ()` — from C on another thread, with the GIL,
 * `loop.call_soon_threadsafe (loop.stop)`. Needs the GIL.
 *
 * Returns: (transfer full) (nullable): None, or %NULL with the exception set
 */
PyObject *
gab_run_forever (PyObject *loop)
{
  g_autoptr(GError) error = NULL;
  GabTaskLocals *locals, *prev, *ours;
  PyObject *ret;

  g_return_val_if_fail (loop != NULL, NULL);

  if (!gab_runtime_ensure (&error))
    return gab_error_to_python (error);
  locals = gab_task_locals_new (loop, NULL);
  if (locals == NULL)
    return NULL;
  prev = default_swap (locals);
  gab_task_locals_unref (locals);
  ret = PyObject_CallMethod (loop, "run_forever", NULL);
  ours = default_swap (prev);
  g_clear_pointer (&ours, gab_task_locals_unref);
  g_clear_pointer (&prev, gab_task_locals_unref);
  return ret;
}

/* ---- asyncio on a background thread ---------------------------------- */

static GMutex         thread_lock;
static GCond          thread_cond;
static GThread       *asyncio_thread;
static PyObject      *asyncio_loop;      /* strong; GIL */
static gboolean       thread_ready;
static GError        *thread_error;
static PyThreadState *embedder_tstate;   /* set when we initialized Python */

static gpointer
asyncio_thread_main (gpointer data)
{
  PyGILState_STATE state = PyGILState_Ensure ();
  PyObject *loop = NULL, *ret;
  GabTaskLocals *locals = NULL;
  GError *error = NULL;

  if (gab_python_ensure ())
    loop = PyObject_CallNoArgs (gab_py.new_event_loop);
  if (loop != NULL)
    {
      ret = PyObject_CallMethod (gab_py.asyncio, "set_event_loop", "O", loop);
      Py_XDECREF (ret);
      locals = ret != NULL ? gab_task_locals_new (loop, NULL) : NULL;
    }
  if (locals == NULL)
    gab_error_set_from_python (&error);
  else
    gab_task_locals_set_default (locals);

  g_mutex_lock (&thread_lock);
  asyncio_loop = loop != NULL ? Py_NewRef (loop) : NULL;
  thread_error = error;
  thread_ready = TRUE;
  g_cond_broadcast (&thread_cond);
  g_mutex_unlock (&thread_lock);

  if (locals != NULL)
    {
      ret = PyObject_CallMethod (loop, "run_forever", NULL);
      if (ret == NULL)
        PyErr_Print ();
      Py_XDECREF (ret);
      /* Stopped: finish the way asyncio.run does. */
      ret = PyObject_CallMethod (loop, "run_until_complete", "N",
                                 PyObject_CallMethod (loop, "shutdown_asyncgens", NULL));
      Py_XDECREF (ret);
      PyErr_Clear ();
      ret = PyObject_CallMethod (loop, "close", NULL);
      Py_XDECREF (ret);
      PyErr_Clear ();
      gab_task_locals_set_default (NULL);
      gab_task_locals_unref (locals);
    }
  Py_XDECREF (loop);
  PyGILState_Release (state);
  return NULL;
}

/**
 * gab_start_asyncio_thread:
 * @error: return location for a #GError
 *
 * Runs an asyncio event loop on a background thread, "gab-asyncio", for
 * programs whose main thread runs a GMainLoop (use it with
 * gab_init_with_context()). Embeds Python first if it is not initialized
 * (and then releases the GIL, so the loop can run). The loop becomes the
 * default task locals, so gab_call_async() from the main thread lands
 * there. Calling it again returns the same loop. No GIL needed.
 *
 * Returns: (transfer full) (nullable): the loop (drop it with the GIL
 *   held), or %NULL with @error set
 */
PyObject *
gab_start_asyncio_thread (GError **error)
{
  PyObject *loop;
  PyGILState_STATE state;

  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  g_mutex_lock (&thread_lock);
  if (asyncio_thread == NULL)
    {
      if (!Py_IsInitialized ())
        {
          Py_InitializeEx (0);
          /* We keep the main thread state; the GIL goes to the loop. */
          embedder_tstate = PyEval_SaveThread ();
        }
      thread_ready = FALSE;
      asyncio_thread = g_thread_new ("gab-asyncio", asyncio_thread_main, NULL);
    }
  while (!thread_ready)
    g_cond_wait (&thread_cond, &thread_lock);
  if (thread_error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&thread_error));
      g_mutex_unlock (&thread_lock);
      gab_stop_asyncio_thread ();
      return NULL;
    }
  g_mutex_unlock (&thread_lock);

  state = PyGILState_Ensure ();
  loop = Py_XNewRef (asyncio_loop);
  PyGILState_Release (state);
  return loop;
}

/**
 * gab_stop_asyncio_thread:
 *
 * Stops the loop started by gab_start_asyncio_thread() (its async
 * generators are shut down and it is closed) and joins its thread. If that
 * call embedded Python, Python is finalized too, after gab_shutdown(). Call
 * it from the thread that called gab_start_asyncio_thread(). No GIL needed.
 */
void
gab_stop_asyncio_thread (void)
{
  GThread *thread;
  PyObject *loop;
  PyGILState_STATE state;

  g_mutex_lock (&thread_lock);
  thread = g_steal_pointer (&asyncio_thread);
  g_mutex_unlock (&thread_lock);
  if (thread == NULL)
    return;

  state = PyGILState_Ensure ();
  loop = g_steal_pointer (&asyncio_loop);
  if (loop != NULL)
    {
      PyObject *stop = PyObject_GetAttrString (loop, "stop");
      PyObject *ret = stop != NULL
                      ? PyObject_CallMethod (loop, "call_soon_threadsafe", "O", stop)
                      : NULL;

      Py_XDECREF (ret);
      Py_XDECREF (stop);
      PyErr_Clear ();
      Py_DECREF (loop);
    }
  /* Join without the GIL: the loop thread needs it to finish. */
  Py_BEGIN_ALLOW_THREADS
  g_thread_join (thread);
  Py_END_ALLOW_THREADS
  PyGILState_Release (state);

  if (embedder_tstate != NULL)
    {
      PyEval_RestoreThread (g_steal_pointer (&embedder_tstate));
      /* atexit runs gab_shutdown() before Python goes. */
      Py_FinalizeEx ();
    }
}
