/* gab-input-stream.c: a GInputStream over a Python async iterable of
 * bytes-like chunks.
 *
 * The chunks come from a GabAsyncIterator (one chunk read ahead, so the
 * generator produces the next chunk while C consumes this one). A chunk
 * arrives as a GBytes — the bytes object itself, shared, for `bytes` — and
 * what a read does not take is kept for the next read, so memory holds at
 * most two chunks whatever the consumer's buffer size.
 *
 * Reads run one at a time (GInputStream's pending flag sees to it), so the
 * kept chunk needs no lock. Sync reads wait on a private GMainContext; they
 * are refused on the iterator's loop thread, which would have to run the
 * generator while it waits, and on the runtime thread, which the generator
 * may need.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gab-streams-private.h"
#include "gab-loop-queue.h"
#include "gab-caller-task.h"

#include <string.h>

struct _GabInputStream
{
  GInputStream      parent_instance;
  GabAsyncIterator *iterator;
  GBytes           *chunk;      /* the rest of the last chunk, or NULL */
  gsize             offset;     /* into chunk */
};

/**
 * GabInputStream:
 *
 * A #GInputStream whose data comes from a Python async iterable of
 * bytes-like chunks: see gab_input_stream_new().
 *
 * Since: 0.1
 */

/**
 * gab_input_stream_get_type:
 *
 * The #GType of #GabInputStream.
 *
 * Returns: the type
 */
G_DEFINE_FINAL_TYPE (GabInputStream, gab_input_stream, G_TYPE_INPUT_STREAM)

/* Copies what is kept into @buffer. */
static gsize
take_kept (GabInputStream *self,
           guint8         *buffer,
           gsize           count)
{
  gsize size, n;
  const guint8 *data;

  if (self->chunk == NULL)
    return 0;
  data = g_bytes_get_data (self->chunk, &size);
  n = MIN (count, size - self->offset);
  memcpy (buffer, data + self->offset, n);
  self->offset += n;
  if (self->offset == size)
    {
      g_clear_pointer (&self->chunk, g_bytes_unref);
      self->offset = 0;
    }
  return n;
}

/* Keeps @bytes (taken, not empty), the next chunk, and copies what fits
 * into @buffer. */
static gsize
take_chunk (GabInputStream *self,
            GBytes         *bytes,
            guint8         *buffer,
            gsize           count)
{
  self->chunk = bytes;
  self->offset = 0;
  return take_kept (self, buffer, count);
}

/* ---- async ----------------------------------------------------------- */

/* After @task (taken) has returned: has its callback dispatched from the
 * loop if it was made for one (@dispatch_queue, taken). */
static void
task_returned (GTask        *task,
               GabLoopQueue *dispatch_queue)
{
  g_object_unref (task);
  if (dispatch_queue != NULL)
    gab_caller_task_dispatch (dispatch_queue, FALSE);
}

typedef struct
{
  guint8       *buffer;
  gsize         count;
  GabLoopQueue *dispatch_queue;   /* see gab_caller_task_new() */
} ReadData;

static void
read_data_free (gpointer data)
{
  ReadData *read = data;

  g_clear_pointer (&read->dispatch_queue, gab_loop_queue_unref);
  g_free (read);
}

/* Returns @task (taken) with @n or @error, and has its callback dispatched
 * from the loop if it was made for one. */
static void
read_return (GTask  *task,
             gssize  n,
             GError *error)
{
  ReadData *read = g_task_get_task_data (task);
  GabLoopQueue *queue = g_steal_pointer (&read->dispatch_queue);

  if (error != NULL)
    g_task_return_error (task, error);
  else
    g_task_return_int (task, n);
  task_returned (task, queue);
}

static void
read_next_ready (GObject      *source,
                 GAsyncResult *result,
                 gpointer      data)
{
  GTask *task = data;
  GabInputStream *self = g_task_get_source_object (task);
  ReadData *read = g_task_get_task_data (task);
  GError *error = NULL;
  GBytes *bytes;

  bytes = gab_async_iterator_next_bytes_finish (GAB_ASYNC_ITERATOR (source), result, &error);
  if (error != NULL)
    read_return (task, -1, error);
  else if (bytes == NULL)
    read_return (task, 0, NULL);   /* the end */
  else if (g_bytes_get_size (bytes) == 0)
    {
      /* An empty chunk is not the end: 0 would mean EOF to the reader. */
      g_bytes_unref (bytes);
      gab_async_iterator_next_bytes_async (self->iterator, g_task_get_cancellable (task),
                                           read_next_ready, task);
    }
  else
    read_return (task, (gssize) take_chunk (self, bytes, read->buffer, read->count), NULL);
}

static void
gab_input_stream_read_async (GInputStream        *stream,
                             void                *buffer,
                             gsize                count,
                             int                  io_priority,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  GabInputStream *self = GAB_INPUT_STREAM (stream);
  ReadData *read = g_new0 (ReadData, 1);
  GTask *task;

  /* A read started on the loop thread calls back from the loop. */
  task = gab_caller_task_new (stream, cancellable, callback, user_data,
                               GAB_TAG (gab_input_stream_read_async),
                               &read->dispatch_queue);
  g_task_set_priority (task, io_priority);
  read->buffer = buffer;
  read->count = count;
  g_task_set_task_data (task, read, read_data_free);
  if (count == 0 || self->chunk != NULL)
    read_return (task, (gssize) take_kept (self, buffer, count), NULL);
  else
    gab_async_iterator_next_bytes_async (self->iterator, cancellable, read_next_ready, task);
}

static gssize
gab_input_stream_read_finish (GInputStream  *stream,
                              GAsyncResult  *result,
                              GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, stream), -1);
  return g_task_propagate_int (G_TASK (result), error);
}

static void
close_ready (GObject      *source,
             GAsyncResult *result,
             gpointer      data)
{
  GTask *task = data;
  GabLoopQueue *queue = g_task_get_task_data (task);
  GError *error = NULL;

  g_task_set_task_data (task, NULL, NULL);
  if (gab_async_iterator_close_finish (GAB_ASYNC_ITERATOR (source), result, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
  task_returned (task, queue);
}

static void
gab_input_stream_close_async (GInputStream        *stream,
                              int                  io_priority,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  GabInputStream *self = GAB_INPUT_STREAM (stream);
  GabLoopQueue *queue = NULL;
  GTask *task = gab_caller_task_new (stream, cancellable, callback, user_data,
                                      GAB_TAG (gab_input_stream_close_async), &queue);

  /* The task data holds the dispatch queue until the task returns. */
  g_task_set_task_data (task, queue, NULL);
  g_clear_pointer (&self->chunk, g_bytes_unref);
  /* Completes once aclose() has run on the loop. */
  gab_async_iterator_close_async (self->iterator, cancellable, close_ready, task);
}

static gboolean
gab_input_stream_close_finish (GInputStream  *stream,
                               GAsyncResult  *result,
                               GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, stream), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* ---- sync ------------------------------------------------------------ */

/* Whether this thread may wait for the loop. GIL state untouched. */
static gboolean
can_block (GabInputStream  *self,
           GError         **error)
{
  gboolean on_loop;

  if (gab_is_runtime_thread ())
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK,
                           "GabInputStream: a sync read on the gasyncbridge "
                           "runtime thread would stall it (the Python side "
                           "may need it): use g_input_stream_read_async()");
      return FALSE;
    }
  if (!Py_IsInitialized ())
    {
      g_set_error_literal (error, GAB_ERROR, GAB_ERROR_PYTHON_NOT_INITIALIZED,
                           "GabInputStream: the Python interpreter is not running");
      return FALSE;
    }
  if (PyGILState_Check ())
    on_loop = gab_async_iterator_on_loop_thread (self->iterator);
  else
    {
      PyGILState_STATE state = gab_gil_acquire ();

      on_loop = gab_async_iterator_on_loop_thread (self->iterator);
      gab_gil_release (state);
    }
  if (on_loop)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK,
                           "GabInputStream: a sync read on the thread of the "
                           "asyncio loop that runs the Python iterable would "
                           "deadlock: use g_input_stream_read_async()");
      return FALSE;
    }
  return TRUE;
}

static void
store_result (GObject      *source,
              GAsyncResult *result,
              gpointer      data)
{
  *(GAsyncResult **) data = g_object_ref (result);
}

static gssize
gab_input_stream_read (GInputStream  *stream,
                       void          *buffer,
                       gsize          count,
                       GCancellable  *cancellable,
                       GError       **error)
{
  GabInputStream *self = GAB_INPUT_STREAM (stream);
  PyThreadState *saved = NULL;
  GMainContext *context;
  GBytes *bytes = NULL;
  GError *local_error = NULL;

  if (count == 0 || self->chunk != NULL)
    return (gssize) take_kept (self, buffer, count);
  if (!can_block (self, error))
    return -1;

  /* Never wait for the loop while holding the GIL it needs. */
  if (PyGILState_Check ())
    saved = PyEval_SaveThread ();
  context = g_main_context_new ();
  g_main_context_push_thread_default (context);
  do
    {
      GAsyncResult *result = NULL;

      g_clear_pointer (&bytes, g_bytes_unref);
      gab_async_iterator_next_bytes_async (self->iterator, cancellable, store_result, &result);
      while (result == NULL)
        g_main_context_iteration (context, TRUE);
      bytes = gab_async_iterator_next_bytes_finish (self->iterator, result, &local_error);
      g_object_unref (result);
    }
  while (bytes != NULL && g_bytes_get_size (bytes) == 0);
  g_main_context_pop_thread_default (context);
  g_main_context_unref (context);
  if (saved != NULL)
    PyEval_RestoreThread (saved);

  if (local_error != NULL)
    {
      g_propagate_error (error, local_error);
      return -1;
    }
  if (bytes == NULL)
    return 0;
  return (gssize) take_chunk (self, bytes, buffer, count);
}

static gboolean
gab_input_stream_close (GInputStream  *stream,
                        GCancellable  *cancellable,
                        GError       **error)
{
  GabInputStream *self = GAB_INPUT_STREAM (stream);

  /* Also called by dispose, on whatever thread drops the last reference:
   * start the aclose() on the loop and do not wait for it. */
  g_clear_pointer (&self->chunk, g_bytes_unref);
  gab_async_iterator_close_soon (self->iterator);
  return TRUE;
}

/* ---- the type -------------------------------------------------------- */

static void
gab_input_stream_finalize (GObject *object)
{
  GabInputStream *self = GAB_INPUT_STREAM (object);

  g_clear_pointer (&self->chunk, g_bytes_unref);
  g_clear_object (&self->iterator);
  G_OBJECT_CLASS (gab_input_stream_parent_class)->finalize (object);
}

static void
gab_input_stream_class_init (GabInputStreamClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GInputStreamClass *stream_class = G_INPUT_STREAM_CLASS (klass);

  object_class->finalize = gab_input_stream_finalize;
  stream_class->read_fn = gab_input_stream_read;
  stream_class->close_fn = gab_input_stream_close;
  stream_class->read_async = gab_input_stream_read_async;
  stream_class->read_finish = gab_input_stream_read_finish;
  stream_class->close_async = gab_input_stream_close_async;
  stream_class->close_finish = gab_input_stream_close_finish;
}

static void
gab_input_stream_init (GabInputStream *self)
{
}

/**
 * gab_input_stream_new:
 * @aiterable: a Python async iterable of bytes-like chunks (bytes,
 *   bytearray, memoryview, ...)
 * @error: return location for a #GError
 *
 * Makes a #GInputStream (a #GabInputStream) whose data is the chunks of
 * @aiterable, concatenated. It works with any GIO consumer:
 * g_output_stream_splice_async(), #GDataInputStream, a #GSubprocess stdin,
 * and sync reads from threads other than the loop's and the runtime's
 * (which fail with %G_IO_ERROR_WOULD_BLOCK instead of deadlocking).
 *
 * The iterable is advanced on the event loop of the current task locals, as
 * gab_async_iterator_new() does, one chunk ahead of the reads; a chunk larger
 * than a read's buffer is kept for the next reads, bytes objects without a
 * copy. Empty chunks are skipped. A chunk that is not bytes-like fails the
 * read that meets it with %G_IO_ERROR_INVALID_DATA; an exception raised by
 * the iterable fails it with its #GError. Cancelling a read closes the
 * iterable (see gab_async_iterator_next_async()). Closing the stream calls
 * the iterable's `aclose()`: g_input_stream_close_async() waits for it and
 * reports what it raised; a sync close, and the close when the last
 * reference goes, start it and do not wait. Needs the GIL.
 *
 * Returns: (transfer full) (nullable): the stream, or %NULL with @error set
 *   (as for gab_async_iterator_new())
 *
 * Since: 0.1
 */
GInputStream *
gab_input_stream_new (PyObject  *aiterable,
                      GError   **error)
{
  GabAsyncIterator *iterator;
  GabInputStream *self;

  g_return_val_if_fail (aiterable != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_return_val_if_fail (GAB_GIL_HELD (), NULL);

  /* One chunk ahead: the generator makes the next while C eats this one. */
  iterator = gab_async_iterator_new (aiterable, 1, error);
  if (iterator == NULL)
    return NULL;
  self = g_object_new (GAB_TYPE_INPUT_STREAM, NULL);
  self->iterator = iterator;
  return G_INPUT_STREAM (self);
}
