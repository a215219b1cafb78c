/* gab-lifecycle.c: one place that starts the bridge's units and stops
 * them: at runtime shutdown, at interpreter exit and after fork() (see
 * gab-lifecycle.h for the contract).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gab-lifecycle.h"
#include <gasyncbridge/gasyncbridge.h>
#include "gab-python.h"
#include "gab-runtime-private.h"
#include "gab-loop-orphans.h"

/* The started units, the last started first: the order in which they
 * stop. Written with the GIL held (which serializes the starts), read by
 * the runtime thread without it: a unit is linked in whole before it is
 * published, and never unlinked, so a reader that loads the head sees a
 * complete list. */
static GabSubsystem *started_head;
static gboolean lifecycle_started;

#define FOR_EACH_STARTED(s) \
  for (GabSubsystem *s = g_atomic_pointer_get (&started_head); s != NULL; s = s->next)

/* ---- runtime shutdown (the runtime's hooks, on its thread) ------------ */

static void
runtime_closing (void)
{
  PyGILState_STATE state;

  /* C operations first: no GIL needed. */
  FOR_EACH_STARTED (s)
    if (s->closing != NULL)
      s->closing ();
  if (!gab_python_usable ())
    return;
  /* The shutdown caller released the GIL before waiting for us. */
  state = gab_gil_acquire ();
  FOR_EACH_STARTED (s)
    if (s->closing_gil != NULL)
      s->closing_gil ();
  gab_gil_release (state);
}

static gboolean
runtime_idle (void)
{
  FOR_EACH_STARTED (s)
    if (s->idle != NULL && !s->idle ())
      return FALSE;
  return TRUE;
}

static void
runtime_closed (void)
{
  FOR_EACH_STARTED (s)
    if (s->closed != NULL)
      s->closed ();
}

static const GabRuntimeHooks runtime_hooks = {
  .closing = runtime_closing,
  .idle = runtime_idle,
  .closed = runtime_closed,
  .thread_exit = gab_python_runtime_thread_exit,
  .block_begin = gab_python_block_begin,
  .block_end = gab_python_block_end,
};

/* ---- interpreter exit and fork (Python calls these, GIL held) ---------- */

static PyObject *
at_exit (PyObject *self,
         PyObject *unused)
{
  /* Stop the runtime while Python still works, then let each unit drop
   * what it kept for loops that will never run again, and last run what
   * was left for them. */
  gab_shutdown ();
  FOR_EACH_STARTED (s)
    if (s->at_exit != NULL)
      s->at_exit ();
  gab_orphans_flush ();
  Py_RETURN_NONE;
}

static PyObject *
after_fork_child (PyObject *self,
                  PyObject *unused)
{
  /* The runtime layer has marked itself shut down (pthread_atfork). */
  FOR_EACH_STARTED (s)
    if (s->after_fork != NULL)
      s->after_fork ();
  Py_RETURN_NONE;
}

static PyMethodDef at_exit_def = {
  "_gasyncbridge_shutdown", at_exit, METH_NOARGS,
  "Shut the gasyncbridge runtime down (registered with atexit).",
};

static PyMethodDef after_fork_def = {
  "_gasyncbridge_after_fork", after_fork_child, METH_NOARGS,
  "Unhook gasyncbridge from the parent's runtime in a forked child.",
};

static gboolean
call_with_hook (const char  *module_name,
                const char  *function,
                PyMethodDef *hook_def,
                const char  *keyword)
{
  PyObject *module, *hook, *func = NULL, *args = NULL, *kwargs = NULL, *ret = NULL;

  module = PyImport_ImportModule (module_name);
  hook = PyCFunction_New (hook_def, NULL);
  if (module != NULL && hook != NULL)
    func = PyObject_GetAttrString (module, function);
  if (func != NULL)
    {
      args = keyword == NULL ? PyTuple_Pack (1, hook) : PyTuple_New (0);
      kwargs = keyword == NULL ? NULL : Py_BuildValue ("{sO}", keyword, hook);
      if (args != NULL && (keyword == NULL || kwargs != NULL))
        ret = PyObject_Call (func, args, kwargs);
    }
  Py_XDECREF (module);
  Py_XDECREF (hook);
  Py_XDECREF (func);
  Py_XDECREF (args);
  Py_XDECREF (kwargs);
  Py_XDECREF (ret);
  return ret != NULL;
}

static gboolean
lifecycle_start (void)
{
  if (!gab_python_ensure ())
    return FALSE;
  /* atexit.register(at_exit); os.register_at_fork(after_in_child=...) */
  if (!call_with_hook ("atexit", "register", &at_exit_def, NULL)
      || !call_with_hook ("os", "register_at_fork", &after_fork_def, "after_in_child"))
    return FALSE;
  gab_runtime_set_hooks (&runtime_hooks);
  return TRUE;
}

gboolean
gab_lifecycle_start (GabSubsystem *subsystem)
{
  if (G_UNLIKELY (!lifecycle_started))
    {
      if (!lifecycle_start ())
        return FALSE;
      lifecycle_started = TRUE;
    }
  else if (!gab_python_ensure ())
    return FALSE;   /* a sub-interpreter: refused each time */
  if (subsystem == NULL || G_LIKELY (subsystem->started))
    return TRUE;
  if (subsystem->start != NULL && !subsystem->start ())
    return FALSE;
  /* Its start may have started it already, through a unit it started. */
  if (!subsystem->started)
    {
      subsystem->started = TRUE;
      subsystem->next = started_head;
      g_atomic_pointer_set (&started_head, subsystem);
    }
  return TRUE;
}
