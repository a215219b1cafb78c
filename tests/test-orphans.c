/* test-orphans.c: the orphan list (gasyncbridge/gab-loop-orphans.c) across
 * fork(). The unit is plain GLib; it is included here whole so that the
 * test can hold its lock the way a pushing thread does.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "../gasyncbridge/gab-loop-orphans.c"

#include "test-fork-helpers.h"

static gint ran;   /* items run, in this process */

static void
item_run (GabLoopItem *item,
          gboolean     alive)
{
  g_assert_false (alive);
  ran++;
}

/* Forks; the child flushes (expecting @expected_ran items), pushes and
 * flushes one more, and exits with the result, under a
 * time limit. Returns its wait status. */
static int
fork_and_flush (gint expected_ran)
{
  pid_t pid = fork ();
  int status;

  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    {
      GabLoopItem item = { NULL, item_run };

      child_arm_alarm ();
      ran = 0;
      gab_orphans_flush ();
      if (ran != expected_ran)
        _exit (2);
      /* The list still works in the child. */
      gab_orphan_push (&item);
      gab_orphans_flush ();
      _exit (ran == expected_ran + 1 ? 0 : 3);
    }
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  return status;
}

/* A fork while the list is free: the child inherits what waits, and runs
 * it at its first flush. */
static void
test_orphans_fork_keeps_the_list (void)
{
  GabLoopItem items[3] = { { NULL, item_run }, { NULL, item_run }, { NULL, item_run } };
  int status;

  for (guint i = 0; i < G_N_ELEMENTS (items); i++)
    gab_orphan_push (&items[i]);
  status = fork_and_flush (3);
  assert_child_passed (status);
  ran = 0;
  gab_orphans_flush ();
  g_assert_cmpint (ran, ==, 3);
}

/* A fork while another thread holds the lock: the child, which has no such
 * thread, must not wait for it at its first flush (a loop callback, in the
 * bridge); what that thread may have left half-linked is dropped. */
static void
test_orphans_fork_while_a_thread_pushes (void)
{
  GabLoopItem item = { NULL, item_run };
  Holder holder;
  int status;

  gab_orphan_push (&item);
  /* As a thread without the GIL does for the instant of a push. */
  holder_start (&holder, &orphan_lock);
  status = fork_and_flush (0);
  holder_stop (&holder);
  assert_child_passed (status);
  /* The parent's list is untouched. */
  ran = 0;
  gab_orphans_flush ();
  g_assert_cmpint (ran, ==, 1);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/orphans/fork-keeps-the-list", test_orphans_fork_keeps_the_list);
  g_test_add_func ("/orphans/fork-while-a-thread-pushes",
                   test_orphans_fork_while_a_thread_pushes);
  return g_test_run ();
}
