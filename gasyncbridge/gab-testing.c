/* gab-testing.c: the test harness (see gab-testing.h), the counterpart of
 * pyo3_asyncio::testing, on the GLib test framework.
 *
 * A test program runs in two roles.
 *
 * The parent (what `meson test` or a user starts) never embeds Python. It
 * registers every test whose name matches the positional filters with
 * g_test_add_data_func(), and g_test_run() then runs each one in a child
 * process of the same program, with a timeout. The child's output is
 * forwarded as test messages ("# ..." lines in TAP), and its outcome becomes
 * the test's: a failed assertion, a crash, a GError or a hang fails that one
 * test, with its message, and the next test still runs.
 *
 * The runner (the child, with --gab-test-child -p /path; or the whole
 * program when GAB_TEST_IN_PROCESS=1) embeds Python, keeps the main thread
 * for an asyncio event loop (gab_run()), and runs g_test_run() on a driver
 * thread, "gab-test": blocking bodies run there, asynchronous bodies on the
 * runtime thread while the driver waits for their task.
 *
 * Why not g_test_trap_subprocess(): its child is the same program with
 * g_test_run() calling the test's function from main(), so the child
 * cannot first embed Python and give its main thread to asyncio, as the
 * runner must (a test body that awaits Python needs the loop on the main
 * thread, where signals and threading.main_thread() expect it). It also
 * hands the child's output over only once the child has exited; here it is
 * forwarded as it comes, so a test that hangs shows what it printed
 * before its timeout.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gasyncbridge.h>
#include "gab-python.h"
#include "gab-embed.h"

#include <gasyncbridge/gab-testing.h>
#include <glib/gstdio.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CHILD_OPTION "--gab-test-child"

typedef struct
{
  gchar            *name;
  gchar            *path;          /* "/name" */
  GabTestFunc       func;          /* one of these two */
  GabAsyncTestFunc  async_func;
  guint             timeout;       /* seconds; 0 for the default */
} TestCase;

/* Filled by constructors before main() runs: no lock needed. */
static GPtrArray *registry;

static gchar    *self_exe;          /* the program, for the children */
static gboolean  in_child;          /* running one test for a parent */

/* ---- registration ----------------------------------------------------- */

static void
test_case_free (gpointer data)
{
  TestCase *test = data;

  g_free (test->name);
  g_free (test->path);
  g_free (test);
}

static void
register_test (const gchar      *name,
               GabTestFunc       func,
               GabAsyncTestFunc  async_func,
               guint             timeout_seconds)
{
  TestCase *test = g_new0 (TestCase, 1);

  test->name = g_strdup (name);
  test->path = g_strconcat ("/", name, NULL);
  test->func = func;
  test->async_func = async_func;
  test->timeout = timeout_seconds;
  if (registry == NULL)
    registry = g_ptr_array_new_with_free_func (test_case_free);
  g_ptr_array_add (registry, test);
}

/**
 * gab_test_register:
 * @name: the test's name; its path is `/name`
 * @func:: the blocking body
 * @timeout_seconds: the test's timeout, or 0 for the default
 *
 * Registers a blocking test. GAB_TEST() and GAB_TEST_FULL() call it from a
 * constructor, before main(); call it yourself, before gab_test_main(), to
 * add tests made at run time.
 *
 * Since: 0.1
 */
void
gab_test_register (const gchar *name,
                   GabTestFunc  func,
                   guint        timeout_seconds)
{
  g_return_if_fail (name != NULL && *name != '\0');
  g_return_if_fail (func != NULL);

  register_test (name, func, NULL, timeout_seconds);
}

/**
 * gab_test_register_async:
 * @name: the test's name; its path is `/name`
 * @func:: the asynchronous body
 * @timeout_seconds: the test's timeout, or 0 for the default
 *
 * Registers an asynchronous test. GAB_ASYNC_TEST() and
 * GAB_ASYNC_TEST_FULL() call it from a constructor, before main().
 *
 * Since: 0.1
 */
void
gab_test_register_async (const gchar      *name,
                         GabAsyncTestFunc  func,
                         guint             timeout_seconds)
{
  g_return_if_fail (name != NULL && *name != '\0');
  g_return_if_fail (func != NULL);

  register_test (name, NULL, func, timeout_seconds);
}

static gint
test_compare (gconstpointer a,
              gconstpointer b)
{
  const TestCase *ta = *(const TestCase * const *) a;
  const TestCase *tb = *(const TestCase * const *) b;

  return strcmp (ta->name, tb->name);
}

/* GAB_TEST_TIMEOUT, else the built-in default. 0 means none. */
static guint
default_timeout (void)
{
  const gchar *env = g_getenv ("GAB_TEST_TIMEOUT");
  guint64 value;

  if (env != NULL && *env != '\0'
      && g_ascii_string_to_unsigned (env, 10, 0, G_MAXUINT / 1000, &value, NULL))
    return (guint) value;
  return GAB_TEST_DEFAULT_TIMEOUT;
}

static guint
test_timeout (const TestCase *test)
{
  return test->timeout != 0 ? test->timeout : default_timeout ();
}

/* ---- waiting for results in a blocking body -------------------------- */

/**
 * gab_test_async_ready:
 * @source_object: (nullable): the operation's source object
 * @result: the operation's result
 * @user_data: a `GAsyncResult **`, %NULL until the operation completes
 *
 * A #GAsyncReadyCallback that stores a reference to @result in the
 * `GAsyncResult *` that @user_data points to. Pass it to any `_async`
 * function, then wait with gab_test_wait_result():
 *
 *     GAsyncResult *result = NULL;
 *
 *     gab_call_async ("mod", "func", NULL, NULL, gab_test_async_ready, &result);
 *     g_autoptr(GAsyncResult) done = gab_test_wait_result (&result);
 *     g_autoptr(GVariant) value = gab_call_finish (done, error);
 *
 * Since: 0.1
 */
void
gab_test_async_ready (GObject      *source_object,
                      GAsyncResult *result,
                      gpointer      user_data)
{
  GAsyncResult **out = user_data;

  g_return_if_fail (G_IS_ASYNC_RESULT (result));
  g_return_if_fail (out != NULL && *out == NULL);

  *out = g_object_ref (result);
}

/**
 * gab_test_wait_result:
 * @result: (inout) (not nullable): where gab_test_async_ready() stores the
 *   result
 *
 * Iterates the calling thread's thread-default #GMainContext (the one a
 * blocking test body runs with) until `*@result` is set, then takes it.
 * Blocks: do not call it on the asyncio loop's thread or the runtime
 * thread. A test that never gets its result fails at its timeout.
 *
 * Returns: (transfer full): the result; `*@result` is %NULL again
 *
 * Since: 0.1
 */
GAsyncResult *
gab_test_wait_result (GAsyncResult **result)
{
  GMainContext *ctx;

  g_return_val_if_fail (result != NULL, NULL);

  ctx = g_main_context_ref_thread_default ();
  while (*result == NULL)
    g_main_context_iteration (ctx, TRUE);
  g_main_context_unref (ctx);
  return g_steal_pointer (result);
}

/**
 * gab_test_call:
 * @module: the module to import
 * @function: the name of a function in @module
 * @args: (nullable): the arguments, a tuple #GVariant (floating references
 *   are sunk)
 * @error: return location for a #GError
 *
 * gab_call_async() and gab_call_finish(), waited for: calls
 * `module.function(*args)` on the current task locals' loop (the
 * harness's asyncio loop, in a test), awaits what it returns, and returns
 * the result. For blocking test bodies, or any thread that may block and
 * does not hold the GIL; not the asyncio loop's thread, nor the runtime
 * thread. The call's callback runs in a private #GMainContext, so nothing
 * else of the caller's is dispatched meanwhile.
 *
 * Returns: (transfer full) (nullable): the result, %NULL for None or with
 *   @error set on failure
 *
 * Since: 0.1
 */
GVariant *
gab_test_call (const gchar  *module,
               const gchar  *function,
               GVariant     *args,
               GError      **error)
{
  g_autoptr(GMainContext) ctx = NULL;
  g_autoptr(GAsyncResult) done = NULL;
  GAsyncResult *result = NULL;

  g_return_val_if_fail (module != NULL, NULL);
  g_return_val_if_fail (function != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_return_val_if_fail (!gab_is_runtime_thread (), NULL);
  g_return_val_if_fail (!Py_IsInitialized () || !PyGILState_Check (), NULL);

  ctx = g_main_context_new ();
  g_main_context_push_thread_default (ctx);
  gab_call_async (module, function, args, NULL, gab_test_async_ready, &result);
  done = gab_test_wait_result (&result);
  g_main_context_pop_thread_default (ctx);
  return gab_call_finish (done, error);
}

/* ---- the runner: one process, Python embedded ------------------------ */

static void
report_error (const GError *error)
{
  g_test_fail_printf ("%s (%s, %d)", error->message,
                      g_quark_to_string (error->domain), error->code);
}

static void
run_blocking (const TestCase *test)
{
  g_autoptr(GMainContext) ctx = g_main_context_new ();
  g_autoptr(GError) error = NULL;

  g_main_context_push_thread_default (ctx);
  test->func (&error);
  g_main_context_pop_thread_default (ctx);
  if (error != NULL)
    report_error (error);
}

typedef struct
{
  const TestCase *test;
  GMutex          lock;
  GCond           cond;
  gboolean        done;
  GError         *error;
  GTask          *task;
} AsyncRun;

/* Runtime thread: the test's task completed. */
static void
async_done (GObject      *source,
            GAsyncResult *result,
            gpointer      data)
{
  AsyncRun *run = data;
  GError *error = NULL;

  if (g_task_had_error (G_TASK (result)))
    g_task_propagate_boolean (G_TASK (result), &error);
  g_mutex_lock (&run->lock);
  run->error = error;
  run->done = TRUE;
  g_cond_signal (&run->cond);
  g_mutex_unlock (&run->lock);
}

/* Runtime thread: start the body. */
static gboolean
async_start (gpointer data)
{
  AsyncRun *run = data;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();

  run->task = g_task_new (NULL, cancellable, async_done, run);
  g_task_set_name (run->task, run->test->path);
  run->test->async_func (run->task);
  return G_SOURCE_REMOVE;
}

static void
run_async (const TestCase *test)
{
  AsyncRun run = { .test = test };

  g_mutex_init (&run.lock);
  g_cond_init (&run.cond);
  gab_invoke (async_start, &run, NULL);
  g_mutex_lock (&run.lock);
  while (!run.done)
    g_cond_wait (&run.cond, &run.lock);
  g_mutex_unlock (&run.lock);
  /* GTask may still hold a reference while its callback returns, on the
   * runtime thread: whichever goes last finalizes it, safely. */
  g_clear_object (&run.task);
  if (run.error != NULL)
    report_error (run.error);
  g_clear_error (&run.error);
  g_mutex_clear (&run.lock);
  g_cond_clear (&run.cond);
}

/* In-process runs (GAB_TEST_IN_PROCESS=1) have no parent to kill a hung
 * test: a watchdog thread bails out instead, naming the test. */
static GMutex          watchdog_lock;
static GCond           watchdog_cond;
static const TestCase *watchdog_test;
static gint64          watchdog_deadline;
static GThread        *watchdog_thread;

static gpointer
watchdog_main (gpointer data)
{
  g_mutex_lock (&watchdog_lock);
  for (;;)
    {
      if (watchdog_test == NULL)
        g_cond_wait (&watchdog_cond, &watchdog_lock);
      else if (!g_cond_wait_until (&watchdog_cond, &watchdog_lock, watchdog_deadline)
               && watchdog_test != NULL
               && g_get_monotonic_time () >= watchdog_deadline)
        {
          g_print ("Bail out! %s timed out after %u s\n", watchdog_test->path,
                   test_timeout (watchdog_test));
          g_printerr ("%s: test %s timed out after %u s\n", g_get_prgname (),
                      watchdog_test->path, test_timeout (watchdog_test));
          fflush (stdout);
          _exit (1);
        }
    }
  return NULL;
}

static void
watchdog_arm (const TestCase *test)
{
  guint timeout = test_timeout (test);

  if (in_child || timeout == 0)
    return;   /* the parent keeps the time */
  g_mutex_lock (&watchdog_lock);
  if (watchdog_thread == NULL)
    watchdog_thread = g_thread_new ("gab-test-watchdog", watchdog_main, NULL);
  watchdog_test = test;
  watchdog_deadline = g_get_monotonic_time () + (gint64) timeout * G_USEC_PER_SEC;
  g_cond_signal (&watchdog_cond);
  g_mutex_unlock (&watchdog_lock);
}

static void
watchdog_disarm (void)
{
  g_mutex_lock (&watchdog_lock);
  watchdog_test = NULL;
  g_cond_signal (&watchdog_cond);
  g_mutex_unlock (&watchdog_lock);
}

/* Driver thread: one test, in this process. */
static void
run_in_process (gconstpointer data)
{
  const TestCase *test = data;

  watchdog_arm (test);
  if (test->func != NULL)
    run_blocking (test);
  else
    run_async (test);
  watchdog_disarm ();
}

static GThread *driver_thread;

static gpointer
driver_main (gpointer data)
{
  GTask *task = data;

  g_task_return_int (task, g_test_run ());
  g_object_unref (task);
  return NULL;
}

/* Runtime thread, as the start of a C future the main thread awaits. */
static void
driver_start (GCancellable        *cancellable,
              GAsyncReadyCallback  callback,
              gpointer             callback_data,
              gpointer             user_data)
{
  GTask *task = g_task_new (NULL, cancellable, callback, callback_data);

  driver_thread = g_thread_new ("gab-test", driver_main, task);
}

static PyObject *
driver_finish (GObject       *source,
               GAsyncResult  *result,
               gpointer       user_data,
               GError       **error)
{
  gssize status = g_task_propagate_int (G_TASK (result), error);

  if (status < 0)
    return NULL;
  return PyLong_FromSsize_t (status);
}

static PyObject *
driver_factory (PyObject *self,
                PyObject *unused)
{
  return gab_future_into_py (driver_start, driver_finish, NULL, NULL);
}

static PyMethodDef driver_factory_def = {
  "_gab_test_driver", driver_factory, METH_NOARGS, NULL
};

/* GIL held: runs the tests under asyncio.run(); returns g_test_run()'s
 * status. */
static int
run_driver (void)
{
  PyObject *ret, *coro;
  int status = 1;

  coro = gab_py_coroutine_from_factory (&driver_factory_def);
  ret = coro != NULL ? gab_run (coro) : NULL;
  Py_XDECREF (coro);
  if (ret != NULL)
    status = (int) PyLong_AsLong (ret);
  Py_XDECREF (ret);

  if (PyErr_Occurred ())
    {
      g_printerr ("%s: the test driver failed:\n", g_get_prgname ());
      PyErr_Print ();
      status = 1;
    }
  if (driver_thread != NULL)
    {
      /* It has returned the status already; let it finish without the GIL. */
      Py_BEGIN_ALLOW_THREADS
      g_thread_join (g_steal_pointer (&driver_thread));
      Py_END_ALLOW_THREADS
    }
  return status;
}

static int
run_tests_in_process (int    argc,
                      char **argv)
{
  g_autoptr(GError) error = NULL;
  int status;

  if (in_child)
    /* The parent reads our output from a file: keep it when we crash. */
    setvbuf (stdout, NULL, _IOLBF, 0);
  /* Unbuffered: what a test printed before it crashed is kept. */
  if (!gab_python_embed (argc, argv, TRUE, &error))
    {
      g_printerr ("%s: %s\n", g_get_prgname (), error->message);
      return 1;
    }
  status = run_driver ();
  /* Runtime first, while Python still works; then Python. */
  gab_shutdown ();
  if (Py_FinalizeEx () < 0 && status == 0)
    status = 120;
  return status;
}

/* ---- the parent: one child process per test --------------------------- */

typedef struct
{
  gboolean exited;
  gboolean timed_out;
  GSource *kill_timer;   /* after a timeout: SIGKILL if SIGABRT was not enough */
} ChildWait;

static void
child_exited (GObject      *source,
              GAsyncResult *result,
              gpointer      data)
{
  ChildWait *wait = data;

  g_subprocess_wait_finish (G_SUBPROCESS (source), result, NULL);
  wait->exited = TRUE;
}

/* How long a timed-out test has to print its stacks before it is killed. */
#define GAB_TEST_DUMP_SECONDS 5

static gboolean
child_killed (gpointer data)
{
  g_subprocess_force_exit (G_SUBPROCESS (data));
  return G_SOURCE_REMOVE;
}

/* A test past its timeout gets SIGABRT first: faulthandler, on in the
 * child (PYTHONFAULTHANDLER=1), prints the Python stack of every thread
 * into its output. SIGKILL follows if it is still there a little later. */
static gboolean
child_timed_out (gpointer data)
{
  GSubprocess *proc = data;
  ChildWait *wait = g_object_get_data (G_OBJECT (proc), "gab-test-wait");
  GSource *kill_timer;

  wait->timed_out = TRUE;
  g_subprocess_send_signal (proc, SIGABRT);
  kill_timer = g_timeout_source_new_seconds (GAB_TEST_DUMP_SECONDS);
  g_source_set_callback (kill_timer, child_killed, g_object_ref (proc), g_object_unref);
  g_source_attach (kill_timer, g_main_context_get_thread_default ());
  wait->kill_timer = kill_timer;
  return G_SOURCE_REMOVE;
}

static gchar *
read_all (int fd)
{
  GString *out = g_string_new (NULL);
  char buf[4096];
  gssize n;

  if (lseek (fd, 0, SEEK_SET) < 0)
    return g_string_free (out, FALSE);
  for (;;)
    {
      n = read (fd, buf, sizeof buf);
      if (n > 0)
        g_string_append_len (out, buf, n);
      else if (n == 0 || errno != EINTR)
        break;
    }
  return g_string_free (out, FALSE);
}

typedef struct
{
  gboolean  seen_result;   /* an "ok"/"not ok" line for our test */
  gboolean  passed;
  gchar    *skip;          /* reason, or NULL */
  gchar    *todo;
  gchar    *failure;       /* reason from "not ok ... - reason" */
  gchar    *bail_out;      /* a "Bail out! ..." or GLib's "ERROR:" line */
} ChildReport;

static void
child_report_clear (ChildReport *report)
{
  g_free (report->skip);
  g_free (report->todo);
  g_free (report->failure);
  g_free (report->bail_out);
}

/* Reads the child's TAP: keeps its result, forwards everything else that
 * a reader of ours would want to see as messages of this test. */
static void
child_output_parse (const gchar *output,
                    const gchar *path,
                    ChildReport *report)
{
  g_auto(GStrv) lines = g_strsplit (output, "\n", -1);
  g_autofree gchar *ok_prefix = g_strdup_printf ("ok 1 %s", path);
  g_autofree gchar *not_ok_prefix = g_strdup_printf ("not ok 1 %s", path);

  for (gsize i = 0; lines[i] != NULL; i++)
    {
      const gchar *line = lines[i];
      const gchar *mark;

      if (*line == '\0' && lines[i + 1] == NULL)
        break;
      if (g_str_has_prefix (line, ok_prefix))
        {
          report->seen_result = TRUE;
          report->passed = TRUE;
          if ((mark = strstr (line, " # SKIP")) != NULL)
            report->skip = g_strdup (g_strchug ((gchar *) mark + strlen (" # SKIP")));
          continue;
        }
      if (g_str_has_prefix (line, not_ok_prefix))
        {
          const gchar *rest = line + strlen (not_ok_prefix);

          report->seen_result = TRUE;
          if ((mark = strstr (rest, " # TODO")) != NULL)
            report->todo = g_strdup (g_strchug ((gchar *) mark + strlen (" # TODO")));
          else if (g_str_has_prefix (rest, " - "))
            report->failure = g_strdup (rest + 3);
          continue;
        }
      /* The child's TAP framing says nothing new. */
      if (g_regex_match_simple ("^1\\.\\.[0-9]+$", line, 0, 0)
          || g_str_has_prefix (line, "# random seed:")
          || g_str_has_prefix (line, "# Start of ")
          || g_str_has_prefix (line, "# End of "))
        continue;
      if (g_str_has_prefix (line, "Bail out!"))
        {
          gchar *reason = g_strstrip (g_strdup (line + strlen ("Bail out!")));

          if (*reason != '\0')
            {
              g_free (report->bail_out);
              report->bail_out = reason;
              continue;
            }
          g_free (reason);
        }
      else if (report->bail_out == NULL
               && (g_str_has_prefix (line, "ERROR:") || strstr (line, "-ERROR **") != NULL))
        report->bail_out = g_strdup (line);
      /* The child's own messages come as "# text": keep the text. */
      g_test_message ("%s", g_str_has_prefix (line, "# ") ? line + 2 : line);
    }
}

static void
run_in_subprocess (gconstpointer data)
{
  const TestCase *test = data;
  guint timeout = test_timeout (test);
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) proc = NULL;
  g_autoptr(GMainContext) ctx = NULL;
  g_autoptr(GSource) timer = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autofree gchar *log_path = NULL;
  g_autofree gchar *output = NULL;
  ChildReport report = { 0 };
  ChildWait wait = { 0 };
  int fd;

  fd = g_file_open_tmp ("gab-test-XXXXXX.log", &log_path, &error);
  if (fd < 0)
    {
      g_test_fail_printf ("cannot make a file for the test's output: %s", error->message);
      return;
    }
  g_unlink (log_path);

  g_ptr_array_add (argv, self_exe);
  g_ptr_array_add (argv, CHILD_OPTION);
  g_ptr_array_add (argv, "-p");
  g_ptr_array_add (argv, test->path);
  if (g_test_verbose ())
    g_ptr_array_add (argv, "--verbose");
  if (g_test_thorough ())
    g_ptr_array_add (argv, "-m=thorough");
  else if (g_test_slow ())
    g_ptr_array_add (argv, "-m=slow");
  g_ptr_array_add (argv, NULL);

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDERR_MERGE);
  if (g_getenv ("PYTHONFAULTHANDLER") == NULL)
    g_subprocess_launcher_setenv (launcher, "PYTHONFAULTHANDLER", "1", TRUE);
  g_subprocess_launcher_take_stdout_fd (launcher, dup (fd));

  ctx = g_main_context_new ();
  g_main_context_push_thread_default (ctx);
  proc = g_subprocess_launcher_spawnv (launcher, (const gchar * const *) argv->pdata, &error);
  if (proc != NULL)
    {
      g_object_set_data (G_OBJECT (proc), "gab-test-wait", &wait);
      g_subprocess_wait_async (proc, NULL, child_exited, &wait);
      if (timeout > 0)
        {
          timer = g_timeout_source_new ((guint) timeout * 1000);
          g_source_set_callback (timer, child_timed_out, proc, NULL);
          g_source_attach (timer, ctx);
        }
      while (!wait.exited)
        g_main_context_iteration (ctx, TRUE);
      if (timer != NULL)
        g_source_destroy (timer);
      if (wait.kill_timer != NULL)
        {
          g_source_destroy (wait.kill_timer);
          g_source_unref (wait.kill_timer);
        }
    }
  g_main_context_pop_thread_default (ctx);
  if (proc == NULL)
    {
      close (fd);
      g_test_fail_printf ("cannot start the test's process: %s", error->message);
      return;
    }

  output = read_all (fd);
  close (fd);
  child_output_parse (output, test->path, &report);

  if (wait.timed_out)
    g_test_fail_printf ("timed out after %u s, and was killed (the timeout is "
                        "set by GAB_TEST_FULL () or GAB_TEST_TIMEOUT; its Python "
                        "stacks, if any, are in its output above)", timeout);
  else if (g_subprocess_get_if_signaled (proc))
    {
      int sig = g_subprocess_get_term_sig (proc);

      g_test_fail_printf ("%s%skilled by signal %d (%s)",
                          report.bail_out ? report.bail_out : "",
                          report.bail_out ? "; " : "",
                          sig, g_strsignal (sig));
    }
  else if (report.todo != NULL)
    g_test_incomplete (report.todo);
  else if (report.skip != NULL)
    g_test_skip (report.skip);
  else if (g_subprocess_get_exit_status (proc) == 77 && !report.seen_result)
    g_test_skip ("skipped");
  else if (g_subprocess_get_exit_status (proc) != 0 || !report.passed)
    {
      const gchar *reason = report.failure ? report.failure : report.bail_out;

      if (reason != NULL)
        g_test_fail_printf ("%s", reason);
      else if (!report.seen_result)
        g_test_fail_printf ("exited with status %d without reporting a result",
                            g_subprocess_get_exit_status (proc));
      else
        g_test_fail_printf ("failed (exit status %d)",
                            g_subprocess_get_exit_status (proc));
    }
  child_report_clear (&report);
}

/* ---- main ------------------------------------------------------------- */

/* GLib test options whose value may be the next argument. */
static gboolean
option_takes_value (const gchar *arg)
{
  static const gchar * const options[] = {
    "-p", "-s", "-m", "-r", "--seed", "--GTestLogFD", "--GTestSkipCount",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (options); i++)
    if (strcmp (arg, options[i]) == 0)
      return TRUE;
  return FALSE;
}

static gboolean
test_matches (const TestCase *test,
              GPtrArray      *filters)
{
  if (filters->len == 0)
    return TRUE;
  for (guint i = 0; i < filters->len; i++)
    if (strstr (test->name, filters->pdata[i]) != NULL)
      return TRUE;
  return FALSE;
}

static gboolean
env_flag (const gchar *name)
{
  const gchar *value = g_getenv (name);

  return value != NULL && *value != '\0' && strcmp (value, "0") != 0
         && g_ascii_strcasecmp (value, "no") != 0
         && g_ascii_strcasecmp (value, "false") != 0;
}

/**
 * gab_test_main:
 * @argc: the program's argument count
 * @argv: (array length=argc): the program's arguments
 *
 * Runs the registered tests (GAB_TEST(), GAB_ASYNC_TEST()) with the GLib
 * test framework; GAB_TEST_MAIN() defines `main()` as a call of this.
 *
 * Options are g_test_init()'s: `-p PATH`, `-s PATH`, `-l`, `--tap`, `-q`,
 * `-v`, `-m MODE`, `--seed`. Positional arguments filter by name, as
 * `cargo test NAME` does: only tests whose name contains one of them are
 * run (and listed). The output is TAP, so `meson test` with
 * `protocol: 'tap'` counts every test.
 *
 * Each test runs in a child process of the program, which embeds Python,
 * runs an asyncio event loop on its main thread and the test body on a
 * worker thread (GAB_TEST()) or the runtime thread (GAB_ASYNC_TEST()). A
 * failed assertion, a crash, or an error fails that test, with its message
 * and output, and the others still run. A test that is not done within its
 * timeout is killed and fails, naming the test. The timeout is the test's
 * own if it has one (GAB_TEST_FULL(), GAB_ASYNC_TEST_FULL()); else the
 * value of the environment variable `GAB_TEST_TIMEOUT`, in seconds, if set
 * (0 for none); else GAB_TEST_DEFAULT_TIMEOUT (30 s).
 *
 * With `GAB_TEST_IN_PROCESS=1` in the environment, all tests run in this
 * process instead, which suits debuggers and valgrind: the first failed
 * assertion then ends the run, and a timeout bails out naming the test.
 *
 * Returns: the exit status: 0 if every test passed or was skipped
 *
 * Since: 0.1
 */
int
gab_test_main (int    argc,
               char **argv)
{
  g_autoptr(GPtrArray) filters = g_ptr_array_new ();
  g_autoptr(GPtrArray) args = g_ptr_array_new ();
  gboolean options_done = FALSE, in_process;
  char **test_argv;
  int test_argc, status;
  guint registered = 0;

  g_return_val_if_fail (argc > 0 && argv != NULL, 1);

  self_exe = g_file_read_link ("/proc/self/exe", NULL);
  if (self_exe == NULL)
    self_exe = g_canonicalize_filename (argv[0], NULL);

  /* Split: our option, positional filters, and GLib's options. */
  g_ptr_array_add (args, argv[0]);
  for (int i = 1; i < argc; i++)
    {
      const gchar *arg = argv[i];

      if (options_done || arg[0] != '-' || arg[1] == '\0')
        g_ptr_array_add (filters, (gpointer) arg);
      else if (strcmp (arg, "--") == 0)
        options_done = TRUE;
      else if (strcmp (arg, CHILD_OPTION) == 0)
        in_child = TRUE;
      else
        {
          g_ptr_array_add (args, (gpointer) arg);
          if (option_takes_value (arg) && i + 1 < argc)
            g_ptr_array_add (args, argv[++i]);
        }
    }
  /* A failing test must not stop the others. */
  g_ptr_array_add (args, "--keep-going");

  in_process = in_child || env_flag ("GAB_TEST_IN_PROCESS");
  for (guint i = 1; i < args->len; i++)
    if (strcmp (args->pdata[i], "--GTestSubprocess") == 0)
      /* A test's own g_test_trap_subprocess(): run its body here. */
      in_child = in_process = TRUE;

  g_ptr_array_add (args, NULL);
  test_argc = (int) args->len - 1;
  test_argv = (char **) args->pdata;
  g_test_init (&test_argc, &test_argv, NULL);

  if (registry != NULL)
    {
      g_ptr_array_sort (registry, test_compare);
      for (guint i = 0; i < registry->len; i++)
        {
          TestCase *test = registry->pdata[i];

          if (i > 0 && strcmp (test->name, ((TestCase *) registry->pdata[i - 1])->name) == 0)
            {
              g_printerr ("%s: two tests are named '%s'\n", g_get_prgname (), test->name);
              return 1;
            }
          if (!test_matches (test, filters))
            continue;
          g_test_add_data_func (test->path, test,
                                in_process ? run_in_process : run_in_subprocess);
          registered++;
        }
    }
  if (registered == 0 && filters->len > 0)
    g_test_message ("no test name contains %s%s",
                    (const gchar *) filters->pdata[0],
                    filters->len > 1 ? " (or the other filters)" : "");

  if (in_process)
    status = run_tests_in_process (test_argc, test_argv);
  else
    status = g_test_run ();

  g_clear_pointer (&registry, g_ptr_array_unref);
  g_clear_pointer (&self_exe, g_free);
  return status;
}
