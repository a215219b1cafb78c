/* test-faults.c: bad input to every public C function, and faults in the
 * way C programs use the bridge.
 *
 * - Every g_return_if_fail() precondition of the public headers, one
 *   g_test_expect_message() each (those already in test-bridge.c are not
 *   repeated here).
 * - The GIL: functions documented "needs the GIL" are called from a thread
 *   that does not hold it, each in a child process (--gil-probe NAME). A
 *   function with a precondition logs a critical and returns; one without
 *   crashes the child. Those known to lack the check are expected to crash
 *   (TAP "# TODO", an expected failure); once the core adds the check, the
 *   test reports that the list must be updated, as a strict xfail would.
 * - The runtime: gab_shutdown() on the runtime thread, gab_invoke() and
 *   gab_get_context() after shutdown, restarts, another context.
 * - C worker threads (no GIL, their own GMainContext) awaiting Python that
 *   awaits C that awaits Python... 20 levels deep, through C threads, the
 *   runtime thread, and both in turn; and C threads awaiting Python while
 *   the runtime shuts down and starts again.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "../gasyncbridge/gab-python-compat.h"  /* Python.h, with the API of newer versions */
#include <gasyncbridge/gasyncbridge.h>
#include <gasyncbridge/gab-testing.h>

#include <sys/resource.h>
#include <unistd.h>

#define DEPTH 20

static gboolean under_valgrind;

/* ---- helpers ------------------------------------------------------------ */

static GError *
preset_error (void)
{
  return g_error_new_literal (G_IO_ERROR, G_IO_ERROR_FAILED, "already set");
}

#define EXPECT_CRITICAL(pattern, statement)                                    \
  G_STMT_START {                                                               \
    g_test_expect_message ("Gab", G_LOG_LEVEL_CRITICAL, pattern);              \
    statement;                                                                 \
    g_test_assert_expected_messages ();                                        \
  } G_STMT_END

static void
dummy_ready (GObject      *source,
             GAsyncResult *result,
             gpointer      data)
{
}

/* A valid GTask with a given source tag, as a GAsyncResult. The tag is a
 * function: G_GNUC_EXTENSION for the conversion to a gpointer, which ISO C
 * does not define (-Wpedantic). */
#define task_with_tag(func) task_with_tag_pointer (G_GNUC_EXTENSION ((gpointer) (func)))
static GTask *
task_with_tag_pointer (gpointer tag)
{
  GTask *task = g_task_new (NULL, NULL, dummy_ready, NULL);

  g_task_set_source_tag (task, tag);
  return task;
}

static void
not_a_tag (void)
{
}

/* ---- preconditions: the runtime ---------------------------------------- */

typedef struct
{
  GMutex   lock;
  GCond    cond;
  gboolean done;
} Done;

static void
done_set (Done *done)
{
  g_mutex_lock (&done->lock);
  done->done = TRUE;
  g_cond_broadcast (&done->cond);
  g_mutex_unlock (&done->lock);
}

static void
done_wait (Done *done)
{
  Py_BEGIN_ALLOW_THREADS
  g_mutex_lock (&done->lock);
  while (!done->done)
    g_cond_wait (&done->cond, &done->lock);
  g_mutex_unlock (&done->lock);
  Py_END_ALLOW_THREADS
}

static gboolean
shutdown_on_runtime (gpointer data)
{
  g_assert_true (gab_is_runtime_thread ());
  gab_shutdown ();       /* must refuse: it would join itself */
  done_set (data);
  return G_SOURCE_REMOVE;
}

static gboolean
never_called (gpointer data)
{
  g_assert_not_reached ();
  return G_SOURCE_REMOVE;
}

static void
count_notify (gpointer data)
{
  (*(gint *) data)++;
}

static void
test_runtime_preconditions (void)
{
  GError *error = preset_error ();
  GMainContext *other = g_main_context_new ();
  Done done = { 0 };
  gint notified = 0;

  EXPECT_CRITICAL ("*gab_init*error == NULL*", g_assert_false (gab_init (&error)));
  EXPECT_CRITICAL ("*gab_init_with_context*app_context != NULL*",
                   g_assert_false (gab_init_with_context (NULL, NULL)));
  EXPECT_CRITICAL ("*gab_init_with_context*error == NULL*",
                   g_assert_false (gab_init_with_context (other, &error)));
  EXPECT_CRITICAL ("*gab_invoke*func != NULL*", gab_invoke (NULL, NULL, NULL));
  g_clear_error (&error);

  /* Running on our own thread: another context is refused, clearly. */
  g_assert_true (gab_init (NULL));
  g_assert_false (gab_init_with_context (other, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS);
  g_clear_error (&error);
  g_assert_false (gab_is_runtime_thread ());

  /* gab_shutdown() on the runtime thread: a critical, and nothing else. */
  g_test_expect_message ("Gab", G_LOG_LEVEL_CRITICAL, "*must not be called from the runtime thread*");
  gab_invoke (shutdown_on_runtime, &done, NULL);
  done_wait (&done);
  g_test_assert_expected_messages ();
  g_assert_nonnull (gab_get_context ());

  /* After shutdown: no context, invoke drops the call (notify at once),
   * implicit use does not restart; gab_init() does. */
  Py_BEGIN_ALLOW_THREADS
  gab_shutdown ();
  gab_shutdown ();
  Py_END_ALLOW_THREADS
  g_assert_null (gab_get_context ());
  gab_invoke (never_called, &notified, count_notify);
  g_assert_cmpint (notified, ==, 1);
  g_assert_true (gab_init (NULL));
  g_assert_nonnull (gab_get_context ());
  g_main_context_unref (other);
}

/* ---- preconditions: errors, variants ------------------------------------ */

static void
test_error_and_variant_preconditions (void)
{
  GError *error = preset_error ();
  GError *plain = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "x");
  PyObject *obj;

  PyErr_SetString (PyExc_ValueError, "pending");
  EXPECT_CRITICAL ("*gab_error_set_from_python*error == NULL*",
                   gab_error_set_from_python (&error));
  /* the precondition left the exception alone */
  g_assert_true (PyErr_ExceptionMatches (PyExc_ValueError));
  PyErr_Clear ();
  EXPECT_CRITICAL ("*gab_error_new_python_exception*error != NULL*",
                   g_assert_null (gab_error_new_python_exception (NULL)));
  EXPECT_CRITICAL ("*gab_python_error_get_exception*error != NULL*",
                   g_assert_null (gab_python_error_get_exception (NULL)));
  /* another domain: no exception kept, and no error */
  g_assert_null (gab_python_error_get_exception (plain));
  g_assert_false (PyErr_Occurred ());

  EXPECT_CRITICAL ("*gab_variant_from_python*object != NULL*",
                   g_assert_null (gab_variant_from_python (NULL, NULL, NULL)));
  EXPECT_CRITICAL ("*gab_variant_from_python*error == NULL*",
                   g_assert_null (gab_variant_from_python (Py_None, NULL, &error)));
  /* NULL is None, as documented */
  obj = gab_variant_to_python (NULL);
  g_assert_true (obj == Py_None);
  Py_DECREF (obj);
  g_assert_false (PyErr_Occurred ());
  g_clear_error (&error);
  g_clear_error (&plain);
}

/* ---- preconditions: task locals ----------------------------------------- */

static void
loop_func_never (gpointer data)
{
  g_assert_not_reached ();
}

static void
test_task_locals_preconditions (void)
{
  PyObject *asyncio = PyImport_ImportModule ("asyncio");
  PyObject *loop = PyObject_CallMethod (asyncio, "new_event_loop", NULL);
  GabTaskLocals *locals, *other;

  EXPECT_CRITICAL ("*gab_task_locals_new*loop != NULL*",
                   g_assert_null (gab_task_locals_new (NULL, NULL)));
  EXPECT_CRITICAL ("*gab_task_locals_unref*locals != NULL*", gab_task_locals_unref (NULL));
  EXPECT_CRITICAL ("*gab_task_locals_get_loop*locals != NULL*",
                   g_assert_null (gab_task_locals_get_loop (NULL)));
  EXPECT_CRITICAL ("*gab_task_locals_get_context*locals != NULL*",
                   g_assert_null (gab_task_locals_get_context (NULL)));
  EXPECT_CRITICAL ("*gab_task_locals_push*locals != NULL*", gab_task_locals_push (NULL));
  EXPECT_CRITICAL ("*gab_task_locals_pop*locals != NULL*", gab_task_locals_pop (NULL));
  EXPECT_CRITICAL ("*gab_task_locals_invoke*locals != NULL*",
                   gab_task_locals_invoke (NULL, loop_func_never, NULL, NULL));

  /* Something that is not a loop: a Python exception, no locals. */
  g_assert_null (gab_task_locals_new (Py_None, NULL));
  g_assert_nonnull (PyErr_Occurred ());
  PyErr_Clear ();

  locals = gab_task_locals_new (loop, NULL);
  other = gab_task_locals_new (loop, NULL);
  g_assert_nonnull (locals);
  EXPECT_CRITICAL ("*gab_task_locals_invoke*func != NULL*",
                   gab_task_locals_invoke (locals, NULL, NULL, NULL));
  /* pop of locals that are not current, or with nothing pushed */
  EXPECT_CRITICAL ("*gab_task_locals_pop*current == locals*", gab_task_locals_pop (locals));
  gab_task_locals_push (locals);
  EXPECT_CRITICAL ("*gab_task_locals_pop*current == locals*", gab_task_locals_pop (other));
  gab_task_locals_pop (locals);
  {
    /* current again: get_current gives a reference of what was pushed */
    GabTaskLocals *current;

    gab_task_locals_push (other);
    current = gab_task_locals_get_current ();
    g_assert_true (current == other);
    gab_task_locals_unref (current);
    gab_task_locals_pop (other);
  }
  gab_task_locals_unref (locals);
  gab_task_locals_unref (other);
  Py_XDECREF (PyObject_CallMethod (loop, "close", NULL));
  Py_DECREF (loop);
  Py_DECREF (asyncio);
}

/* ---- preconditions: C awaits Python, calls -------------------------------- */

static void
test_into_future_and_call_preconditions (void)
{
  GObject *not_cancellable = g_object_new (G_TYPE_OBJECT, NULL);
  GError *error = preset_error ();
  GTask *task;
  PyObject *awaitable = PyRun_String ("__import__('asyncio').sleep(0)", Py_eval_input,
                                      PyEval_GetBuiltins (), NULL);

  g_assert_nonnull (awaitable);
  EXPECT_CRITICAL ("*gab_into_future_async*G_IS_CANCELLABLE*",
                   gab_into_future_async (awaitable, (GCancellable *) not_cancellable,
                                          dummy_ready, NULL));
  EXPECT_CRITICAL ("*gab_call_async*G_IS_CANCELLABLE*",
                   gab_call_async ("m", "f", NULL, (GCancellable *) not_cancellable,
                                   dummy_ready, NULL));
  Py_XDECREF (PyObject_CallMethod (awaitable, "close", NULL));
  Py_DECREF (awaitable);

  /* A result of another operation, or an error already set. */
  task = task_with_tag (not_a_tag);
  EXPECT_CRITICAL ("*gab_into_future_finish*source_tag*",
                   g_assert_null (gab_into_future_finish (G_ASYNC_RESULT (task), NULL)));
  EXPECT_CRITICAL ("*gab_call_finish*source_tag*",
                   g_assert_null (gab_call_finish (G_ASYNC_RESULT (task), NULL)));
  g_object_unref (task);
  task = task_with_tag (gab_into_future_async);
  EXPECT_CRITICAL ("*gab_into_future_finish*error == NULL*",
                   g_assert_null (gab_into_future_finish (G_ASYNC_RESULT (task), &error)));
  g_object_unref (task);
  task = task_with_tag (gab_call_async);
  EXPECT_CRITICAL ("*gab_call_finish*error == NULL*",
                   g_assert_null (gab_call_finish (G_ASYNC_RESULT (task), &error)));
  g_object_unref (task);
  /* Not a GTask at all. */
  EXPECT_CRITICAL ("*gab_call_finish*g_task_is_valid*",
                   g_assert_null (gab_call_finish ((GAsyncResult *) not_cancellable, NULL)));
  g_clear_error (&error);
  g_object_unref (not_cancellable);
}

/* ---- preconditions: C futures into Python --------------------------------- */

static void
start_unused (GCancellable        *cancellable,
              GAsyncReadyCallback  callback,
              gpointer             callback_data,
              gpointer             user_data)
{
  g_assert_not_reached ();
}

static PyObject *
finish_unused (GObject       *source,
               GAsyncResult  *result,
               gpointer       user_data,
               GError       **error)
{
  g_assert_not_reached ();
  return NULL;
}

static void
test_future_into_py_frees_user_data_on_failure (void)
{
  gint freed = 0;

  /* A NULL function: TypeError, and user_data freed, once. */
  g_assert_null (gab_future_into_py (start_unused, NULL, &freed, count_notify));
  g_assert_true (PyErr_ExceptionMatches (PyExc_TypeError));
  PyErr_Clear ();
  g_assert_cmpint (freed, ==, 1);
  g_assert_null (gab_future_into_py (NULL, finish_unused, &freed, count_notify));
  PyErr_Clear ();
  g_assert_cmpint (freed, ==, 2);
  /* No running loop: RuntimeError, user_data freed, start never run. */
  g_assert_null (gab_future_into_py (start_unused, finish_unused, &freed, count_notify));
  g_assert_true (PyErr_ExceptionMatches (PyExc_RuntimeError));
  PyErr_Clear ();
  g_assert_cmpint (freed, ==, 3);
}

static void
test_future_into_py_full_bad_flags (void)
{
  gint freed = 0;
  PyObject *cls;

  /* Flags it does not know: ValueError, user_data freed, start never run. */
  g_assert_null (gab_future_into_py_full (start_unused, finish_unused, &freed,
                                          count_notify, 1 << 7));
  g_assert_true (PyErr_ExceptionMatches (PyExc_ValueError));
  PyErr_Clear ();
  g_assert_cmpint (freed, ==, 1);
  /* Still usable: the known flag, with no running loop, is a RuntimeError. */
  g_assert_null (gab_future_into_py_full (start_unused, finish_unused, &freed,
                                          count_notify, GAB_FUTURE_CANCEL_WAITS));
  g_assert_true (PyErr_ExceptionMatches (PyExc_RuntimeError));
  PyErr_Clear ();
  g_assert_cmpint (freed, ==, 2);
  /* The class of such futures is a Future subclass of gasyncbridge.gio. */
  cls = gab_future_get_operation_class ();
  g_assert_nonnull (cls);
  g_assert_true (PyType_Check (cls));
  g_assert_cmpstr (((PyTypeObject *) cls)->tp_name, ==, "Operation");
  g_assert_true (gab_future_get_operation_class () == cls);
}

/* ---- preconditions: loops, main ------------------------------------------- */

static void
async_main_unused (GTask *task,
                   int    argc,
                   char **argv)
{
  g_assert_not_reached ();
}

static void
test_loop_and_main_preconditions (void)
{
  PyObject *asyncio = PyImport_ImportModule ("asyncio");
  PyObject *loop = PyObject_CallMethod (asyncio, "new_event_loop", NULL);
  PyObject *coro;
  GError *error = preset_error ();
  char *argv[] = { (char *) "test-faults", NULL };

  EXPECT_CRITICAL ("*gab_run_until_complete*awaitable != NULL*",
                   g_assert_null (gab_run_until_complete (loop, NULL)));
  EXPECT_CRITICAL ("*gab_run*awaitable != NULL*", g_assert_null (gab_run (NULL)));
  EXPECT_CRITICAL ("*gab_run_forever*loop != NULL*", g_assert_null (gab_run_forever (NULL)));
  EXPECT_CRITICAL ("*gab_start_asyncio_thread*error == NULL*",
                   g_assert_null (gab_start_asyncio_thread (&error)));
  EXPECT_CRITICAL ("*gab_main*async_main != NULL*",
                   g_assert_cmpint (gab_main (1, argv, NULL), ==, 1));
  (void) async_main_unused;
  /* Never started: nothing to stop. */
  gab_stop_asyncio_thread ();

  /* Not a loop: Python's clear error, and the awaitable untouched. */
  coro = PyObject_CallMethod (asyncio, "sleep", "i", 0);
  g_assert_null (gab_run_until_complete (Py_None, coro));
  g_assert_nonnull (PyErr_Occurred ());
  PyErr_Clear ();
  g_assert_null (gab_run_forever (Py_None));
  g_assert_nonnull (PyErr_Occurred ());
  PyErr_Clear ();
  Py_XDECREF (PyObject_CallMethod (coro, "close", NULL));
  Py_DECREF (coro);

  g_clear_error (&error);
  Py_XDECREF (PyObject_CallMethod (loop, "close", NULL));
  Py_DECREF (loop);
  Py_DECREF (asyncio);
}

/* ---- preconditions: streams, channels, iterators, the harness ----------- */

static void
test_stream_preconditions (void)
{
  GError *error = preset_error ();
  GabChannel *channel;
  GInputStream *input = g_memory_input_stream_new ();
  GVariant *item = g_variant_ref_sink (g_variant_new_int32 (1));
  PyObject *list = PyList_New (0);
  GTask *task;

  EXPECT_CRITICAL ("*gab_async_iterator_new*aiterable != NULL*",
                   g_assert_null (gab_async_iterator_new (NULL, 1, NULL)));
  EXPECT_CRITICAL ("*gab_async_iterator_new*error == NULL*",
                   g_assert_null (gab_async_iterator_new (list, 1, &error)));
  EXPECT_CRITICAL ("*GAB_IS_ASYNC_ITERATOR*",
                   g_assert_cmpuint (gab_async_iterator_get_read_ahead (NULL), ==, 0));
  EXPECT_CRITICAL ("*GAB_IS_ASYNC_ITERATOR*",
                   gab_async_iterator_next_async (NULL, NULL, dummy_ready, NULL));
  EXPECT_CRITICAL ("*GAB_IS_ASYNC_ITERATOR*",
                   gab_async_iterator_next_variant_async (NULL, NULL, dummy_ready, NULL));
  EXPECT_CRITICAL ("*GAB_IS_ASYNC_ITERATOR*",
                   gab_async_iterator_close_async (NULL, NULL, dummy_ready, NULL));
  task = task_with_tag (not_a_tag);
  EXPECT_CRITICAL ("*GAB_IS_ASYNC_ITERATOR*",
                   g_assert_null (gab_async_iterator_next_finish (NULL, G_ASYNC_RESULT (task), NULL)));
  EXPECT_CRITICAL ("*GAB_IS_ASYNC_ITERATOR*",
                   g_assert_null (gab_async_iterator_next_variant_finish (NULL, G_ASYNC_RESULT (task), NULL)));
  EXPECT_CRITICAL ("*GAB_IS_ASYNC_ITERATOR*",
                   g_assert_false (gab_async_iterator_close_finish (NULL, G_ASYNC_RESULT (task), NULL)));

  EXPECT_CRITICAL ("*gab_channel_new*capacity > 0*", g_assert_null (gab_channel_new (0)));
  EXPECT_CRITICAL ("*GAB_IS_CHANNEL*", g_assert_cmpuint (gab_channel_get_capacity (NULL), ==, 0));
  EXPECT_CRITICAL ("*GAB_IS_CHANNEL*",
                   gab_channel_send_async (NULL, item, NULL, dummy_ready, NULL));
  EXPECT_CRITICAL ("*GAB_IS_CHANNEL*", gab_channel_close (NULL, NULL));
  EXPECT_CRITICAL ("*GAB_IS_CHANNEL*", g_assert_null (gab_channel_to_python (NULL)));
  EXPECT_CRITICAL ("*GAB_IS_CHANNEL*",
                   g_assert_false (gab_channel_send_finish (NULL, G_ASYNC_RESULT (task), NULL)));
  channel = gab_channel_new (2);
  g_assert_cmpuint (gab_channel_get_capacity (channel), ==, 2);
  EXPECT_CRITICAL ("*gab_channel_send_async*item != NULL*",
                   gab_channel_send_async (channel, NULL, NULL, dummy_ready, NULL));
  EXPECT_CRITICAL ("*gab_channel_send_async*G_IS_CANCELLABLE*",
                   gab_channel_send_async (channel, item, (GCancellable *) input,
                                           dummy_ready, NULL));
  EXPECT_CRITICAL ("*gab_channel_send_finish*g_task_is_valid*",
                   g_assert_false (gab_channel_send_finish (channel, G_ASYNC_RESULT (task), NULL)));
  gab_channel_close (channel, NULL);
  g_object_unref (channel);
  g_object_unref (task);

  EXPECT_CRITICAL ("*gab_input_stream_new*aiterable != NULL*",
                   g_assert_null (gab_input_stream_new (NULL, NULL)));
  EXPECT_CRITICAL ("*gab_input_stream_new*error == NULL*",
                   g_assert_null (gab_input_stream_new (list, &error)));
  EXPECT_CRITICAL ("*gab_stream_reader_new*G_IS_INPUT_STREAM*",
                   g_assert_null (gab_stream_reader_new (NULL, GAB_STREAM_DEFAULT_LIMIT)));
  EXPECT_CRITICAL ("*gab_stream_writer_new*G_IS_OUTPUT_STREAM*",
                   g_assert_null (gab_stream_writer_new ((GOutputStream *) input)));
  g_assert_false (PyErr_Occurred ());
  g_clear_error (&error);
  g_variant_unref (item);
  g_object_unref (input);
  Py_DECREF (list);
}

static void
test_func_unused (GError **error)
{
  g_assert_not_reached ();
}

static void
test_async_func_unused (GTask *task)
{
  g_assert_not_reached ();
}

static void
test_harness_preconditions (void)
{
  GError *error = preset_error ();
  GAsyncResult *out = (GAsyncResult *) g_task_new (NULL, NULL, NULL, NULL);
  GAsyncResult *none = NULL;
  GTask *task = task_with_tag (not_a_tag);

  EXPECT_CRITICAL ("*gab_test_register*name != NULL*",
                   gab_test_register (NULL, test_func_unused, 0));
  EXPECT_CRITICAL ("*gab_test_register*name != NULL*",
                   gab_test_register ("", test_func_unused, 0));
  EXPECT_CRITICAL ("*gab_test_register*func != NULL*", gab_test_register ("x", NULL, 0));
  EXPECT_CRITICAL ("*gab_test_register_async*name != NULL*",
                   gab_test_register_async ("", test_async_func_unused, 0));
  EXPECT_CRITICAL ("*gab_test_register_async*func != NULL*",
                   gab_test_register_async ("x", NULL, 0));
  EXPECT_CRITICAL ("*gab_test_async_ready*G_IS_ASYNC_RESULT*",
                   gab_test_async_ready (NULL, NULL, &none));
  EXPECT_CRITICAL ("*gab_test_async_ready*out != NULL*",
                   gab_test_async_ready (NULL, G_ASYNC_RESULT (task), &out));
  EXPECT_CRITICAL ("*gab_test_wait_result*result != NULL*",
                   g_assert_null (gab_test_wait_result (NULL)));
  EXPECT_CRITICAL ("*gab_test_call*module != NULL*",
                   g_assert_null (gab_test_call (NULL, "f", NULL, NULL)));
  EXPECT_CRITICAL ("*gab_test_call*function != NULL*",
                   g_assert_null (gab_test_call ("m", NULL, NULL, NULL)));
  EXPECT_CRITICAL ("*gab_test_call*error == NULL*",
                   g_assert_null (gab_test_call ("m", "f", NULL, &error)));
  /* With the GIL held it would wait for the loop forever: refused. */
  EXPECT_CRITICAL ("*gab_test_call*PyGILState_Check*",
                   g_assert_null (gab_test_call ("m", "f", NULL, NULL)));
  EXPECT_CRITICAL ("*gab_test_main*argc > 0*", g_assert_cmpint (gab_test_main (0, NULL), ==, 1));
  g_object_unref (task);
  g_object_unref (out);
  g_clear_error (&error);
}

/* ---- the GIL: functions called by a thread that does not hold it ---------- */

typedef struct
{
  const char *name;
  gboolean    known_missing;   /* the core lacks the check (reported) */
} GilProbe;

/* Every public function documented to need the GIL. */
static const GilProbe gil_probes[] = {
  { "gab_future_into_py", FALSE },
  { "gab_future_into_py_full", FALSE },
  { "gab_future_get_operation_class", FALSE },
  { "gab_into_future_async", FALSE },
  { "gab_into_future_finish", FALSE },
  { "gab_error_set_from_python", FALSE },
  { "gab_error_to_python", FALSE },
  { "gab_error_new_python_exception", FALSE },
  { "gab_python_error_get_exception", FALSE },
  { "gab_variant_to_python", FALSE },
  { "gab_variant_from_python", FALSE },
  { "gab_task_locals_new", FALSE },
  { "gab_get_current_loop", FALSE },
  { "gab_run_until_complete", FALSE },
  { "gab_run", FALSE },
  { "gab_run_forever", FALSE },
  { "gab_async_iterator_new", FALSE },
  { "gab_channel_to_python", FALSE },
  { "gab_input_stream_new", FALSE },
  { "gab_stream_reader_new", FALSE },
  { "gab_stream_writer_new", FALSE },
  { "gab_stream_reader_get_class", FALSE },
  { "gab_stream_writer_get_class", FALSE },
};

/* In the child: prepare with the GIL, let go of it, call. */
static int
gil_probe_child (const char *name)
{
  struct rlimit no_core = { 0, 0 };
  PyObject *asyncio, *loop, *coro, *exc_obj;
  GError *error = NULL, *kept = NULL;
  GVariant *variant = g_variant_ref_sink (g_variant_new_int32 (1));
  GTask *task = task_with_tag (gab_into_future_async);
  GabChannel *channel = gab_channel_new (1);
  GInputStream *input = g_memory_input_stream_new ();
  GOutputStream *output = g_memory_output_stream_new_resizable ();
  PyThreadState *ts;

  setrlimit (RLIMIT_CORE, &no_core);
  asyncio = PyImport_ImportModule ("asyncio");
  loop = PyObject_CallMethod (asyncio, "new_event_loop", NULL);
  coro = PyObject_CallMethod (asyncio, "sleep", "i", 0);
  PyErr_SetString (PyExc_ValueError, "kept");
  gab_error_set_from_python (&kept);
  exc_obj = gab_python_error_get_exception (kept);
  g_assert_nonnull (exc_obj);
  error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_FAILED, "x");
  g_task_return_pointer (task, NULL, NULL);

  ts = PyEval_SaveThread ();
  g_printerr ("probe: calling %s without the GIL\n", name);
#define IS(n) g_str_equal (name, n)
  if (IS ("gab_future_into_py"))
    gab_future_into_py (start_unused, finish_unused, NULL, NULL);
  else if (IS ("gab_future_into_py_full"))
    gab_future_into_py_full (start_unused, finish_unused, NULL, NULL, GAB_FUTURE_CANCEL_WAITS);
  else if (IS ("gab_future_get_operation_class"))
    gab_future_get_operation_class ();
  else if (IS ("gab_into_future_async"))
    gab_into_future_async (coro, NULL, dummy_ready, NULL);
  else if (IS ("gab_into_future_finish"))
    gab_into_future_finish (G_ASYNC_RESULT (task), NULL);
  else if (IS ("gab_error_set_from_python"))
    {
      GError *e = NULL;
      gab_error_set_from_python (&e);
    }
  else if (IS ("gab_error_to_python"))
    gab_error_to_python (error);
  else if (IS ("gab_error_new_python_exception"))
    gab_error_new_python_exception (error);
  else if (IS ("gab_python_error_get_exception"))
    gab_python_error_get_exception (kept);
  else if (IS ("gab_variant_to_python"))
    gab_variant_to_python (variant);
  else if (IS ("gab_variant_from_python"))
    gab_variant_from_python (exc_obj, NULL, NULL);
  else if (IS ("gab_task_locals_new"))
    gab_task_locals_new (loop, NULL);
  else if (IS ("gab_get_current_loop"))
    gab_get_current_loop ();
  else if (IS ("gab_run_until_complete"))
    gab_run_until_complete (loop, coro);
  else if (IS ("gab_run"))
    gab_run (coro);
  else if (IS ("gab_run_forever"))
    gab_run_forever (loop);
  else if (IS ("gab_async_iterator_new"))
    gab_async_iterator_new (coro, 1, NULL);
  else if (IS ("gab_channel_to_python"))
    gab_channel_to_python (channel);
  else if (IS ("gab_input_stream_new"))
    gab_input_stream_new (coro, NULL);
  else if (IS ("gab_stream_reader_new"))
    gab_stream_reader_new (input, GAB_STREAM_DEFAULT_LIMIT);
  else if (IS ("gab_stream_writer_new"))
    gab_stream_writer_new (output);
  else if (IS ("gab_stream_reader_get_class"))
    gab_stream_reader_get_class ();
  else if (IS ("gab_stream_writer_get_class"))
    gab_stream_writer_get_class ();
  else
    g_error ("unknown probe %s", name);
#undef IS
  g_printerr ("probe: %s returned\n", name);
  (void) ts;
  _exit (0);
}

/* ---- children with a time limit of their own ---------------------------- */

/* A child of this test gets PROBE_CHILD_SECONDS to report itself stuck (its
 * SIGALRM handler prints its own stack and aborts, and faulthandler, on
 * through PYTHONFAULTHANDLER, adds every thread's Python stack), and the
 * parent kills it PROBE_KILL_SECONDS after starting it, whatever it does:
 * a hang is one clear failure, never a suite timeout.
 *
 * Under AddressSanitizer the children unwind the stack of each malloc the
 * fast way and skip the leak check (they end with _exit() anyway): the
 * careful unwinding that tools/sanitize asks for made each child take 3-10 s
 * of CPU on a loaded 2-core machine, and the 22 of them together outlived
 * the test's 90 s limit; that was the "hang" after gab_run_until_complete. */
#define PROBE_CHILD_SECONDS 30
#define PROBE_KILL_SECONDS  60

#include <execinfo.h>
#include <signal.h>

static void
child_alarm (int signum)
{
  static const char msg[] = "\nchild: no result within its time limit: it hangs; "
                            "its stack:\n";
  void *frames[64];
  int n;

  if (write (2, msg, sizeof msg - 1) < 0)
    _exit (125);
  n = backtrace (frames, G_N_ELEMENTS (frames));
  backtrace_symbols_fd (frames, n, 2);
  signal (SIGABRT, SIG_DFL);
  abort ();
}

/* In the child, first thing: its own time limit. */
static void
child_arm_alarm (void)
{
  const gchar *seconds = g_getenv ("GAB_TEST_CHILD_SECONDS");   /* to try it */

  signal (SIGALRM, child_alarm);
  alarm (seconds != NULL ? (guint) atoi (seconds) : PROBE_CHILD_SECONDS);
  if (g_getenv ("GAB_TEST_CHILD_HANG") != NULL)
    pause ();
}

typedef struct
{
  GMainLoop   *loop;
  GSubprocess *process;
  gboolean     timed_out;
  gchar       *out;
  gchar       *err;
  GError      *error;
} ChildRun;

static void
child_communicated (GObject      *source,
                    GAsyncResult *result,
                    gpointer      data)
{
  ChildRun *run = data;

  g_subprocess_communicate_utf8_finish (G_SUBPROCESS (source), result,
                                        &run->out, &run->err, &run->error);
  g_main_loop_quit (run->loop);
}

static gboolean
child_kill (gpointer data)
{
  ChildRun *run = data;

  run->timed_out = TRUE;
  g_subprocess_force_exit (run->process);
  return G_SOURCE_REMOVE;
}

/* Runs @argv with its stdout and stderr captured and a time limit (see
 * above). Returns the wait status; a child that had to be killed fails the
 * test with what it printed. */
static gint
run_child (const gchar * const *argv,
           gchar              **out,
           gchar              **err)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GSubprocessLauncher) launcher =
    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_autofree gchar *asan = g_strdup_printf ("%s%sfast_unwind_on_malloc=1:detect_leaks=0",
                                            g_getenv ("ASAN_OPTIONS") ? g_getenv ("ASAN_OPTIONS") : "",
                                            g_getenv ("ASAN_OPTIONS") ? ":" : "");
  ChildRun run = { 0 };
  GSource *timeout;
  gint status;

  g_subprocess_launcher_setenv (launcher, "PYTHONFAULTHANDLER", "1", TRUE);
  g_subprocess_launcher_setenv (launcher, "ASAN_OPTIONS", asan, TRUE);
  g_main_context_push_thread_default (context);
  run.loop = g_main_loop_new (context, FALSE);
  run.process = g_subprocess_launcher_spawnv (launcher, argv, &run.error);
  g_assert_no_error (run.error);
  g_subprocess_communicate_utf8_async (run.process, NULL, NULL, child_communicated, &run);
  timeout = g_timeout_source_new_seconds (PROBE_KILL_SECONDS);
  g_source_set_callback (timeout, child_kill, &run, NULL);
  g_source_attach (timeout, context);
  g_main_loop_run (run.loop);
  g_source_destroy (timeout);
  g_source_unref (timeout);
  g_assert_no_error (run.error);
  /* The exit status is there once the pipes have closed: wait for it. */
  g_subprocess_wait (run.process, NULL, NULL);
  status = g_subprocess_get_status (run.process);
  g_main_context_pop_thread_default (context);
  g_main_loop_unref (run.loop);
  g_object_unref (run.process);
  if (run.timed_out)
    g_test_fail_printf ("child %s %s killed after %d s: it hangs; it printed:\n%s\n%s",
                        argv[0], argv[1] ? argv[1] : "", PROBE_KILL_SECONDS,
                        run.out, run.err);
  *out = run.out;
  *err = run.err;
  return status;
}

static void
test_gil_probe (gconstpointer data)
{
  const GilProbe *probe = data;
  g_autofree gchar *exe = g_file_read_link ("/proc/self/exe", NULL);
  g_autofree gchar *out = NULL, *err = NULL;
  const gchar *argv[] = { exe, "--gil-probe", probe->name, NULL };
  gboolean checked;

  g_assert_nonnull (exe);
  run_child (argv, &out, &err);
  if (strstr (err, "no result within") != NULL)
    {
      g_test_fail_printf ("the probe child of %s hangs:\n%s", probe->name, err);
      return;
    }
  g_assert_nonnull (strstr (err, "without the GIL"));
  /* The check: a critical naming the GIL, and a return instead of a crash. */
  checked = (strstr (err, "PyGILState_Check") != NULL || strstr (err, "GAB_GIL_HELD") != NULL)
            && strstr (err, "returned") != NULL;
  if (checked && probe->known_missing)
    g_test_fail_printf ("%s now checks for the GIL: set known_missing to FALSE", probe->name);
  else if (!checked && probe->known_missing)
    g_test_incomplete ("core: no GIL precondition (g_return_val_if_fail "
                       "(Py_IsInitialized () && PyGILState_Check ())): called without "
                       "the GIL it touches Python objects (and usually crashes)");
  else if (!checked)
    g_test_fail_printf ("%s called without the GIL: no precondition caught it:\n%s",
                        probe->name, err);
}

/* ---- C worker threads await Python, 20 deep ------------------------------- */

static const char helpers_source[] =
  "import asyncio\n"
  "import _faults_c\n"
  "async def chain(n, how):\n"
  "    if n == 0:\n"
  "        await asyncio.sleep(0)\n"
  "        return 0\n"
  "    return 1 + await _faults_c.c_await(n - 1, how)\n"
  "async def slow(x):\n"
  "    for _ in range(20):\n"
  "        await asyncio.sleep(0)\n"
  "    return x\n";

typedef struct
{
  GMainContext *context;
  gboolean      done;
  GVariant     *value;
  GError       *error;
} Wait;

static void
wait_done (GObject      *source,
           GAsyncResult *result,
           gpointer      data)
{
  Wait *wait = data;

  g_assert_true (g_main_context_is_owner (wait->context));
  wait->value = gab_call_finish (result, &wait->error);
  wait->done = TRUE;
}

/* A C thread's way to await Python: its own context, blocked until the
 * callback ran there. No GIL. */
static void
call_and_wait (const gchar *function,
               GVariant    *args,
               Wait        *wait)
{
  memset (wait, 0, sizeof *wait);
  wait->context = g_main_context_new ();
  g_main_context_push_thread_default (wait->context);
  gab_call_async ("faults_c_helpers", function, args, NULL, wait_done, wait);
  while (!wait->done)
    g_main_context_iteration (wait->context, TRUE);
  g_main_context_pop_thread_default (wait->context);
  g_main_context_unref (wait->context);
}

typedef struct
{
  gint           n;
  gchar         *how;
  GabTaskLocals *locals;
  GTask         *task;
} Level;

static void
level_free (gpointer data)
{
  Level *level = data;

  g_free (level->how);
  g_clear_pointer (&level->locals, gab_task_locals_unref);
  g_free (level);
}

static void
level_return (Level  *level,
              Wait   *wait)
{
  GTask *task = level->task;

  if (wait->error != NULL)
    g_task_return_error (task, g_steal_pointer (&wait->error));
  else
    g_task_return_int (task, g_variant_get_int64 (wait->value));
  g_clear_pointer (&wait->value, g_variant_unref);
  g_object_unref (task);
}

static gpointer
level_thread (gpointer data)
{
  Level *level = data;
  Wait wait;

  gab_task_locals_push (level->locals);
  call_and_wait ("chain", g_variant_new ("(is)", level->n, level->how), &wait);
  gab_task_locals_pop (level->locals);
  level_return (level, &wait);
  return NULL;
}

static void
level_on_runtime_done (GObject      *source,
                       GAsyncResult *result,
                       gpointer      data)
{
  Level *level = data;
  Wait wait = { NULL };

  wait.value = gab_call_finish (result, &wait.error);
  level_return (level, &wait);
}

static void
level_start (GCancellable        *cancellable,
             GAsyncReadyCallback  callback,
             gpointer             callback_data,
             gpointer             user_data)
{
  Level *level = user_data;
  gboolean thread = g_str_equal (level->how, "thread")
                    || (g_str_equal (level->how, "mixed") && level->n % 2 == 1);

  level->task = g_task_new (NULL, cancellable, callback, callback_data);
  if (thread)
    {
      /* A C worker thread of its own for this level. */
      level->locals = gab_task_locals_get_current ();
      g_thread_unref (g_thread_new ("chain-level", level_thread, level));
    }
  else
    /* The runtime thread itself awaits Python. */
    gab_call_async ("faults_c_helpers", "chain", g_variant_new ("(is)", level->n, level->how),
                    cancellable, level_on_runtime_done, level);
}

static PyObject *
level_finish (GObject       *source,
              GAsyncResult  *result,
              gpointer       user_data,
              GError       **error)
{
  gssize value = g_task_propagate_int (G_TASK (result), error);

  if (value < 0)
    return NULL;
  return PyLong_FromSsize_t (value);
}

static PyObject *
c_await (PyObject *self,
         PyObject *args)
{
  const char *how;
  Level *level;
  int n;

  if (!PyArg_ParseTuple (args, "is", &n, &how))
    return NULL;
  level = g_new0 (Level, 1);
  level->n = n;
  level->how = g_strdup (how);
  return gab_future_into_py (level_start, level_finish, level, level_free);
}

static PyMethodDef faults_c_methods[] = {
  { "c_await", c_await, METH_VARARGS, "C awaits Python (chain) at the next level." },
  { NULL }
};

static struct PyModuleDef faults_c_def = {
  PyModuleDef_HEAD_INIT, "_faults_c", NULL, -1, faults_c_methods,
};

static void
helpers_install (void)
{
  PyObject *modules = PyImport_GetModuleDict ();
  PyObject *cmod, *helpers, *code;

  if (PyDict_GetItemString (modules, "faults_c_helpers") != NULL)
    return;
  cmod = PyModule_Create (&faults_c_def);
  g_assert_nonnull (cmod);
  PyDict_SetItemString (modules, "_faults_c", cmod);
  Py_DECREF (cmod);
  helpers = PyImport_AddModule ("faults_c_helpers");   /* borrowed */
  PyModule_AddStringConstant (helpers, "__file__", "<test-faults.c>");
  code = PyRun_String (helpers_source, Py_file_input, PyModule_GetDict (helpers),
                       PyModule_GetDict (helpers));
  if (code == NULL)
    PyErr_Print ();
  g_assert_nonnull (code);
  Py_DECREF (code);
}

/* Runs @worker on a thread while the main thread runs an asyncio loop (the
 * default task locals), then stops the loop. */
typedef struct
{
  GThreadFunc func;
  PyObject   *loop;
} Scenario;

static gpointer
scenario_thread (gpointer data)
{
  Scenario *scenario = data;
  PyGILState_STATE state;

  scenario->func (NULL);
  state = PyGILState_Ensure ();
  Py_XDECREF (PyObject_CallMethod (scenario->loop, "call_soon_threadsafe", "N",
                                   PyObject_GetAttrString (scenario->loop, "stop")));
  PyGILState_Release (state);
  return NULL;
}

static PyObject *
scenario_start (PyObject *capsule,
                PyObject *unused)
{
  g_thread_unref (g_thread_new ("scenario", scenario_thread,
                                PyCapsule_GetPointer (capsule, NULL)));
  Py_RETURN_NONE;
}

static PyMethodDef scenario_start_def = { "start", scenario_start, METH_NOARGS, NULL };

static void
run_scenario (GThreadFunc func)
{
  PyObject *asyncio = PyImport_ImportModule ("asyncio");
  Scenario scenario = { func, PyObject_CallMethod (asyncio, "new_event_loop", NULL) };
  PyObject *capsule = PyCapsule_New (&scenario, NULL, NULL);
  PyObject *starter = PyCFunction_New (&scenario_start_def, capsule);
  PyObject *ret;

  helpers_install ();
  Py_XDECREF (PyObject_CallMethod (scenario.loop, "call_soon", "O", starter));
  ret = gab_run_forever (scenario.loop);
  if (ret == NULL)
    PyErr_Print ();
  g_assert_nonnull (ret);
  Py_DECREF (ret);
  Py_XDECREF (PyObject_CallMethod (scenario.loop, "close", NULL));
  Py_DECREF (starter);
  Py_DECREF (capsule);
  Py_DECREF (scenario.loop);
  Py_DECREF (asyncio);
}

static const char *const hows[] = { "thread", "runtime", "mixed" };

static gpointer
chain_worker (gpointer data)
{
  const char *how = data;
  Wait wait;

  call_and_wait ("chain", g_variant_new ("(is)", DEPTH, how), &wait);
  g_assert_no_error (wait.error);
  g_assert_cmpint (g_variant_get_int64 (wait.value), ==, DEPTH);
  g_variant_unref (wait.value);
  return NULL;
}

static gpointer
chains (gpointer unused)
{
  /* Each topology alone, then all of them at once from four threads. */
  for (guint i = 0; i < G_N_ELEMENTS (hows); i++)
    chain_worker ((gpointer) hows[i]);
  if (!under_valgrind)
    {
      GThread *threads[4];

      for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
        threads[i] = g_thread_new ("chain", chain_worker, (gpointer) hows[i % 3]);
      for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
        g_thread_join (threads[i]);
    }
  return NULL;
}

static void
test_c_threads_await_python_20_deep (void)
{
  run_scenario (chains);
}

/* ---- C threads await Python while the runtime shuts down ------------------- */

static gint outcomes_value, outcomes_closed;
static GMutex outcomes_lock;
static GCond  outcomes_cond;

static void
outcome_count (gint *counter)
{
  g_mutex_lock (&outcomes_lock);
  (*counter)++;
  g_cond_broadcast (&outcomes_cond);
  g_mutex_unlock (&outcomes_lock);
}

/* Until at least @n calls have completed, one way or the other. */
static void
outcomes_wait (gint n)
{
  g_mutex_lock (&outcomes_lock);
  while (outcomes_value + outcomes_closed < n)
    g_cond_wait (&outcomes_cond, &outcomes_lock);
  g_mutex_unlock (&outcomes_lock);
}

static gpointer
slow_caller (gpointer data)
{
  guint n = GPOINTER_TO_UINT (data);

  for (guint i = 0; i < n; i++)
    {
      Wait wait;

      call_and_wait ("slow", g_variant_new ("(i)", (gint) i), &wait);
      if (wait.error != NULL)
        {
          /* Only ever this: the runtime was shut down under it. */
          g_assert_error (wait.error, G_IO_ERROR, G_IO_ERROR_CLOSED);
          g_clear_error (&wait.error);
          outcome_count (&outcomes_closed);
        }
      else
        {
          g_assert_cmpint (g_variant_get_int64 (wait.value), ==, (gint) i);
          g_variant_unref (wait.value);
          outcome_count (&outcomes_value);
        }
    }
  return NULL;
}

static gpointer
shutdown_under_callers (gpointer unused)
{
  guint n = under_valgrind ? 10 : 100;
  GThread *threads[4];
  GError *error = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    threads[i] = g_thread_new ("caller", slow_caller, GUINT_TO_POINTER (n));
  for (guint round = 0; round < 3; round++)
    {
      /* shut down while calls are in flight: after some have completed */
      outcomes_wait ((round + 1) * n);
      gab_shutdown ();
      g_assert_true (gab_init (&error));
      g_assert_no_error (error);
    }
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    g_thread_join (threads[i]);
  g_assert_cmpint (outcomes_value + outcomes_closed, ==, 4 * n);
  /* and the chain works on the new runtime */
  chain_worker ((gpointer) "mixed");
  return NULL;
}

static void
test_shutdown_while_c_threads_await_python (void)
{
  run_scenario (shutdown_under_callers);
}

int
main (int    argc,
      char **argv)
{
  int ret;

  under_valgrind = g_getenv ("GAB_UNDER_VALGRIND") != NULL;
  if (argc == 3 && g_str_equal (argv[1], "--gil-probe"))
    {
      child_arm_alarm ();
      Py_InitializeEx (0);
      return gil_probe_child (argv[2]);
    }

  g_test_init (&argc, &argv, NULL);
  Py_InitializeEx (0);
  g_test_add_func ("/faults/preconditions/runtime", test_runtime_preconditions);
  g_test_add_func ("/faults/preconditions/error-and-variant", test_error_and_variant_preconditions);
  g_test_add_func ("/faults/preconditions/task-locals", test_task_locals_preconditions);
  g_test_add_func ("/faults/preconditions/into-future-and-call",
                   test_into_future_and_call_preconditions);
  g_test_add_func ("/faults/preconditions/future-into-py-frees-user-data",
                   test_future_into_py_frees_user_data_on_failure);
  g_test_add_func ("/faults/preconditions/future-into-py-full-flags", test_future_into_py_full_bad_flags);
  g_test_add_func ("/faults/preconditions/loop-and-main", test_loop_and_main_preconditions);
  g_test_add_func ("/faults/preconditions/streams", test_stream_preconditions);
  g_test_add_func ("/faults/preconditions/harness", test_harness_preconditions);
  for (guint i = 0; i < G_N_ELEMENTS (gil_probes); i++)
    {
      g_autofree gchar *path = g_strdup_printf ("/faults/gil/%s", gil_probes[i].name);

      g_test_add_data_func (path, &gil_probes[i], test_gil_probe);
    }
  g_test_add_func ("/faults/c-threads-await-python-20-deep", test_c_threads_await_python_20_deep);
  g_test_add_func ("/faults/shutdown-while-c-threads-await-python",
                   test_shutdown_while_c_threads_await_python);
  ret = g_test_run ();
  if (Py_FinalizeEx () < 0)
    ret = 1;
  return ret;
}
