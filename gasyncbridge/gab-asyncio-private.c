/* gab-asyncio-private.c: what the bridge needs to know of asyncio futures,
 * tasks and loops that asyncio offers no public way to ask or say. Each
 * attribute used here (a future's `_callbacks`, a task's
 * `_log_destroy_pending`, the loop's `_ready` queue and its handles'
 * `_callback` and `_args`) exists under that name in the C and the
 * pure-Python futures and tasks of CPython 3.9 to 3.13 and in asyncio's
 * loops; uvloop uses asyncio's futures and has no `_ready`. If one goes
 * away, the bridge degrades as said at each use rather than failing.
 * (One more read, the running-loop holder of Python 3.9 to 3.11, is in
 * gab-python.c's gab_py_running_loop(), beside the lookups every unit
 * uses.)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gab-asyncio-private.h"
#include <gasyncbridge/gasyncbridge.h>
#include "gab-python.h"

/* GIL. Has @future more done callbacks than the @ours the bridge added?
 * A done callback is somebody waiting for the outcome (as in
 * `fut.add_done_callback(f); del fut`), so the bridge must not treat the
 * future as dropped. asyncio has no public accessor for the callbacks,
 * hence `_callbacks`. Without it, the answer is "no", and such a future is
 * treated as dropped, as one without callbacks is. */
gboolean
gab_asyncio_future_awaited_by_others (PyObject   *future,
                                      Py_ssize_t  ours)
{
  PyObject *callbacks;
  Py_ssize_t n = 0;

  callbacks = PyObject_GetAttr (future, gab_py.s_callbacks);
  if (callbacks != NULL && callbacks != Py_None)
    n = PyObject_Length (callbacks);
  Py_XDECREF (callbacks);
  PyErr_Clear ();
  return n > ours;
}

/* GIL. The bridge made @task to run a coroutine for a C caller that has
 * stopped waiting (its loop closed, or it gave up), and drops it pending
 * on purpose. asyncio would log "Task was destroyed but it is pending!"
 * when it is collected; the only way to tell it not to is the flag its own
 * code clears for the same purpose, `_log_destroy_pending`. Without it,
 * the warning is logged, nothing worse. */
void
gab_asyncio_task_forget_quietly (PyObject *task)
{
  if (PyObject_SetAttrString (task, "_log_destroy_pending", Py_False) < 0)
    PyErr_Clear ();
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

/* GIL: is @future one of the C futures of asyncio (_asyncio.Future, and so
 * its Tasks and their subclasses)? */
static gboolean
is_c_future (PyObject *future)
{
  static PyObject *c_future_type;   /* GIL; Py_None without _asyncio */

  if (G_UNLIKELY (c_future_type == NULL))
    {
      PyObject *futures = PyImport_ImportModule ("asyncio.futures");
      PyObject *type = futures != NULL ? PyObject_GetAttrString (futures, "_CFuture") : NULL;

      PyErr_Clear ();
      Py_XDECREF (futures);
      c_future_type = type != NULL && PyType_Check (type) ? type : Py_NewRef (Py_None);
      if (c_future_type == Py_None)
        Py_XDECREF (type);
    }
  return c_future_type != Py_None
         && PyObject_TypeCheck (future, (PyTypeObject *) c_future_type);
}

PyObject *
gab_asyncio_future_complete (PyObject *future,
                             PyObject *method,
                             PyObject *arg,
                             PyObject *loop)
{
  PyObject *callbacks, *ret, *value, *raised, *owned_loop = NULL;
  int done;

  /* The callbacks that completing the future schedules: asyncio drops
   * those it has not scheduled yet if scheduling one raises. The C future
   * only lets go of its list then, and a reference keeps it; the Python
   * one empties the list in place first, so that one is copied. */
  callbacks = PyObject_GetAttr (future, gab_py.s_callbacks);
  if (callbacks != NULL && PyList_Check (callbacks) && PyList_GET_SIZE (callbacks) > 0)
    {
      if (!is_c_future (future))
        {
          PyObject *copy = PyList_GetSlice (callbacks, 0, PyList_GET_SIZE (callbacks));

          Py_DECREF (callbacks);
          callbacks = copy;
        }
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
gab_asyncio_interrupt_to_loop (PyObject *loop)
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
