/* gasyncbridge-streams.c: the stream types of the module, and
 * `gasyncbridge.gio.open_read` / `open_write`.
 *
 * Like the rest of the module, public API only: each function is a
 * GabStartFunc that starts one GIO call on the runtime thread and a
 * GabFinishFunc that wraps the stream it gives with gab_stream_reader_new()
 * or gab_stream_writer_new().
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gasyncbridge-module.h"
#include "gab-module-python-sources.h"

#include <errno.h>

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


/* ---- subprocesses ---------------------------------------------------- */

/* asyncio.subprocess's constants. */
#define PIPE    (-1)
#define STDOUT  (-2)
#define DEVNULL (-3)

typedef struct
{
  PyObject_HEAD
  GSubprocess *process;
} Subprocess;

static PyTypeObject Subprocess_Type;

static void
wait_start (GCancellable        *cancellable,
            GAsyncReadyCallback  callback,
            gpointer             callback_data,
            gpointer             user_data)
{
  g_subprocess_wait_async (G_SUBPROCESS (user_data), cancellable, callback, callback_data);
}

static PyObject *
wait_finish (GObject       *source,
             GAsyncResult  *result,
             gpointer       user_data,
             GError       **error)
{
  GSubprocess *process = G_SUBPROCESS (source);

  if (!g_subprocess_wait_finish (process, result, error))
    return NULL;
  return PyLong_FromLong (gab_module_returncode (process));
}

static PyObject *
subprocess_wait (PyObject *object,
                 PyObject *unused)
{
  Subprocess *self = (Subprocess *) object;

  return gab_future_into_py (wait_start, wait_finish, g_object_ref (self->process),
                             g_object_unref);
}

static PyObject *
subprocess_send_signal (PyObject *object,
                        PyObject *arg)
{
  Subprocess *self = (Subprocess *) object;
  long signum = PyLong_AsLong (arg);

  if (signum == -1 && PyErr_Occurred ())
    return NULL;
  /* A no-op once the process has been reaped, as GIO promises. */
  g_subprocess_send_signal (self->process, (int) signum);
  Py_RETURN_NONE;
}

static PyObject *
subprocess_get_pid (PyObject *object,
                    void     *closure)
{
  const gchar *id = g_subprocess_get_identifier (((Subprocess *) object)->process);

  if (id == NULL)
    Py_RETURN_NONE;
  return PyLong_FromString (id, NULL, 10);
}

static void
subprocess_dealloc (PyObject *object)
{
  g_object_unref (((Subprocess *) object)->process);
  Py_TYPE (object)->tp_free (object);
}

static PyMethodDef subprocess_methods[] = {
  { "wait", subprocess_wait, METH_NOARGS, NULL },
  { "send_signal", subprocess_send_signal, METH_O, NULL },
  { NULL }
};

static PyGetSetDef subprocess_getset[] = {
  { "pid", subprocess_get_pid, NULL, NULL, NULL },
  { NULL }
};

static PyTypeObject Subprocess_Type = {
  GAB_PY_TYPE_HEAD ("gasyncbridge.gio._Subprocess", Subprocess,
                    Py_TPFLAGS_DEFAULT,
                    "A GSubprocess: wait() and send_signal()."),
  .tp_dealloc = subprocess_dealloc,
  .tp_methods = subprocess_methods,
  .tp_getset = subprocess_getset,
};

/* _spawn(argv, stdin, stdout, stderr, cwd, env, limit, close_fds) ->
 *   (handle, stdin writer, stdout reader, stderr reader) */
static PyObject *
gio_spawn (PyObject *self,
           PyObject *args)
{
  PyObject *argv_obj, *cwd, *env, *ret = NULL;
  PyObject *in = NULL, *out = NULL, *err = NULL;
  int in_mode, out_mode, err_mode, close_fds;
  Py_ssize_t limit;
  GSubprocessFlags flags = G_SUBPROCESS_FLAGS_NONE;
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_auto(GStrv) argv = NULL;
  g_autoptr(GError) error = NULL;
  GSubprocess *process;
  Subprocess *handle;

  if (!PyArg_ParseTuple (args, "OiiiOOnp", &argv_obj, &in_mode, &out_mode, &err_mode,
                         &cwd, &env, &limit, &close_fds))
    return NULL;
  if (!gab_module_check_fork_child ())
    return NULL;

  if (in_mode == PIPE)
    flags |= G_SUBPROCESS_FLAGS_STDIN_PIPE;
  else if (in_mode != DEVNULL)
    flags |= G_SUBPROCESS_FLAGS_STDIN_INHERIT;   /* GIO's default is /dev/null */
  if (out_mode == PIPE)
    flags |= G_SUBPROCESS_FLAGS_STDOUT_PIPE;
  else if (out_mode == DEVNULL)
    flags |= G_SUBPROCESS_FLAGS_STDOUT_SILENCE;
  if (err_mode == PIPE)
    flags |= G_SUBPROCESS_FLAGS_STDERR_PIPE;
  else if (err_mode == DEVNULL)
    flags |= G_SUBPROCESS_FLAGS_STDERR_SILENCE;
  else if (err_mode == STDOUT)
    flags |= G_SUBPROCESS_FLAGS_STDERR_MERGE;
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);

  argv = gab_module_parse_argv (argv_obj, "create_subprocess_exec: argv");
  if (argv == NULL)
    return NULL;
  if (cwd != Py_None)
    {
      PyObject *dir = gab_module_fs_bytes (cwd, "create_subprocess_exec: cwd");

      if (dir == NULL)
        goto out;
      g_subprocess_launcher_set_cwd (launcher, PyBytes_AS_STRING (dir));
      Py_DECREF (dir);
    }
  if (env != Py_None)
    {
      g_auto(GStrv) envp = gab_module_parse_env (env, "create_subprocess_exec: env");

      if (envp == NULL)
        goto out;
      g_subprocess_launcher_set_environ (launcher, envp);
    }

  /* fork or posix_spawn here, as asyncio's own create_subprocess_exec does. */
  process = gab_module_spawn (launcher, flags, close_fds, argv, &error);
  if (process == NULL)
    {
      /* As asyncio: a missing or forbidden program is an OSError. */
      if (g_error_matches (error, G_SPAWN_ERROR, G_SPAWN_ERROR_NOENT))
        PyErr_SetObject (PyExc_FileNotFoundError,
                         Py_BuildValue ("(is)", ENOENT, error->message));
      else if (g_error_matches (error, G_SPAWN_ERROR, G_SPAWN_ERROR_ACCES))
        PyErr_SetObject (PyExc_PermissionError,
                         Py_BuildValue ("(is)", EACCES, error->message));
      else
        gab_error_to_python (error);
      goto out;
    }
  handle = PyObject_New (Subprocess, &Subprocess_Type);
  if (handle == NULL)
    {
      g_subprocess_force_exit (process);
      g_object_unref (process);
      goto out;
    }
  handle->process = process;
  if (in_mode == PIPE)
    {
      gab_module_set_nonblocking (G_OBJECT (g_subprocess_get_stdin_pipe (process)));
      in = gab_stream_writer_new (g_subprocess_get_stdin_pipe (process));
    }
  if (out_mode == PIPE)
    {
      gab_module_set_nonblocking (G_OBJECT (g_subprocess_get_stdout_pipe (process)));
      out = gab_stream_reader_new (g_subprocess_get_stdout_pipe (process), limit);
    }
  if (err_mode == PIPE)
    {
      gab_module_set_nonblocking (G_OBJECT (g_subprocess_get_stderr_pipe (process)));
      err = gab_stream_reader_new (g_subprocess_get_stderr_pipe (process), limit);
    }
  if ((in_mode == PIPE && in == NULL) || (out_mode == PIPE && out == NULL)
      || (err_mode == PIPE && err == NULL))
    {
      g_subprocess_force_exit (process);
      Py_DECREF (handle);
      goto out;
    }
  ret = Py_BuildValue ("(NOOO)", handle, in != NULL ? in : Py_None,
                       out != NULL ? out : Py_None, err != NULL ? err : Py_None);

out:
  Py_XDECREF (in);
  Py_XDECREF (out);
  Py_XDECREF (err);
  return ret;
}

static PyMethodDef spawn_def = {
  "_spawn", gio_spawn, METH_VARARGS, NULL,
};

/* GIL: adds Process and create_subprocess_exec to `gio`. */
static int
subprocess_init (PyObject *gio)
{
  PyObject *globals, *ret, *spawn, *make, *func;
  int status = -1;

  if (PyType_Ready (&Subprocess_Type) < 0)
    return -1;
  globals = PyDict_New ();
  if (globals == NULL)
    return -1;
  PyDict_SetItemString (globals, "__builtins__", PyEval_GetBuiltins ());
  /* gasyncbridge/python/_process.py, compiled under its own name so that
   * tracebacks through it say where it is. */
  ret = Py_CompileString (gab_py_source_process.text, gab_py_source_process.filename,
                          Py_file_input);
  if (ret != NULL)
    Py_SETREF (ret, PyEval_EvalCode (ret, globals, globals));
  if (ret == NULL)
    goto out;
  Py_DECREF (ret);
  spawn = PyCFunction_New (&spawn_def, NULL);
  make = PyDict_GetItemString (globals, "make_create_subprocess_exec");
  func = spawn != NULL && make != NULL ? PyObject_CallOneArg (make, spawn) : NULL;
  Py_XDECREF (spawn);
  if (func == NULL)
    goto out;
  if (PyModule_AddObject (gio, "create_subprocess_exec", func) < 0)
    {
      Py_DECREF (func);
      goto out;
    }
  if (PyModule_AddObject (gio, "Process",
                          Py_NewRef (PyDict_GetItemString (globals, "Process"))) < 0)
    goto out;
  status = 0;

out:
  Py_DECREF (globals);
  return status;
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
  return subprocess_init (gio);
}
