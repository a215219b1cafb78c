/* gasyncbridge-streams.c: the stream types of the module, and
 * `gasyncbridge.gio.open_read` / `open_write` (the streams of a
 * subprocess are made in gasyncbridge-subprocess.c).
 *
 * Like the rest of the module, public API only: each function is a
 * GabStartFunc that starts one GIO call on the runtime thread and a
 * GabFinishFunc that wraps the stream it gives with gab_stream_reader_new()
 * or gab_stream_writer_new().
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gasyncbridge-module.h"

/* ---- open_read ------------------------------------------------------- */

typedef struct
{
  GFile *file;
  gssize limit;
} OpenRead;

static void
open_read_free (gpointer data)
{
  OpenRead *self = data;

  g_object_unref (self->file);
  g_free (self);
}

static void
open_read_start (GCancellable        *cancellable,
                 GAsyncReadyCallback  callback,
                 gpointer             callback_data,
                 gpointer             user_data)
{
  OpenRead *self = user_data;

  g_file_read_async (self->file, G_PRIORITY_DEFAULT, cancellable,
                     callback, callback_data);
}

static PyObject *
open_read_finish (GObject       *source,
                  GAsyncResult  *result,
                  gpointer       user_data,
                  GError       **error)
{
  g_autoptr(GFileInputStream) stream = g_file_read_finish (G_FILE (source), result, error);

  if (stream == NULL)
    return NULL;
  return gab_stream_reader_new (G_INPUT_STREAM (stream), ((OpenRead *) user_data)->limit);
}

PyDoc_STRVAR (open_read_doc,
"open_read(path, *, limit=65536)\n--\n\n"
"Open a file for reading: await it for a gasyncbridge.StreamReader\n"
"(read, readexactly, readline, readuntil, at_eof, async for over lines,\n"
"iter_chunks, as asyncio.StreamReader; limit is its buffer limit, as for\n"
"asyncio.open_connection). path is a str, bytes or os.PathLike. A missing\n"
"file raises FileNotFoundError.");

static PyObject *
gio_open_read (PyObject *self,
               PyObject *args,
               PyObject *kwargs)
{
  static char *kwlist[] = { "path", "limit", NULL };
  PyObject *path;
  Py_ssize_t limit = GAB_STREAM_DEFAULT_LIMIT;
  OpenRead *data;
  GFile *file;

  if (!PyArg_ParseTupleAndKeywords (args, kwargs, "O|$n:open_read", kwlist, &path, &limit))
    return NULL;
  if (!gab_module_check_fork_child ())
    return NULL;
  if (limit <= 0)
    return PyErr_Format (PyExc_ValueError, "open_read: limit must be > 0, not %zd", limit);
  file = gab_module_file_from_path (path, "open_read: path");
  if (file == NULL)
    return NULL;
  data = g_new0 (OpenRead, 1);
  data->file = file;
  data->limit = limit;
  return gab_future_into_py (open_read_start, open_read_finish, data, open_read_free);
}

/* ---- open_write ------------------------------------------------------ */

static void
open_write_start (GCancellable        *cancellable,
                  GAsyncReadyCallback  callback,
                  gpointer             callback_data,
                  gpointer             user_data)
{
  g_file_replace_async (G_FILE (user_data), NULL, FALSE, G_FILE_CREATE_NONE,
                        G_PRIORITY_DEFAULT, cancellable, callback, callback_data);
}

static PyObject *
open_write_finish (GObject       *source,
                   GAsyncResult  *result,
                   gpointer       user_data,
                   GError       **error)
{
  g_autoptr(GFileOutputStream) stream = g_file_replace_finish (G_FILE (source), result, error);

  if (stream == NULL)
    return NULL;
  return gab_stream_writer_new (G_OUTPUT_STREAM (stream));
}

PyDoc_STRVAR (open_write_doc,
"open_write(path)\n--\n\n"
"Create or replace a file for writing: await it for a\n"
"gasyncbridge.StreamWriter (write, writelines, drain, close, wait_closed,\n"
"as asyncio.StreamWriter). GIO writes to a temporary file and moves it\n"
"into place when the writer is closed, so readers never see a half-written\n"
"file. path is a str, bytes or os.PathLike.");

static PyObject *
gio_open_write (PyObject *self,
                PyObject *path)
{
  GFile *file;

  if (!gab_module_check_fork_child ())
    return NULL;
  file = gab_module_file_from_path (path, "open_write: path");
  if (file == NULL)
    return NULL;
  return gab_future_into_py (open_write_start, open_write_finish, file, g_object_unref);
}


static PyMethodDef stream_functions[] = {
  { "open_read", (PyCFunction) (void (*) (void)) gio_open_read,
    METH_VARARGS | METH_KEYWORDS, open_read_doc },
  { "open_write", gio_open_write, METH_O, open_write_doc },
  { NULL }
};

int
gab_module_streams_init (PyObject *module,
                         PyObject *gio)
{
  PyObject *reader = gab_stream_reader_get_class ();
  PyObject *writer = gab_stream_writer_get_class ();
  PyObject *name;

  if (reader == NULL || writer == NULL)
    return -1;
  if (PyModule_AddObject (module, "StreamReader", Py_NewRef (reader)) < 0)
    {
      Py_DECREF (reader);
      return -1;
    }
  if (PyModule_AddObject (module, "StreamWriter", Py_NewRef (writer)) < 0)
    {
      Py_DECREF (writer);
      return -1;
    }
  name = PyModule_GetNameObject (gio);
  if (name == NULL)
    return -1;
  for (PyMethodDef *def = stream_functions; def->ml_name != NULL; def++)
    {
      PyObject *func = PyCFunction_NewEx (def, NULL, name);

      if (func == NULL || PyModule_AddObject (gio, def->ml_name, func) < 0)
        {
          Py_XDECREF (func);
          Py_DECREF (name);
          return -1;
        }
    }
  Py_DECREF (name);
  return 0;
}
