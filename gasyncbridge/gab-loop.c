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
 * Python work there. Loops may run like this on several threads at once:
 * the default is the loop that started last among those still running, and
 * when it stops, the one before it again (a stack, in `running`).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gasyncbridge.h>
#include "gab-python.h"
#include "gab-task-locals-private.h"
#include "gab-runtime-private.h"
#include "gab-lifecycle.h"
#include "gab-loop-private.h"
#include "gab-embed.h"
#include "gab-python-sources.h"

#include <pthread.h>

/* The functions of gasyncbridge/python/_loop.py; GIL. */
static PyObject *run_main;
static PyObject *close_if_unstarted;
static PyObject *serve;
static PyObject *stop_serving;

/* ---- the default task locals ----------------------------------------- */

/* Task locals of the loops running through this file, newest first,
 * strong references. Only touched with the GIL held, which orders the
 * changes with the gab_task_locals_set_default() calls that follow them:
 * the store there happens before anything that could release the GIL. */
static GQueue running = G_QUEUE_INIT;

static void
default_update (void)
{
  gab_task_locals_set_default (g_queue_peek_head (&running));
}

/* GIL held. Takes a reference of @locals. */
static void
running_push (GabTaskLocals *locals)
{
  g_queue_push_head (&running, gab_task_locals_ref (locals));
  default_update ();
}

/* GIL held. Drops the reference running_push() took. */
static void
running_remove (GabTaskLocals *locals)
{
  if (g_queue_remove (&running, locals))
    {
      default_update ();
      gab_task_locals_unref (locals);
    }
}

/* enter(): the running loop, in the current context, joins `running`;
 * returns a capsule that leave() gives back. */
static void
capsule_free (PyObject *capsule)
{
  GabTaskLocals *locals = PyCapsule_GetPointer (capsule, "gab-task-locals");

  if (locals != NULL)
    gab_task_locals_unref (locals);
}

static PyObject *
enter_func (PyObject *self,
            PyObject *unused)
{
  PyObject *loop = gab_py_running_loop ();
  GabTaskLocals *locals;
  PyObject *token;

  if (loop == NULL)
    {
      PyErr_SetString (PyExc_RuntimeError, "gasyncbridge: no running loop");
      return NULL;
    }
  locals = gab_task_locals_new (loop, NULL);
  Py_DECREF (loop);
  if (locals == NULL)
    return NULL;
  token = PyCapsule_New (locals, "gab-task-locals", capsule_free);
  if (token == NULL)
    {
      gab_task_locals_unref (locals);
      return NULL;
    }
  running_push (locals);
  return token;
}

static PyObject *
leave_func (PyObject *self,
            PyObject *token)
{
  GabTaskLocals *locals = PyCapsule_GetPointer (token, "gab-task-locals");

  if (locals == NULL)
    return NULL;
  running_remove (locals);
  Py_RETURN_NONE;
}

static PyMethodDef enter_def = { "_enter", enter_func, METH_NOARGS, NULL };
static PyMethodDef leave_def = { "_leave", leave_func, METH_O, NULL };

static gboolean
loop_start (void)
{
  PyObject *globals;

  if (run_main != NULL)
    return TRUE;
  globals = gab_py_run_file (&gab_py_source_loop, "gasyncbridge._loop", NULL, NULL);
  if (globals == NULL)
    return FALSE;
  close_if_unstarted = Py_XNewRef (PyDict_GetItemString (globals, "close_if_unstarted"));
  serve = Py_XNewRef (PyDict_GetItemString (globals, "serve"));
  stop_serving = Py_XNewRef (PyDict_GetItemString (globals, "stop_serving"));
  run_main = Py_XNewRef (PyDict_GetItemString (globals, "run_main"));
  Py_DECREF (globals);
  return run_main != NULL;
}

static GabSubsystem loop_subsystem = {
  .name = "loop",
  .start = loop_start,
};

static gboolean
is_awaitable (PyObject *object)
{
  PyTypeObject *type = Py_TYPE (object);

  if (gab_py_is_awaitable (object))
    return TRUE;
  PyErr_Format (PyExc_TypeError,
                "gasyncbridge: an awaitable is required, not %s", type->tp_name);
  return FALSE;
}

/* run_main(awaitable, enter, leave): a coroutine that keeps its loop in
 * `running` while it runs. */
static PyObject *
wrap_main (PyObject *awaitable)
{
  PyObject *enter, *leave, *coro;

  if (!gab_lifecycle_start (&loop_subsystem) || !is_awaitable (awaitable))
    return NULL;
  enter = PyCFunction_New (&enter_def, NULL);
  leave = PyCFunction_New (&leave_def, NULL);
  coro = enter != NULL && leave != NULL
         ? PyObject_CallFunctionObjArgs (run_main, awaitable, enter, leave, NULL)
         : NULL;
  Py_XDECREF (enter);
  Py_XDECREF (leave);
  return coro;
}

PyObject *
gab_loop_wrap_main (PyObject *awaitable)
{
  return wrap_main (awaitable);
}

/* Calls @callable (transfer full; %NULL when looking it up failed) with
 * run_main's coroutine for @awaitable, then drops both. If the coroutine
 * never started (the loop was closed or running, say), it is closed, so
 * that Python does not warn about a coroutine of ours never awaited. */
static PyObject *
run_wrapped (PyObject *callable,
             PyObject *awaitable)
{
  PyObject *coro, *ret;

  if (callable == NULL)
    return NULL;
  coro = wrap_main (awaitable);
  ret = coro != NULL ? PyObject_CallOneArg (callable, coro) : NULL;
  if (ret == NULL && coro != NULL)
    {
      PyObject *exception = PyErr_GetRaisedException ();
      PyObject *closed = PyObject_CallOneArg (close_if_unstarted, coro);

      Py_XDECREF (closed);
      PyErr_SetRaisedException (exception);   /* replaces close()'s own */
    }
  Py_XDECREF (coro);
  Py_DECREF (callable);
  return ret;
}

/**
 * gab_run_until_complete:
 * @loop: an asyncio event loop that is not running
 * @awaitable: what to run
 *
 * `loop.run_until_complete (awaitable)`, with @loop as the default task
 * locals meanwhile, and the runtime started. The loop stays open: close it
 * yourself. Needs the GIL.
 *
 * Returns: (transfer full) (nullable): the result, or %NULL with the
 *   exception set
 *
 * Since: 0.1
 */
PyObject *
gab_run_until_complete (PyObject *loop,
                        PyObject *awaitable)
{
  g_autoptr(GError) error = NULL;

  g_return_val_if_fail (loop != NULL, NULL);
  g_return_val_if_fail (awaitable != NULL, NULL);
  g_return_val_if_fail (GAB_GIL_HELD (), NULL);

  if (!gab_runtime_ensure (&error))
    return gab_error_to_python (error);
  return run_wrapped (PyObject_GetAttrString (loop, "run_until_complete"),
                      awaitable);
}

/**
 * gab_run:
 * @awaitable: what to run
 *
 * `asyncio.run (awaitable)`: a new event loop runs @awaitable, then
 * remaining tasks are cancelled, async generators and the default executor
 * are shut down, and the loop is closed. Works repeatedly and from any
 * thread that runs no loop (a thread of your own: take the GIL with
 * PyGILState_Ensure() first). The runtime is started, and the loop is the
 * default task locals while it runs. Needs the GIL.
 *
 * Returns: (transfer full) (nullable): the result, or %NULL with the
 *   exception set (RuntimeError if a loop runs on this thread already)
 *
 * Since: 0.1
 */
PyObject *
gab_run (PyObject *awaitable)
{
  g_autoptr(GError) error = NULL;
  PyObject *running_loop;

  g_return_val_if_fail (awaitable != NULL, NULL);
  g_return_val_if_fail (GAB_GIL_HELD (), NULL);

  if (!gab_lifecycle_start (&loop_subsystem))
    return NULL;
  running_loop = gab_py_running_loop ();
  if (running_loop != NULL)
    {
      Py_DECREF (running_loop);
      PyErr_SetString (PyExc_RuntimeError,
                       "gab_run() cannot be called from a running event loop");
      return NULL;
    }
  if (!gab_runtime_ensure (&error))
    return gab_error_to_python (error);
  return run_wrapped (PyObject_GetAttrString (gab_py.asyncio, "run"),
                      awaitable);
}

/**
 * gab_run_forever:
 * @loop: an asyncio event loop that is not running
 *
 * `loop.run_forever ()` with @loop as the default task locals, until
 * something calls `loop.stop ()` — from C on another thread (the runtime
 * thread, say), with the GIL: `loop.call_soon_threadsafe (loop.stop)`. The
 * loop stays open: close it yourself. Needs the GIL.
 *
 * Returns: (transfer full) (nullable): None, or %NULL with the exception set
 *
 * Since: 0.1
 */
PyObject *
gab_run_forever (PyObject *loop)
{
  g_autoptr(GError) error = NULL;
  GabTaskLocals *locals;
  PyObject *ret;

  g_return_val_if_fail (loop != NULL, NULL);
  g_return_val_if_fail (GAB_GIL_HELD (), NULL);

  if (!gab_runtime_ensure (&error))
    return gab_error_to_python (error);
  locals = gab_task_locals_new (loop, NULL);
  if (locals == NULL)
    return NULL;
  running_push (locals);
  ret = PyObject_CallMethod (loop, "run_forever", NULL);
  running_remove (locals);
  gab_task_locals_unref (locals);
  return ret;
}

/* ---- asyncio on a background thread ---------------------------------- */

/* `thread_lock` guards the fields below it. Lock order: the GIL, then
 * `thread_lock`; nobody waits for the GIL while holding it. */
static GMutex         thread_lock;
static GCond          thread_cond;
static GThread       *asyncio_thread;
static gboolean       thread_ready;      /* the loop runs, or failed to */
static GError        *thread_error;      /* why it failed */
static PyObject      *asyncio_loop;      /* strong; refcount with the GIL */
static PyObject      *asyncio_stop;      /* the future serve() awaits */
static PyThreadState *embedder_tstate;   /* set while we embed Python */
static gboolean       python_finalized;  /* by gab_stop_asyncio_thread() */

/* In a child of fork() only the forking thread is left. Another thread may
 * have held `thread_lock` at the fork (starting or stopping the loop from a
 * C thread without the GIL; or the loop thread, with it, when a thread
 * without the GIL forked): it would stay held for ever. Nor is the
 * gab-asyncio thread in the child (if it forked itself, its loop is the
 * parent's, which asyncio does not let a child use), so the child has none:
 * gab_start_asyncio_thread() starts one of its own rather than wait for the
 * lost one or hand out its loop, and gab_stop_asyncio_thread() has nothing
 * to join. The parent's references are only leaked: dropping them needs the
 * GIL. Python's own state (embedder_tstate, python_finalized) is the
 * child's too, and kept. */
static void
loop_atfork_child (void)
{
  g_mutex_init (&thread_lock);
  g_cond_init (&thread_cond);
  asyncio_thread = NULL;
  thread_ready = FALSE;
  thread_error = NULL;
  asyncio_loop = NULL;
  asyncio_stop = NULL;
}

/* Registered when the library is loaded, not through the lifecycle's
 * after-fork hook: that runs only for os.fork(), not for the fork() of the
 * C programs this thread is for, and a lazy registration could itself be
 * cut by a fork. */
__attribute__ ((constructor)) static void
loop_register_atfork (void)
{
  pthread_atfork (NULL, NULL, loop_atfork_child);
}

/* serve()'s ready(loop, stop): the loop runs. GIL held. */
static PyObject *
ready_func (PyObject *self,
            PyObject *args)
{
  PyObject *loop, *stop;

  if (!PyArg_ParseTuple (args, "OO", &loop, &stop))
    return NULL;
  g_mutex_lock (&thread_lock);
  Py_XSETREF (asyncio_loop, Py_NewRef (loop));
  Py_XSETREF (asyncio_stop, Py_NewRef (stop));
  thread_ready = TRUE;
  g_cond_broadcast (&thread_cond);
  g_mutex_unlock (&thread_lock);
  Py_RETURN_NONE;
}

static PyMethodDef ready_def = { "_ready", ready_func, METH_VARARGS, NULL };

static gpointer
asyncio_thread_main (gpointer data)
{
  PyGILState_STATE state = PyGILState_Ensure ();
  PyObject *coro = NULL, *ret = NULL, *loop, *stop;
  GError *error = NULL;

  if (gab_lifecycle_start (&loop_subsystem))
    {
      PyObject *ready = PyCFunction_New (&ready_def, NULL);

      if (ready != NULL)
        coro = PyObject_CallOneArg (serve, ready);
      Py_XDECREF (ready);
    }
  /* asyncio.run() semantics: when serve() returns, the tasks left are
   * cancelled, async generators and the default executor shut down, and
   * the loop closed. */
  if (coro != NULL)
    ret = gab_run (coro);
  Py_XDECREF (coro);
  if (ret == NULL)
    gab_error_set_from_python (&error);
  Py_XDECREF (ret);

  g_mutex_lock (&thread_lock);
  if (!thread_ready)
    {
      /* Tell the starter why there is no loop. */
      thread_error = g_steal_pointer (&error);
      thread_ready = TRUE;
      g_cond_broadcast (&thread_cond);
    }
  /* Stopped (or its serve() task was cancelled): the loop is closed, and
   * gab_start_asyncio_thread() must not hand it out any more. */
  loop = g_steal_pointer (&asyncio_loop);
  stop = g_steal_pointer (&asyncio_stop);
  g_mutex_unlock (&thread_lock);
  Py_XDECREF (loop);
  Py_XDECREF (stop);
  if (error != NULL)
    g_debug ("the gab-asyncio loop ended with an error: %s", error->message);
  g_clear_error (&error);

  PyGILState_Release (state);
  return NULL;
}

/**
 * gab_start_asyncio_thread:
 * @error: return location for a #GError
 *
 * Runs an asyncio event loop on a background thread, "gab-asyncio", for
 * programs whose main thread runs a GMainLoop (use it with
 * gab_init_with_context()). Embeds Python first if it is not initialized,
 * the way gab_main() does (the program's directory is importable), and
 * then releases the GIL so that the loop can run. The loop becomes the
 * default task locals, so gab_call_async() from the main thread lands
 * there, its callbacks coming back to the main thread's context. Calling
 * it again returns the same loop; in a child of fork(), which has no
 * thread of its parent's, a new one (call gab_init() there first). Needs
 * no GIL, and releases it while it waits for the loop if the caller holds
 * it.
 *
 * Returns: (transfer full) (nullable): the loop (drop it with the GIL
 *   held), or %NULL with @error set
 *
 * Since: 0.1
 */
PyObject *
gab_start_asyncio_thread (GError **error)
{
  PyThreadState *saved = NULL;
  PyGILState_STATE state;
  PyObject *loop;

  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  g_mutex_lock (&thread_lock);
  if (asyncio_thread == NULL)
    {
      if (!Py_IsInitialized ())
        {
          if (python_finalized)
            {
              g_mutex_unlock (&thread_lock);
              g_set_error_literal (error, GAB_ERROR, GAB_ERROR_PYTHON_NOT_INITIALIZED,
                                   "Python was finalized by gab_stop_asyncio_thread() "
                                   "and cannot be embedded again");
              return NULL;
            }
          /* No Python signal handler: it would wait for the main thread,
           * which is GLib's and never runs Python, so Ctrl-C would be lost. */
          if (!gab_python_embed (0, NULL, FALSE, error))
            {
              g_mutex_unlock (&thread_lock);
              return NULL;
            }
          /* We keep the main thread state; the GIL goes to the loop. */
          embedder_tstate = PyEval_SaveThread ();
        }
      thread_ready = FALSE;
      asyncio_thread = g_thread_try_new ("gab-asyncio", asyncio_thread_main, NULL, error);
      if (asyncio_thread == NULL)
        {
          g_mutex_unlock (&thread_lock);
          return NULL;
        }
    }
  g_mutex_unlock (&thread_lock);

  /* The loop thread needs the GIL to start: never wait holding it. */
  if (PyGILState_Check ())
    saved = PyEval_SaveThread ();
  g_mutex_lock (&thread_lock);
  while (!thread_ready)
    g_cond_wait (&thread_cond, &thread_lock);
  g_mutex_unlock (&thread_lock);
  if (saved != NULL)
    PyEval_RestoreThread (saved);

  state = PyGILState_Ensure ();
  g_mutex_lock (&thread_lock);
  loop = asyncio_loop != NULL ? Py_NewRef (asyncio_loop) : NULL;
  if (loop == NULL)
    {
      if (thread_error != NULL)
        g_propagate_error (error, g_error_copy (thread_error));
      else
        g_set_error_literal (error, GAB_ERROR, GAB_ERROR_NO_LOOP,
                             "The gab-asyncio loop has stopped");
    }
  g_mutex_unlock (&thread_lock);
  PyGILState_Release (state);

  if (loop == NULL)
    gab_stop_asyncio_thread ();
  return loop;
}

/**
 * gab_stop_asyncio_thread:
 *
 * Stops the loop started by gab_start_asyncio_thread() — the way
 * asyncio.run() ends: tasks still running are cancelled, async generators
 * and the default executor are shut down, and the loop is closed — and
 * joins its thread. If gab_start_asyncio_thread() embedded Python, Python
 * is finalized too (and gab_shutdown() runs first, at its exit); it cannot
 * be embedded again afterwards. Call it from the thread that called
 * gab_start_asyncio_thread(). Does nothing if no loop was started. Needs
 * no GIL.
 *
 * Since: 0.1
 */
void
gab_stop_asyncio_thread (void)
{
  GThread *thread;
  PyObject *loop, *stop;
  PyGILState_STATE state;

  g_mutex_lock (&thread_lock);
  thread = asyncio_thread;
  if (thread != NULL && thread != g_thread_self ())
    asyncio_thread = NULL;
  g_mutex_unlock (&thread_lock);
  if (thread == NULL)
    return;
  if (thread == g_thread_self ())
    {
      g_critical ("gab_stop_asyncio_thread() must not be called from the "
                  "gab-asyncio thread itself");
      return;
    }
  if (!Py_IsInitialized ())
    {
      g_critical ("gab_stop_asyncio_thread(): Python was finalized before the "
                  "gab-asyncio loop was stopped");
      return;
    }

  state = PyGILState_Ensure ();
  g_mutex_lock (&thread_lock);
  loop = g_steal_pointer (&asyncio_loop);
  stop = g_steal_pointer (&asyncio_stop);
  thread_ready = FALSE;
  g_clear_error (&thread_error);
  g_mutex_unlock (&thread_lock);
  if (loop != NULL && stop != NULL)
    {
      /* A loop that ended by itself is closed already: nothing to stop. */
      PyObject *ret = PyObject_CallMethod (loop, "call_soon_threadsafe", "OO",
                                           stop_serving, stop);

      Py_XDECREF (ret);
      PyErr_Clear ();
    }
  Py_XDECREF (stop);
  Py_XDECREF (loop);
  /* Join without the GIL: the loop thread needs it to finish. */
  Py_BEGIN_ALLOW_THREADS
  g_thread_join (thread);
  Py_END_ALLOW_THREADS
  PyGILState_Release (state);

  if (embedder_tstate != NULL)
    {
      PyEval_RestoreThread (g_steal_pointer (&embedder_tstate));
      python_finalized = TRUE;
      /* atexit runs gab_shutdown() before Python goes. */
      Py_FinalizeEx ();
    }
}
