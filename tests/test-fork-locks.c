/* test-fork-locks.c: the process-wide locks of gab-task-locals.c (the
 * default task locals) and gab-loop.c (the gab-asyncio thread) across
 * fork(). fork() copies only the calling thread: a lock that another
 * thread held at that instant stays held in the child for ever. Both units
 * are included here whole so that a thread can hold their locks the way a
 * caller does; the rest of the library is built into the test beside them
 * (tests/meson.build). Python is embedded by the last case only.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "../gasyncbridge/gab-task-locals.c"
#include "../gasyncbridge/gab-loop.c"

#include "test-fork-helpers.h"

/* ---- the default task locals ------------------------------------------ */

/* A fork while a thread holds the default's lock (resolving it, as
 * gab_call_async() does from a C thread, or setting it): the child's first
 * resolution must not wait for that thread, and it finds the parent's
 * default (a single pointer: never half-changed). */
static void
test_task_locals_default (void)
{
  /* A stand-in, with no loop or context: handing out the default looks at
   * neither. Freed without task_locals_clear(), which would drop them. */
  GabTaskLocals *locals = g_atomic_rc_box_new0 (GabTaskLocals);
  GabTaskLocals *found;
  Holder holder;
  pid_t pid;
  int status;

  gab_task_locals_set_default (locals);
  holder_start (&holder, &default_lock);
  pid = fork ();
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    {
      child_arm_alarm ();
      found = gab_task_locals_get_current ();
      if (found != locals)
        _exit (2);
      gab_task_locals_unref (found);
      /* The lock still works in the child. */
      gab_task_locals_set_default (NULL);
      _exit (gab_task_locals_get_current () == NULL ? 0 : 3);
    }
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  holder_stop (&holder);
  assert_child_passed (status);

  /* The parent's default is untouched. */
  found = gab_task_locals_get_current ();
  g_assert_true (found == locals);
  gab_task_locals_unref (found);
  gab_task_locals_set_default (NULL);
  g_atomic_rc_box_release (locals);
}

/* ---- the gab-asyncio thread ------------------------------------------- */

/* A fork while a thread holds `thread_lock` (in gab_start_asyncio_thread()
 * or gab_stop_asyncio_thread(), from a C thread without the GIL): the
 * child's own call must not wait for it. No loop runs: no Python. */
static void
test_asyncio_thread_lock (void)
{
  Holder holder;
  pid_t pid;
  int status;

  holder_start (&holder, &thread_lock);
  pid = fork ();
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    {
      child_arm_alarm ();
      gab_stop_asyncio_thread ();
      _exit (0);
    }
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  holder_stop (&holder);
  assert_child_passed (status);
}

/* The same with the gab-asyncio loop running in the parent, and a child
 * that forks the way a C program embedding Python must
 * (PyOS_BeforeFork() and the rest) and calls gab_init(): the parent's
 * loop thread is not in the child, so its gab_start_asyncio_thread() must
 * not hand out that loop (it never runs again) nor wait for that thread,
 * but start a loop of its own; gab_stop_asyncio_thread() then stops that
 * one. */
static void
test_asyncio_thread_lost (void)
{
  GError *error = NULL;
  PyGILState_STATE state;
  PyObject *parent_loop;
  Holder holder;
  pid_t pid;
  int status;

  parent_loop = gab_start_asyncio_thread (&error);
  g_assert_no_error (error);
  g_assert_nonnull (parent_loop);

  holder_start (&holder, &thread_lock);
  state = PyGILState_Ensure ();
  PyOS_BeforeFork ();
  pid = fork ();
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    {
      PyObject *loop;

      child_arm_alarm ();
      PyOS_AfterFork_Child ();
      PyGILState_Release (state);
      /* The runtime does not survive fork(): the child starts its own. */
      if (!gab_init (&error))
        _exit (4);
      loop = gab_start_asyncio_thread (&error);
      if (loop == NULL)
        _exit (2);
      if (loop == parent_loop)
        _exit (3);
      state = PyGILState_Ensure ();
      Py_DECREF (loop);
      PyGILState_Release (state);
      gab_stop_asyncio_thread ();
      _exit (0);
    }
  PyOS_AfterFork_Parent ();
  PyGILState_Release (state);
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  holder_stop (&holder);
  assert_child_passed (status);

  /* The parent's loop still runs, and stops (Python is finalized). */
  state = PyGILState_Ensure ();
  g_mutex_lock (&thread_lock);
  g_assert_true (asyncio_loop == parent_loop);
  g_mutex_unlock (&thread_lock);
  Py_DECREF (parent_loop);
  PyGILState_Release (state);
  gab_stop_asyncio_thread ();
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/fork-locks/task-locals-default", test_task_locals_default);
  g_test_add_func ("/fork-locks/asyncio-thread-lock", test_asyncio_thread_lock);
  /* Last: it embeds Python, and finalizes it. */
  g_test_add_func ("/fork-locks/asyncio-thread-lost", test_asyncio_thread_lost);
  return g_test_run ();
}
