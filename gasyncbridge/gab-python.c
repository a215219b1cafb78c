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
                             PyObject   *names);

PyObject *
gab_py_run_file (const GabPySource *source,
                 const char        *module_name,
                 PyObject          *names)
{
  return run_source (source->text, source->filename, module_name, names);
}

PyObject *
gab_py_run_file_get (const GabPySource *source,
                     const char        *module_name,
                     const char        *name)
{
  PyObject *globals = gab_py_run_file (source, module_name, NULL), *value;

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
