/* test-orphans.c: the orphan list (gasyncbridge/gab-loop-orphans.c) across
 * fork(). The unit is plain GLib; it is included here whole so that the
 * test can hold its lock the way a pushing thread does.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "../gasyncbridge/gab-loop-orphans.c"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static gint ran;   /* items run, in this process */

static void
item_run (GabLoopItem *item,
          gboolean     alive)
{
  g_assert_false (alive);
  ran++;
}

typedef struct
{
  GMutex   lock;
  GCond    cond;
  gboolean holding;
  gboolean release;
} Holder;

/* Holds the orphan list's lock, as a thread without the GIL does for the
 * instant of a push, until told to let go. */
static gpointer
hold_orphan_lock (gpointer data)
{
  Holder *holder = data;

  g_mutex_lock (&orphan_lock);
  g_mutex_lock (&holder->lock);
  holder->holding = TRUE;
  g_cond_signal (&holder->cond);
  while (!holder->release)
    g_cond_wait (&holder->cond, &holder->lock);
  g_mutex_unlock (&holder->lock);
  g_mutex_unlock (&orphan_lock);
  return NULL;
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

      alarm (10);   /* a hung child dies of SIGALRM */
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
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 0);
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
  Holder holder = { 0 };
  GThread *thread;
  int status;

  gab_orphan_push (&item);
  g_mutex_init (&holder.lock);
  g_cond_init (&holder.cond);
  thread = g_thread_new ("holder", hold_orphan_lock, &holder);
  g_mutex_lock (&holder.lock);
  while (!holder.holding)
    g_cond_wait (&holder.cond, &holder.lock);
  g_mutex_unlock (&holder.lock);

  status = fork_and_flush (0);

  g_mutex_lock (&holder.lock);
  holder.release = TRUE;
  g_cond_signal (&holder.cond);
  g_mutex_unlock (&holder.lock);
  g_thread_join (thread);
  g_mutex_clear (&holder.lock);
  g_cond_clear (&holder.cond);

  g_assert_false (WIFSIGNALED (status) && WTERMSIG (status) == SIGALRM);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 0);
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
