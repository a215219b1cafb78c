/* test-bridge.c: the bridge from C — preconditions, errors delivered as
 * GErrors, and C threads awaiting Python on a loop run by the main thread.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "../gasyncbridge/gab-python-compat.h"  /* Python.h, with the API of newer versions */
#include <gasyncbridge/gasyncbridge.h>

typedef struct
{
  GMainContext *context;
  gboolean      done;
  GVariant     *value;
  GError       *error;
} Wait;

static void
call_done (GObject      *source,
           GAsyncResult *result,
           gpointer      data)
{
  Wait *wait = data;

  g_assert_true (g_main_context_is_owner (wait->context));
  wait->value = gab_call_finish (result, &wait->error);
  wait->done = TRUE;
}

/* From a thread with its own context: call, then iterate until the
 * callback ran there. No GIL involved. */
static void
call_and_wait (const gchar *module,
               const gchar *function,
               GVariant    *args,
               Wait        *wait)
{
  memset (wait, 0, sizeof *wait);
  wait->context = g_main_context_new ();
  g_main_context_push_thread_default (wait->context);
  gab_call_async (module, function, args, NULL, call_done, wait);
  while (!wait->done)
    g_main_context_iteration (wait->context, TRUE);
  g_main_context_pop_thread_default (wait->context);
  g_main_context_unref (wait->context);
}

static void
wait_clear (Wait *wait)
{
  g_clear_pointer (&wait->value, g_variant_unref);
  g_clear_error (&wait->error);
}

static void
test_no_loop_known (void)
{
  Wait wait;
  PyThreadState *ts = PyEval_SaveThread ();

  call_and_wait ("helpers_unit", "double", g_variant_new ("(x)", 2), &wait);
  g_assert_error (wait.error, GAB_ERROR, GAB_ERROR_NO_LOOP);
  g_assert_nonnull (strstr (wait.error->message, "No asyncio event loop"));
  wait_clear (&wait);
  PyEval_RestoreThread (ts);
}

static GMutex   invoked_lock;
static GCond    invoked_cond;
static guint    invoked;
static gboolean invoked_in_order = TRUE;

static void
count_on_loop (gpointer data)
{
  /* On the loop thread, from the loop, with the GIL. */
  g_assert_true (PyGILState_Check ());
  g_mutex_lock (&invoked_lock);
  if (GPOINTER_TO_UINT (data) != invoked)
    invoked_in_order = FALSE;
  invoked++;
  g_cond_broadcast (&invoked_cond);
  g_mutex_unlock (&invoked_lock);
}

/* The worker side of the loop tests: runs while the main thread runs the
 * loop, then stops it. */
static gpointer
worker_calls (gpointer data)
{
  PyObject *loop = data;
  Wait wait;
  PyGILState_STATE state;

  call_and_wait ("helpers_unit", "double", g_variant_new ("(x)", 21), &wait);
  g_assert_no_error (wait.error);
  g_assert_cmpint (g_variant_get_int64 (wait.value), ==, 42);
  wait_clear (&wait);

  call_and_wait ("helpers_unit", "fail", NULL, &wait);
  g_assert_error (wait.error, GAB_PYTHON_ERROR, GAB_PYTHON_ERROR_EXCEPTION);
  g_assert_nonnull (strstr (wait.error->message, "LookupError: from python"));
  wait_clear (&wait);

  call_and_wait ("helpers_unit", "double", g_variant_new_int32 (3), &wait);
  g_assert_error (wait.error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  wait_clear (&wait);

  call_and_wait ("no_such_module_for_sure", "f", NULL, &wait);
  g_assert_error (wait.error, GAB_PYTHON_ERROR, GAB_PYTHON_ERROR_EXCEPTION);
  g_assert_nonnull (strstr (wait.error->message, "ModuleNotFoundError"));
  {
    /* The GError keeps the exception object itself. */
    PyGILState_STATE st = PyGILState_Ensure ();
    PyObject *exc = gab_python_error_get_exception (wait.error);

    g_assert_nonnull (exc);
    g_assert_true (PyObject_IsInstance (exc, PyExc_ModuleNotFoundError) == 1);
    Py_DECREF (exc);
    PyGILState_Release (st);
  }
  wait_clear (&wait);

  /* Hand work to the loop thread without the GIL. */
  {
    GabTaskLocals *locals = gab_task_locals_get_current ();   /* the default */

    g_assert_nonnull (locals);
    g_mutex_lock (&invoked_lock);
    invoked = 0;
    for (guint i = 0; i < 100; i++)
      gab_task_locals_invoke (locals, count_on_loop, GUINT_TO_POINTER (i), NULL);
    while (invoked < 100)
      g_cond_wait (&invoked_cond, &invoked_lock);
    g_mutex_unlock (&invoked_lock);
    g_assert_true (invoked_in_order);
    gab_task_locals_unref (locals);
  }

  /* still works after all that */
  call_and_wait ("helpers_unit", "double", g_variant_new ("(x)", 5), &wait);
  g_assert_no_error (wait.error);
  g_assert_cmpint (g_variant_get_int64 (wait.value), ==, 10);
  wait_clear (&wait);

  state = PyGILState_Ensure ();
  Py_XDECREF (PyObject_CallMethod (loop, "call_soon_threadsafe", "N",
                                   PyObject_GetAttrString (loop, "stop")));
  PyGILState_Release (state);
  return NULL;
}

static PyObject *
start_worker (PyObject *loop,
              PyObject *unused)
{
  /* Started from the loop, so the loop is surely running. */
  g_thread_unref (g_thread_new ("worker", worker_calls, loop));
  Py_RETURN_NONE;
}

static PyMethodDef start_worker_def = { "start_worker", start_worker, METH_NOARGS, NULL };

static void
test_worker_thread_awaits_python (void)
{
  PyObject *asyncio = PyImport_ImportModule ("asyncio");
  PyObject *loop = PyObject_CallMethod (asyncio, "new_event_loop", NULL);
  PyObject *starter = PyCFunction_New (&start_worker_def, loop);
  PyObject *ret;

  g_assert_nonnull (loop);
  Py_XDECREF (PyObject_CallMethod (loop, "call_soon", "O", starter));
  ret = gab_run_forever (loop);
  if (ret == NULL)
    PyErr_Print ();
  g_assert_nonnull (ret);
  Py_DECREF (ret);
  Py_XDECREF (PyObject_CallMethod (loop, "close", NULL));
  Py_DECREF (starter);
  Py_DECREF (loop);
  Py_DECREF (asyncio);
}

static void
test_error_mapping_from_c (void)
{
  g_autoptr(GError) error = NULL;
  PyObject *exc;

  /* A GError raised into Python. */
  error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "gone");
  g_assert_null (gab_error_to_python (error));
  g_assert_true (PyErr_ExceptionMatches (PyExc_FileNotFoundError));
  PyErr_Clear ();
  g_clear_error (&error);

  /* G_FILE_ERROR shares its errnos with G_IO_ERROR: back in C, it is
   * G_FILE_ERROR again. */
  error = g_error_new_literal (G_FILE_ERROR, G_FILE_ERROR_NOENT, "gone");
  g_assert_null (gab_error_to_python (error));
  g_assert_true (PyErr_ExceptionMatches (PyExc_FileNotFoundError));
  g_clear_error (&error);
  gab_error_set_from_python (&error);
  g_assert_false (PyErr_Occurred ());
  g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
  g_clear_error (&error);

  /* A Python exception into a GError, and back: the same object. */
  PyErr_SetString (PyExc_ZeroDivisionError, "zero");
  gab_error_set_from_python (&error);
  g_assert_false (PyErr_Occurred ());
  g_assert_error (error, GAB_PYTHON_ERROR, GAB_PYTHON_ERROR_EXCEPTION);
  g_assert_cmpstr (error->message, ==, "ZeroDivisionError: zero");
  exc = gab_python_error_get_exception (error);
  {
    /* Copies share the object; dropping them needs no GIL. */
    GError *copy = g_error_copy (error);
    PyObject *again = gab_error_new_python_exception (copy);

    g_assert_true (again == exc);
    Py_DECREF (again);
    g_error_free (copy);
  }
  Py_DECREF (exc);

  /* No exception set: still a clear error. */
  g_clear_error (&error);
  gab_error_set_from_python (&error);
  g_assert_error (error, GAB_PYTHON_ERROR, GAB_PYTHON_ERROR_EXCEPTION);
}

static void
test_preconditions (void)
{
  PyObject *ret;

  g_test_expect_message ("Gab", G_LOG_LEVEL_CRITICAL, "*awaitable != NULL*");
  gab_into_future_async (NULL, NULL, NULL, NULL);
  g_test_assert_expected_messages ();

  g_test_expect_message ("Gab", G_LOG_LEVEL_CRITICAL, "*module != NULL*");
  gab_call_async (NULL, "f", NULL, NULL, NULL, NULL);
  g_test_assert_expected_messages ();

  g_test_expect_message ("Gab", G_LOG_LEVEL_CRITICAL, "*function != NULL*");
  gab_call_async ("m", NULL, NULL, NULL, NULL, NULL);
  g_test_assert_expected_messages ();

  g_test_expect_message ("Gab", G_LOG_LEVEL_CRITICAL, "*g_task_is_valid*");
  g_assert_null (gab_call_finish (NULL, NULL));
  g_test_assert_expected_messages ();

  g_test_expect_message ("Gab", G_LOG_LEVEL_CRITICAL, "*g_task_is_valid*");
  g_assert_null (gab_into_future_finish (NULL, NULL));
  g_test_assert_expected_messages ();

  g_test_expect_message ("Gab", G_LOG_LEVEL_CRITICAL, "*error != NULL*");
  g_assert_null (gab_error_to_python (NULL));
  g_test_assert_expected_messages ();

  g_test_expect_message ("Gab", G_LOG_LEVEL_CRITICAL, "*locals != NULL*");
  g_assert_null (gab_task_locals_ref (NULL));
  g_test_assert_expected_messages ();

  g_test_expect_message ("Gab", G_LOG_LEVEL_CRITICAL, "*loop != NULL*");
  g_assert_null (gab_run_until_complete (NULL, Py_None));
  g_test_assert_expected_messages ();

  /* Python-facing entry points raise instead. */
  ret = gab_future_into_py (NULL, NULL, NULL, NULL);
  g_assert_null (ret);
  g_assert_true (PyErr_ExceptionMatches (PyExc_TypeError));
  PyErr_Clear ();

  ret = gab_get_current_loop ();
  g_assert_null (ret);
  g_assert_true (PyErr_ExceptionMatches (PyExc_RuntimeError));
  PyErr_Clear ();

  ret = gab_run (Py_None);
  g_assert_null (ret);
  g_assert_true (PyErr_ExceptionMatches (PyExc_TypeError));
  PyErr_Clear ();
}

static void
test_closed_loop (void)
{
  PyObject *asyncio = PyImport_ImportModule ("asyncio");
  PyObject *loop = PyObject_CallMethod (asyncio, "new_event_loop", NULL);
  PyObject *coro, *ret;
  GabTaskLocals *locals;

  Py_XDECREF (PyObject_CallMethod (loop, "close", NULL));

  /* Task locals on a closed loop: a clear Python error, no locals. */
  locals = gab_task_locals_new (loop, NULL);
  g_assert_null (locals);
  g_assert_true (PyErr_ExceptionMatches (PyExc_RuntimeError));
  PyErr_Clear ();

  /* Running a closed loop: asyncio's own RuntimeError. */
  coro = PyObject_CallMethod (asyncio, "sleep", "i", 0);
  ret = gab_run_until_complete (loop, coro);
  g_assert_null (ret);
  g_assert_true (PyErr_ExceptionMatches (PyExc_RuntimeError));
  PyErr_Clear ();
  Py_DECREF (coro);

  /* A context that is not a contextvars.Context. */
  Py_DECREF (loop);
  loop = PyObject_CallMethod (asyncio, "new_event_loop", NULL);
  locals = gab_task_locals_new (loop, Py_None);
  g_assert_null (locals);
  g_assert_true (PyErr_ExceptionMatches (PyExc_TypeError));
  PyErr_Clear ();

  /* And a good one works, with a loop we can read back. */
  locals = gab_task_locals_new (loop, NULL);
  g_assert_nonnull (locals);
  g_assert_true (gab_task_locals_get_loop (locals) == loop);
  g_assert_true (PyContext_CheckExact (gab_task_locals_get_context (locals)));
  gab_task_locals_unref (locals);
  Py_XDECREF (PyObject_CallMethod (loop, "close", NULL));
  Py_DECREF (loop);
  Py_DECREF (asyncio);
}

int
main (int    argc,
      char **argv)
{
  int ret;

  g_test_init (&argc, &argv, NULL);
  Py_InitializeEx (0);
  g_test_add_func ("/bridge/preconditions", test_preconditions);
  g_test_add_func ("/bridge/error-mapping-from-c", test_error_mapping_from_c);
  g_test_add_func ("/bridge/no-loop-known", test_no_loop_known);
  g_test_add_func ("/bridge/closed-loop", test_closed_loop);
  g_test_add_func ("/bridge/worker-thread-awaits-python", test_worker_thread_awaits_python);
  ret = g_test_run ();
  /* atexit runs gab_shutdown() before Python goes. */
  if (Py_FinalizeEx () < 0)
    ret = 1;
  return ret;
}
