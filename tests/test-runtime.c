/* test-runtime.c: the runtime layer alone — pure GLib, no Python.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gio/gio.h>
#include <gasyncbridge/gab-version.h>
#include <gasyncbridge/gab-runtime.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct
{
  GMutex     lock;
  GCond      cond;
  GPtrArray *seen;
  guint      expected;
  guint      notified;
  gboolean   all_on_runtime;
  gboolean   all_default;
} Recorder;

static void
recorder_init (Recorder *r,
               guint     expected)
{
  g_mutex_init (&r->lock);
  g_cond_init (&r->cond);
  r->seen = g_ptr_array_new ();
  r->expected = expected;
  r->notified = 0;
  r->all_on_runtime = TRUE;
  r->all_default = TRUE;
}

static void
recorder_wait (Recorder *r)
{
  g_mutex_lock (&r->lock);
  while (r->seen->len < r->expected || r->notified < r->expected)
    g_cond_wait (&r->cond, &r->lock);
  g_mutex_unlock (&r->lock);
}

static void
recorder_clear (Recorder *r)
{
  g_ptr_array_unref (r->seen);
  g_mutex_clear (&r->lock);
  g_cond_clear (&r->cond);
}

typedef struct
{
  Recorder *r;
  gpointer  tag;
  gint      runs_left;
} Call;

static gboolean
record_func (gpointer data)
{
  Call *call = data;
  Recorder *r = call->r;

  g_mutex_lock (&r->lock);
  if (!gab_is_runtime_thread ())
    r->all_on_runtime = FALSE;
  if (g_main_context_get_thread_default () != gab_get_context ())
    r->all_default = FALSE;
  if (call->runs_left > 0)
    {
      call->runs_left--;
      g_mutex_unlock (&r->lock);
      return G_SOURCE_CONTINUE;
    }
  g_ptr_array_add (r->seen, call->tag);
  g_cond_broadcast (&r->cond);
  g_mutex_unlock (&r->lock);
  return G_SOURCE_REMOVE;
}

static void
record_notify (gpointer data)
{
  Call *call = data;
  Recorder *r = call->r;

  g_mutex_lock (&r->lock);
  r->notified++;
  g_cond_broadcast (&r->cond);
  g_mutex_unlock (&r->lock);
  g_free (call);
}

static void
invoke_tagged (Recorder *r,
               gpointer  tag,
               gint      extra_runs)
{
  Call *call = g_new0 (Call, 1);

  call->r = r;
  call->tag = tag;
  call->runs_left = extra_runs;
  gab_invoke (record_func, call, record_notify);
}

static void
test_init_idempotent (void)
{
  g_autoptr(GError) error = NULL;
  GMainContext *ctx;

  g_assert_true (gab_init (&error));
  g_assert_no_error (error);
  ctx = gab_get_context ();
  g_assert_nonnull (ctx);
  g_assert_true (gab_init (&error));
  g_assert_true (gab_get_context () == ctx);
  g_assert_false (gab_is_runtime_thread ());
}

static void
test_invoke_fifo (void)
{
  Recorder r;

  recorder_init (&r, 1000);
  for (guint i = 0; i < 1000; i++)
    invoke_tagged (&r, GUINT_TO_POINTER (i), 0);
  recorder_wait (&r);
  for (guint i = 0; i < 1000; i++)
    g_assert_cmpuint (GPOINTER_TO_UINT (r.seen->pdata[i]), ==, i);
  g_assert_true (r.all_on_runtime);
  g_assert_true (r.all_default);
  recorder_clear (&r);
}

typedef struct
{
  Recorder *r;
  guint     base;
} Producer;

static gpointer
producer_main (gpointer data)
{
  Producer *p = data;

  for (guint i = 0; i < 1000; i++)
    invoke_tagged (p->r, GUINT_TO_POINTER (p->base + i), 0);
  return NULL;
}

static void
test_invoke_from_many_threads (void)
{
  Recorder r;
  Producer producers[4];
  GThread *threads[4];
  guint last[4] = { 0, 0, 0, 0 };

  recorder_init (&r, 4000);
  for (guint t = 0; t < 4; t++)
    {
      producers[t].r = &r;
      producers[t].base = (t + 1) * 100000;
      threads[t] = g_thread_new ("producer", producer_main, &producers[t]);
    }
  for (guint t = 0; t < 4; t++)
    g_thread_join (threads[t]);
  recorder_wait (&r);
  g_assert_cmpuint (r.seen->len, ==, 4000);
  /* Each producer's calls ran in the order it made them. */
  for (guint i = 0; i < r.seen->len; i++)
    {
      guint v = GPOINTER_TO_UINT (r.seen->pdata[i]);
      guint t = v / 100000 - 1;

      g_assert_cmpuint (t, <, 4);
      if (last[t] != 0)
        g_assert_cmpuint (v, ==, last[t] + 1);
      last[t] = v;
    }
  recorder_clear (&r);
}

static GMutex   latch_lock;
static GCond    latch_cond;
static gboolean latch_open;

static gboolean
latch_func (gpointer data)
{
  g_mutex_lock (&latch_lock);
  while (!latch_open)
    g_cond_wait (&latch_cond, &latch_lock);
  g_mutex_unlock (&latch_lock);
  return G_SOURCE_REMOVE;
}

static void
test_invoke_continue (void)
{
  Recorder r;

  recorder_init (&r, 2);
  /* Hold the runtime thread until both calls are queued, so that "the back
   * of the queue" has call 2 in front of it. */
  g_mutex_lock (&latch_lock);
  latch_open = FALSE;
  g_mutex_unlock (&latch_lock);
  gab_invoke (latch_func, NULL, NULL);
  invoke_tagged (&r, GUINT_TO_POINTER (1), 3);
  invoke_tagged (&r, GUINT_TO_POINTER (2), 0);
  g_mutex_lock (&latch_lock);
  latch_open = TRUE;
  g_cond_broadcast (&latch_cond);
  g_mutex_unlock (&latch_lock);
  recorder_wait (&r);
  /* The repeating call went to the back of the queue. */
  g_assert_cmpuint (GPOINTER_TO_UINT (r.seen->pdata[0]), ==, 2);
  g_assert_cmpuint (GPOINTER_TO_UINT (r.seen->pdata[1]), ==, 1);
  g_assert_cmpuint (r.notified, ==, 2);
  recorder_clear (&r);
}

static void
test_shutdown_and_restart (void)
{
  g_autoptr(GError) error = NULL;
  Recorder r;

  g_assert_true (gab_init (NULL));
  gab_shutdown ();
  gab_shutdown ();   /* idempotent */

  /* Implicit use after shutdown does not restart: the call is dropped and
   * its data freed at once. */
  recorder_init (&r, 0);
  invoke_tagged (&r, GUINT_TO_POINTER (1), 0);
  g_assert_cmpuint (r.notified, ==, 1);
  g_assert_cmpuint (r.seen->len, ==, 0);
  g_assert_null (gab_get_context ());
  recorder_clear (&r);

  /* An explicit gab_init() starts a new runtime. */
  g_assert_true (gab_init (&error));
  g_assert_no_error (error);
  recorder_init (&r, 1);
  invoke_tagged (&r, GUINT_TO_POINTER (7), 0);
  recorder_wait (&r);
  g_assert_true (r.all_on_runtime);
  recorder_clear (&r);
}

static void
test_init_with_other_context_fails (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GMainContext) other = g_main_context_new ();

  g_assert_true (gab_init (NULL));
  g_assert_false (gab_init_with_context (other, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS);
  /* and the runtime still works */
  g_assert_nonnull (gab_get_context ());
}

static void
test_application_context (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GMainContext) app = g_main_context_new ();
  Recorder r;

  gab_shutdown ();
  g_main_context_push_thread_default (app);
  g_assert_true (gab_init_with_context (app, &error));
  g_assert_no_error (error);
  g_assert_true (gab_init_with_context (app, NULL));   /* same context: fine */
  g_assert_true (gab_get_context () == app);

  recorder_init (&r, 3);
  for (guint i = 0; i < 3; i++)
    invoke_tagged (&r, GUINT_TO_POINTER (i), 0);
  /* Nothing runs until the application iterates its context. */
  g_assert_cmpuint (r.seen->len, ==, 0);
  while (r.notified < 3)
    g_main_context_iteration (app, TRUE);
  g_assert_true (r.all_on_runtime);
  g_assert_cmpuint (r.seen->len, ==, 3);
  recorder_clear (&r);

  gab_shutdown ();
  g_main_context_pop_thread_default (app);
  g_assert_true (gab_init (NULL));
}

static void
test_bad_input (void)
{
  g_test_expect_message ("Gab", G_LOG_LEVEL_CRITICAL, "*func != NULL*");
  gab_invoke (NULL, NULL, NULL);
  g_test_assert_expected_messages ();

  g_test_expect_message ("Gab", G_LOG_LEVEL_CRITICAL, "*app_context != NULL*");
  g_assert_false (gab_init_with_context (NULL, NULL));
  g_test_assert_expected_messages ();

  /* still usable */
  test_invoke_fifo ();
}

/* A stand-in for one of GLib's process-wide locks (GObject's notify lock,
 * which every last g_object_unref() takes): static, as those are. */
static GMutex glib_like_lock;

typedef struct
{
  GMutex   lock;
  GCond    cond;
  gboolean holding;
  gboolean done;
} Helper;

/* A GLib helper thread (named as GIO's pool threads are) finishing its
 * work: it takes the lock, runs for a while with it (on a CPU, as a
 * thread disposing a GTask does), lets go, then sleeps waiting for more
 * work. */
static gpointer
helper_main (gpointer data)
{
  Helper *helper = data;
  gint64 end;

  g_mutex_lock (&glib_like_lock);
  g_mutex_lock (&helper->lock);
  helper->holding = TRUE;
  g_cond_signal (&helper->cond);
  g_mutex_unlock (&helper->lock);
  /* Longer than the forking thread needs to reach fork(), well within how
   * long fork() waits for a running helper. */
  end = g_get_monotonic_time () + 100 * G_TIME_SPAN_MILLISECOND;
  while (g_get_monotonic_time () < end)
    ;
  g_mutex_unlock (&glib_like_lock);

  g_mutex_lock (&helper->lock);
  while (!helper->done)
    g_cond_wait (&helper->cond, &helper->lock);
  g_mutex_unlock (&helper->lock);
  return NULL;
}

/* fork() while a GLib helper thread runs holding a lock of GLib's: the
 * bridge's fork handler waits until it sleeps, so the child finds the lock
 * free (without that, the child waits for it for ever). */
static void
test_fork_waits_for_running_glib_thread (void)
{
  Helper helper = { 0 };
  GThread *thread;
  pid_t pid;
  int status;

  /* valgrind runs one thread at a time: a thread waiting for its turn
   * sleeps in the kernel, holding what it holds. */
  if (g_getenv ("GAB_UNDER_VALGRIND") != NULL)
    {
      g_test_skip ("valgrind shows a runnable thread as sleeping");
      return;
    }
  g_assert_true (gab_init (NULL));
  g_mutex_init (&helper.lock);
  g_cond_init (&helper.cond);
  thread = g_thread_new ("pool", helper_main, &helper);
  g_mutex_lock (&helper.lock);
  while (!helper.holding)
    g_cond_wait (&helper.cond, &helper.lock);
  g_mutex_unlock (&helper.lock);

  pid = fork ();
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    {
      alarm (10);   /* a child that waits for the lock dies of SIGALRM */
      g_mutex_lock (&glib_like_lock);
      g_mutex_unlock (&glib_like_lock);
      _exit (0);
    }
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 0);

  g_mutex_lock (&helper.lock);
  helper.done = TRUE;
  g_cond_signal (&helper.cond);
  g_mutex_unlock (&helper.lock);
  g_thread_join (thread);
  g_mutex_clear (&helper.lock);
  g_cond_clear (&helper.cond);

  /* The parent's runtime goes on. */
  test_invoke_fifo ();
}

int
main (int    argc,
      char **argv)
{
  int ret;

  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/runtime/init-idempotent", test_init_idempotent);
  g_test_add_func ("/runtime/invoke-fifo", test_invoke_fifo);
  g_test_add_func ("/runtime/invoke-from-many-threads", test_invoke_from_many_threads);
  g_test_add_func ("/runtime/invoke-continue", test_invoke_continue);
  g_test_add_func ("/runtime/shutdown-and-restart", test_shutdown_and_restart);
  g_test_add_func ("/runtime/init-with-other-context-fails", test_init_with_other_context_fails);
  g_test_add_func ("/runtime/application-context", test_application_context);
  g_test_add_func ("/runtime/bad-input", test_bad_input);
  g_test_add_func ("/runtime/fork-waits-for-running-glib-thread",
                   test_fork_waits_for_running_glib_thread);
  ret = g_test_run ();
  gab_shutdown ();
  return ret;
}
