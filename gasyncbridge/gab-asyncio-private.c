/* gab-asyncio-private.c: what the bridge needs to know of asyncio futures
 * and tasks that asyncio offers no public way to ask or say. Both
 * attributes exist, under these names, in the C and the pure-Python
 * futures and tasks of CPython 3.9 to 3.13, and in uvloop (which uses
 * asyncio's). If one goes away, the bridge degrades as said below rather
 * than failing.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gab-asyncio-private.h"
#include "gab-private.h"

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
