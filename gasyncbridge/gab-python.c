/* gab-python.c: interpreter glue shared by the bridge — cached lookups,
 * the GIL on the runtime thread, references dropped from threads that do
 * not hold the GIL. It calls no other unit of the bridge but the runtime
 * and the loop orphans: starting and stopping the units is
 * gab-lifecycle.c's.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gasyncbridge.h>
#include "gab-python.h"
#include "gab-loop-queue.h"
#include "gab-python-sources.h"

#include <string.h>
#ifdef G_OS_UNIX
#include <pthread.h>
#include <unistd.h>
#endif

/* See gab_py_running_loop(). */
#if PY_VERSION_HEX < 0x030C0000 && defined(G_OS_UNIX)
#define GAB_RUNNING_LOOP_HOLDER 1
static PyObject *s_running_loop_key;  /* "__asyncio_running_event_loop__" */
#endif

GabPy gab_py;
static gboolean python_ready;

gboolean
gab_py_finalizing (void)
{
  return gab_compat_is_finalizing ();
}

gboolean
gab_python_usable (void)
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

/* A GLib reference-counted box. */
struct _GabPyRef
{
  PyObject *object;
};

GabPyRef *
gab_py_ref_new (PyObject *object)
{
  GabPyRef *ref = g_atomic_rc_box_new (GabPyRef);

  ref->object = Py_NewRef (object);
  return ref;
}

GabPyRef *
gab_py_ref_ref (GabPyRef *ref)
{
  return g_atomic_rc_box_acquire (ref);
}

static void
py_ref_clear (gpointer data)
{
  gab_py_decref (((GabPyRef *) data)->object);
}

void
gab_py_ref_unref (GabPyRef *ref)
{
  if (ref != NULL)
    g_atomic_rc_box_release_full (ref, py_ref_clear);
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
  if (G_LIKELY (pinned) || !gab_python_usable ())
    return;
  pin_state = PyGILState_Ensure ();
  pin_tstate = PyEval_SaveThread ();
  pinned = TRUE;
}

void
gab_python_runtime_thread_exit (void)
{
  if (!pinned)
    return;
  pinned = FALSE;
  if (!gab_python_usable ())
    return;   /* taking the GIL now would stop this thread for good */
  /* Retake the GIL with the pinned state, then let the outer
   * PyGILState_Release delete it (and release the GIL). */
  PyEval_RestoreThread (pin_tstate);
  PyGILState_Release (pin_state);
  pin_tstate = NULL;
}

/* ---- what the runtime needs of Python (gab-lifecycle.c hands these to
 * it as its hooks) ---------------------------------------------------- */

gpointer
gab_python_block_begin (void)
{
  /* Never wait for the runtime thread while holding the GIL it may need. */
  if (gab_python_usable () && PyGILState_Check ())
    return PyEval_SaveThread ();
  return NULL;
}

void
gab_python_block_end (gpointer token)
{
  if (token != NULL)
    PyEval_RestoreThread (token);
}

/* ---- lookups --------------------------------------------------------- */

static PyObject *
intern (const char *name)
{
  return PyUnicode_InternFromString (name);
}

static gboolean
python_init (void)
{
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
#ifdef GAB_RUNNING_LOOP_HOLDER
  if ((s_running_loop_key = intern ("__asyncio_running_event_loop__")) == NULL)
    return FALSE;
#endif
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

static PyObject *run_source (const char *source,
                             const char *filename,
                             const char *module_name,
                             const char *name,
                             PyObject   *value);

PyObject *
gab_py_run_file (const GabPySource *source,
                 const char        *module_name,
                 const char        *name,
                 PyObject          *value)
{
  return run_source (source->text, source->filename, module_name, name, value);
}

PyObject *
gab_py_run_file_get (const GabPySource *source,
                     const char        *module_name,
                     const char        *name)
{
  PyObject *globals = gab_py_run_file (source, module_name, NULL, NULL), *value;

  if (globals == NULL)
    return NULL;
  value = Py_XNewRef (PyDict_GetItemString (globals, name));
  Py_DECREF (globals);
  if (value == NULL)
    PyErr_Format (PyExc_SystemError, "gasyncbridge: %s has no %s", source->filename, name);
  return value;
}

static PyObject *
run_source (const char *source,
            const char *filename,
            const char *module_name,
            const char *name,
            PyObject   *value)
{
  PyObject *globals, *py_module_name, *code, *ret = NULL;

  globals = PyDict_New ();
  py_module_name = PyUnicode_FromString (module_name);
  if (globals == NULL || py_module_name == NULL
      || PyDict_SetItemString (globals, "__builtins__", PyEval_GetBuiltins ()) < 0
      || PyDict_SetItemString (globals, "__name__", py_module_name) < 0
      || (name != NULL && PyDict_SetItemString (globals, name, value) < 0))
    goto out;
  code = Py_CompileString (source, filename, Py_file_input);
  if (code != NULL)
    ret = PyEval_EvalCode (code, globals, globals);
  Py_XDECREF (code);
out:
  Py_XDECREF (py_module_name);
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

  globals = gab_py_run_file (&gab_py_source_main, "gasyncbridge._main", NULL, NULL);
  if (globals == NULL)
    return NULL;
  factory = PyCFunction_New (factory_def, NULL);
  if (factory != NULL)
    coro = PyObject_CallOneArg (PyDict_GetItemString (globals, "main"), factory);
  Py_XDECREF (factory);
  Py_DECREF (globals);
  return coro;
}

#ifdef GAB_RUNNING_LOOP_HOLDER
/* Python 3.9 to 3.11 keep a thread's running loop in its thread-state dict
 * as a _RunningLoopHolder (the loop, and the pid that set it), and
 * asyncio._get_running_loop() compares that pid with getpid(): a system
 * call on every operation's start (1.3 us in a KVM guest, a third of the
 * start). No public call avoids it, so here alone the bridge reads the
 * holder itself. These versions' layout is frozen; the holder's type is
 * trusted only after its name and size matched and it gave the same loop
 * as asyncio's own call (anything else, such as asyncio without its C
 * accelerator, keeps the call). Our pid is kept by a fork handler.
 * Python 3.12 dropped the pid check, and this. */
typedef struct
{
  PyObject_HEAD
  PyObject *rl_loop;
  pid_t     rl_pid;
} RunningLoopHolder;

static PyTypeObject *holder_type;         /* trusted, once checked */
static gboolean      holder_refused;
static pid_t         holder_pid;

static void
holder_after_fork_child (void)
{
  holder_pid = getpid ();
}

/* GIL: the holder of this thread, or NULL. Borrowed. */
static PyObject *
running_loop_holder (void)
{
  PyObject *dict = PyThreadState_GetDict ();

  if (dict == NULL || s_running_loop_key == NULL)
    return NULL;
  return PyDict_GetItemWithError (dict, s_running_loop_key);
}

/* GIL: trusts the type of this thread's holder, or refuses it for good,
 * when asyncio's own call has found a running @loop (else: no verdict). */
static void
running_loop_holder_check (PyObject *loop)
{
  static gsize atfork_registered;
  PyObject *holder;

  if (loop == NULL)
    return;
  holder = running_loop_holder ();
  PyErr_Clear ();
  if (holder == NULL || strcmp (Py_TYPE (holder)->tp_name, "_RunningLoopHolder") != 0
      || Py_TYPE (holder)->tp_basicsize != sizeof (RunningLoopHolder)
      || ((RunningLoopHolder *) holder)->rl_loop != loop
      || ((RunningLoopHolder *) holder)->rl_pid != getpid ())
    {
      holder_refused = TRUE;
      return;
    }
  if (g_once_init_enter (&atfork_registered))
    {
      pthread_atfork (NULL, NULL, holder_after_fork_child);
      g_once_init_leave (&atfork_registered, 1);
    }
  holder_pid = getpid ();
  holder_type = Py_TYPE (holder);
}
#endif

PyObject *
gab_py_running_loop (void)
{
  PyObject *loop;

#ifdef GAB_RUNNING_LOOP_HOLDER
  if (holder_type != NULL)
    {
      PyObject *holder = running_loop_holder ();

      if (holder != NULL && Py_TYPE (holder) == holder_type)
        {
          RunningLoopHolder *rl = (RunningLoopHolder *) holder;

          return rl->rl_loop != Py_None && rl->rl_pid == holder_pid
                 ? Py_NewRef (rl->rl_loop) : NULL;
        }
      PyErr_Clear ();
    }
#endif
  loop = PyObject_CallNoArgs (gab_py.get_running_loop);

  if (loop == Py_None)
    Py_CLEAR (loop);
  PyErr_Clear ();
#ifdef GAB_RUNNING_LOOP_HOLDER
  if (holder_type == NULL && !holder_refused)
    running_loop_holder_check (loop);
#endif
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

/* ---- waiters: the futures a receiver's __anext__ sleeps on ------------- */

gboolean
gab_py_future_set_none (PyObject *future)
{
  PyObject *ret = PyObject_CallMethodOneArg (future, gab_py.s_set_result, Py_None);

  Py_XDECREF (ret);
  return ret != NULL;
}

void
gab_py_waiter_wake (PyObject *waiter,
                    gboolean  wake)
{
  if (waiter == NULL)
    return;
  if (wake && gab_py_future_done (waiter) == 0)
    gab_py_future_set_none (waiter);
  PyErr_Clear ();
  Py_DECREF (waiter);
}

PyObject *
gab_py_done_future (void)
{
  PyObject *loop = gab_py_running_loop ();
  PyObject *future;

  if (loop == NULL)
    return PyErr_Format (PyExc_RuntimeError, "gasyncbridge: no running event loop");
  future = PyObject_CallMethodNoArgs (loop, gab_py.s_create_future);
  Py_DECREF (loop);
  if (future != NULL && !gab_py_future_set_none (future))
    Py_CLEAR (future);
  return future;
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
