/* test-guide.c: tests on the gasyncbridge harness (doc/guide/05-testing.md),
 * run by `meson test` with protocol 'tap'. jobs.py ships next to it.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/* [guide:test-blocking] */
#include <gasyncbridge/gab-testing.h>

GAB_TEST (squares_in_python)          /* a worker thread: the body may block */
{
  g_autoptr(GVariant) square = gab_test_call ("jobs", "square",
                                              g_variant_new ("(x)", (gint64) 12), error);

  if (square != NULL)                 /* else *error is set, and the test fails */
    g_assert_cmpint (g_variant_get_int64 (square), ==, 144);
}
/* [/guide:test-blocking] */

/* [guide:test-async] */
static void
greeted (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)     /* the runtime thread, like the body */
{
  g_autoptr(GTask) task = user_data;
  GError *error = NULL;
  g_autoptr(GVariant) greeting = gab_call_finish (result, &error);

  if (greeting == NULL)
    {
      g_task_return_error (task, error);   /* fails the test with the message */
      return;
    }
  g_assert_cmpstr (g_variant_get_string (greeting, NULL), ==, "hello, test");
  g_task_return_boolean (task, TRUE);
}

GAB_ASYNC_TEST (greets_asynchronously)     /* the runtime thread: must not block */
{
  gab_call_async ("jobs", "greet", g_variant_new ("(s)", "test"),
                  g_task_get_cancellable (task), greeted, g_object_ref (task));
}
/* [/guide:test-async] */

/* [guide:test-gio] */
GAB_TEST_FULL (waits_for_gio_and_python, 10)      /* a timeout of its own: 10 s */
{
  g_autoptr(GFile) tmp = g_file_new_for_path (g_get_tmp_dir ());
  GAsyncResult *info_result = NULL, *call_result = NULL;
  g_autoptr(GAsyncResult) info_done = NULL;
  g_autoptr(GAsyncResult) call_done = NULL;
  g_autoptr(GFileInfo) info = NULL;
  g_autoptr(GVariant) count = NULL;

  /* Both run at once; their callbacks come to this body's own context. */
  g_file_query_info_async (tmp, G_FILE_ATTRIBUTE_STANDARD_TYPE, G_FILE_QUERY_INFO_NONE,
                           G_PRIORITY_DEFAULT, NULL, gab_test_async_ready, &info_result);
  gab_call_async ("jobs", "count_to", g_variant_new ("(i)", 3), NULL,
                  gab_test_async_ready, &call_result);
  info_done = gab_test_wait_result (&info_result);
  call_done = gab_test_wait_result (&call_result);

  info = g_file_query_info_finish (tmp, info_done, error);
  if (info == NULL)
    return;
  g_assert_cmpint (g_file_info_get_file_type (info), ==, G_FILE_TYPE_DIRECTORY);
  count = gab_call_finish (call_done, error);
  if (count != NULL)
    g_assert_cmpint (g_variant_get_int64 (count), ==, 3);
}
/* [/guide:test-gio] */

/* [guide:test-main] */
GAB_TEST_MAIN ()
/* [/guide:test-main] */
