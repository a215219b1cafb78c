/* gasyncbridge-file-read.c: gio.load_contents(), reading a whole file the
 * fast way.
 *
 * GIO's g_file_load_contents_async() reads in 8 KiB chunks, each one a
 * job of GIO's thread pool (128 thread hand-offs per MiB), and the result
 * is then copied into a bytes object on the loop thread, where touching a
 * fresh MiB of memory costs more than reading it. For a local file one job
 * of the module's bulk workers (gasyncbridge-workers.c) does it all here:
 * open, fstat for the size, big read() calls (checking for cancellation
 * between them) and close. A large file is read straight into the bytes
 * object that Python gets: the worker takes the GIL only to allocate it,
 * so the loop thread never copies or touches the payload. Other files
 * (URIs of GVfs backends) keep GIO's way.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gasyncbridge-module.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* One read() at most this big, so that cancellation is heard between two
 * of them even for a large file. */
#define READ_CHUNK        (4 * 1024 * 1024)
/* The first buffer of a file whose size fstat() does not tell (a pipe, a
 * /proc file). */
#define READ_UNKNOWN_SIZE (64 * 1024)

typedef struct
{
  GFile     *file;
  /* Written by the worker, read by the loop thread after the task has
   * completed (the loop queue's lock orders the two). */
  PyObject  *direct;      /* strong, nullable: the bytes read into; freed with the GIL */
  gsize      direct_len;  /* bytes of it filled */
  GBytes    *rest;        /* nullable: what did not fit, or all of a small file */
} FileRead;

static void
file_read_free (gpointer data)
{
  FileRead *self = data;

  /* user_data_free runs with the GIL (gab_future_into_py's promise). */
  Py_XDECREF (self->direct);
  g_clear_object (&self->file);
  g_clear_pointer (&self->rest, g_bytes_unref);
  g_free (self);
}

static void
set_errno_error (GError     **error,
                 int          saved_errno,
                 const char  *format,
                 GFile       *file)
{
  g_autofree gchar *name = g_file_get_parse_name (file);

  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
               format, name, g_strerror (saved_errno));
}

/* Worker: read() until @len reaches @cap or the end; FALSE on error. */
static gboolean
read_into (int            fd,
           guchar        *buf,
           gsize          cap,
           gsize         *len,
           GFile         *file,
           GCancellable  *cancellable,
           GError       **error)
{
  while (*len < cap)
    {
      gssize n;

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return FALSE;
      n = read (fd, buf + *len, MIN (cap - *len, READ_CHUNK));
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          set_errno_error (error, errno, "Error reading file “%s”: %s", file);
          return FALSE;
        }
      if (n == 0)
        break;
      *len += (gsize) n;
    }
  return TRUE;
}

/* Worker: the rest of the file, from where it is now, into a GBytes. */
static GBytes *
read_rest (int            fd,
           gsize          first,
           GFile         *file,
           GCancellable  *cancellable,
           GError       **error)
{
  g_autofree guchar *buf = NULL;
  gsize len = 0, cap = MAX (first, 1);

  for (;;)
    {
      guchar *bigger = g_try_realloc (buf, cap);
      gsize before;

      if (bigger == NULL)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                       "Not enough memory to read a file of over %" G_GSIZE_FORMAT " bytes", len);
          return NULL;
        }
      buf = bigger;
      before = len;
      if (!read_into (fd, buf, cap, &len, file, cancellable, error))
        return NULL;
      if (len < cap || len == before)
        break;
      if (cap > G_MAXSIZE / 2)
        {
          g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE, "File too large");
          return NULL;
        }
      cap *= 2;
    }
  return g_bytes_new_take (g_steal_pointer (&buf), len);
}

PyObject *
gab_module_bytes_alloc (gsize size)
{
  PyGILState_STATE state;
  PyObject *bytes;

  /* A thread that is not Python's own must not take the GIL once the
   * interpreter finalizes. */
  if (size < GAB_MODULE_DIRECT_MIN || size > PY_SSIZE_T_MAX || gab_compat_is_finalizing ())
    return NULL;
  /* The GIL only for the allocation; the worker holds no lock the loop
   * thread needs, and the pages are touched later, without it. */
  state = PyGILState_Ensure ();
  bytes = PyBytes_FromStringAndSize (NULL, (Py_ssize_t) size);
  if (bytes == NULL)
    PyErr_Clear ();
  PyGILState_Release (state);
  return bytes;
}

/* A bulk worker; no GIL but for gab_module_bytes_alloc(). */
static void
read_thread (GTask        *task,
             gpointer      source,
             gpointer      task_data,
             GCancellable *cancellable)
{
  FileRead *self = task_data;
  GFile *file = self->file;
  GError *error = NULL;
  struct stat st;
  int fd;

  do
    fd = open (g_file_peek_path (file), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  while (fd < 0 && errno == EINTR);
  if (fd < 0)
    {
      set_errno_error (&error, errno, "Error opening file “%s”: %s", file);
      g_task_return_error (task, error);
      return;
    }
  if (fstat (fd, &st) < 0)
    set_errno_error (&error, errno, "Error reading file “%s”: %s", file);
  else if (S_ISDIR (st.st_mode))
    g_set_error_literal (&error, G_IO_ERROR, G_IO_ERROR_IS_DIRECTORY,
                         "Can’t open directory");
  else
    {
      gsize size = S_ISREG (st.st_mode) ? (gsize) st.st_size : 0;

      self->direct = gab_module_bytes_alloc (size);
      if (self->direct == NULL)
        /* A small file (one byte more than its size: the read that finds
         * the end needs room), or one of unknown size. */
        self->rest = read_rest (fd, MAX (size + 1, READ_UNKNOWN_SIZE),
                                file, cancellable, &error);
      else if (read_into (fd, (guchar *) PyBytes_AS_STRING (self->direct), size,
                          &self->direct_len, file, cancellable, &error)
               && self->direct_len == size
               && fstat (fd, &st) == 0 && (gsize) st.st_size > size)
        {
          /* The file grew while it was read: read on from where we were. */
          self->rest = read_rest (fd, READ_UNKNOWN_SIZE, file, cancellable, &error);
        }
    }
  close (fd);
  if (error != NULL)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

static void
gio_loaded (GObject      *source,
            GAsyncResult *result,
            gpointer      data)
{
  g_autoptr(GTask) task = data;
  FileRead *self = g_task_get_task_data (task);
  GError *error = NULL;
  gchar *contents = NULL;
  gsize length = 0;

  if (g_file_load_contents_finish (G_FILE (source), result, &contents, &length,
                                   NULL, &error))
    {
      self->rest = g_bytes_new_take (contents, length);
      g_task_return_boolean (task, TRUE);
    }
  else
    g_task_return_error (task, error);
}

/* Runtime thread. */
static void
load_start (GCancellable        *cancellable,
            GAsyncReadyCallback  callback,
            gpointer             callback_data,
            gpointer             user_data)
{
  FileRead *self = user_data;
  GTask *task = g_task_new (self->file, cancellable, callback, callback_data);

  /* The FileRead outlives the task: the Operation frees it, with the GIL. */
  g_task_set_task_data (task, self, NULL);
  if (g_file_peek_path (self->file) != NULL)
    gab_module_run_in_worker (task, read_thread);
  else
    g_file_load_contents_async (self->file, cancellable, gio_loaded, g_object_ref (task));
  g_object_unref (task);
}

/* Loop thread, GIL. */
static PyObject *
load_finish (GObject       *source,
             GAsyncResult  *result,
             gpointer       user_data,
             GError       **error)
{
  FileRead *self = user_data;
  PyObject *bytes;
  gconstpointer rest = NULL;
  gsize rest_len = 0;

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  if (self->rest != NULL)
    rest = g_bytes_get_data (self->rest, &rest_len);
  if (self->direct == NULL)
    return PyBytes_FromStringAndSize (rest, (Py_ssize_t) rest_len);

  bytes = g_steal_pointer (&self->direct);
  if (rest_len > 0)
    {
      /* The file grew while it was read: rare, so a copy is fine. */
      PyObject *head = PyBytes_FromStringAndSize (PyBytes_AS_STRING (bytes),
                                                  (Py_ssize_t) self->direct_len);

      Py_DECREF (bytes);
      if (head != NULL)
        PyBytes_ConcatAndDel (&head, PyBytes_FromStringAndSize (rest, (Py_ssize_t) rest_len));
      return head;
    }
  /* It shrank: give back what was not filled (a realloc, no copy of the
   * pages that were). */
  if (self->direct_len < (gsize) PyBytes_GET_SIZE (bytes)
      && _PyBytes_Resize (&bytes, (Py_ssize_t) self->direct_len) < 0)
    return NULL;
  return bytes;
}

const char gab_module_load_contents_doc[] =
"load_contents(path)\n--\n\n"
"Read a whole file.\n\n"
"path is a str, bytes or os.PathLike. Returns the contents as bytes.\n"
"A local file is read by one worker thread in large reads, a large one\n"
"straight into the returned bytes object. Raises FileNotFoundError,\n"
"IsADirectoryError, PermissionError, ... with .domain and .code of the\n"
"GError. Example::\n\n"
"    data = await gasyncbridge.gio.load_contents('/etc/hostname')";

PyObject *
gab_module_load_contents (PyObject *self,
                          PyObject *path)
{
  GFile *file = gab_module_file_from_path (path, "load_contents: path");
  FileRead *read;

  if (file == NULL)
    return NULL;
  read = g_new0 (FileRead, 1);
  read->file = file;
  return gab_module_gio_future (load_start, load_finish, read, file_read_free,
                                  GAB_FUTURE_CANCEL_WAITS);
}
