/* guidebinding.c: the small Python extension module of the guide.
 *
 *   guidebinding.mkdir(path)        g_file_make_directory_async, awaitable:
 *                                   the binding walkthrough (doc/guide/02)
 *   guidebinding.call_twice(func)   C awaits func() twice, one after the
 *                                   other, in the caller's loop and
 *                                   contextvars (doc/guide/03 and 07)
 *   guidebinding.ticker(n, capacity=2)
 *                                   a C thread sends n items through a
 *                                   GabChannel; `async for` them (doc/guide/09)
 *   guidebinding.fd_reader(fd)      a StreamReader over a file descriptor
 *                                   (doc/guide/09)
 *
 * It is built like any binding: public headers only, linked with
 * dependency('gasyncbridge-1').
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <gasyncbridge/gasyncbridge.h>
#include <gio/gunixinputstream.h>

/* ---- mkdir: the walkthrough ------------------------------------------ */

/* [guide:binding-data] */
typedef struct
{
  GFile *file;
} MkdirCall;

static void
mkdir_call_free (gpointer data)    /* called once, with the GIL, when unused */
{
  MkdirCall *call = data;

  g_clear_object (&call->file);
  g_free (call);
}
/* [/guide:binding-data] */

/* [guide:binding-start] */
static void
mkdir_start (GCancellable        *cancellable,
             GAsyncReadyCallback  callback,
             gpointer             callback_data,
             gpointer             user_data)     /* runtime thread, no GIL */
{
  MkdirCall *call = user_data;

  g_file_make_directory_async (call->file, G_PRIORITY_DEFAULT, cancellable,
                               callback, callback_data);
}
/* [/guide:binding-start] */

/* [guide:binding-finish] */
static PyObject *
mkdir_finish (GObject       *source_object,
              GAsyncResult  *result,
              gpointer       user_data,
              GError       **error)              /* loop thread, GIL */
{
  if (!g_file_make_directory_finish (G_FILE (source_object), result, error))
    return NULL;                 /* raised as FileExistsError, PermissionError, ... */
  Py_RETURN_NONE;
}
/* [/guide:binding-finish] */

/* [guide:binding-entry] */
static PyObject *
guide_mkdir (PyObject *module,
             PyObject *path)                     /* loop thread, GIL */
{
  PyObject *bytes = NULL;
  MkdirCall *call;

  if (!PyUnicode_FSConverter (path, &bytes))     /* str, bytes or os.PathLike */
    return NULL;
  call = g_new0 (MkdirCall, 1);
  call->file = g_file_new_for_path (PyBytes_AS_STRING (bytes));
  Py_DECREF (bytes);
  return gab_future_into_py (mkdir_start, mkdir_finish, call, mkdir_call_free);
}
/* [/guide:binding-entry] */

/* ---- call_twice: C awaits Python, with the caller's task locals ------- */

typedef struct
{
  PyObject      *func;
  PyObject      *results;    /* a list */
  GTask         *task;       /* ours, on the runtime thread */
  GabTaskLocals *locals;     /* the Python caller's loop and context */
} Twice;

static void
twice_free (gpointer data)   /* with the GIL */
{
  Twice *self = data;

  Py_XDECREF (self->func);
  Py_XDECREF (self->results);
  g_clear_pointer (&self->locals, gab_task_locals_unref);
  g_free (self);
}

static void twice_next (Twice *self);

static void
twice_complete (Twice  *self,
                GError *error)
{
  GTask *task = g_steal_pointer (&self->task);

  if (error != NULL)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

/* [guide:locals-scope] */
static void
twice_awaited (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)      /* runtime thread */
{
  Twice *self = user_data;
  GError *error = NULL;
  PyGILState_STATE gil = PyGILState_Ensure ();
  PyObject *value = gab_into_future_finish (result, &error);
  gboolean again = FALSE;

  if (value != NULL && PyList_Append (self->results, value) < 0)
    gab_error_set_from_python (&error);
  else if (value != NULL)
    again = PyList_GET_SIZE (self->results) < 2;
  Py_XDECREF (value);
  PyGILState_Release (gil);

  if (!again)
    twice_complete (self, error);
  else
    {
      /* A callback of ours: nothing is current here. Carry the caller's
       * task locals, so that the next call runs in their loop and context. */
      gab_task_locals_push (self->locals);
      twice_next (self);
      gab_task_locals_pop (self->locals);
    }
}
/* [/guide:locals-scope] */

static void
twice_next (Twice *self)                     /* runtime thread */
{
  GError *error = NULL;
  PyGILState_STATE gil = PyGILState_Ensure ();
  PyObject *coro = PyObject_CallNoArgs (self->func);

  if (coro != NULL)
    gab_into_future_async (coro, g_task_get_cancellable (self->task), twice_awaited, self);
  else
    gab_error_set_from_python (&error);
  Py_XDECREF (coro);
  PyGILState_Release (gil);
  if (error != NULL)
    twice_complete (self, error);
}

/* [guide:locals-capture] */
static void
twice_start (GCancellable        *cancellable,
             GAsyncReadyCallback  callback,
             gpointer             callback_data,
             gpointer             user_data)   /* runtime thread, no GIL */
{
  Twice *self = user_data;

  /* The bridge made the caller's task locals current for this call (no
   * GIL needed to get them): keep them for the callbacks to come. */
  self->locals = gab_task_locals_get_current ();
  self->task = g_task_new (NULL, cancellable, callback, callback_data);
  twice_next (self);
}
/* [/guide:locals-capture] */

static PyObject *
twice_finish (GObject       *source_object,
              GAsyncResult  *result,
              gpointer       user_data,
              GError       **error)
{
  Twice *self = user_data;

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  Py_INCREF (self->results);      /* not Py_NewRef (): Python 3.9 has none */
  return self->results;
}

static PyObject *
guide_call_twice (PyObject *module,
                  PyObject *func)
{
  Twice *self;

  if (!PyCallable_Check (func))
    return PyErr_Format (PyExc_TypeError, "call_twice: %s object is not callable",
                         Py_TYPE (func)->tp_name);
  self = g_new0 (Twice, 1);
  Py_INCREF (func);
  self->func = func;
  self->results = PyList_New (0);
  if (self->results == NULL)
    {
      twice_free (self);
      return NULL;
    }
  return gab_future_into_py (twice_start, twice_finish, self, twice_free);
}

/* ---- ticker: a C thread feeds a GabChannel ----------------------------- */

typedef struct
{
  GabChannel *channel;
  guint       count;
  gboolean    sent;
  GError     *error;
} Ticker;

static void
tick_sent (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  Ticker *ticker = user_data;

  gab_channel_send_finish (GAB_CHANNEL (source), result, &ticker->error);
  ticker->sent = TRUE;
}

/* [guide:channel-producer] */
static gpointer
ticker_thread (gpointer data)                /* a thread of our own: no GIL, no loop */
{
  Ticker *ticker = data;
  g_autoptr(GMainContext) context = g_main_context_new ();

  g_main_context_push_thread_default (context);     /* send callbacks come here */
  for (guint i = 0; i < ticker->count && ticker->error == NULL; i++)
    {
      ticker->sent = FALSE;
      gab_channel_send_async (ticker->channel, g_variant_new ("(us)", i, "tick"),
                              NULL, tick_sent, ticker);
      while (!ticker->sent)                         /* waits while the channel is full */
        g_main_context_iteration (context, TRUE);
    }
  /* The consumer's `async for` ends after the items already sent; if it
   * went away early, the last send failed with G_IO_ERROR_BROKEN_PIPE. */
  gab_channel_close (ticker->channel, NULL);
  g_main_context_pop_thread_default (context);
  g_clear_error (&ticker->error);
  g_object_unref (ticker->channel);
  g_free (ticker);
  return NULL;
}
/* [/guide:channel-producer] */

/* [guide:channel-consumer] */
static PyObject *
guide_ticker (PyObject *module,
              PyObject *args)                /* loop thread, GIL */
{
  unsigned int count, capacity = 2;
  g_autoptr(GabChannel) channel = NULL;
  PyObject *consumer;
  Ticker *ticker;

  if (!PyArg_ParseTuple (args, "I|I:ticker", &count, &capacity))
    return NULL;
  if (capacity == 0)
    return PyErr_Format (PyExc_ValueError, "ticker: capacity must be at least 1");
  channel = gab_channel_new (capacity);
  consumer = gab_channel_to_python (channel);  /* for `async for` on this loop */
  if (consumer == NULL)
    return NULL;
  ticker = g_new0 (Ticker, 1);
  ticker->channel = g_object_ref (channel);
  ticker->count = count;
  g_thread_unref (g_thread_new ("ticker", ticker_thread, ticker));
  return consumer;
}
/* [/guide:channel-consumer] */

/* ---- fd_reader: any GInputStream as a StreamReader ---------------------- */

/* [guide:stream-reader] */
static PyObject *
guide_fd_reader (PyObject *module,
                 PyObject *arg)              /* GIL */
{
  int fd = PyObject_AsFileDescriptor (arg);
  g_autoptr(GInputStream) stream = NULL;

  if (fd < 0)
    return NULL;
  stream = g_unix_input_stream_new (fd, TRUE);     /* the reader closes fd */
  return gab_stream_reader_new (stream, 0);        /* 0: asyncio's 64 KiB limit */
}
/* [/guide:stream-reader] */

/* [guide:binding-module] */
static PyMethodDef guide_methods[] = {
  { "mkdir", guide_mkdir, METH_O,
    "mkdir(path)\n--\n\nCreate a directory with GIO; await the result." },
  { "call_twice", guide_call_twice, METH_O,
    "call_twice(async_func)\n--\n\n"
    "Await async_func() twice, from C, one call after the other: a list of both results." },
  { "ticker", guide_ticker, METH_VARARGS,
    "ticker(count, capacity=2)\n--\n\n"
    "A C thread sends count items (n, 'tick') through a channel; `async for` them." },
  { "fd_reader", guide_fd_reader, METH_O,
    "fd_reader(fd)\n--\n\nA gasyncbridge.StreamReader over a file descriptor (closed with it)." },
  { NULL }
};

static struct PyModuleDef guide_module = {
  PyModuleDef_HEAD_INIT,
  .m_name = "guidebinding",
  .m_doc = "The guide's example binding, built on gasyncbridge's C API.",
  .m_size = -1,
  .m_methods = guide_methods,
};

PyMODINIT_FUNC
PyInit_guidebinding (void)
{
  return PyModule_Create (&guide_module);
}
/* [/guide:binding-module] */
