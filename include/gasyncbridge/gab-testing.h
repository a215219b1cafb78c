/* gab-testing.h: the test harness for `meson test`, the counterpart of
 * pyo3_asyncio::testing. Include it after, or instead of,
 * <gasyncbridge/gasyncbridge.h>:
 *
 *     #include <gasyncbridge/gab-testing.h>
 *
 *     GAB_TEST (adds_in_python)
 *     {
 *       g_autoptr(GVariant) sum = gab_test_call ("helpers", "add",
 *                                                g_variant_new ("(ii)", 1, 2),
 *                                                error);
 *       if (sum != NULL)
 *         g_assert_cmpint (g_variant_get_int64 (sum), ==, 3);
 *     }
 *
 *     GAB_ASYNC_TEST (returns_at_once)
 *     {
 *       g_task_return_boolean (task, TRUE);
 *     }
 *
 *     GAB_TEST_MAIN ()
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gasyncbridge/gasyncbridge.h>

G_BEGIN_DECLS

/**
 * GAB_TEST_DEFAULT_TIMEOUT:
 *
 * The timeout of a test, in seconds, when neither the test (GAB_TEST_FULL(),
 * GAB_ASYNC_TEST_FULL()) nor the environment variable `GAB_TEST_TIMEOUT`
 * sets one.
 *
 * Since: 0.1
 */
#define GAB_TEST_DEFAULT_TIMEOUT 30

/**
 * GabTestFunc:
 * @error: return location for a #GError; setting it fails the test with
 *   its message
 *
 * The body of a blocking test (GAB_TEST()). It runs on a worker thread, not
 * the asyncio loop's and not the runtime's, so it may block: sleep, wait
 * for a condition, or wait for Python work with gab_test_call() or
 * gab_test_wait_result(). A new #GMainContext is its thread-default context
 * while it runs. It holds no GIL.
 *
 * Since: 0.1
 */
typedef void (*GabTestFunc) (GError **error);

/**
 * GabAsyncTestFunc:
 * @task: (transfer none): the test's task; complete it with
 *   g_task_return_boolean() (or any g_task_return_*()) for success, or with
 *   an error to fail the test with its message. The harness keeps its own
 *   reference: take one if you complete @task from a callback
 *
 * The body of an asynchronous test (GAB_ASYNC_TEST()). It runs on the
 * runtime thread, whose #GMainContext is the thread-default one, so GIO
 * callbacks (and gab_call_async() callbacks) come back there. It must not
 * block. @task has a #GCancellable.
 *
 * Since: 0.1
 */
typedef void (*GabAsyncTestFunc) (GTask *task);

GAB_EXTERN
void          gab_test_register        (const gchar       *name,
                                        GabTestFunc        func,
                                        guint              timeout_seconds);
GAB_EXTERN
void          gab_test_register_async  (const gchar       *name,
                                        GabAsyncTestFunc   func,
                                        guint              timeout_seconds);
GAB_EXTERN
int           gab_test_main            (int                argc,
                                        char             **argv);

GAB_EXTERN
void          gab_test_async_ready     (GObject           *source_object,
                                        GAsyncResult      *result,
                                        gpointer           user_data);
GAB_EXTERN
GAsyncResult *gab_test_wait_result     (GAsyncResult     **result);
GAB_EXTERN
GVariant     *gab_test_call            (const gchar       *module,
                                        const gchar       *function,
                                        GVariant          *args,
                                        GError           **error);

/**
 * GAB_TEST_FULL:
 * @name: the test's name, a C identifier; the test's path is `/name`
 * @timeout_seconds: how long the test may run before it fails as hung;
 *   0 for the default (see GAB_TEST_DEFAULT_TIMEOUT)
 *
 * Like GAB_TEST(), with a timeout of its own. The body follows the macro
 * as a function body, with `GError **error` in scope (see #GabTestFunc).
 *
 * Since: 0.1
 */
#define GAB_TEST_FULL(name, timeout_seconds) \
  static void gab_test_body_##name (G_GNUC_UNUSED GError **error); \
  __attribute__((constructor)) static void \
  gab_test_ctor_##name (void) \
  { \
    gab_test_register (#name, gab_test_body_##name, (timeout_seconds)); \
  } \
  static void gab_test_body_##name (G_GNUC_UNUSED GError **error)

/**
 * GAB_TEST:
 * @name: the test's name, a C identifier; the test's path is `/name`
 *
 * Defines and registers a blocking test. The body follows the macro as a
 * function body, with `GError **error` in scope: it runs on a worker
 * thread while the main thread keeps running the asyncio event loop, so it
 * may block, and may wait for Python (gab_test_call()). Setting `*error`
 * or failing an assertion fails the test. Tests register themselves when
 * the program starts: there is no list to maintain.
 *
 * Since: 0.1
 */
#define GAB_TEST(name) GAB_TEST_FULL (name, 0)

/**
 * GAB_ASYNC_TEST_FULL:
 * @name: the test's name, a C identifier; the test's path is `/name`
 * @timeout_seconds: how long the test may run before it fails as hung;
 *   0 for the default (see GAB_TEST_DEFAULT_TIMEOUT)
 *
 * Like GAB_ASYNC_TEST(), with a timeout of its own.
 *
 * Since: 0.1
 */
#define GAB_ASYNC_TEST_FULL(name, timeout_seconds) \
  static void gab_test_async_body_##name (G_GNUC_UNUSED GTask *task); \
  __attribute__((constructor)) static void \
  gab_test_async_ctor_##name (void) \
  { \
    gab_test_register_async (#name, gab_test_async_body_##name, (timeout_seconds)); \
  } \
  static void gab_test_async_body_##name (G_GNUC_UNUSED GTask *task)

/**
 * GAB_ASYNC_TEST:
 * @name: the test's name, a C identifier; the test's path is `/name`
 *
 * Defines and registers an asynchronous test. The body follows the macro
 * as a function body, with `GTask *task` in scope (see #GabAsyncTestFunc):
 * it runs on the runtime thread and must complete `task`, at once or from
 * a callback. The test ends when `task` completes; an error fails it with
 * its message.
 *
 * Since: 0.1
 */
#define GAB_ASYNC_TEST(name) GAB_ASYNC_TEST_FULL (name, 0)

/**
 * GAB_TEST_MAIN:
 *
 * Defines `main()` as a call of gab_test_main(). Use it once per test
 * program; the tests may live in any of the program's files.
 *
 * Since: 0.1
 */
#define GAB_TEST_MAIN() \
  int main (int argc, char **argv) { return gab_test_main (argc, argv); }

G_END_DECLS
