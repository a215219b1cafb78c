/* test-harness.c: the end-to-end suite written with the gasyncbridge test
 * harness — blocking (GAB_TEST) and asynchronous (GAB_ASYNC_TEST) tests
 * that await Python and GIO. Its Python side is harness_helpers.py, which
 * ships next to this program.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gab-testing.h>

#include <sys/syscall.h>
#include <unistd.h>

static gboolean
on_main_thread (void)
{
  return syscall (SYS_gettid) == getpid ();
}

static gchar *
helpers_path (void)
{
  g_autofree gchar *exe = g_file_read_link ("/proc/self/exe", NULL);
  g_autofree gchar *dir = g_path_get_dirname (exe);

  return g_build_filename (dir, "harness_helpers.py", NULL);
}

/* ---- where bodies run ------------------------------------------------- */

GAB_TEST (blocking_runs_on_a_worker_thread)
{
  GMainContext *ctx = g_main_context_get_thread_default ();

  /* Not the asyncio loop's thread (the main one), not the runtime's. */
  g_assert_false (on_main_thread ());
  g_assert_false (gab_is_runtime_thread ());
  /* A context of its own, for the callbacks of what it starts. */
  g_assert_nonnull (ctx);
  g_assert_true (ctx != gab_get_context ());
  g_assert_true (ctx != g_main_context_default ());
}

GAB_ASYNC_TEST (async_runs_on_the_runtime_thread)
{
  g_assert_true (gab_is_runtime_thread ());
  g_assert_false (on_main_thread ());
  g_assert_true (g_main_context_get_thread_default () == gab_get_context ());
  g_assert_true (G_IS_CANCELLABLE (g_task_get_cancellable (task)));
  g_task_return_boolean (task, TRUE);
}

/* ---- a blocking test awaits Python ------------------------------------ */

GAB_TEST (blocking_awaits_a_python_coroutine)
{
  g_autoptr(GVariant) greeting = NULL;
  g_autoptr(GVariant) where = NULL;
  gboolean main_thread, running;

  greeting = gab_test_call ("harness_helpers", "greet",
                            g_variant_new ("(s)", "harness"), error);
  if (greeting == NULL)
    return;
  g_assert_cmpstr (g_variant_get_string (greeting, NULL), ==, "hello, harness");

  /* The coroutine ran on the loop, on the main thread. */
  where = gab_test_call ("harness_helpers", "where", NULL, error);
  if (where == NULL)
    return;
  g_variant_get (where, "(bb)", &main_thread, &running);
  g_assert_true (main_thread);
  g_assert_true (running);
}

GAB_TEST (blocking_calls_a_plain_python_function)
{
  g_autoptr(GVariant) sum = gab_test_call ("harness_helpers", "add",
                                           g_variant_new ("(xx)", (gint64) 40, (gint64) 2),
                                           error);

  if (sum == NULL)
    return;
  g_assert_true (g_variant_is_of_type (sum, G_VARIANT_TYPE_INT64));
  g_assert_cmpint (g_variant_get_int64 (sum), ==, 42);
}

GAB_TEST (blocking_gets_python_exceptions_as_errors)
{
  g_autoptr(GError) local_error = NULL;
  g_autoptr(GVariant) value = gab_test_call ("harness_helpers", "fail",
                                             g_variant_new ("(s)", "on purpose"),
                                             &local_error);

  g_assert_null (value);
  g_assert_error (local_error, GAB_PYTHON_ERROR, GAB_PYTHON_ERROR_EXCEPTION);
  g_assert_nonnull (strstr (local_error->message, "ValueError"));
  g_assert_nonnull (strstr (local_error->message, "on purpose"));
}

/* The generic way: any _async function, the body's own context. */
GAB_TEST (blocking_waits_for_gio_and_python_together)
{
  g_autofree gchar *path = helpers_path ();
  g_autoptr(GFile) file = g_file_new_for_path (path);
  g_autoptr(GAsyncResult) loaded = NULL;
  g_autoptr(GAsyncResult) called = NULL;
  g_autoptr(GVariant) greeting = NULL;
  g_autofree gchar *contents = NULL;
  GAsyncResult *load_result = NULL, *call_result = NULL;

  g_file_load_contents_async (file, NULL, gab_test_async_ready, &load_result);
  gab_call_async ("harness_helpers", "greet", g_variant_new ("(s)", "gio"),
                  NULL, gab_test_async_ready, &call_result);
  called = gab_test_wait_result (&call_result);
  loaded = gab_test_wait_result (&load_result);

  if (!g_file_load_contents_finish (file, loaded, &contents, NULL, NULL, error))
    return;
  g_assert_nonnull (strstr (contents, "def greet"));
  greeting = gab_call_finish (called, error);
  if (greeting == NULL)
    return;
  g_assert_cmpstr (g_variant_get_string (greeting, NULL), ==, "hello, gio");
}

/* ---- blocking does not stall the others ------------------------------- */

typedef struct
{
  gint     done;       /* atomic */
  gint64   ticks;
  GError  *error;
} Ticker;

static void
ticker_done (GObject      *source,
             GAsyncResult *result,
             gpointer      data)
{
  Ticker *ticker = data;
  g_autoptr(GVariant) value = gab_call_finish (result, &ticker->error);

  /* The runtime thread's context: the body's was never iterated. */
  g_assert_true (gab_is_runtime_thread ());
  if (value != NULL)
    ticker->ticks = g_variant_get_int64 (value);
  g_atomic_int_set (&ticker->done, TRUE);
}

static gboolean
ticker_start (gpointer data)
{
  gab_call_async ("harness_helpers", "ticker", g_variant_new ("(x)", (gint64) 100),
                  NULL, ticker_done, data);
  return G_SOURCE_REMOVE;
}

/* While this body sleeps, the runtime thread and the asyncio loop carry
 * an operation through a hundred trips of the loop: the body learns it
 * from a flag that only they set, never from the clock. A harness that ran
 * bodies on the loop or the runtime thread would hang here, and the test
 * would fail at its timeout. */
GAB_TEST (blocking_sleep_does_not_stall_the_loop_or_the_runtime)
{
  Ticker ticker = { 0 };

  gab_invoke (ticker_start, &ticker, NULL);
  while (!g_atomic_int_get (&ticker.done))
    g_usleep (G_USEC_PER_SEC / 1000);

  g_assert_no_error (ticker.error);
  g_assert_cmpint (ticker.ticks, ==, 100);
}

/* The same with a wait that blocks in Python: threading.Event.wait()
 * holds no GIL while it waits, so the loop runs ticker_then_signal()
 * meanwhile, and sets the event. */
GAB_TEST (blocking_python_wait_does_not_stall_the_loop)
{
  GAsyncResult *result = NULL;
  g_autoptr(GAsyncResult) done = NULL;
  g_autoptr(GVariant) ticks = NULL;
  PyGILState_STATE state;
  PyObject *helpers, *ret = NULL;

  /* Its callback waits in this body's context, which nobody iterates
   * until the wait below is over. */
  gab_call_async ("harness_helpers", "ticker_then_signal",
                  g_variant_new ("(x)", (gint64) 10), NULL, gab_test_async_ready, &result);

  state = PyGILState_Ensure ();
  helpers = PyImport_ImportModule ("harness_helpers");
  if (helpers != NULL)
    ret = PyObject_CallMethod (helpers, "wait_ticked", NULL);
  if (ret == NULL)
    PyErr_Print ();
  g_assert_true (ret == Py_True);
  Py_XDECREF (ret);
  Py_XDECREF (helpers);
  PyGILState_Release (state);

  done = gab_test_wait_result (&result);
  ticks = gab_call_finish (done, error);
  if (ticks != NULL)
    g_assert_cmpint (g_variant_get_int64 (ticks), ==, 10);
}

/* ---- an asynchronous test awaits Python and GIO ----------------------- */

static void
greeted (GObject      *source,
         GAsyncResult *result,
         gpointer      data)
{
  g_autoptr(GTask) task = data;
  GError *error = NULL;
  g_autoptr(GVariant) greeting = gab_call_finish (result, &error);

  g_assert_true (gab_is_runtime_thread ());
  if (greeting == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  g_assert_cmpstr (g_variant_get_string (greeting, NULL), ==, "hello, async");
  g_task_return_boolean (task, TRUE);
}

GAB_ASYNC_TEST (async_awaits_a_python_coroutine)
{
  gab_call_async ("harness_helpers", "greet", g_variant_new ("(s)", "async"),
                  g_task_get_cancellable (task), greeted, g_object_ref (task));
}

typedef struct
{
  GTask   *task;
  guint    pending;
  gchar   *contents;
  gchar   *greeting;
} Both;

static void
both_step (Both   *both,
           GError *error)
{
  if (error != NULL && !g_task_had_error (both->task))
    g_task_return_error (both->task, error);
  else
    g_clear_error (&error);
  if (--both->pending > 0)
    return;
  if (!g_task_had_error (both->task))
    {
      g_assert_nonnull (strstr (both->contents, "async def greet"));
      g_assert_cmpstr (both->greeting, ==, "hello, both");
      g_task_return_boolean (both->task, TRUE);
    }
  g_object_unref (both->task);
  g_free (both->contents);
  g_free (both->greeting);
  g_free (both);
}

static void
both_loaded (GObject      *source,
             GAsyncResult *result,
             gpointer      data)
{
  Both *both = data;
  GError *error = NULL;

  g_file_load_contents_finish (G_FILE (source), result, &both->contents, NULL, NULL, &error);
  both_step (both, error);
}

static void
both_greeted (GObject      *source,
              GAsyncResult *result,
              gpointer      data)
{
  Both *both = data;
  GError *error = NULL;
  g_autoptr(GVariant) greeting = gab_call_finish (result, &error);

  if (greeting != NULL)
    both->greeting = g_variant_dup_string (greeting, NULL);
  both_step (both, error);
}

GAB_ASYNC_TEST (async_awaits_gio_and_python_concurrently)
{
  g_autofree gchar *path = helpers_path ();
  g_autoptr(GFile) file = g_file_new_for_path (path);
  Both *both = g_new0 (Both, 1);

  both->task = g_object_ref (task);
  both->pending = 2;
  g_file_load_contents_async (file, g_task_get_cancellable (task), both_loaded, both);
  gab_call_async ("harness_helpers", "greet", g_variant_new ("(s)", "both"),
                  g_task_get_cancellable (task), both_greeted, both);
}

/* Cancelling from C cancels the Python task: the coroutine sees
 * CancelledError, and C sees G_IO_ERROR_CANCELLED once it has stopped. */
typedef struct
{
  GTask        *task;
  GCancellable *cancellable;
} Cancel;

static void
cancel_counted (GObject      *source,
                GAsyncResult *result,
                gpointer      data)
{
  Cancel *cancel = data;
  GError *error = NULL;
  g_autoptr(GVariant) count = gab_call_finish (result, &error);

  if (count == NULL)
    g_task_return_error (cancel->task, error);
  else
    {
      g_assert_cmpint (g_variant_get_int64 (count), ==, 1);
      g_task_return_boolean (cancel->task, TRUE);
    }
  g_object_unref (cancel->task);
  g_object_unref (cancel->cancellable);
  g_free (cancel);
}

static void
cancel_stopped (GObject      *source,
                GAsyncResult *result,
                gpointer      data)
{
  Cancel *cancel = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) value = gab_call_finish (result, &error);

  g_assert_null (value);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  gab_call_async ("harness_helpers", "cancelled_count", NULL, NULL,
                  cancel_counted, cancel);
}

static void
cancel_started (GObject      *source,
                GAsyncResult *result,
                gpointer      data)
{
  Cancel *cancel = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) value G_GNUC_UNUSED = gab_call_finish (result, &error);

  /* greet() ran after sleep_forever() started: cancel it now. */
  g_assert_no_error (error);
  g_cancellable_cancel (cancel->cancellable);
}

GAB_ASYNC_TEST (async_cancels_a_python_coroutine)
{
  Cancel *cancel = g_new0 (Cancel, 1);

  cancel->task = g_object_ref (task);
  cancel->cancellable = g_cancellable_new ();
  gab_call_async ("harness_helpers", "sleep_forever", NULL, cancel->cancellable,
                  cancel_stopped, cancel);
  /* Calls reach the loop in order: once greet() answers, sleep_forever()
   * is waiting. */
  gab_call_async ("harness_helpers", "greet", g_variant_new ("(s)", "x"), NULL,
                  cancel_started, cancel);
}

GAB_TEST_MAIN ()
