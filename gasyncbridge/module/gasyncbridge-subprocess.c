/* gasyncbridge-subprocess.c: gio.communicate, a GSubprocess fed and read
 * to its end. *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gasyncbridge-module.h"

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

  /* runtime thread */
  GTask          *task;
  GCancellable   *cancellable;     /* the caller's: Operation.cancel() */
  gulong          cancel_id;
  GSource        *abort_source;
  GCancellable   *stop;            /* ours: stops the pipes on abort */
  GSubprocess    *process;
  GOutputStream  *stdout_buf;
  GOutputStream  *stderr_buf;
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
  g_clear_object (&self->cancellable);
  g_clear_object (&self->stop);
  g_clear_object (&self->process);
  g_clear_object (&self->stdout_buf);
  g_clear_object (&self->stderr_buf);
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

static void
communicate_return (Communicate *self)
{
  if (self->abort_source != NULL)
    {
      g_source_destroy (self->abort_source);
      g_clear_pointer (&self->abort_source, g_source_unref);
    }
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
      if (self->error == NULL && !(self->aborted
                                   && g_error_matches (error, G_IO_ERROR,
                                                       G_IO_ERROR_CANCELLED)))
        self->error = g_error_copy (error);
      g_error_free (error);
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
    {
      /* As asyncio: the exit status, or minus the signal that killed it. */
      if (g_subprocess_get_if_exited (process))
        self->returncode = g_subprocess_get_exit_status (process);
      else if (g_subprocess_get_if_signaled (process))
        self->returncode = -g_subprocess_get_term_sig (process);
    }
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

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE
                                        | G_SUBPROCESS_FLAGS_STDOUT_PIPE
                                        | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  if (self->cwd != NULL)
    g_subprocess_launcher_set_cwd (launcher, self->cwd);
  if (self->envp != NULL)
    g_subprocess_launcher_set_environ (launcher, self->envp);
  self->process = g_subprocess_launcher_spawnv (launcher, (const gchar * const *) self->argv,
                                                &error);
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
   * what fits and polls for the rest. (Only our ends: the child's are
   * other file descriptions.) */
  if (G_IS_UNIX_OUTPUT_STREAM (stdin_pipe))
    g_unix_set_fd_nonblocking (g_unix_output_stream_get_fd (G_UNIX_OUTPUT_STREAM (stdin_pipe)),
                               TRUE, NULL);
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

static PyObject *
communicate_finish (GObject       *source,
                    GAsyncResult  *result,
                    gpointer       user_data,
                    GError       **error)
{
  Communicate *self = user_data;
  g_autoptr(GBytes) out = NULL;
  g_autoptr(GBytes) err = NULL;
  gsize out_len, err_len;
  gconstpointer out_data, err_data;

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  out = g_memory_output_stream_steal_as_bytes (G_MEMORY_OUTPUT_STREAM (self->stdout_buf));
  err = g_memory_output_stream_steal_as_bytes (G_MEMORY_OUTPUT_STREAM (self->stderr_buf));
  out_data = g_bytes_get_data (out, &out_len);
  err_data = g_bytes_get_data (err, &err_len);
  return Py_BuildValue ("(iy#y#)", self->returncode,
                        out_data != NULL ? out_data : "", (Py_ssize_t) out_len,
                        err_data != NULL ? err_data : "", (Py_ssize_t) err_len);
}

const char gab_module_communicate_doc[] =
"communicate(argv, input=None, *, cwd=None, env=None)\n--\n\n"
"Run a program with GSubprocess, feed it input and collect its output.\n\n"
"argv: a non-empty list or tuple of str, bytes or os.PathLike; argv[0] is\n"
"looked up in PATH. input: bytes-like data for the child's stdin, which is\n"
"then closed; with None stdin is closed at once (the child reads EOF, it\n"
"never inherits ours). A child that exits without reading all its input\n"
"is no error. cwd: the child's working directory. env: a mapping that\n"
"becomes the child's whole environment (None: inherit ours).\n\n"
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
  static char *kwlist[] = { "argv", "input", "cwd", "env", NULL };
  PyObject *argv, *input = Py_None, *cwd = Py_None, *env = Py_None;
  Communicate *comm;

  if (!PyArg_ParseTupleAndKeywords (args, kwargs, "O|O$OO:communicate", kwlist,
                                    &argv, &input, &cwd, &env))
    return NULL;

  comm = g_new0 (Communicate, 1);
  comm->argv = gab_module_parse_argv (argv, "communicate: argv");
  if (comm->argv == NULL)
    goto fail;
  if (input != Py_None)
    {
      Py_buffer view;

      if (PyUnicode_Check (input))
        {
          PyErr_SetString (PyExc_TypeError,
                           "communicate: input must be a bytes-like object or None, "
                           "not str (encode it first)");
          goto fail;
        }
      if (PyObject_GetBuffer (input, &view, PyBUF_SIMPLE) < 0)
        goto fail;
      comm->input = g_bytes_new (view.buf, (gsize) view.len);
      PyBuffer_Release (&view);
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
  return gab_module_operation_new (communicate_start, communicate_finish, comm,
                                   communicate_free, g_cancellable_new ());

fail:
  communicate_free (comm);
  return NULL;
}

