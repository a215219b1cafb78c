/* test-streams.c: the streams from C — a Python async iterable consumed
 * item by item (GabAsyncIterator) and as bytes (GabInputStream), and C
 * producer threads feeding Python through a GabChannel.
 *
 * The main thread embeds Python and runs each scenario of
 * tests/helpers_streams.py with gab_run(). The scenarios call `_streams_c`,
 * a module made here, whose functions start C consumers or producers —
 * mostly on worker threads with their own GMainContext, as a GLib program's
 * threads would be — and return an asyncio future of what the C side saw.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "../gasyncbridge/gab-python-compat.h"  /* Python.h, with the API of newer versions */
#include <gasyncbridge/gasyncbridge.h>

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

/* ---- GabInputStream consumers ------------------------------------------ */

/* A worker thread with its own context runs @func, which returns the
 * Python reply value (built with the GIL, which it takes itself). */
typedef PyObject *(*WorkerFunc) (GMainContext *context, gpointer data);

typedef struct
{
  WorkerFunc     func;
  gpointer       data;
  GDestroyNotify free;
  Reply         *reply;
} Worker;

static gpointer
worker_thread (gpointer data)
{
  Worker *self = data;
  GMainContext *context = g_main_context_new ();
  PyGILState_STATE state;
  PyObject *value;

  g_main_context_push_thread_default (context);
  value = self->func (context, self->data);
  state = PyGILState_Ensure ();
  if (self->free != NULL)
    self->free (self->data);
  reply_send (self->reply, value);
  PyGILState_Release (state);
  g_main_context_pop_thread_default (context);
  g_main_context_unref (context);
  g_free (self);
  return NULL;
}

/* GIL: starts @func on a worker; returns the future of its reply. */
static PyObject *
start_worker (WorkerFunc     func,
              gpointer       data,
              GDestroyNotify free_func)
{
  Worker *self = g_new0 (Worker, 1);
  PyObject *future;

  self->func = func;
  self->data = data;
  self->free = free_func;
  self->reply = reply_new ();
  future = Py_NewRef (self->reply->future);
  g_thread_unref (g_thread_new ("worker", worker_thread, self));
  return future;
}

/* No GIL: a Python value from the worker's outcome. */
static PyObject *
outcome (PyObject *value,
         GError   *error)
{
  PyGILState_STATE state = PyGILState_Ensure ();
  PyObject *ret = Py_BuildValue ("(NN)", value != NULL ? value : Py_NewRef (Py_None),
                                 exception_or_none (error));

  g_clear_error (&error);
  PyGILState_Release (state);
  return ret;
}

static GInputStream *
input_from_python (PyObject *aiterable)
{
  GError *error = NULL;
  GInputStream *stream = gab_input_stream_new (aiterable, &error);

  if (stream == NULL)
    raise_error (error);
  else
    g_assert_true (GAB_IS_INPUT_STREAM (stream));
  return stream;
}

/* splice_to(aiterable, path or None for /dev/null): bytes spliced */
typedef struct
{
  GInputStream *in;
  gchar        *path;
} Splice;

static void
splice_free (gpointer data)
{
  Splice *self = data;

  g_clear_object (&self->in);
  g_free (self->path);
  g_free (self);
}

static PyObject *
splice_worker (GMainContext *context,
               gpointer      data)
{
  Splice *self = data;
  g_autoptr(GFile) file = g_file_new_for_path (self->path != NULL ? self->path : "/dev/null");
  GOutputStream *out;
  GAsyncResult *result = NULL;
  GError *error = NULL;
  gssize n = -1;

  if (self->path != NULL)
    out = G_OUTPUT_STREAM (g_file_replace (file, NULL, FALSE, G_FILE_CREATE_NONE, NULL, &error));
  else
    out = G_OUTPUT_STREAM (g_file_append_to (file, G_FILE_CREATE_NONE, NULL, &error));
  if (out != NULL)
    {
      g_output_stream_splice_async (out, self->in,
                                    G_OUTPUT_STREAM_SPLICE_CLOSE_SOURCE
                                    | G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET,
                                    G_PRIORITY_DEFAULT, NULL, store_result, &result);
      wait_result (context, &result);
      n = g_output_stream_splice_finish (out, result, &error);
      g_object_unref (result);
      g_object_unref (out);
    }
  return outcome (n >= 0 ? PyLong_FromSsize_t (n) : NULL, error);
}

static PyObject *
c_splice_to (PyObject *module,
             PyObject *args)
{
  PyObject *aiterable, *path;
  Splice *self;

  if (!PyArg_ParseTuple (args, "OO", &aiterable, &path))
    return NULL;
  self = g_new0 (Splice, 1);
  self->in = input_from_python (aiterable);
  if (self->in == NULL)
    {
      splice_free (self);
      return NULL;
    }
  if (path != Py_None)
    self->path = g_strdup (PyUnicode_AsUTF8 (path));
  return start_worker (splice_worker, self, splice_free);
}

/* read_all(aiterable, bufsize, sync, chunk_size): reads everything and
 * checks that byte p is (p / chunk_size) % 251 at the start of each read;
 * returns (total, reads, first bad offset or -1). */
typedef struct
{
  GInputStream *in;
  gsize         bufsize;
  gboolean      sync;
  gsize         chunk_size;
} ReadAll;

static void
read_all_free (gpointer data)
{
  ReadAll *self = data;

  g_clear_object (&self->in);
  g_free (self);
}

static PyObject *
read_all_worker (GMainContext *context,
                 gpointer      data)
{
  ReadAll *self = data;
  guint8 *buffer = g_malloc (self->bufsize);
  GError *error = NULL;
  guint64 total = 0, reads = 0;
  gint64 bad = -1;
  PyGILState_STATE state;
  PyObject *value;

  for (;;)
    {
      gssize n;

      if (self->sync)
        n = g_input_stream_read (self->in, buffer, self->bufsize, NULL, &error);
      else
        {
          GAsyncResult *result = NULL;

          g_input_stream_read_async (self->in, buffer, self->bufsize, G_PRIORITY_DEFAULT,
                                     NULL, store_result, &result);
          wait_result (context, &result);
          n = g_input_stream_read_finish (self->in, result, &error);
          g_object_unref (result);
        }
      if (n <= 0)
        break;
      if (self->chunk_size > 0 && bad < 0
          && buffer[0] != (guint8) ((total / self->chunk_size) % 251))
        bad = (gint64) total;
      total += (guint64) n;
      reads++;
    }
  g_free (buffer);
  if (error == NULL)
    g_input_stream_close (self->in, NULL, &error);
  state = PyGILState_Ensure ();
  value = Py_BuildValue ("(KKL)", (unsigned long long) total, (unsigned long long) reads,
                         (long long) bad);
  PyGILState_Release (state);
  return outcome (value, error);
}

static PyObject *
c_read_all (PyObject *module,
            PyObject *args)
{
  PyObject *aiterable;
  Py_ssize_t bufsize, chunk_size;
  int sync;
  ReadAll *self;

  if (!PyArg_ParseTuple (args, "Onpn", &aiterable, &bufsize, &sync, &chunk_size))
    return NULL;
  self = g_new0 (ReadAll, 1);
  self->in = input_from_python (aiterable);
  if (self->in == NULL)
    {
      read_all_free (self);
      return NULL;
    }
  self->bufsize = (gsize) bufsize;
  self->sync = sync;
  self->chunk_size = (gsize) chunk_size;
  return start_worker (read_all_worker, self, read_all_free);
}

/* read_lines(aiterable): GDataInputStream lines, async */
static PyObject *
read_lines_worker (GMainContext *context,
                   gpointer      data)
{
  GDataInputStream *lines = g_data_input_stream_new (data);
  GPtrArray *found = g_ptr_array_new_with_free_func (g_free);
  GError *error = NULL;
  PyGILState_STATE state;
  PyObject *list;

  g_filter_input_stream_set_close_base_stream (G_FILTER_INPUT_STREAM (lines), TRUE);
  for (;;)
    {
      GAsyncResult *result = NULL;
      gchar *line;

      g_data_input_stream_read_line_async (lines, G_PRIORITY_DEFAULT, NULL, store_result, &result);
      wait_result (context, &result);
      line = g_data_input_stream_read_line_finish (lines, result, NULL, &error);
      g_object_unref (result);
      if (line == NULL)
        break;
      g_ptr_array_add (found, line);
    }
  g_object_unref (lines);
  state = PyGILState_Ensure ();
  list = PyList_New (0);
  for (guint i = 0; i < found->len; i++)
    {
      PyObject *s = PyBytes_FromString (found->pdata[i]);

      PyList_Append (list, s);
      Py_DECREF (s);
    }
  PyGILState_Release (state);
  g_ptr_array_unref (found);
  return outcome (list, error);
}

static PyObject *
c_read_lines (PyObject *module,
              PyObject *aiterable)
{
  GInputStream *in = input_from_python (aiterable);

  if (in == NULL)
    return NULL;
  return start_worker (read_lines_worker, in, g_object_unref);
}

/* subprocess_cat(aiterable): the bytes through `cat`, stdin spliced from
 * the stream while stdout is spliced into memory. */
static PyObject *
cat_worker (GMainContext *context,
            gpointer      data)
{
  GError *error = NULL;
  GSubprocess *cat;
  GOutputStream *memory = g_memory_output_stream_new_resizable ();
  GAsyncResult *in_result = NULL, *out_result = NULL, *wait = NULL;
  PyObject *value = NULL;

  cat = g_subprocess_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE,
                          &error, "cat", NULL);
  if (cat != NULL)
    {
      g_output_stream_splice_async (g_subprocess_get_stdin_pipe (cat), data,
                                    G_OUTPUT_STREAM_SPLICE_CLOSE_SOURCE
                                    | G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET,
                                    G_PRIORITY_DEFAULT, NULL, store_result, &in_result);
      g_output_stream_splice_async (memory, g_subprocess_get_stdout_pipe (cat),
                                    G_OUTPUT_STREAM_SPLICE_CLOSE_SOURCE
                                    | G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET,
                                    G_PRIORITY_DEFAULT, NULL, store_result, &out_result);
      wait_result (context, &in_result);
      wait_result (context, &out_result);
      if (g_output_stream_splice_finish (g_subprocess_get_stdin_pipe (cat), in_result, &error) >= 0
          && g_output_stream_splice_finish (memory, out_result, &error) >= 0)
        {
          g_subprocess_wait_async (cat, NULL, store_result, &wait);
          wait_result (context, &wait);
          if (g_subprocess_wait_finish (cat, wait, &error))
            {
              PyGILState_STATE state = PyGILState_Ensure ();

              value = PyBytes_FromStringAndSize (
                g_memory_output_stream_get_data (G_MEMORY_OUTPUT_STREAM (memory)),
                (Py_ssize_t) g_memory_output_stream_get_data_size (G_MEMORY_OUTPUT_STREAM (memory)));
              PyGILState_Release (state);
            }
          g_object_unref (wait);
        }
      g_clear_object (&in_result);
      g_clear_object (&out_result);
      g_object_unref (cat);
    }
  g_object_unref (memory);
  return outcome (value, error);
}

static PyObject *
c_subprocess_cat (PyObject *module,
                  PyObject *aiterable)
{
  GInputStream *in = input_from_python (aiterable);

  if (in == NULL)
    return NULL;
  return start_worker (cat_worker, in, g_object_unref);
}

/* read_then_close(aiterable, n): n bytes, then close_async */
typedef struct
{
  GInputStream *in;
  gsize         n;
} ReadClose;

static void
read_close_free (gpointer data)
{
  ReadClose *self = data;

  g_object_unref (self->in);
  g_free (self);
}

static PyObject *
read_close_worker (GMainContext *context,
                   gpointer      data)
{
  ReadClose *self = data;
  guint8 *buffer = g_malloc (self->n);
  GAsyncResult *result = NULL;
  GError *error = NULL;
  gsize got = 0;
  PyObject *value = NULL;

  if (g_input_stream_read_all (self->in, buffer, self->n, &got, NULL, &error))
    {
      g_input_stream_close_async (self->in, G_PRIORITY_DEFAULT, NULL, store_result, &result);
      wait_result (context, &result);
      g_input_stream_close_finish (self->in, result, &error);
      g_object_unref (result);
    }
  {
    PyGILState_STATE state = PyGILState_Ensure ();

    value = PyBytes_FromStringAndSize ((gchar *) buffer, (Py_ssize_t) got);
    PyGILState_Release (state);
  }
  g_free (buffer);
  return outcome (value, error);
}

static PyObject *
c_read_then_close (PyObject *module,
                   PyObject *args)
{
  PyObject *aiterable;
  Py_ssize_t n;
  ReadClose *self;
  GInputStream *in;

  if (!PyArg_ParseTuple (args, "On", &aiterable, &n))
    return NULL;
  in = input_from_python (aiterable);
  if (in == NULL)
    return NULL;
  self = g_new0 (ReadClose, 1);
  self->in = in;
  self->n = (gsize) n;
  return start_worker (read_close_worker, self, read_close_free);
}

/* read_on_loop(aiterable): async reads started on the loop thread, whose
 * callbacks come from the loop; then close_async the same way. */
typedef struct
{
  GInputStream *in;
  GByteArray   *data;
  guint8        buffer[1000];
  PyObject     *future;
} LoopRead;

static void
loop_read_closed (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  LoopRead *self = user_data;
  GError *error = NULL;
  PyObject *ret;

  g_assert_true (PyGILState_Check ());
  g_input_stream_close_finish (self->in, result, &error);
  g_assert_no_error (error);
  ret = PyObject_CallMethod (self->future, "set_result", "y#", self->data->data,
                             (Py_ssize_t) self->data->len);
  Py_XDECREF (ret);
  Py_DECREF (self->future);
  g_byte_array_unref (self->data);
  g_object_unref (self->in);
  g_free (self);
}

static void
loop_read_ready (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  LoopRead *self = user_data;
  GError *error = NULL;
  gssize n;

  g_assert_true (PyGILState_Check ());
  n = g_input_stream_read_finish (self->in, result, &error);
  g_assert_no_error (error);
  if (n > 0)
    {
      g_byte_array_append (self->data, self->buffer, (guint) n);
      g_input_stream_read_async (self->in, self->buffer, sizeof self->buffer,
                                 G_PRIORITY_DEFAULT, NULL, loop_read_ready, self);
    }
  else
    g_input_stream_close_async (self->in, G_PRIORITY_DEFAULT, NULL, loop_read_closed, self);
}

static PyObject *
c_read_on_loop (PyObject *module,
                PyObject *aiterable)
{
  LoopRead *self;
  Reply *reply;
  GInputStream *in = input_from_python (aiterable);

  if (in == NULL)
    return NULL;
  self = g_new0 (LoopRead, 1);
  self->in = in;
  self->data = g_byte_array_new ();
  reply = reply_new ();
  self->future = Py_NewRef (reply->future);
  Py_DECREF (reply->loop);
  Py_DECREF (reply->future);
  g_free (reply);
  g_input_stream_read_async (in, self->buffer, sizeof self->buffer, G_PRIORITY_DEFAULT,
                             NULL, loop_read_ready, self);
  return Py_NewRef (self->future);
}

/* sync_read_here(aiterable): a sync read on the loop thread: must fail */
static PyObject *
c_sync_read_here (PyObject *module,
                  PyObject *aiterable)
{
  GInputStream *in = input_from_python (aiterable);
  GError *error = NULL;
  gchar buffer[16];
  PyObject *ret;

  if (in == NULL)
    return NULL;
  g_assert_cmpint (g_input_stream_read (in, buffer, sizeof buffer, NULL, &error), ==, -1);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
  ret = PyUnicode_FromString (error->message);
  g_error_free (error);
  g_object_unref (in);
  return ret;
}

/* sync_read_on_runtime(aiterable): a sync read on the runtime thread */
typedef struct
{
  GInputStream *in;
  Reply        *reply;
} OnRuntime;

static gboolean
sync_read_on_runtime_cb (gpointer data)
{
  OnRuntime *self = data;
  GError *error = NULL;
  gchar buffer[16];
  PyGILState_STATE state;

  g_assert_true (gab_is_runtime_thread ());
  g_assert_cmpint (g_input_stream_read (self->in, buffer, sizeof buffer, NULL, &error), ==, -1);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
  g_object_unref (self->in);
  state = PyGILState_Ensure ();
  reply_send (self->reply, PyUnicode_FromString (error->message));
  PyGILState_Release (state);
  g_error_free (error);
  g_free (self);
  return G_SOURCE_REMOVE;
}

static PyObject *
c_sync_read_on_runtime (PyObject *module,
                        PyObject *aiterable)
{
  OnRuntime *self;
  GInputStream *in = input_from_python (aiterable);
  PyObject *future;

  if (in == NULL)
    return NULL;
  self = g_new0 (OnRuntime, 1);
  self->in = in;
  self->reply = reply_new ();
  future = Py_NewRef (self->reply->future);
  gab_invoke (sync_read_on_runtime_cb, self, NULL);
  return future;
}

/* Peak memory of the process: rss_reset() resets the high-water mark and
 * returns the current RSS; rss_peak() returns the mark (bytes). */
static gint64
status_kb (const gchar *field)
{
  g_autofree gchar *status = NULL;
  const gchar *line;

  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL))
    return -1;
  line = strstr (status, field);
  if (line == NULL)
    return -1;
  return g_ascii_strtoll (line + strlen (field), NULL, 10);
}

static PyObject *
c_rss_reset (PyObject *module,
             PyObject *unused)
{
  /* "5" resets VmHWM to the current RSS (Linux >= 4.0). */
  g_file_set_contents ("/proc/self/clear_refs", "5", 1, NULL);
  return PyLong_FromLongLong (status_kb ("VmRSS:") * 1024);
}

static PyObject *
c_rss_peak (PyObject *module,
            PyObject *unused)
{
  return PyLong_FromLongLong (status_kb ("VmHWM:") * 1024);
}

/* reader_over_input(aiterable, limit): Python bytes through GIO and back:
 * a StreamReader over a GabInputStream. */
static PyObject *
c_reader_over_input (PyObject *module,
                     PyObject *args)
{
  PyObject *aiterable, *reader;
  Py_ssize_t limit;
  GInputStream *in;

  if (!PyArg_ParseTuple (args, "On", &aiterable, &limit))
    return NULL;
  in = input_from_python (aiterable);
  if (in == NULL)
    return NULL;
  reader = gab_stream_reader_new (in, limit);
  g_object_unref (in);
  return reader;
}

/* writer_to_memory(): a StreamWriter over a GMemoryOutputStream, and a
 * function that returns what it holds once closed. */
static PyObject *
c_memory_contents (PyObject *capsule,
                   PyObject *unused)
{
  GMemoryOutputStream *memory = PyCapsule_GetPointer (capsule, "memory");

  g_assert_true (g_output_stream_is_closed (G_OUTPUT_STREAM (memory)));
  return PyBytes_FromStringAndSize (g_memory_output_stream_get_data (memory),
                                    (Py_ssize_t) g_memory_output_stream_get_data_size (memory));
}

static PyMethodDef memory_contents_def = { "contents", c_memory_contents, METH_NOARGS, NULL };

static void
memory_capsule_free (PyObject *capsule)
{
  g_object_unref (PyCapsule_GetPointer (capsule, "memory"));
}

static PyObject *
c_writer_to_memory (PyObject *module,
                    PyObject *unused)
{
  GOutputStream *memory = g_memory_output_stream_new_resizable ();
  PyObject *writer = gab_stream_writer_new (memory);
  PyObject *capsule = PyCapsule_New (memory, "memory", memory_capsule_free);
  PyObject *contents = PyCFunction_New (&memory_contents_def, capsule);

  Py_DECREF (capsule);
  return Py_BuildValue ("(NN)", writer, contents);
}

/* ---- GabChannel producers ---------------------------------------------- */

static gint sent_done;   /* atomic: sends completed, all producers */

typedef struct
{
  GabChannel *channel;
  gint        id;
  gint        count;
} Producer;

static gpointer
producer_thread (gpointer data)
{
  Producer *self = data;
  GMainContext *context = g_main_context_new ();

  g_main_context_push_thread_default (context);
  for (gint i = 0; i < self->count; i++)
    {
      GAsyncResult *result = NULL;
      GError *error = NULL;

      gab_channel_send_async (self->channel, g_variant_new ("(ii)", self->id, i), NULL,
                              store_result, &result);
      wait_result (context, &result);
      g_assert_true (gab_channel_send_finish (self->channel, result, &error));
      g_assert_no_error (error);
      g_object_unref (result);
      g_atomic_int_inc (&sent_done);
    }
  g_main_context_pop_thread_default (context);
  g_main_context_unref (context);
  g_free (self);
  return NULL;
}

typedef struct
{
  GabChannel *channel;
  GPtrArray  *threads;
  gchar      *error_message;
} Coordinator;

static gpointer
coordinator_thread (gpointer data)
{
  Coordinator *self = data;

  for (guint i = 0; i < self->threads->len; i++)
    g_thread_join (self->threads->pdata[i]);
  if (self->error_message != NULL)
    {
      g_autoptr(GError) error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                                                     self->error_message);

      gab_channel_close (self->channel, error);
    }
  else
    gab_channel_close (self->channel, NULL);
  g_ptr_array_unref (self->threads);
  g_object_unref (self->channel);
  g_free (self->error_message);
  g_free (self);
  return NULL;
}

/* channel_producers(threads, per_thread, capacity, error_message or None):
 * the Python end of a channel fed by that many C threads, closed (with
 * G_IO_ERROR_TIMED_OUT and the message, if given) when they are done. */
static PyObject *
c_channel_producers (PyObject *module,
                     PyObject *args)
{
  int threads, per_thread, capacity;
  const char *message = NULL;
  GabChannel *channel;
  Coordinator *coordinator;
  PyObject *receiver;

  if (!PyArg_ParseTuple (args, "iiiz", &threads, &per_thread, &capacity, &message))
    return NULL;
  channel = gab_channel_new ((guint) capacity);
  g_assert_cmpuint (gab_channel_get_capacity (channel), ==, (guint) capacity);
  receiver = gab_channel_to_python (channel);
  if (receiver == NULL)
    {
      g_object_unref (channel);
      return NULL;
    }
  g_assert_null (gab_channel_to_python (channel));
  g_assert_true (PyErr_ExceptionMatches (PyExc_RuntimeError));
  PyErr_Clear ();
  g_atomic_int_set (&sent_done, 0);
  coordinator = g_new0 (Coordinator, 1);
  coordinator->channel = channel;
  coordinator->threads = g_ptr_array_new ();
  coordinator->error_message = g_strdup (message);
  for (gint t = 0; t < threads; t++)
    {
      Producer *producer = g_new0 (Producer, 1);

      producer->channel = channel;
      producer->id = t;
      producer->count = per_thread;
      g_ptr_array_add (coordinator->threads, g_thread_new ("producer", producer_thread, producer));
    }
  g_thread_unref (g_thread_new ("coordinator", coordinator_thread, coordinator));
  return receiver;
}

static PyObject *
c_sent_count (PyObject *module,
              PyObject *unused)
{
  return PyLong_FromLong (g_atomic_int_get (&sent_done));
}

/* channel_refusals(): capacity 2; two sends fit, a third is cancelled
 * while it waits, a fourth fails when the channel closes. Returns the
 * Python end (with the two items) and the outcome of each send. */
static PyObject *
blocked_worker (GMainContext *context,
                gpointer      data)
{
  GabChannel *channel = data;
  GAsyncResult *results[4] = { NULL, };
  GError *errors[4] = { NULL, };
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  PyGILState_STATE state;
  PyObject *list;

  for (gint i = 0; i < 4; i++)
    gab_channel_send_async (channel, g_variant_new_int32 (i), i == 2 ? cancellable : NULL,
                            store_result, &results[i]);
  wait_result (context, &results[0]);
  wait_result (context, &results[1]);
  /* The third and fourth wait for room. */
  g_main_context_iteration (context, FALSE);
  g_assert_null (results[2]);
  g_assert_null (results[3]);
  g_cancellable_cancel (cancellable);
  wait_result (context, &results[2]);
  g_assert_null (results[3]);
  gab_channel_close (channel, NULL);
  wait_result (context, &results[3]);
  state = PyGILState_Ensure ();
  list = PyList_New (0);
  for (gint i = 0; i < 4; i++)
    {
      PyObject *exc;

      gab_channel_send_finish (channel, results[i], &errors[i]);
      exc = exception_or_none (errors[i]);
      PyList_Append (list, exc);
      Py_DECREF (exc);
      g_clear_error (&errors[i]);
      g_object_unref (results[i]);
    }
  PyGILState_Release (state);
  return outcome (list, NULL);
}

static PyObject *
c_channel_refusals (PyObject *module,
                    PyObject *unused)
{
  GabChannel *channel = gab_channel_new (2);
  PyObject *receiver = gab_channel_to_python (channel);
  PyObject *future = start_worker (blocked_worker, channel, g_object_unref);

  return Py_BuildValue ("(NN)", receiver, future);
}

/* channel_after_aclose(receiver-making): a send after the consumer's
 * aclose() fails with BROKEN_PIPE. */
static PyObject *
send_one_worker (GMainContext *context,
                 gpointer      data)
{
  GabChannel *channel = data;
  GAsyncResult *result = NULL;
  GError *error = NULL;

  gab_channel_send_async (channel, g_variant_new_string ("late"), NULL, store_result, &result);
  wait_result (context, &result);
  gab_channel_send_finish (channel, result, &error);
  g_object_unref (result);
  return outcome (NULL, error);
}

static PyObject *
c_channel_pair (PyObject *module,
                PyObject *unused)
{
  GabChannel *channel = gab_channel_new (4);
  PyObject *receiver = gab_channel_to_python (channel);
  PyObject *capsule = PyCapsule_New (channel, "channel", NULL);

  return Py_BuildValue ("(NN)", receiver, capsule);
}

static PyObject *
c_channel_send_one (PyObject *module,
                    PyObject *capsule)
{
  GabChannel *channel = PyCapsule_GetPointer (capsule, "channel");

  /* The capsule holds no reference: the worker takes the last one. */
  return start_worker (send_one_worker, channel, g_object_unref);
}

/* The classes, as the C API gives them: the scenarios need no Python
 * module of the bridge (a build with -Dmodule=false has none). */
static PyObject *
c_classes (PyObject *self,
           PyObject *unused)
{
  PyObject *glib_error = gab_error_get_glib_error_class ();
  PyObject *reader = glib_error != NULL ? gab_stream_reader_get_class () : NULL;
  PyObject *writer = reader != NULL ? gab_stream_writer_get_class () : NULL;

  if (writer == NULL)
    return NULL;
  return Py_BuildValue ("(OOO)", glib_error, reader, writer);
}

/* ---- the module and the test cases ------------------------------------ */

static PyMethodDef c_methods[] = {
  { "classes", c_classes, METH_NOARGS, NULL },
  { "consume", c_consume, METH_VARARGS, NULL },
  { "consume_on_loop", c_consume_on_loop, METH_VARARGS, NULL },
  { "consumed_count", c_consumed_count, METH_NOARGS, NULL },
  { "open_gate", c_open_gate, METH_NOARGS, NULL },
  { "drop_after", c_drop_after, METH_VARARGS, NULL },
  { "splice_to", c_splice_to, METH_VARARGS, NULL },
  { "read_all", c_read_all, METH_VARARGS, NULL },
  { "read_lines", c_read_lines, METH_O, NULL },
  { "subprocess_cat", c_subprocess_cat, METH_O, NULL },
  { "read_then_close", c_read_then_close, METH_VARARGS, NULL },
  { "sync_read_here", c_sync_read_here, METH_O, NULL },
  { "read_on_loop", c_read_on_loop, METH_O, NULL },
  { "sync_read_on_runtime", c_sync_read_on_runtime, METH_O, NULL },
  { "rss_reset", c_rss_reset, METH_NOARGS, NULL },
  { "rss_peak", c_rss_peak, METH_NOARGS, NULL },
  { "reader_over_input", c_reader_over_input, METH_VARARGS, NULL },
  { "writer_to_memory", c_writer_to_memory, METH_NOARGS, NULL },
  { "channel_producers", c_channel_producers, METH_VARARGS, NULL },
  { "sent_count", c_sent_count, METH_NOARGS, NULL },
  { "channel_refusals", c_channel_refusals, METH_NOARGS, NULL },
  { "channel_pair", c_channel_pair, METH_NOARGS, NULL },
  { "channel_send_one", c_channel_send_one, METH_O, NULL },
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

/* The same on a uvloop loop, when uvloop is there and wanted (the
 * memcheck run sets GAB_TEST_LOOPS=asyncio: uvloop's own allocations are
 * not ours to judge). */
static void
run_scenario_uvloop (const gchar *name,
                     const gchar *format,
                     ...)
{
  const gchar *loops = g_getenv ("GAB_TEST_LOOPS");
  PyObject *uvloop, *helpers, *func, *args, *coro, *loop, *ret;
  va_list ap;

  if (loops != NULL && strstr (loops, "uvloop") == NULL)
    return;
  uvloop = PyImport_ImportModule ("uvloop");
  if (uvloop == NULL)
    {
      PyErr_Clear ();
      g_test_message ("uvloop is not installed: %s not run on it", name);
      return;
    }
  helpers = PyImport_ImportModule ("helpers_streams");
  func = PyObject_GetAttrString (helpers, name);
  va_start (ap, format);
  args = format != NULL ? Py_VaBuildValue (format, ap) : PyTuple_New (0);
  va_end (ap);
  coro = PyObject_Call (func, args, NULL);
  g_assert_nonnull (coro);
  loop = PyObject_CallMethod (uvloop, "new_event_loop", NULL);
  g_assert_nonnull (loop);
  ret = gab_run_until_complete (loop, coro);
  if (ret == NULL)
    {
      PyErr_Print ();
      g_test_fail_printf ("scenario %s failed on uvloop", name);
    }
  Py_XDECREF (ret);
  ret = PyObject_CallMethod (loop, "run_until_complete", "N",
                             PyObject_CallMethod (loop, "shutdown_asyncgens", NULL));
  Py_XDECREF (ret);
  Py_XDECREF (PyObject_CallMethod (loop, "close", NULL));
  PyErr_Clear ();
  Py_DECREF (loop);
  Py_DECREF (coro);
  Py_DECREF (args);
  Py_DECREF (func);
  Py_DECREF (helpers);
  Py_DECREF (uvloop);
}

static void
test_on_uvloop (void)
{
  run_scenario_uvloop ("thousand_items", "(Is)", 0, "object");
  run_scenario_uvloop ("thousand_items", "(Is)", 16, "variant");
  run_scenario_uvloop ("thousand_items_on_loop", "(I)", 4);
  run_scenario_uvloop ("error_at_k", "(Is)", 2, "object");
  run_scenario_uvloop ("cancel_midway", "(IO)", 4, Py_True);
  run_scenario_uvloop ("cancel_while_fetching", NULL);
  run_scenario_uvloop ("input_read_sizes", NULL);
  run_scenario_uvloop ("input_lines", NULL);
  run_scenario_uvloop ("input_read_on_loop", NULL);
  run_scenario_uvloop ("round_trip_through_gio", NULL);
  run_scenario_uvloop ("channel_many_producers", "(iii)", 4, 1000, 8);
  run_scenario_uvloop ("channel_refused_sends", NULL);
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

static void
test_input_stream_gigabyte (void)
{
  run_scenario ("input_gigabyte", NULL);
}

static void
test_input_stream_consumers (void)
{
  run_scenario ("input_read_sizes", NULL);
  run_scenario ("input_lines", NULL);
  run_scenario ("input_subprocess", NULL);
  run_scenario ("input_read_on_loop", NULL);
}

#ifdef GAB_TEST_HAVE_MODULE
static void
test_input_stream_to_file_and_back (void)
{
  /* Reads back through gasyncbridge.gio. */
  run_scenario ("input_to_file_and_back", NULL);
}
#endif

static void
test_reader_writer_from_c (void)
{
  run_scenario ("round_trip_through_gio", NULL);
}

static void
test_input_stream_errors (void)
{
  run_scenario ("input_errors", NULL);
  run_scenario ("input_close_runs_aclose", NULL);
  run_scenario ("input_sync_read_refused", NULL);
}

static void
test_channel_producers (void)
{
  run_scenario ("channel_many_producers", "(iii)", 4, 2000, 16);
  run_scenario ("channel_many_producers", "(iii)", 8, 500, 1);
  run_scenario ("channel_slow_consumer", NULL);
}

static void
test_channel_ends (void)
{
  run_scenario ("channel_close_with_error", NULL);
  run_scenario ("channel_refused_sends", NULL);
}

static void
test_preconditions (void)
{
  g_test_expect_message ("Gab", G_LOG_LEVEL_CRITICAL, "*aiterable != NULL*");
  g_assert_null (gab_async_iterator_new (NULL, 0, NULL));
  g_test_assert_expected_messages ();

  g_test_expect_message ("Gab", G_LOG_LEVEL_CRITICAL, "*GAB_IS_ASYNC_ITERATOR*");
  gab_async_iterator_next_async (NULL, NULL, NULL, NULL);
  g_test_assert_expected_messages ();

  g_test_expect_message ("Gab", G_LOG_LEVEL_CRITICAL, "*GAB_IS_ASYNC_ITERATOR*");
  g_assert_null (gab_async_iterator_next_variant_finish (NULL, NULL, NULL));
  g_test_assert_expected_messages ();

  g_test_expect_message ("Gab", G_LOG_LEVEL_CRITICAL, "*aiterable != NULL*");
  g_assert_null (gab_input_stream_new (NULL, NULL));
  g_test_assert_expected_messages ();

  g_test_expect_message ("Gab", G_LOG_LEVEL_CRITICAL, "*G_IS_INPUT_STREAM*");
  g_assert_null (gab_stream_reader_new (NULL, 0));
  g_test_assert_expected_messages ();

  g_test_expect_message ("Gab", G_LOG_LEVEL_CRITICAL, "*G_IS_OUTPUT_STREAM*");
  g_assert_null (gab_stream_writer_new (NULL));
  g_test_assert_expected_messages ();

  g_test_expect_message ("Gab", G_LOG_LEVEL_CRITICAL, "*capacity > 0*");
  g_assert_null (gab_channel_new (0));
  g_test_assert_expected_messages ();

  {
    GabChannel *channel = gab_channel_new (1);

    g_test_expect_message ("Gab", G_LOG_LEVEL_CRITICAL, "*item != NULL*");
    gab_channel_send_async (channel, NULL, NULL, NULL, NULL);
    g_test_assert_expected_messages ();
    /* closing twice is harmless */
    gab_channel_close (channel, NULL);
    gab_channel_close (channel, NULL);
    g_object_unref (channel);
  }

  {
    /* No loop is known outside a loop: a clear error. */
    GError *error = NULL;
    PyObject *gen;
    PyObject *helpers = PyImport_ImportModule ("helpers_streams");

    g_assert_nonnull (helpers);
    gen = PyObject_CallMethod (helpers, "numbers", "i", 3);
    g_assert_null (gab_async_iterator_new (gen, 0, &error));
    g_assert_error (error, GAB_ERROR, GAB_ERROR_NO_LOOP);
    g_clear_error (&error);
    Py_XDECREF (PyObject_CallMethod (gen, "aclose", NULL));
    PyErr_Clear ();
    Py_DECREF (gen);
    Py_DECREF (helpers);
  }
}

int
main (int    argc,
      char **argv)
{
  int ret;

  g_test_init (&argc, &argv, NULL);
  PyImport_AppendInittab ("_streams_c", c_module_init);
  Py_InitializeEx (0);
  g_test_add_func ("/streams/preconditions", test_preconditions);
  g_test_add_func ("/streams/iterator/thousand-items", test_thousand_items);
  g_test_add_func ("/streams/iterator/thousand-items-on-loop", test_thousand_items_on_loop);
  g_test_add_func ("/streams/iterator/error-at-k", test_error_at_k);
  g_test_add_func ("/streams/iterator/backpressure", test_backpressure);
  g_test_add_func ("/streams/iterator/cancel-runs-finally", test_cancel_runs_finally);
  g_test_add_func ("/streams/iterator/items-convert", test_items_convert);
  g_test_add_func ("/streams/iterator/bad-iterables", test_bad_iterables);
  g_test_add_func ("/streams/input/gigabyte", test_input_stream_gigabyte);
  g_test_add_func ("/streams/input/consumers", test_input_stream_consumers);
#ifdef GAB_TEST_HAVE_MODULE
  g_test_add_func ("/streams/input/to-file-and-back", test_input_stream_to_file_and_back);
#endif
  g_test_add_func ("/streams/input/errors", test_input_stream_errors);
  g_test_add_func ("/streams/reader-writer/from-c", test_reader_writer_from_c);
  g_test_add_func ("/streams/channel/producers", test_channel_producers);
  g_test_add_func ("/streams/channel/ends", test_channel_ends);
  g_test_add_func ("/streams/uvloop", test_on_uvloop);
  ret = g_test_run ();
  /* atexit runs gab_shutdown() before Python goes. */
  if (Py_FinalizeEx () < 0)
    ret = 1;
  return ret;
}
