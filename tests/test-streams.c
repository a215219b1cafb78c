/* test-streams.c: the streams from C — a Python async iterable consumed
 * item by item (GabAsyncIterator) and as bytes (GabInputStream), and C
 * producer threads feeding Python through a GabChannel.
 *
 * The main thread embeds Python and runs each scenario of
 * tests/helpers_streams.py with gab_run(). The scenarios call `_streams_c`,
 * a module made here, whose functions start C consumers or producers —
 * mostly on worker threads with their own GMainContext, as a GLib program's
 * threads would be — and return an asyncio future of what the C side saw.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <gasyncbridge/gasyncbridge.h>
#include <gio/gunixoutputstream.h>

#include <string.h>

static gint consumed;   /* atomic: items taken by the current consumer */

/* ---- handing results back to Python ----------------------------------- */

typedef struct
{
  PyObject *loop;
  PyObject *future;
} Reply;

static Reply *
reply_new (void)
{
  Reply *reply = g_new0 (Reply, 1);
  PyObject *asyncio = PyImport_ImportModule ("asyncio");

  reply->loop = PyObject_CallMethod (asyncio, "get_running_loop", NULL);
  g_assert_nonnull (reply->loop);
  reply->future = PyObject_CallMethod (reply->loop, "create_future", NULL);
  g_assert_nonnull (reply->future);
  Py_DECREF (asyncio);
  return reply;
}

/* GIL held, any thread: resolve the future with @value (taken). */
static void
reply_send (Reply    *reply,
            PyObject *value)
{
  PyObject *set_result = PyObject_GetAttrString (reply->future, "set_result");
  PyObject *ret = PyObject_CallMethod (reply->loop, "call_soon_threadsafe", "OO",
                                       set_result, value);

  if (ret == NULL)
    PyErr_Print ();
  Py_XDECREF (ret);
  Py_DECREF (set_result);
  Py_DECREF (value);
  Py_DECREF (reply->loop);
  Py_DECREF (reply->future);
  g_free (reply);
}

static PyObject *
exception_or_none (const GError *error)
{
  PyObject *exc;

  if (error == NULL)
    Py_RETURN_NONE;
  exc = gab_error_new_python_exception (error);
  g_assert_nonnull (exc);
  return exc;
}

/* GIL: raise a GError the way the tests expect bad input to be reported. */
static PyObject *
raise_error (GError *error)
{
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT))
    PyErr_SetString (PyExc_ValueError, error->message);
  else
    gab_error_to_python (error);
  g_error_free (error);
  return NULL;
}

/* Wait on a worker's own context for an async result. */
static GAsyncResult *
wait_result (GMainContext  *context,
             GAsyncResult **slot)
{
  while (*slot == NULL)
    g_main_context_iteration (context, TRUE);
  return *slot;
}

static void
store_result (GObject      *source,
              GAsyncResult *result,
              gpointer      data)
{
  *(GAsyncResult **) data = g_object_ref (result);
}

/* ---- consume(aiterable, read_ahead, mode, cancel_after, gate=False) ----- */

typedef struct
{
  GabAsyncIterator *it;
  Reply            *reply;
  gchar            *mode;          /* "object", "variant", "variant-all" */
  gint              cancel_after;  /* cancel the request for item k; -1: no */
  gboolean          gate;          /* cancel only when Python says so */
} Consume;

static GMutex gate_lock;
static GCond  gate_cond;
static gboolean gate_open;

static PyObject *
c_open_gate (PyObject *self,
             PyObject *unused)
{
  g_mutex_lock (&gate_lock);
  gate_open = TRUE;
  g_cond_broadcast (&gate_cond);
  g_mutex_unlock (&gate_lock);
  Py_RETURN_NONE;
}

static PyObject *
variant_pair (GVariant *v)
{
  PyObject *value = gab_variant_to_python (v);

  return Py_BuildValue ("(sN)", g_variant_get_type_string (v), value);
}

static void
variant_clear (gpointer v)
{
  if (v != NULL)
    g_variant_unref (v);
}

static gpointer
consume_thread (gpointer data)
{
  Consume *self = data;
  GMainContext *context = g_main_context_new ();
  gboolean objects = g_str_equal (self->mode, "object");
  gboolean all = g_str_equal (self->mode, "variant-all");
  GPtrArray *variants = g_ptr_array_new_with_free_func (variant_clear);
  GPtrArray *item_errors = g_ptr_array_new_with_free_func (g_free);
  PyObject *objects_list = NULL, *items;
  GError *error = NULL, *close_error = NULL;
  GAsyncResult *result;
  PyGILState_STATE state;
  gint count = 0;

  g_main_context_push_thread_default (context);
  if (objects)
    {
      state = PyGILState_Ensure ();
      objects_list = PyList_New (0);
      PyGILState_Release (state);
    }

  for (;;)
    {
      g_autoptr(GCancellable) cancellable = NULL;
      gboolean cancel = self->cancel_after >= 0 && count == self->cancel_after;

      if (cancel)
        cancellable = g_cancellable_new ();
      result = NULL;
      if (objects)
        gab_async_iterator_next_async (self->it, cancellable, store_result, &result);
      else
        gab_async_iterator_next_variant_async (self->it, cancellable, store_result, &result);
      if (cancel)
        {
          if (self->gate)
            {
              g_mutex_lock (&gate_lock);
              while (!gate_open)
                g_cond_wait (&gate_cond, &gate_lock);
              gate_open = FALSE;
              g_mutex_unlock (&gate_lock);
            }
          g_cancellable_cancel (cancellable);
        }
      wait_result (context, &result);
      if (objects)
        {
          PyObject *item;

          state = PyGILState_Ensure ();
          item = gab_async_iterator_next_finish (self->it, result, &error);
          if (item != NULL)
            {
              PyList_Append (objects_list, item);
              Py_DECREF (item);
            }
          PyGILState_Release (state);
          g_object_unref (result);
          if (item == NULL)
            break;
        }
      else
        {
          GError *item_error = NULL;
          GVariant *v = gab_async_iterator_next_variant_finish (self->it, result,
                                                                &item_error);

          g_object_unref (result);
          if (v == NULL && item_error == NULL)
            break;
          if (item_error != NULL && all
              && g_error_matches (item_error, GAB_ERROR, GAB_ERROR_CONVERSION))
            {
              /* One item that does not convert; the iteration goes on. */
              g_ptr_array_add (variants, NULL);
              g_ptr_array_add (item_errors, g_strdup (item_error->message));
              g_error_free (item_error);
              count++;
              continue;
            }
          if (item_error != NULL)
            {
              error = item_error;
              break;
            }
          g_ptr_array_add (variants, v);
          g_ptr_array_add (item_errors, NULL);
        }
      count++;
      g_atomic_int_set (&consumed, count);
    }

  /* After the end, an error or a cancel: close, and wait for aclose(). */
  result = NULL;
  gab_async_iterator_close_async (self->it, NULL, store_result, &result);
  wait_result (context, &result);
  gab_async_iterator_close_finish (self->it, result, &close_error);
  g_object_unref (result);
  g_object_unref (self->it);

  state = PyGILState_Ensure ();
  if (objects)
    items = objects_list;
  else
    {
      items = PyList_New (0);
      for (guint i = 0; i < variants->len; i++)
        {
          GVariant *v = variants->pdata[i];
          PyObject *item;

          if (v == NULL)
            item = Py_BuildValue ("(ss)", "error", (gchar *) item_errors->pdata[i]);
          else if (all)
            item = variant_pair (v);
          else
            item = gab_variant_to_python (v);
          PyList_Append (items, item);
          Py_DECREF (item);
        }
    }
  /* GVariants are unreffed with the GIL held, which they do not need. */
  g_ptr_array_unref (variants);
  g_ptr_array_unref (item_errors);
  reply_send (self->reply, Py_BuildValue ("(NNN)", items, exception_or_none (error),
                                          exception_or_none (close_error)));
  PyGILState_Release (state);

  g_clear_error (&error);
  g_clear_error (&close_error);
  g_main_context_pop_thread_default (context);
  g_main_context_unref (context);
  g_free (self->mode);
  g_free (self);
  return NULL;
}

static PyObject *
c_consume (PyObject *module,
           PyObject *args)
{
  PyObject *aiterable;
  unsigned int read_ahead;
  const char *mode;
  int cancel_after, gate = 0;
  GError *error = NULL;
  GabAsyncIterator *it;
  Consume *self;
  PyObject *future;

  if (!PyArg_ParseTuple (args, "OIsi|p", &aiterable, &read_ahead, &mode, &cancel_after, &gate))
    return NULL;
  it = gab_async_iterator_new (aiterable, read_ahead, &error);
  if (it == NULL)
    return raise_error (error);
  g_assert_cmpuint (gab_async_iterator_get_read_ahead (it), ==, read_ahead);
  g_atomic_int_set (&consumed, 0);
  self = g_new0 (Consume, 1);
  self->it = it;
  self->reply = reply_new ();
  self->mode = g_strdup (mode);
  self->cancel_after = cancel_after;
  self->gate = gate;
  future = Py_NewRef (self->reply->future);
  g_thread_unref (g_thread_new ("consumer", consume_thread, self));
  return future;
}

static PyObject *
c_consumed_count (PyObject *module,
                  PyObject *unused)
{
  return PyLong_FromLong (g_atomic_int_get (&consumed));
}

/* ---- consume_on_loop: callbacks from the loop itself ------------------- */

typedef struct
{
  GabAsyncIterator *it;
  Reply            *reply;
  PyObject         *items;
} LoopConsume;

static void
loop_consume_next (GObject      *source,
                   GAsyncResult *result,
                   gpointer      data)
{
  LoopConsume *self = data;
  GError *error = NULL;
  PyObject *item;

  /* No thread-default context on the loop thread: the callback comes from
   * the loop, with the GIL. */
  g_assert_true (PyGILState_Check ());
  item = gab_async_iterator_next_finish (self->it, result, &error);
  if (item != NULL)
    {
      PyList_Append (self->items, item);
      Py_DECREF (item);
      gab_async_iterator_next_async (self->it, NULL, loop_consume_next, self);
      return;
    }
  g_object_unref (self->it);
  {
    PyObject *future = self->reply->future, *loop = self->reply->loop;
    PyObject *ret = PyObject_CallMethod (future, "set_result", "((NN))", self->items,
                                         exception_or_none (error));
    Py_XDECREF (ret);
    Py_DECREF (future);
    Py_DECREF (loop);
  }
  g_clear_error (&error);
  g_free (self->reply);
  g_free (self);
}

static PyObject *
c_consume_on_loop (PyObject *module,
                   PyObject *args)
{
  PyObject *aiterable, *future;
  unsigned int read_ahead;
  GError *error = NULL;
  LoopConsume *self;
  GabAsyncIterator *it;

  if (!PyArg_ParseTuple (args, "OI", &aiterable, &read_ahead))
    return NULL;
  it = gab_async_iterator_new (aiterable, read_ahead, &error);
  if (it == NULL)
    return raise_error (error);
  self = g_new0 (LoopConsume, 1);
  self->it = it;
  self->reply = reply_new ();
  self->items = PyList_New (0);
  future = Py_NewRef (self->reply->future);
  gab_async_iterator_next_async (it, NULL, loop_consume_next, self);
  return future;
}

/* ---- drop_after(aiterable, n): take n items, then drop the iterator ---- */

typedef struct
{
  GabAsyncIterator *it;
  Reply            *reply;
  gint              n;
} Drop;

static gpointer
drop_thread (gpointer data)
{
  Drop *self = data;
  GMainContext *context = g_main_context_new ();
  PyGILState_STATE state;

  g_main_context_push_thread_default (context);
  for (gint i = 0; i < self->n; i++)
    {
      GAsyncResult *result = NULL;
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) v = NULL;

      gab_async_iterator_next_variant_async (self->it, NULL, store_result, &result);
      wait_result (context, &result);
      v = gab_async_iterator_next_variant_finish (self->it, result, &error);
      g_assert_no_error (error);
      g_assert_cmpint (g_variant_get_int64 (v), ==, i);
      g_object_unref (result);
    }
  /* No close: the last reference goes, without the GIL. */
  g_object_unref (self->it);
  state = PyGILState_Ensure ();
  reply_send (self->reply, Py_NewRef (Py_None));
  PyGILState_Release (state);
  g_main_context_pop_thread_default (context);
  g_main_context_unref (context);
  g_free (self);
  return NULL;
}

static PyObject *
c_drop_after (PyObject *module,
              PyObject *args)
{
  PyObject *aiterable, *future;
  GError *error = NULL;
  Drop *self;
  int n;

  if (!PyArg_ParseTuple (args, "Oi", &aiterable, &n))
    return NULL;
  self = g_new0 (Drop, 1);
  self->it = gab_async_iterator_new (aiterable, 1, &error);
  if (self->it == NULL)
    {
      g_free (self);
      return raise_error (error);
    }
  self->reply = reply_new ();
  self->n = n;
  future = Py_NewRef (self->reply->future);
  g_thread_unref (g_thread_new ("dropper", drop_thread, self));
  return future;
}

/* ---- the module and the test cases ------------------------------------ */

static PyMethodDef c_methods[] = {
  { "consume", c_consume, METH_VARARGS, NULL },
  { "consume_on_loop", c_consume_on_loop, METH_VARARGS, NULL },
  { "consumed_count", c_consumed_count, METH_NOARGS, NULL },
  { "open_gate", c_open_gate, METH_NOARGS, NULL },
  { "drop_after", c_drop_after, METH_VARARGS, NULL },
  { NULL }
};

static struct PyModuleDef c_module_def = {
  PyModuleDef_HEAD_INIT, .m_name = "_streams_c", .m_size = -1, .m_methods = c_methods,
};

static PyObject *
c_module_init (void)
{
  return PyModule_Create (&c_module_def);
}

/* Runs helpers_streams.<name>(*args) with gab_run(). */
static void
run_scenario (const gchar *name,
              const gchar *format,
              ...)
{
  PyObject *helpers = PyImport_ImportModule ("helpers_streams");
  PyObject *func, *args, *coro, *ret;
  va_list ap;

  if (helpers == NULL)
    PyErr_Print ();
  g_assert_nonnull (helpers);
  func = PyObject_GetAttrString (helpers, name);
  g_assert_nonnull (func);
  va_start (ap, format);
  args = format != NULL ? Py_VaBuildValue (format, ap) : PyTuple_New (0);
  va_end (ap);
  g_assert_nonnull (args);
  if (!PyTuple_Check (args))
    {
      PyObject *tuple = PyTuple_Pack (1, args);

      Py_DECREF (args);
      args = tuple;
    }
  coro = PyObject_Call (func, args, NULL);
  g_assert_nonnull (coro);
  ret = gab_run (coro);
  if (ret == NULL)
    {
      PyErr_Print ();
      g_test_fail_printf ("scenario %s failed", name);
    }
  Py_XDECREF (ret);
  Py_DECREF (coro);
  Py_DECREF (args);
  Py_DECREF (func);
  Py_DECREF (helpers);
}

static void
test_thousand_items (void)
{
  /* The anchor's full-buffer case: a generator that never awaits. */
  run_scenario ("thousand_items", "(Is)", 0, "object");
  run_scenario ("thousand_items", "(Is)", 0, "variant");
  run_scenario ("thousand_items", "(Is)", 16, "object");
  run_scenario ("thousand_items", "(Is)", 16, "variant");
  run_scenario ("thousand_items", "(Is)", 5000, "variant");
}

static void
test_thousand_items_on_loop (void)
{
  run_scenario ("thousand_items_on_loop", "(I)", 0);
  run_scenario ("thousand_items_on_loop", "(I)", 8);
}

static void
test_error_at_k (void)
{
  run_scenario ("error_at_k", "(Is)", 0, "object");
  run_scenario ("error_at_k", "(Is)", 4, "object");
  run_scenario ("error_at_k", "(Is)", 0, "variant");
  run_scenario ("error_at_k", "(Is)", 100, "variant");
}

static void
test_backpressure (void)
{
  run_scenario ("backpressure", "(I)", 0);
  run_scenario ("backpressure", "(I)", 1);
  run_scenario ("backpressure", "(I)", 7);
}

static void
test_cancel_runs_finally (void)
{
  run_scenario ("cancel_midway", "(IO)", 0, Py_False);
  run_scenario ("cancel_midway", "(IO)", 4, Py_False);
  run_scenario ("cancel_midway", "(IO)", 0, Py_True);
  run_scenario ("cancel_midway", "(IO)", 4, Py_True);
  run_scenario ("cancel_while_fetching", NULL);
  run_scenario ("dropped_early", NULL);
}

static void
test_items_convert (void)
{
  run_scenario ("none_and_unconvertible", NULL);
  run_scenario ("iterator_classes", NULL);
  run_scenario ("context_is_kept", NULL);
}

static void
test_bad_iterables (void)
{
  run_scenario ("bad_input", NULL);
}

int
main (int    argc,
      char **argv)
{
  int ret;

  g_test_init (&argc, &argv, NULL);
  PyImport_AppendInittab ("_streams_c", c_module_init);
  Py_InitializeEx (0);
  g_test_add_func ("/streams/iterator/thousand-items", test_thousand_items);
  g_test_add_func ("/streams/iterator/thousand-items-on-loop", test_thousand_items_on_loop);
  g_test_add_func ("/streams/iterator/error-at-k", test_error_at_k);
  g_test_add_func ("/streams/iterator/backpressure", test_backpressure);
  g_test_add_func ("/streams/iterator/cancel-runs-finally", test_cancel_runs_finally);
  g_test_add_func ("/streams/iterator/items-convert", test_items_convert);
  g_test_add_func ("/streams/iterator/bad-iterables", test_bad_iterables);
  ret = g_test_run ();
  /* atexit runs gab_shutdown() before Python goes. */
  if (Py_FinalizeEx () < 0)
    ret = 1;
  return ret;
}
