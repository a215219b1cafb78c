/* gasyncbridge-subprocess.c: children. gio.communicate (a GSubprocess fed
 * and read to its end, no Python on the way) and
 * gio.create_subprocess_exec (asyncio's Process over a GSubprocess and the
 * module's streams); both start children with gab_module_spawn().
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gasyncbridge-module.h"
#include "gab-module-python-sources.h"

#ifdef HAVE_VALGRIND_H
# include <valgrind/valgrind.h>
#endif

#include <errno.h>
#include <string.h>
#include <glib-unix.h>
#include <gio/gunixinputstream.h>
#include <gio/gunixoutputstream.h>

/* ---- communicate ------------------------------------------------------ */

typedef struct
{
  gchar         **argv;
  gchar          *cwd;
  gchar         **envp;            /* NULL: inherit */
  GBytes         *input;           /* NULL: stdin closed at once */
  PyObject       *input_obj;       /* strong, nullable: the bytes @input points into */
  gboolean        close_fds;

  /* runtime thread */
  GTask          *task;
  GCancellable   *cancellable;     /* the caller's: Operation.cancel() */
  gulong          cancel_id;
  GSource        *abort_source;
  GCancellable   *stop;            /* ours: stops the pipes on abort */
  GSubprocess    *process;
  GOutputStream  *stdout_buf;
  GOutputStream  *stderr_buf;
  /* Large outputs as bytes objects, made by a worker (see
   * communicate_convert); dropped with the GIL. */
  PyObject       *stdout_obj;
  PyObject       *stderr_obj;
  guint           pending;         /* stdin, stdout, stderr, wait */
  gboolean        aborted;
  GError         *error;
  gint            returncode;
} Communicate;

static void
communicate_free (gpointer data)
{
  Communicate *self = data;

  g_strfreev (self->argv);
  g_free (self->cwd);
  g_strfreev (self->envp);
  g_clear_pointer (&self->input, g_bytes_unref);
  /* user_data_free runs with the GIL. */
  Py_XDECREF (self->input_obj);
  g_clear_object (&self->cancellable);
  g_clear_object (&self->stop);
  g_clear_object (&self->process);
  g_clear_object (&self->stdout_buf);
  g_clear_object (&self->stderr_buf);
  /* user_data_free runs with the GIL. */
  Py_XDECREF (self->stdout_obj);
  Py_XDECREF (self->stderr_obj);
  g_clear_error (&self->error);
  g_free (self);
}

/* Spawn failures as the G_IO_ERROR (so the OSError) that matches, as
 * asyncio.create_subprocess_exec raises FileNotFoundError. */
static GError *
spawn_error_to_io_error (GError      *error,
                         const gchar *cwd)
{
  static const struct { gint spawn; GIOErrorEnum io; } map[] = {
    { G_SPAWN_ERROR_NOENT, G_IO_ERROR_NOT_FOUND },
    { G_SPAWN_ERROR_ACCES, G_IO_ERROR_PERMISSION_DENIED },
    { G_SPAWN_ERROR_PERM, G_IO_ERROR_PERMISSION_DENIED },
    { G_SPAWN_ERROR_NOTDIR, G_IO_ERROR_NOT_DIRECTORY },
    { G_SPAWN_ERROR_ISDIR, G_IO_ERROR_IS_DIRECTORY },
    { G_SPAWN_ERROR_NAMETOOLONG, G_IO_ERROR_FILENAME_TOO_LONG },
    { G_SPAWN_ERROR_LOOP, G_IO_ERROR_TOO_MANY_LINKS },
    { G_SPAWN_ERROR_MFILE, G_IO_ERROR_TOO_MANY_OPEN_FILES },
    { G_SPAWN_ERROR_INVAL, G_IO_ERROR_INVALID_ARGUMENT },
  };
  gint code = -1;

  if (error->domain != G_SPAWN_ERROR)
    return error;
  for (gsize i = 0; i < G_N_ELEMENTS (map); i++)
    if (error->code == map[i].spawn)
      code = map[i].io;
  if (error->code == G_SPAWN_ERROR_CHDIR && cwd != NULL)
    {
      /* GLib keeps chdir's errno in the message only. */
      if (!g_file_test (cwd, G_FILE_TEST_EXISTS))
        code = G_IO_ERROR_NOT_FOUND;
      else if (!g_file_test (cwd, G_FILE_TEST_IS_DIR))
        code = G_IO_ERROR_NOT_DIRECTORY;
      else
        code = G_IO_ERROR_PERMISSION_DENIED;
    }
  if (code >= 0)
    {
      GError *mapped = g_error_new_literal (G_IO_ERROR, code, error->message);

      g_error_free (error);
      return mapped;
    }
  return error;
}

GSubprocess *
gab_module_spawn (GSubprocessLauncher  *launcher,
                  GSubprocessFlags      flags,
                  gboolean              close_fds,
                  gchar               **argv,
                  GError              **error)
{
  GSubprocess *process;
  GError *local_error = NULL;

  /* With INHERIT_FDS (and no cwd) GLib starts the child with
   * posix_spawn(), a vfork: a fork() would share every page of this
   * process copy-on-write with the child until it execs, and each write
   * of the loop thread meanwhile would fault (with a few hundred children
   * at once, seconds of the loop's time). What the child then inherits is
   * only what lacks close-on-exec, which nothing of Python (PEP 446), GLib
   * or the bridge opens; close_fds=True closes those too, with a fork. */
  /* GLib 2.74's posix_spawn() path breaks the child's stdout when stderr
   * is merged into it (the child's writes fail with EIO): fork then. Under
   * valgrind too, which runs a vfork as a fork: posix_spawn() then cannot
   * hear that exec failed, and reports a child that exits 127. */
  if (flags & G_SUBPROCESS_FLAGS_STDERR_MERGE)
    close_fds = TRUE;
#ifdef HAVE_VALGRIND_H
  if (RUNNING_ON_VALGRIND)
    close_fds = TRUE;
#endif
  g_subprocess_launcher_set_flags (launcher, flags | (close_fds ? 0 : G_SUBPROCESS_FLAGS_INHERIT_FDS));
  process = g_subprocess_launcher_spawnv (launcher, (const gchar * const *) argv, &local_error);
  if (process == NULL && !close_fds
      && g_error_matches (local_error, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED))
    {
      /* posix_spawn() reports every failure as FAILED; the fork path says
       * which (not found, not executable, ...). Failures are rare: try
       * again that way for the precise error. */
      g_clear_error (&local_error);
      g_subprocess_launcher_set_flags (launcher, flags);
      process = g_subprocess_launcher_spawnv (launcher, (const gchar * const *) argv,
                                              &local_error);
    }
  if (process == NULL)
    g_propagate_error (error, local_error);
  return process;
}

gint
gab_module_returncode (GSubprocess *process)
{
  if (g_subprocess_get_if_exited (process))
    return g_subprocess_get_exit_status (process);
  if (g_subprocess_get_if_signaled (process))
    return -g_subprocess_get_term_sig (process);
  return g_subprocess_get_status (process);
}

void
gab_module_set_nonblocking (GObject *pipe)
{
  if (G_IS_UNIX_OUTPUT_STREAM (pipe))
    g_unix_set_fd_nonblocking (g_unix_output_stream_get_fd (G_UNIX_OUTPUT_STREAM (pipe)),
                               TRUE, NULL);
  else if (G_IS_UNIX_INPUT_STREAM (pipe))
    g_unix_set_fd_nonblocking (g_unix_input_stream_get_fd (G_UNIX_INPUT_STREAM (pipe)),
                               TRUE, NULL);
}

static gsize
communicate_output_size (Communicate *self)
{
  return g_memory_output_stream_get_data_size (G_MEMORY_OUTPUT_STREAM (self->stdout_buf))
         + g_memory_output_stream_get_data_size (G_MEMORY_OUTPUT_STREAM (self->stderr_buf));
}

/* Worker, no GIL but in gab_module_bytes_alloc(): @buf's data as a bytes
 * object, or NULL (small or no memory: finish copies it then). */
static PyObject *
output_to_bytes (GOutputStream *buf)
{
  GMemoryOutputStream *mem = G_MEMORY_OUTPUT_STREAM (buf);
  gsize size = g_memory_output_stream_get_data_size (mem);
  PyObject *bytes = gab_module_bytes_alloc (size);

  if (bytes != NULL)
    memcpy (PyBytes_AS_STRING (bytes), g_memory_output_stream_get_data (mem), size);
  return bytes;
}

static void
communicate_convert (GTask        *task,
                     gpointer      source,
                     gpointer      task_data,
                     GCancellable *cancellable)
{
  Communicate *self = task_data;

  /* The pipes are done with: nothing else touches the buffers now. */
  self->stdout_obj = output_to_bytes (self->stdout_buf);
  self->stderr_obj = output_to_bytes (self->stderr_buf);
  g_task_return_boolean (task, TRUE);
}

/* Runtime thread (the convert task was made there). */
static void
communicate_converted (GObject      *source,
                       GAsyncResult *result,
                       gpointer      data)
{
  Communicate *self = data;

  gab_module_task_return_outcome (&self->task, &self->error);
}

static void
communicate_return (Communicate *self)
{
  gab_module_source_clear (&self->abort_source);
  if (self->cancel_id != 0)
    {
      /* Never inside the cancelled handler (it only queues an idle), so
       * this cannot wait for itself. */
      g_cancellable_disconnect (self->cancellable, self->cancel_id);
      self->cancel_id = 0;
    }
  if (g_cancellable_is_cancelled (self->cancellable))
    {
      g_clear_error (&self->error);
      self->error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                         "The subprocess was cancelled and killed");
    }
  if (self->error == NULL && communicate_output_size (self) >= GAB_MODULE_DIRECT_MIN)
    {
      /* Large output: a worker makes the bytes objects, so that the loop
       * thread neither copies nor touches the fresh memory. */
      GTask *convert = g_task_new (NULL, NULL, communicate_converted, self);

      g_task_set_task_data (convert, self, NULL);
      gab_module_run_in_worker (convert, communicate_convert);
      g_object_unref (convert);
      return;
    }
  gab_module_task_return_outcome (&self->task, &self->error);
}

/* Runtime thread: kill the child and stop the pipes. The wait is never
 * stopped, so the child is always reaped before we complete. */
static void
communicate_abort (Communicate *self)
{
  if (self->aborted)
    return;
  self->aborted = TRUE;
  g_subprocess_force_exit (self->process);
  g_cancellable_cancel (self->stop);
}

static void
communicate_step_done (Communicate *self,
                       GError      *error)
{
  if (error != NULL)
    {
      /* The first real error is the outcome; errors of the pipes that the
       * abort stopped are its echo. */
      if (self->aborted && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_error_free (error);
      else
        gab_module_keep_first_error (&self->error, error);
      communicate_abort (self);
    }
  if (--self->pending == 0)
    communicate_return (self);
}

static gboolean
communicate_abort_idle (gpointer data)
{
  Communicate *self = data;

  g_clear_pointer (&self->abort_source, g_source_unref);
  communicate_abort (self);
  return G_SOURCE_REMOVE;
}

static void
communicate_cancelled (GCancellable *cancellable,
                       gpointer      data)
{
  Communicate *self = data;

  /* From an idle, not from inside the signal: the pipes' callbacks may
   * run synchronously when stopped, and must not end up disconnecting
   * this very handler. */
  if (self->abort_source != NULL)
    return;
  self->abort_source = g_idle_source_new ();
  g_source_set_callback (self->abort_source, communicate_abort_idle, self, NULL);
  g_source_attach (self->abort_source, g_task_get_context (self->task));
}

static void
communicate_stdin_closed (GObject      *source,
                          GAsyncResult *result,
                          gpointer      data)
{
  GError *error = NULL;

  g_output_stream_close_finish (G_OUTPUT_STREAM (source), result, &error);
  /* The child closed its end first: it need not read all, as asyncio's
   * communicate() allows too. */
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE))
    g_clear_error (&error);
  communicate_step_done (data, error);
}

static void
communicate_stdin_written (GObject      *source,
                           GAsyncResult *result,
                           gpointer      data)
{
  Communicate *self = data;
  GError *error = NULL;

  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error)
      && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE)
      && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED))
    {
      g_output_stream_clear_pending (G_OUTPUT_STREAM (source));
      communicate_step_done (self, error);
      return;
    }
  g_clear_error (&error);
  g_output_stream_close_async (G_OUTPUT_STREAM (source), G_PRIORITY_DEFAULT, NULL,
                               communicate_stdin_closed, self);
}

static void
communicate_spliced (GObject      *source,
                     GAsyncResult *result,
                     gpointer      data)
{
  GError *error = NULL;

  g_output_stream_splice_finish (G_OUTPUT_STREAM (source), result, &error);
  communicate_step_done (data, error);
}

static void
communicate_waited (GObject      *source,
                    GAsyncResult *result,
                    gpointer      data)
{
  Communicate *self = data;
  GSubprocess *process = G_SUBPROCESS (source);
  GError *error = NULL;

  if (g_subprocess_wait_finish (process, result, &error))
    self->returncode = gab_module_returncode (process);
  communicate_step_done (self, error);
}

static void
communicate_start (GCancellable        *cancellable,
                   GAsyncReadyCallback  callback,
                   gpointer             callback_data,
                   gpointer             user_data)
{
  Communicate *self = user_data;
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  GError *error = NULL;
  GOutputStream *stdin_pipe;

  self->task = g_task_new (NULL, NULL, callback, callback_data);
  self->cancellable = g_object_ref (cancellable);
  if (g_cancellable_is_cancelled (cancellable))
    {
      communicate_return (self);   /* cancelled before the spawn */
      return;
    }

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  if (self->cwd != NULL)
    g_subprocess_launcher_set_cwd (launcher, self->cwd);
  if (self->envp != NULL)
    g_subprocess_launcher_set_environ (launcher, self->envp);
  self->process = gab_module_spawn (launcher, G_SUBPROCESS_FLAGS_STDIN_PIPE
                                              | G_SUBPROCESS_FLAGS_STDOUT_PIPE
                                              | G_SUBPROCESS_FLAGS_STDERR_PIPE,
                                    self->close_fds, self->argv, &error);
  if (self->process == NULL)
    {
      self->error = spawn_error_to_io_error (error, self->cwd);
      communicate_return (self);
      return;
    }

  self->stop = g_cancellable_new ();
  self->stdout_buf = g_memory_output_stream_new_resizable ();
  self->stderr_buf = g_memory_output_stream_new_resizable ();
  self->pending = 4;

  stdin_pipe = g_subprocess_get_stdin_pipe (self->process);
  /* GSubprocess gives blocking pipes, and a pollable write to one blocks
   * until all of it fits: 1 MiB into `cat` would stop the runtime thread
   * while cat waits for us to read its output. Non-blocking, GIO writes
   * what fits and polls for the rest. */
  gab_module_set_nonblocking (G_OBJECT (stdin_pipe));
  if (self->input != NULL && g_bytes_get_size (self->input) > 0)
    g_output_stream_write_all_async (stdin_pipe, g_bytes_get_data (self->input, NULL),
                                     g_bytes_get_size (self->input), G_PRIORITY_DEFAULT,
                                     self->stop, communicate_stdin_written, self);
  else
    g_output_stream_close_async (stdin_pipe, G_PRIORITY_DEFAULT, NULL,
                                 communicate_stdin_closed, self);
  g_output_stream_splice_async (self->stdout_buf, g_subprocess_get_stdout_pipe (self->process),
                                G_OUTPUT_STREAM_SPLICE_CLOSE_SOURCE
                                | G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET,
                                G_PRIORITY_DEFAULT, self->stop, communicate_spliced, self);
  g_output_stream_splice_async (self->stderr_buf, g_subprocess_get_stderr_pipe (self->process),
                                G_OUTPUT_STREAM_SPLICE_CLOSE_SOURCE
                                | G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET,
                                G_PRIORITY_DEFAULT, self->stop, communicate_spliced, self);
  g_subprocess_wait_async (self->process, NULL, communicate_waited, self);
  /* Last, as it may run at once if already cancelled. */
  self->cancel_id = g_cancellable_connect (cancellable, G_CALLBACK (communicate_cancelled),
                                           self, NULL);
}

/* Loop thread, GIL: @buf's data as a bytes object: *@made, made by the
 * worker when large (communicate_convert), else a copy made here. */
static PyObject *
output_to_python (GOutputStream  *buf,
                  PyObject      **made)
{
  GMemoryOutputStream *mem = G_MEMORY_OUTPUT_STREAM (buf);
  gconstpointer data = g_memory_output_stream_get_data (mem);

  if (*made != NULL)
    return g_steal_pointer (made);
  return PyBytes_FromStringAndSize (data != NULL ? data : "",
                                    (Py_ssize_t) g_memory_output_stream_get_data_size (mem));
}

static PyObject *
communicate_finish (GObject       *source,
                    GAsyncResult  *result,
                    gpointer       user_data,
                    GError       **error)
{
  Communicate *self = user_data;
  PyObject *out_obj, *err_obj;

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  out_obj = output_to_python (self->stdout_buf, &self->stdout_obj);
  err_obj = output_to_python (self->stderr_buf, &self->stderr_obj);
  if (out_obj == NULL || err_obj == NULL)
    {
      Py_XDECREF (out_obj);
      Py_XDECREF (err_obj);
      return NULL;
    }
  return Py_BuildValue ("(iNN)", self->returncode, out_obj, err_obj);
}

const char gab_module_communicate_doc[] =
"communicate(argv, input=None, *, cwd=None, env=None, close_fds=False)\n--\n\n"
"Run a program with GSubprocess, feed it input and collect its output.\n\n"
"argv: a non-empty list or tuple of str, bytes or os.PathLike; argv[0] is\n"
"looked up in PATH. input: bytes-like data for the child's stdin, which is\n"
"then closed; with None stdin is closed at once (the child reads EOF, it\n"
"never inherits ours). A child that exits without reading all its input\n"
"is no error. cwd: the child's working directory. env: a mapping that\n"
"becomes the child's whole environment (None: inherit ours). The child\n"
"inherits only descriptors without close-on-exec (Python's own never are,\n"
"PEP 446), which lets GLib start it with posix_spawn (a vfork) when no cwd\n"
"is given; close_fds=True closes every descriptor above 2, with a fork.\n\n"
"Returns (returncode, stdout, stderr): stdout and stderr as bytes, and\n"
"returncode the exit status, or -N if signal N ended the child, as\n"
"asyncio does. A program that cannot be started raises FileNotFoundError,\n"
"PermissionError, ... at the await.\n\n"
"Cancelling kills the child (SIGKILL) and reaps it before the awaiting\n"
"task sees CancelledError: no zombie is left. Example::\n\n"
"    code, out, err = await gio.communicate(['sort'], b'b\\na\\n')";

PyObject *
gab_module_communicate (PyObject *self,
                 PyObject *args,
                 PyObject *kwargs)
{
  static char *kwlist[] = { "argv", "input", "cwd", "env", "close_fds", NULL };
  PyObject *argv, *input = Py_None, *cwd = Py_None, *env = Py_None;
  int close_fds = 0;
  Communicate *comm;

  if (!PyArg_ParseTupleAndKeywords (args, kwargs, "O|O$OOp:communicate", kwlist,
                                    &argv, &input, &cwd, &env, &close_fds))
    return NULL;

  comm = g_new0 (Communicate, 1);
  comm->close_fds = close_fds;
  comm->argv = gab_module_parse_argv (argv, "communicate: argv");
  if (comm->argv == NULL)
    goto fail;
  if (input != Py_None)
    {
      comm->input = gab_module_data_bytes (input, "communicate: input", TRUE,
                                           &comm->input_obj);
      if (comm->input == NULL)
        goto fail;
    }
  if (cwd != Py_None)
    {
      PyObject *bytes = gab_module_fs_bytes (cwd, "communicate: cwd");

      if (bytes == NULL)
        goto fail;
      comm->cwd = g_strdup (PyBytes_AS_STRING (bytes));
      Py_DECREF (bytes);
    }
  if (env != Py_None)
    {
      comm->envp = gab_module_parse_env (env, "communicate: env");
      if (comm->envp == NULL)
        goto fail;
    }
  return gab_module_gio_future (communicate_start, communicate_finish, comm,
                                  communicate_free,
                                  GAB_FUTURE_CANCEL_WAITS);

fail:
  communicate_free (comm);
  return NULL;
}

/* ---- create_subprocess_exec ------------------------------------------- */

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

int
gab_module_subprocess_init (PyObject *gio)
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
