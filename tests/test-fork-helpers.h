/* test-fork-helpers.h: for the tests of process-wide locks across fork()
 * (test-orphans.c, test-fork-locks.c): a thread that holds a lock the way
 * a caller of the unit does for an instant, and the child's time limit.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct
{
  GMutex   *target;   /* the unit's lock */
  GThread  *thread;
  GMutex    lock;
  GCond     cond;
  gboolean  holding;
  gboolean  release;
} Holder;

/* Holds @target, as a thread of the library's callers does for an instant,
 * until told to let go. */
static gpointer
holder_main (gpointer data)
{
  Holder *holder = data;

  g_mutex_lock (holder->target);
  g_mutex_lock (&holder->lock);
  holder->holding = TRUE;
  g_cond_signal (&holder->cond);
  while (!holder->release)
    g_cond_wait (&holder->cond, &holder->lock);
  g_mutex_unlock (&holder->lock);
  g_mutex_unlock (holder->target);
  return NULL;
}

/* Returns once a thread holds @target. */
static inline void
holder_start (Holder *holder,
              GMutex *target)
{
  holder->target = target;
  holder->holding = holder->release = FALSE;
  g_mutex_init (&holder->lock);
  g_cond_init (&holder->cond);
  holder->thread = g_thread_new ("holder", holder_main, holder);
  g_mutex_lock (&holder->lock);
  while (!holder->holding)
    g_cond_wait (&holder->cond, &holder->lock);
  g_mutex_unlock (&holder->lock);
}

static inline void
holder_stop (Holder *holder)
{
  g_mutex_lock (&holder->lock);
  holder->release = TRUE;
  g_cond_signal (&holder->cond);
  g_mutex_unlock (&holder->lock);
  g_thread_join (holder->thread);
  g_mutex_clear (&holder->lock);
  g_cond_clear (&holder->cond);
}

/* A hung child dies of SIGALRM; valgrind makes everything slower. */
static inline void
child_arm_alarm (void)
{
  alarm (g_getenv ("GAB_UNDER_VALGRIND") != NULL ? 100 : 10);
}

static inline void
assert_child_passed (int status)
{
  g_assert_false (WIFSIGNALED (status) && WTERMSIG (status) == SIGALRM);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 0);
}
