/* test-harness-failing.c: tests that fail on purpose, one way each, between
 * tests that pass. It is not a meson test itself: check_harness.py runs it
 * and checks that every failure is reported as `not ok` with its message,
 * that the run exits non-zero, and that the passing tests still ran.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gab-testing.h>

#include <signal.h>

/* The script sets GAB_TEST_TIMEOUT=2 for `hangs`: every other test has a
 * timeout of its own, long enough for a loaded machine, so that only the
 * hanging ones can time out. */

GAB_TEST_FULL (a_first_test_passes, 60)
{
}

GAB_TEST_FULL (fails_an_assertion, 60)
{
  int two = 2;

  g_assert_cmpint (two + 2, ==, 5);
}

GAB_TEST_FULL (fails_with_a_python_error, 60)
{
  g_autoptr(GVariant) value = gab_test_call ("harness_helpers", "fail",
                                             g_variant_new ("(s)", "deliberate"),
                                             error);

  g_assert_null (value);
}

static void
failed (GObject      *source,
        GAsyncResult *result,
        gpointer      data)
{
  g_autoptr(GTask) task = data;
  GError *error = NULL;
  g_autoptr(GVariant) value G_GNUC_UNUSED = gab_call_finish (result, &error);

  if (error != NULL)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

GAB_ASYNC_TEST_FULL (fails_async_with_a_python_error, 60)
{
  gab_call_async ("harness_helpers", "fail", g_variant_new ("(s)", "async deliberate"),
                  g_task_get_cancellable (task), failed, g_object_ref (task));
}

GAB_TEST_FULL (crashes, 60)
{
  raise (SIGSEGV);
}

/* Waits for what never comes: fails at its timeout (GAB_TEST_TIMEOUT, set
 * short by the checking script). */
GAB_TEST (hangs)
{
  GMutex lock;
  GCond cond;

  g_mutex_init (&lock);
  g_cond_init (&cond);
  g_mutex_lock (&lock);
  for (;;)
    g_cond_wait (&cond, &lock);
}

/* Never completes its task: fails at its own timeout of one second. */
GAB_ASYNC_TEST_FULL (hangs_async, 1)
{
}

GAB_TEST_FULL (is_skipped, 60)
{
  g_test_skip ("not on this machine");
}

GAB_ASYNC_TEST_FULL (z_last_test_passes, 60)
{
  g_task_return_boolean (task, TRUE);
}

GAB_TEST_MAIN ()
