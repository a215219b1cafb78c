/* gab-python.c: interpreter glue shared by the bridge — cached lookups,
 * the GIL on the runtime thread, references dropped from threads that do
 * not hold the GIL, and the shutdown that runs at interpreter exit.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gab-private.h"
#include "gab-python-sources.h"

GabPy gab_py;
static gboolean python_ready;

gboolean
gab_py_finalizing (void)
{
  return gab_compat_is_finalizing ();
}

/* Python is usable from this process: initialized and not finalizing. */
static gboolean
py_usable (void)
{
  return Py_IsInitialized () && !gab_compat_is_finalizing ();
}

/* ---- references dropped without the GIL ------------------------------ */

typedef struct
{
  GabLoopItem item;
  PyObject   *object;
} DecrefItem;

static void
decref_item_run (GabLoopItem *item,
                 gboolean     alive)
{
  DecrefItem *self = (DecrefItem *) item;

  Py_DECREF (self->object);
  g_free (self);
}

void
gab_py_decref (PyObject *object)
{
  DecrefItem *item;

  if (object == NULL)
    return;
  if (!Py_IsInitialized ())
    return;   /* the interpreter is gone, and its objects with it */
  if (PyGILState_Check ())
    {
      Py_DECREF (object);
      return;
    }
  /* No GIL here: the reference travels to the next thread that has it. */
  item = g_new (DecrefItem, 1);
  item->item.run = decref_item_run;
  item->object = object;
  gab_orphan_push (&item->item);
}

struct _GabPyRef
{
  gatomicrefcount ref_count;
  PyObject *object;
};

GabPyRef *
gab_py_ref_new (PyObject *object)
{
  GabPyRef *ref = g_new (GabPyRef, 1);

  g_atomic_ref_count_init (&ref->ref_count);
  ref->object = Py_NewRef (object);
  return ref;
}

GabPyRef *
gab_py_ref_ref (GabPyRef *ref)
{
  g_atomic_ref_count_inc (&ref->ref_count);
  return ref;
}

void
gab_py_ref_unref (GabPyRef *ref)
{
  if (ref != NULL && g_atomic_ref_count_dec (&ref->ref_count))
    {
      gab_py_decref (ref->object);
      g_free (ref);
    }
}

PyObject *
gab_py_ref_get (GabPyRef *ref)
{
  return ref->object;
}

/* ---- the GIL on the runtime thread ----------------------------------- */

/* The runtime thread keeps one PyThreadState for its whole life: creating
 * and destroying a thread state per call is where other bridges lose most
 * of their time. It is pinned by one PyGILState_Ensure that is released
 * only when the thread exits. */
static __thread gboolean         pinned;
static __thread PyGILState_STATE pin_state;
static __thread PyThreadState   *pin_tstate;

PyGILState_STATE
gab_gil_acquire (void)
{
  if (G_UNLIKELY (!pinned) && gab_is_runtime_thread ())
    gab_python_pin_runtime_thread ();
  return PyGILState_Ensure ();
}

void
gab_gil_release (PyGILState_STATE state)
{
  PyGILState_Release (state);
}

void
gab_python_pin_runtime_thread (void)
{
  if (G_LIKELY (pinned) || !py_usable ())
    return;
  pin_state = PyGILState_Ensure ();
  pin_tstate = PyEval_SaveThread ();
  pinned = TRUE;
}

static void
runtime_thread_exit (void)
{
  if (!pinned)
    return;
  pinned = FALSE;
  if (!py_usable ())
    return;   /* taking the GIL now would stop this thread for good */
  /* Retake the GIL with the pinned state, then let the outer
   * PyGILState_Release delete it (and release the GIL). */
  PyEval_RestoreThread (pin_tstate);
  PyGILState_Release (pin_state);
  pin_tstate = NULL;
}

/* ---- shutdown -------------------------------------------------------- */

static void
runtime_closing (void)
{
  PyGILState_STATE state;

  /* C operations first: no GIL needed, their Python side is told through
   * the loop queues. */
  gab_future_close_all ();
  if (!py_usable ())
    return;
  /* The shutdown caller released the GIL before waiting for us. */
  state = gab_gil_acquire ();
  gab_into_future_close_all ();
  gab_gil_release (state);
}

static gpointer
runtime_block_begin (void)
{
  /* Never wait for the runtime thread while holding the GIL it may need. */
  if (py_usable () && PyGILState_Check ())
    return PyEval_SaveThread ();
  return NULL;
}

static void
runtime_block_end (gpointer token)
{
  if (token != NULL)
    PyEval_RestoreThread (token);
}

static const GabRuntimeHooks runtime_hooks = {
  .closing = runtime_closing,
  .idle = gab_future_all_idle,
  .closed = gab_future_forget_closed,
  .thread_exit = runtime_thread_exit,
  .block_begin = runtime_block_begin,
  .block_end = runtime_block_end,
};

static PyObject *
atexit_shutdown (PyObject *self,
                 PyObject *unused)
{
  /* Interpreter exit: stop the runtime while Python still works, then
   * clean up what was left for loops that will never run again. */
  gab_shutdown ();
  gab_task_locals_set_default (NULL);
  gab_loop_queues_close ();
  gab_orphans_flush ();
  Py_RETURN_NONE;
}

static PyObject *
after_fork_child (PyObject *self,
                  PyObject *unused)
{
  /* The runtime layer has marked itself shut down (pthread_atfork). */
  gab_future_fail_after_fork ();
  gab_loop_queues_after_fork ();
  Py_RETURN_NONE;
}

static PyMethodDef after_fork_def = {
  "_gasyncbridge_after_fork", after_fork_child, METH_NOARGS,
  "Unhook gasyncbridge from the parent's runtime in a forked child.",
};

static PyMethodDef atexit_def = {
  "_gasyncbridge_shutdown", atexit_shutdown, METH_NOARGS,
  "Shut the gasyncbridge runtime down (registered with atexit).",
};

/* ---- lookups --------------------------------------------------------- */

static PyObject *
intern (const char *name)
{
  return PyUnicode_InternFromString (name);
}

static gboolean
python_init (void)
{
  PyObject *atexit_mod = NULL, *func = NULL, *ret = NULL;

  gab_py.asyncio = PyImport_ImportModule ("asyncio");
  if (gab_py.asyncio == NULL)
    return FALSE;
  gab_py.get_running_loop = PyObject_GetAttrString (gab_py.asyncio, "_get_running_loop");
  gab_py.cancelled_error = PyObject_GetAttrString (gab_py.asyncio, "CancelledError");
  gab_py.ensure_future = PyObject_GetAttrString (gab_py.asyncio, "ensure_future");
  if (gab_py.get_running_loop == NULL || gab_py.cancelled_error == NULL
      || gab_py.ensure_future == NULL)
    return FALSE;

#define INTERN(field, name) \
  if ((gab_py.field = intern (name)) == NULL) return FALSE;
  INTERN (s_create_future, "create_future");
  INTERN (s_add_done_callback, "add_done_callback");
  INTERN (s_set_result, "set_result");
  INTERN (s_set_exception, "set_exception");
  INTERN (s_cancel, "cancel");
  INTERN (s_cancelled, "cancelled");
  INTERN (s_done, "done");
  INTERN (s_result, "result");
  INTERN (s_exception, "exception");
  INTERN (s_context, "context");
  INTERN (s_add_reader, "add_reader");
  INTERN (s_create_task, "create_task");
  INTERN (s_is_running, "is_running");
  INTERN (s_run, "run");
  INTERN (s_domain, "domain");
  INTERN (s_code, "code");
  INTERN (s_message, "message");
  INTERN (s_close, "close");
  INTERN (s_loop, "loop");
  INTERN (s_remove_done_callback, "remove_done_callback");
  INTERN (s_call_soon_threadsafe, "call_soon_threadsafe");
  INTERN (s_call_later, "call_later");
  INTERN (s_call_soon, "call_soon");
  INTERN (s_callbacks, "_callbacks");
#undef INTERN
  gab_py.kw_context = PyTuple_Pack (1, gab_py.s_context);
  gab_py.kw_loop = PyTuple_Pack (1, gab_py.s_loop);
  if (gab_py.kw_context == NULL || gab_py.kw_loop == NULL)
    return FALSE;

  if (!gab_error_types_init () || !gab_future_types_init ()
      || !gab_into_future_types_init ())
    return FALSE;

  atexit_mod = PyImport_ImportModule ("atexit");
  if (atexit_mod == NULL)
    return FALSE;
  func = PyCFunction_New (&atexit_def, NULL);
  if (func != NULL)
    ret = PyObject_CallMethod (atexit_mod, "register", "O", func);
  Py_XDECREF (func);
  Py_DECREF (atexit_mod);
  if (ret == NULL)
    return FALSE;
  Py_DECREF (ret);

  /* After fork(), in the child: the parent's runtime is gone. */
  {
    PyObject *os = PyImport_ImportModule ("os");
    PyObject *hook = PyCFunction_New (&after_fork_def, NULL);
    PyObject *kwargs = hook != NULL ? Py_BuildValue ("{sO}", "after_in_child", hook) : NULL;
    PyObject *reg = os != NULL ? PyObject_GetAttrString (os, "register_at_fork") : NULL;
    PyObject *args = PyTuple_New (0);

    ret = reg != NULL && kwargs != NULL && args != NULL ? PyObject_Call (reg, args, kwargs) : NULL;
    Py_XDECREF (os);
    Py_XDECREF (hook);
    Py_XDECREF (kwargs);
    Py_XDECREF (reg);
    Py_XDECREF (args);
    if (ret == NULL)
      return FALSE;
    Py_DECREF (ret);
  }

  gab_runtime_set_hooks (&runtime_hooks);
  return TRUE;
}

/* The bridge keeps Python objects in C globals (gab_py, its types, its
 * helper functions) and hands them between threads: they belong to one
 * interpreter, the main one. A sub-interpreter is refused, clearly, before
 * it can see or make any of them; the main interpreter is unaffected. */
static gboolean
refuse_subinterpreter (void)
{
  if (G_LIKELY (PyInterpreterState_Get () == PyInterpreterState_Main ()))
    return FALSE;
  PyErr_SetString (PyExc_ImportError,
                   "gasyncbridge works in the main interpreter only, not in a "
                   "sub-interpreter: its state and its runtime thread are shared "
                   "by the whole process");
  return TRUE;
}

gboolean
gab_python_ensure (void)
{
  if (refuse_subinterpreter ())
    return FALSE;
  if (G_LIKELY (python_ready))
    return TRUE;
  if (!python_init ())
    return FALSE;
  python_ready = TRUE;
  return TRUE;
}

gboolean
gab_python_ensure_error (GError **error)
{
  if (!Py_IsInitialized ())
    {
      g_set_error_literal (error, GAB_ERROR, GAB_ERROR_PYTHON_NOT_INITIALIZED,
                           "The Python interpreter is not initialized");
      return FALSE;
    }
  if (gab_python_ensure ())
    return TRUE;
  gab_error_set_from_python (error);
  return FALSE;
}

gboolean
gab_python_embed (int        argc,
                  char     **argv,
                  gboolean   unbuffered,
                  GError   **error)
{
  PyConfig config;
  PyStatus status;
  g_autofree gchar *exe = NULL, *dir = NULL;
  PyObject *sys_path, *path, *threading;

  PyConfig_InitPythonConfig (&config);
  /* argv is the program's, not Python's options. */
  config.parse_argv = 0;
  /* A Python SIGINT handler only sets a flag for the main thread's next
   * Python code, which may never come (a GLib main thread) or come
   * anywhere (KeyboardInterrupt in random code): the loops of the bridge
   * catch SIGINT and SIGTERM themselves. */
  config.install_signal_handlers = 0;
  if (unbuffered)
    config.buffered_stdio = 0;
  status = argc > 0 ? PyConfig_SetBytesArgv (&config, argc, argv) : PyStatus_Ok ();
  if (!PyStatus_Exception (status))
    status = Py_InitializeFromConfig (&config);
  PyConfig_Clear (&config);
  if (PyStatus_Exception (status))
    {
      g_set_error (error, GAB_ERROR, GAB_ERROR_PYTHON_NOT_INITIALIZED,
                   "Cannot initialize Python: %s",
                   status.err_msg != NULL ? status.err_msg : "unknown error");
      return FALSE;
    }

  /* threading takes the thread that imports it first for the main thread:
   * let that be this one, so that threading.main_thread() is what Python
   * code expects even when asyncio first runs on another thread. */
  threading = PyImport_ImportModule ("threading");
  Py_XDECREF (threading);
  PyErr_Clear ();

  /* The program's own directory is importable, as a script's is: Python
   * helpers ship beside the program. */
  exe = g_file_read_link ("/proc/self/exe", NULL);
  dir = g_path_get_dirname (exe != NULL ? exe : argc > 0 ? argv[0] : ".");
  sys_path = PySys_GetObject ("path");
  path = PyUnicode_DecodeFSDefault (dir);
  if (sys_path != NULL && path != NULL)
    PyList_Insert (sys_path, 0, path);
  Py_XDECREF (path);
  PyErr_Clear ();
  return TRUE;
}

static PyObject *run_source (const char *source,
                             const char *filename,
                             const char *module_name,
                             PyObject   *names);

PyObject *
gab_py_run_file (const GabPySource *source,
                 const char        *module_name,
                 PyObject          *names)
{
  return run_source (source->text, source->filename, module_name, names);
}

static PyObject *
run_source (const char *source,
            const char *filename,
            const char *module_name,
            PyObject   *names)
{
  PyObject *globals, *name, *code, *ret = NULL;

  globals = PyDict_New ();
  name = PyUnicode_FromString (module_name);
  if (globals == NULL || name == NULL
      || PyDict_SetItemString (globals, "__builtins__", PyEval_GetBuiltins ()) < 0
      || PyDict_SetItemString (globals, "__name__", name) < 0
      || (names != NULL && PyDict_Update (globals, names) < 0))
    goto out;
  code = Py_CompileString (source, filename, Py_file_input);
  if (code != NULL)
    ret = PyEval_EvalCode (code, globals, globals);
  Py_XDECREF (code);
out:
  Py_XDECREF (name);
  if (ret == NULL)
    {
      Py_CLEAR (globals);
      return NULL;
    }
  Py_DECREF (ret);
  return globals;
}

PyObject *
gab_py_coroutine_from_factory (PyMethodDef *factory_def)
{
  PyObject *globals, *factory, *coro = NULL;

  globals = gab_py_run_file (&gab_py_source_main, "gasyncbridge._main", NULL);
  if (globals == NULL)
    return NULL;
  factory = PyCFunction_New (factory_def, NULL);
  if (factory != NULL)
    coro = PyObject_CallOneArg (PyDict_GetItemString (globals, "main"), factory);
  Py_XDECREF (factory);
  Py_DECREF (globals);
  return coro;
}

PyObject *
gab_py_running_loop (void)
{
  PyObject *loop = PyObject_CallNoArgs (gab_py.get_running_loop);

  if (loop == Py_None)
    Py_CLEAR (loop);
  PyErr_Clear ();
  return loop;
}

int
gab_py_future_done (PyObject *future)
{
  PyObject *done = PyObject_CallMethodNoArgs (future, gab_py.s_done);
  int ret;

  if (done == NULL)
    return -1;
  ret = PyObject_IsTrue (done);
  Py_DECREF (done);
  return ret;
}

/* ---- completing a future, signals or not ------------------------------ */

/* The loop's callbacks re-raise, from a callback of the loop, an exception
 * that interrupted the completion of a future: KeyboardInterrupt and
 * SystemExit then leave the loop's run as they do from any callback. */
static PyObject *
reraise_call (PyObject *self,
              PyObject *exception)
{
  PyErr_SetObject ((PyObject *) Py_TYPE (exception), exception);
  return NULL;
}

static PyMethodDef reraise_def = { "_reraise", reraise_call, METH_O, NULL };

/* GIL: the length of asyncio's `loop._ready`, or -1 for a loop without one
 * (uvloop's is not reachable, and its call_soon() runs no Python code, so
 * no signal handler can interrupt it halfway). No Python code runs. */
static Py_ssize_t
ready_length (PyObject *loop)
{
  PyObject *ready = loop != NULL ? PyObject_GetAttrString (loop, "_ready") : NULL;
  Py_ssize_t n = -1;

  if (ready != NULL && PySequence_Check (ready))
    n = PySequence_Length (ready);
  Py_XDECREF (ready);
  PyErr_Clear ();
  return n;
}

/* GIL: did the last call_soon() of @loop, which raised, queue @callback
 * before it raised? (asyncio's call_soon() is Python code: a signal handler
 * may raise after `self._ready.append (handle)`.) */
static gboolean
queued_before_raising (PyObject   *loop,
                       Py_ssize_t  before,
                       PyObject   *callback)
{
  PyObject *ready, *last, *queued;
  gboolean yes = FALSE;

  if (before < 0 || ready_length (loop) <= before)
    return FALSE;
  ready = PyObject_GetAttrString (loop, "_ready");
  last = ready != NULL ? PySequence_GetItem (ready, -1) : NULL;
  queued = last != NULL ? PyObject_GetAttrString (last, "_callback") : NULL;
  yes = queued == callback;
  Py_XDECREF (queued);
  Py_XDECREF (last);
  Py_XDECREF (ready);
  PyErr_Clear ();
  return yes;
}

/* GIL: loop.call_soon (callback, arg, context=context) until it is queued,
 * whatever signal handlers raise meanwhile (what they raise is appended to
 * @raised). */
static void
call_soon_surely (PyObject  *loop,
                  PyObject  *callback,
                  PyObject  *arg,
                  PyObject  *context,
                  PyObject  *raised)
{
  for (int attempt = 0; attempt < 1000; attempt++)
    {
      Py_ssize_t before = ready_length (loop);
      PyObject *ret, *value;

      if (context != NULL && context != Py_None)
        {
          PyObject *args[] = { loop, callback, arg, context };

          ret = PyObject_VectorcallMethod (gab_py.s_call_soon, args, 3, gab_py.kw_context);
        }
      else
        {
          PyObject *args[] = { loop, callback, arg };

          ret = PyObject_VectorcallMethod (gab_py.s_call_soon, args, 3, NULL);
        }
      if (ret != NULL)
        {
          Py_DECREF (ret);
          return;
        }
      /* An Exception is the loop refusing (closed): nothing more can be
       * done. Anything else came from a signal handler: keep it, retry. */
      if (PyErr_ExceptionMatches (PyExc_Exception))
        {
          PyErr_Clear ();
          return;
        }
      value = PyErr_GetRaisedException ();   /* normalized, with its traceback */
      if (value != NULL)
        PyList_Append (raised, value);
      Py_XDECREF (value);
      PyErr_Clear ();
      if (queued_before_raising (loop, before, callback))
        return;
    }
}

/* GIL: how many handles at the end of asyncio's `loop._ready` call back
 * with @future as their argument. No Python code runs. */
static Py_ssize_t
queued_for (PyObject *loop,
            PyObject *future)
{
  PyObject *ready = loop != NULL ? PyObject_GetAttrString (loop, "_ready") : NULL;
  Py_ssize_t n = ready != NULL && PySequence_Check (ready) ? PySequence_Length (ready) : -1;
  Py_ssize_t count = 0;

  for (Py_ssize_t i = n - 1; i >= 0; i--)
    {
      PyObject *handle = PySequence_GetItem (ready, i);
      PyObject *args = handle != NULL ? PyObject_GetAttrString (handle, "_args") : NULL;
      gboolean ours = args != NULL && PyTuple_Check (args) && PyTuple_GET_SIZE (args) == 1
                      && PyTuple_GET_ITEM (args, 0) == future;

      Py_XDECREF (args);
      Py_XDECREF (handle);
      if (!ours)
        break;
      count++;
    }
  Py_XDECREF (ready);
  PyErr_Clear ();
  return count;
}

PyObject *
gab_py_future_complete (PyObject *future,
                        PyObject *method,
                        PyObject *arg,
                        PyObject *loop)
{
  PyObject *callbacks, *ret, *value, *raised, *owned_loop = NULL;
  int done;

  /* The callbacks that completing the future schedules: asyncio drops
   * those it has not scheduled yet if scheduling one raises. */
  callbacks = PyObject_GetAttr (future, gab_py.s_callbacks);
  if (callbacks != NULL && PyList_Check (callbacks))
    {
      PyObject *copy = PyList_GetSlice (callbacks, 0, PyList_GET_SIZE (callbacks));

      Py_DECREF (callbacks);
      callbacks = copy;
    }
  else
    Py_CLEAR (callbacks);
  PyErr_Clear ();
  if (callbacks == NULL)
    return PyObject_CallMethodOneArg (future, method, arg);

  if (loop == NULL)
    loop = owned_loop = PyObject_CallMethod (future, "get_loop", NULL);
  PyErr_Clear ();
  ret = PyObject_CallMethodOneArg (future, method, arg);
  if (ret != NULL || loop == NULL)
    goto out;

  /* Completing raised. If the future is done all the same, the exception
   * came from a signal handler (KeyboardInterrupt from Ctrl-C) while its
   * callbacks were being scheduled: schedule those that were not, so that
   * no waiter sleeps forever, and deliver the exception from the loop. */
  value = PyErr_GetRaisedException ();   /* normalized, with its traceback */
  done = gab_py_future_done (future);
  PyErr_Clear ();
  if (done != 1)
    {
      PyErr_SetRaisedException (value);
      goto out;
    }
  raised = PyList_New (0);
  if (raised != NULL && value != NULL)
    PyList_Append (raised, value);
  Py_XDECREF (value);
  if (raised != NULL)
    {
      PyObject *reraise = PyCFunction_New (&reraise_def, NULL);
      Py_ssize_t n = PyList_GET_SIZE (callbacks);
      Py_ssize_t skip = 0;

      /* asyncio's Future queues its callbacks in order, each with the
       * future as its argument: those at the end of the loop's ready
       * queue are queued already. */
      skip = MIN (n, queued_for (loop, future));
      for (Py_ssize_t i = skip; i < n; i++)
        {
          PyObject *pair = PyList_GET_ITEM (callbacks, i);
          PyObject *callback = pair, *context = NULL;

          if (PyTuple_Check (pair) && PyTuple_GET_SIZE (pair) == 2)
            {
              callback = PyTuple_GET_ITEM (pair, 0);
              context = PyTuple_GET_ITEM (pair, 1);
            }
          call_soon_surely (loop, callback, future, context, raised);
        }
      for (Py_ssize_t i = 0; reraise != NULL && i < PyList_GET_SIZE (raised) && i < 1000; i++)
        call_soon_surely (loop, reraise, PyList_GET_ITEM (raised, i), NULL, raised);
      Py_XDECREF (reraise);
      Py_DECREF (raised);
    }
  PyErr_Clear ();
  ret = Py_NewRef (Py_None);

out:
  Py_XDECREF (owned_loop);
  Py_DECREF (callbacks);
  return ret;
}

gboolean
gab_py_interrupt_to_loop (PyObject *loop)
{
  PyObject *value, *raised, *reraise, *owned_loop = NULL;

  if (!PyErr_Occurred () || PyErr_ExceptionMatches (PyExc_Exception))
    return FALSE;
  value = PyErr_GetRaisedException ();   /* normalized, with its traceback */
  if (loop == NULL)
    loop = owned_loop = gab_py_running_loop ();
  raised = PyList_New (0);
  reraise = PyCFunction_New (&reraise_def, NULL);
  if (loop == NULL || value == NULL || raised == NULL || reraise == NULL)
    {
      /* No loop to deliver it from: leave it to the caller. */
      Py_XDECREF (raised);
      Py_XDECREF (reraise);
      Py_XDECREF (owned_loop);
      PyErr_SetRaisedException (value);
      return FALSE;
    }
  PyList_Append (raised, value);
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE (raised) && i < 1000; i++)
    call_soon_surely (loop, reraise, PyList_GET_ITEM (raised, i), NULL, raised);
  Py_DECREF (raised);
  Py_DECREF (reraise);
  Py_XDECREF (owned_loop);
  Py_XDECREF (value);
  PyErr_Clear ();
  return TRUE;
}

/* ---- what `await` accepts ---------------------------------------------- */

gboolean
gab_py_is_generator_coroutine (PyObject *object)
{
  PyObject *code, *flags;
  long value = 0;

  if (object == NULL || !PyGen_CheckExact (object))
    return FALSE;
  code = PyObject_GetAttrString (object, "gi_code");
  flags = code != NULL ? PyObject_GetAttrString (code, "co_flags") : NULL;
  if (flags != NULL)
    value = PyLong_AsLong (flags);
  Py_XDECREF (flags);
  Py_XDECREF (code);
  PyErr_Clear ();
  return value != -1 && (value & CO_ITERABLE_COROUTINE) != 0;
}

gboolean
gab_py_is_awaitable (PyObject *object)
{
  PyTypeObject *type = Py_TYPE (object);

  return (type->tp_as_async != NULL && type->tp_as_async->am_await != NULL)
         || gab_py_is_generator_coroutine (object);
}
