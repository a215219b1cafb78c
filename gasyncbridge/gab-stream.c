/* gab-stream.c: GIO streams for asyncio — any GInputStream as a
 * StreamReader, any GOutputStream as a StreamWriter, with asyncio's
 * semantics.
 *
 * Two layers. Underneath, `_GioStream` (C) turns one GIO call — read,
 * write_all, close — into an asyncio future with gab_future_into_py(); the
 * calls of one stream run on the runtime thread one after another, in the
 * order they were made, because GIO allows one pending operation per
 * stream. On top, StreamReader and StreamWriter (Python, in
 * gasyncbridge/python/_stream.py, compiled once) do the buffering: the reader reads only when a
 * caller needs more data, so a slow consumer holds back a fast producer;
 * the writer keeps one write in flight and lets drain() wait on a
 * high-water mark.
 *
 * Reads go straight into a bytes object made for them (with the GIL, before
 * the runtime thread starts the read) and writes send the caller's buffer
 * as it is (a buffer export pins it): no copy on either side.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gab-streams-private.h"
#include "gab-lifecycle.h"
#include "gab-python-sources.h"

static PyObject *reader_class;   /* GIL; strong, for the interpreter's life */
static PyObject *writer_class;

/* ---- one stream's queue of GIO calls (runtime thread) ----------------- */

typedef struct
{
  GObject *stream;    /* a GInputStream or a GOutputStream */
  /* runtime thread */
  GQueue   waiting;   /* StreamOp *, not started */
  gboolean busy;      /* a GIO call is pending */
} StreamCore;

typedef enum
{
  OP_READ,
  OP_WRITE,
  OP_CLOSE,
} OpKind;

typedef struct
{
  OpKind      kind;
  StreamCore *core;
  GTask      *task;     /* runtime thread: reports to the bridge */
  PyObject   *bytes;    /* OP_READ: the bytes object read into (GIL) */
  gsize       size;     /* OP_READ: its size */
  Py_buffer   view;     /* OP_WRITE: the data, pinned */
  gboolean    has_view;
} StreamOp;

/* The last reference to a core went (a GLib reference-counted box). */
static void
stream_core_clear (gpointer data)
{
  StreamCore *core = data;

  g_assert (core->waiting.length == 0);
  g_object_unref (core->stream);
}

static void
stream_core_unref (StreamCore *core)
{
  g_atomic_rc_box_release_full (core, stream_core_clear);
}

static void stream_run_next (StreamCore *core);

/* Runtime thread: the GIO call of the current op returned. */
static void
stream_op_ready (GObject      *source,
                 GAsyncResult *result,
                 gpointer      data)
{
  StreamOp *op = data;
  /* Returning the task may complete the Python future at once, and the op
   * (and the last other reference to the core) may be freed meanwhile on
   * the loop thread: neither is touched after, but for our own ref. */
  StreamCore *core = g_atomic_rc_box_acquire (op->core);
  GTask *task = g_steal_pointer (&op->task);
  GError *error = NULL;

  switch (op->kind)
    {
    case OP_READ:
      {
        gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);

        if (n >= 0)
          g_task_return_int (task, n);
      }
      break;
    case OP_WRITE:
      if (g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error))
        g_task_return_boolean (task, TRUE);
      break;
    case OP_CLOSE:
      if (G_IS_INPUT_STREAM (source)
          ? g_input_stream_close_finish (G_INPUT_STREAM (source), result, &error)
          : g_output_stream_close_finish (G_OUTPUT_STREAM (source), result, &error))
        g_task_return_boolean (task, TRUE);
      break;
    }
  if (error != NULL)
    g_task_return_error (task, error);
  g_object_unref (task);
  core->busy = FALSE;
  stream_run_next (core);
  stream_core_unref (core);
}

static void
stream_run_next (StreamCore *core)
{
  StreamOp *op;

  /* Completing a task may free its op, and with it a reference to us. */
  g_atomic_rc_box_acquire (core);
  while (!core->busy && (op = g_queue_pop_head (&core->waiting)) != NULL)
    {
      GCancellable *cancellable = g_task_get_cancellable (op->task);

      if (g_cancellable_is_cancelled (cancellable))
        {
          /* Given up before its turn came. */
          GTask *task = g_steal_pointer (&op->task);

          g_task_return_error_if_cancelled (task);
          g_object_unref (task);
          continue;
        }
      core->busy = TRUE;
      switch (op->kind)
        {
        case OP_READ:
          g_input_stream_read_async (G_INPUT_STREAM (core->stream),
                                     PyBytes_AS_STRING (op->bytes), op->size,
                                     G_PRIORITY_DEFAULT, cancellable,
                                     stream_op_ready, op);
          break;
        case OP_WRITE:
          g_output_stream_write_all_async (G_OUTPUT_STREAM (core->stream),
                                           op->view.buf, (gsize) op->view.len,
                                           G_PRIORITY_DEFAULT, cancellable,
                                           stream_op_ready, op);
          break;
        case OP_CLOSE:
          if (G_IS_INPUT_STREAM (core->stream))
            g_input_stream_close_async (G_INPUT_STREAM (core->stream), G_PRIORITY_DEFAULT,
                                        cancellable, stream_op_ready, op);
          else
            g_output_stream_close_async (G_OUTPUT_STREAM (core->stream), G_PRIORITY_DEFAULT,
                                         cancellable, stream_op_ready, op);
          break;
        }
    }
  stream_core_unref (core);
}

/* GabStartFunc, runtime thread. */
static void
stream_op_start (GCancellable        *cancellable,
                 GAsyncReadyCallback  callback,
                 gpointer             callback_data,
                 gpointer             user_data)
{
  StreamOp *op = user_data;

  op->task = g_task_new (op->core->stream, cancellable, callback, callback_data);
  g_task_set_source_tag (op->task, GAB_TAG (stream_op_start));
  g_queue_push_tail (&op->core->waiting, op);
  stream_run_next (op->core);
}

/* GabFinishFunc, loop thread with the GIL. */
static PyObject *
stream_op_finish (GObject       *source,
                  GAsyncResult  *result,
                  gpointer       user_data,
                  GError       **error)
{
  StreamOp *op = user_data;

  if (op->kind == OP_READ)
    {
      gssize n = g_task_propagate_int (G_TASK (result), error);
      PyObject *bytes;

      if (n < 0)
        return NULL;
      bytes = g_steal_pointer (&op->bytes);
      if ((gsize) n < op->size && _PyBytes_Resize (&bytes, n) < 0)
        return NULL;
      return bytes;
    }
  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  Py_RETURN_NONE;
}

/* GIL (user_data_free). */
static void
stream_op_free (gpointer data)
{
  StreamOp *op = data;

  g_assert (op->task == NULL);
  Py_XDECREF (op->bytes);
  if (op->has_view)
    PyBuffer_Release (&op->view);
  stream_core_unref (op->core);
  g_free (op);
}

/* ---- _GioStream ------------------------------------------------------- */

typedef struct
{
  PyObject_HEAD
  StreamCore *core;
} GioStream;

static PyTypeObject GioStream_Type;

static PyObject *
gio_stream_new (GObject *stream)
{
  GioStream *self = PyObject_New (GioStream, &GioStream_Type);

  if (self == NULL)
    return NULL;
  self->core = g_atomic_rc_box_new0 (StreamCore);
  self->core->stream = g_object_ref (stream);
  return (PyObject *) self;
}

static StreamOp *
stream_op_new (GioStream *self,
               OpKind     kind)
{
  StreamOp *op = g_new0 (StreamOp, 1);

  op->kind = kind;
  op->core = g_atomic_rc_box_acquire (self->core);
  return op;
}

static PyObject *
gio_stream_read (PyObject *object,
                 PyObject *arg)
{
  GioStream *self = (GioStream *) object;
  Py_ssize_t size = PyLong_AsSsize_t (arg);
  StreamOp *op;

  if (size == -1 && PyErr_Occurred ())
    return NULL;
  if (!G_IS_INPUT_STREAM (self->core->stream))
    return PyErr_Format (PyExc_TypeError, "read() needs an input stream");
  if (size <= 0)
    return PyErr_Format (PyExc_ValueError, "read() needs a size > 0, not %zd", size);
  op = stream_op_new (self, OP_READ);
  op->size = (gsize) size;
  op->bytes = PyBytes_FromStringAndSize (NULL, size);
  if (op->bytes == NULL)
    {
      stream_op_free (op);
      return NULL;
    }
  return gab_future_into_py (stream_op_start, stream_op_finish, op, stream_op_free);
}

static PyObject *
gio_stream_write (PyObject *object,
                  PyObject *data)
{
  GioStream *self = (GioStream *) object;
  StreamOp *op;

  if (!G_IS_OUTPUT_STREAM (self->core->stream))
    return PyErr_Format (PyExc_TypeError, "write() needs an output stream");
  op = stream_op_new (self, OP_WRITE);
  /* The export pins the memory (a bytearray cannot resize meanwhile): the
   * runtime thread writes from it without the GIL. */
  if (PyObject_GetBuffer (data, &op->view, PyBUF_SIMPLE) < 0)
    {
      stream_op_free (op);
      return NULL;
    }
  op->has_view = TRUE;
  return gab_future_into_py (stream_op_start, stream_op_finish, op, stream_op_free);
}

static PyObject *
gio_stream_close (PyObject *object,
                  PyObject *unused)
{
  return gab_future_into_py (stream_op_start, stream_op_finish,
                             stream_op_new ((GioStream *) object, OP_CLOSE),
                             stream_op_free);
}

static PyObject *
gio_stream_wrap (PyObject *cls,
                 PyObject *object)
{
  PyObject *capsule = PyObject_GetAttrString (object, "__gpointer__");
  GObject *gobject;
  PyObject *ret;

  if (capsule == NULL)
    return NULL;
  gobject = PyCapsule_CheckExact (capsule) ? PyCapsule_GetPointer (capsule, NULL) : NULL;
  Py_DECREF (capsule);
  if (gobject == NULL || !G_IS_OBJECT (gobject)
      || !(G_IS_INPUT_STREAM (gobject) || G_IS_OUTPUT_STREAM (gobject)))
    {
      PyErr_Clear ();
      return PyErr_Format (PyExc_TypeError,
                           "a Gio.InputStream or Gio.OutputStream is needed, not '%s'",
                           Py_TYPE (object)->tp_name);
    }
  ret = gio_stream_new (gobject);
  return ret;
}

static PyObject *
gio_stream_get_kind (PyObject *object,
                     void     *closure)
{
  GioStream *self = (GioStream *) object;

  return PyUnicode_FromString (G_IS_INPUT_STREAM (self->core->stream) ? "input" : "output");
}

static PyObject *
gio_stream_repr (PyObject *object)
{
  GioStream *self = (GioStream *) object;

  return PyUnicode_FromFormat ("<gasyncbridge._GioStream %s at %p>",
                               G_OBJECT_TYPE_NAME (self->core->stream), self->core->stream);
}

static void
gio_stream_dealloc (PyObject *object)
{
  GioStream *self = (GioStream *) object;

  /* Ops in flight hold their own references to the core. */
  stream_core_unref (self->core);
  Py_TYPE (object)->tp_free (object);
}

static PyMethodDef gio_stream_methods[] = {
  { "read", gio_stream_read, METH_O,
    "read(size)\n--\n\nA future of up to size bytes (b'' at the end)." },
  { "write", gio_stream_write, METH_O,
    "write(data)\n--\n\nA future done when all of data is written." },
  { "close", gio_stream_close, METH_NOARGS,
    "close()\n--\n\nA future done when the stream is closed." },
  { "wrap", gio_stream_wrap, METH_O | METH_CLASS,
    "wrap(stream)\n--\n\nWrap a PyGObject Gio.InputStream or Gio.OutputStream." },
  { NULL }
};

static PyGetSetDef gio_stream_getset[] = {
  { "kind", gio_stream_get_kind, NULL, "'input' or 'output'", NULL },
  { NULL }
};

static PyTypeObject GioStream_Type = {
  GAB_PY_TYPE_HEAD ("gasyncbridge._GioStream", GioStream,
                    Py_TPFLAGS_DEFAULT,
                    "One GIO stream's calls as asyncio futures, run one at a time in order."),
  .tp_dealloc = gio_stream_dealloc,
  .tp_repr = gio_stream_repr,
  .tp_methods = gio_stream_methods,
  .tp_getset = gio_stream_getset,
};

/* GIL: compile the reader and writer classes, once. */
static gboolean
stream_start (void)
{
  PyObject *globals;

  if (reader_class != NULL)
    return TRUE;
  if (PyType_Ready (&GioStream_Type) < 0)
    return FALSE;
  /* The classes' __module__: where users meet them. */
  globals = gab_py_run_file (&gab_py_source_stream, "gasyncbridge",
                             "_GioStream", (PyObject *) &GioStream_Type);
  if (globals == NULL)
    return FALSE;
  reader_class = Py_XNewRef (PyDict_GetItemString (globals, "StreamReader"));
  writer_class = Py_XNewRef (PyDict_GetItemString (globals, "StreamWriter"));
  Py_DECREF (globals);
  return reader_class != NULL && writer_class != NULL;
}

static GabSubsystem stream_subsystem = {
  .name = "stream",
  .start = stream_start,
};

/* GIL: @klass (reader_class or writer_class), compiled on first use. */
static PyObject *
stream_class (PyObject *const *klass)
{
  return gab_lifecycle_start (&stream_subsystem) ? *klass : NULL;
}

/* GIL: @klass called with a new _GioStream over @stream, and with @limit
 * too when it is positive (the reader's buffer limit). */
static PyObject *
stream_wrap (PyObject *const *klass,
             GObject         *stream,
             Py_ssize_t       limit)
{
  PyObject *gio, *ret;

  if (stream_class (klass) == NULL)
    return NULL;
  gio = gio_stream_new (stream);
  if (gio == NULL)
    return NULL;
  ret = limit > 0 ? PyObject_CallFunction (*klass, "On", gio, limit)
                  : PyObject_CallOneArg (*klass, gio);
  Py_DECREF (gio);
  return ret;
}

/**
 * gab_stream_reader_get_class:
 *
 * The `gasyncbridge.StreamReader` class (see gab_stream_reader_new()), for
 * a module to export or for isinstance() checks. Needs the GIL.
 *
 * Returns: (transfer none) (nullable): the class, or %NULL with an
 *   exception set
 *
 * Since: 0.1
 */
PyObject *
gab_stream_reader_get_class (void)
{
  g_return_val_if_fail (GAB_GIL_HELD (), NULL);
  return stream_class (&reader_class);
}

/**
 * gab_stream_writer_get_class:
 *
 * The `gasyncbridge.StreamWriter` class (see gab_stream_writer_new()).
 * Needs the GIL.
 *
 * Returns: (transfer none) (nullable): the class, or %NULL with an
 *   exception set
 *
 * Since: 0.1
 */
PyObject *
gab_stream_writer_get_class (void)
{
  g_return_val_if_fail (GAB_GIL_HELD (), NULL);
  return stream_class (&writer_class);
}

/**
 * gab_stream_reader_new:
 * @stream: any #GInputStream
 * @limit: the buffer limit in bytes (the longest line readline() and
 *   readuntil() accept), or 0 or less for %GAB_STREAM_DEFAULT_LIMIT
 *
 * Makes a `gasyncbridge.StreamReader` over @stream: `read(n=-1)`,
 * `readexactly(n)`, `readline()`, `readuntil(separator=b'\n')`, `at_eof()`
 * and `async for` over lines behave as asyncio.StreamReader's (with
 * asyncio.IncompleteReadError and asyncio.LimitOverrunError);
 * `iter_chunks(size)` iterates over chunks; `close()`, `wait_closed()` and
 * `async with` close @stream. The GIO reads run on the runtime thread, one
 * at a time and only when a caller needs data; GIO errors raise the mapped
 * exceptions (see gab-error.h). Use it from coroutines of one event loop.
 * The reader keeps a reference to @stream. Needs the GIL.
 *
 * Returns: (transfer full) (nullable): the reader, or %NULL with an
 *   exception set
 *
 * Since: 0.1
 */
PyObject *
gab_stream_reader_new (GInputStream *stream,
                       gssize        limit)
{
  g_return_val_if_fail (G_IS_INPUT_STREAM (stream), NULL);
  g_return_val_if_fail (GAB_GIL_HELD (), NULL);

  return stream_wrap (&reader_class, G_OBJECT (stream),
                      limit > 0 ? (Py_ssize_t) limit
                                : (Py_ssize_t) GAB_STREAM_DEFAULT_LIMIT);
}

/**
 * gab_stream_writer_new:
 * @stream: any #GOutputStream
 *
 * Makes a `gasyncbridge.StreamWriter` over @stream, with
 * asyncio.StreamWriter's `write()`, `writelines()`, `drain()`, `close()`,
 * `is_closing()` and `wait_closed()`, and the transports'
 * `set_write_buffer_limits()` and `get_write_buffer_size()`. Writes buffer
 * at once; the GIO writes run on the runtime thread, one at a time, in
 * order; `drain()` waits while more than the high-water mark (64 KiB by
 * default) is buffered or being written, and raises a write error. Needs
 * the GIL.
 *
 * Returns: (transfer full) (nullable): the writer, or %NULL with an
 *   exception set
 *
 * Since: 0.1
 */
PyObject *
gab_stream_writer_new (GOutputStream *stream)
{
  g_return_val_if_fail (G_IS_OUTPUT_STREAM (stream), NULL);
  g_return_val_if_fail (GAB_GIL_HELD (), NULL);

  return stream_wrap (&writer_class, G_OBJECT (stream), 0);
}
