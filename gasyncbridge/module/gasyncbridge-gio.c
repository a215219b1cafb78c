/* gasyncbridge-gio.c: `gasyncbridge.gio`, GIO for asyncio.
 *
 * The reference binding: everything here uses the public C API only, and
 * every function follows the same pattern.
 *
 *   1. The Python call, on the loop thread with the GIL: check and convert
 *      the arguments into plain C data (GFile, GBytes, gchar **) kept in one
 *      struct per call. Bad arguments raise TypeError or ValueError here,
 *      before anything starts, and nothing after this needs Python.
 *   2. A GabStartFunc, on the runtime thread, without the GIL: start the
 *      GIO call with the cancellable and callback it is given. GIO calls
 *      back on the runtime thread, whose GMainContext is thread-default
 *      there. Operations of several steps (list_dir, copy, communicate)
 *      chain their GIO calls on that thread and complete a GTask of their
 *      own at the end, which is the callback the bridge gave them.
 *   3. A GabFinishFunc, on the loop thread with the GIL: call *_finish and
 *      convert the result to Python. A GError returned from here becomes
 *      the mapped exception (FileNotFoundError, ...) with .domain and .code.
 *
 * gab_future_into_py() glues the three. Here it is wrapped by
 * gab_module_operation_new(), because these operations have cleanup to do
 * when they are cancelled (remove a partial file, kill and reap a child).
 * A plain bridge future is cancelled at once, so the awaiting task would
 * see CancelledError while GIO is still cleaning up; an Operation's
 * cancel() only asks GIO to stop, and the future completes, cancelled, when
 * GIO has reported back. A binding with no such cleanup calls
 * gab_future_into_py() directly (as examples/gio-binding does).
 *
 * The struct of a call is created with the GIL, used by the runtime thread
 * from start until its GIO callback, then by the loop thread in finish;
 * the bridge frees it with the GIL once neither can run. Python objects in
 * it are only touched with the GIL.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gasyncbridge-module.h"

#include <errno.h>
#include <string.h>
#include <glib-unix.h>
#include <gio/gunixinputstream.h>
#include <gio/gunixoutputstream.h>

/* Copy progress reaches Python at most this often (plus the final one). */
#define PROGRESS_INTERVAL_USEC (50 * G_TIME_SPAN_MILLISECOND)
/* Directory entries fetched per g_file_enumerator_next_files_async(). */
#define LIST_DIR_BATCH 128

/* ---- Operation: an asyncio.Future with cancellation that waits ------- */

static PyObject *operation_type;     /* gasyncbridge.gio.Operation */
static PyObject *future_cancel;      /* asyncio.Future.cancel, unbound */
static PyObject *cancelled_error_type; /* asyncio.CancelledError */
static PyObject *s_inner;            /* "_gab_inner": the bridge future */
static PyObject *s_cancellable;      /* "_gab_cancellable": capsule or None */
static PyObject *s_cancel_msg;       /* "_gab_cancel_msg": set once cancel() ran */

typedef struct
{
  GabStartFunc    start;
  GabFinishFunc   finish;
  gpointer        user_data;
  GDestroyNotify  user_data_free;
  GCancellable   *cancellable;       /* ours; NULL: use the bridge's */
} OperationData;

static void
forward_cancel (GCancellable *bridge_cancellable,
                gpointer      data)
{
  g_cancellable_cancel (G_CANCELLABLE (data));
}

static void
operation_start (GCancellable        *cancellable,
                 GAsyncReadyCallback  callback,
                 gpointer             callback_data,
                 gpointer             user_data)
{
  OperationData *self = user_data;

  if (self->cancellable == NULL)
    {
      self->start (cancellable, callback, callback_data, self->user_data);
      return;
    }
  /* The bridge cancels its cancellable when the future is collected or
   * the runtime shuts down: pass that on to the one GIO watches. Never
   * disconnected: the handler's reference goes with the bridge's
   * cancellable, and cancelling twice is harmless. */
  g_cancellable_connect (cancellable, G_CALLBACK (forward_cancel),
                         g_object_ref (self->cancellable), g_object_unref);
  self->start (self->cancellable, callback, callback_data, self->user_data);
}

static PyObject *
operation_finish (GObject       *source,
                  GAsyncResult  *result,
                  gpointer       user_data,
                  GError       **error)
{
  OperationData *self = user_data;

  return self->finish (source, result, self->user_data, error);
}

static void
operation_data_free (gpointer data)
{
  OperationData *self = data;

  /* With the GIL, as the bridge promises. */
  if (self->user_data_free != NULL)
    self->user_data_free (self->user_data);
  g_clear_object (&self->cancellable);
  g_free (self);
}

static gboolean
cancel_on_runtime (gpointer data)
{
  g_cancellable_cancel (G_CANCELLABLE (data));
  return G_SOURCE_REMOVE;
}

static void
cancellable_capsule_free (PyObject *capsule)
{
  g_object_unref (PyCapsule_GetPointer (capsule, "GCancellable"));
}

/* GIL: object.name (arg), whatever arg is (PyObject_CallMethod with "O"
 * would unpack a tuple into several arguments). */
static PyObject *
call_method_one (PyObject   *object,
                 const char *name,
                 PyObject   *arg)
{
  PyObject *func = PyObject_GetAttrString (object, name), *ret;

  if (func == NULL)
    return NULL;
  ret = PyObject_CallOneArg (func, arg);
  Py_DECREF (func);
  return ret;
}

/* Future.cancel (self, msg) of the base class. */
static PyObject *
base_cancel (PyObject *self,
             PyObject *msg)
{
  if (msg == NULL || msg == Py_None)
    return PyObject_CallOneArg (future_cancel, self);
  return PyObject_CallFunctionObjArgs (future_cancel, self, msg, NULL);
}

/* Operation.cancel (self, msg=None). Like Task.cancel(): returns True and
 * the future completes later, cancelled, once GIO has stopped. */
static PyObject *
operation_cancel (PyObject         *unused,
                  PyObject *const  *args,
                  Py_ssize_t        nargs,
                  PyObject         *kwnames)
{
  PyObject *self, *msg = Py_None, *done, *capsule, *ret = NULL;
  Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE (kwnames) : 0;
  int has_msg;

  if (nargs < 1 || nargs + nkw > 2)
    {
      PyErr_SetString (PyExc_TypeError, "cancel() takes at most one argument (msg)");
      return NULL;
    }
  self = args[0];
  if (nargs == 2)
    msg = args[1];
  else if (nkw == 1)
    {
      if (!PyUnicode_Check (PyTuple_GET_ITEM (kwnames, 0))
          || PyUnicode_CompareWithASCIIString (PyTuple_GET_ITEM (kwnames, 0), "msg") != 0)
        {
          PyErr_SetString (PyExc_TypeError, "cancel() got an unexpected keyword argument");
          return NULL;
        }
      msg = args[1];
    }

  done = PyObject_CallMethod (self, "done", NULL);
  if (done == NULL)
    return NULL;
  if (PyObject_IsTrue (done))
    {
      Py_DECREF (done);
      Py_RETURN_FALSE;
    }
  Py_DECREF (done);

  has_msg = PyObject_HasAttr (self, s_cancel_msg);
  if (has_msg)
    Py_RETURN_TRUE;   /* already on its way */
  if (PyObject_SetAttr (self, s_cancel_msg, msg) < 0)
    return NULL;

  capsule = PyObject_GetAttr (self, s_cancellable);
  if (capsule == NULL)
    return NULL;
  if (capsule == Py_None)
    {
      /* Not cancellable by GIO: drop the result now, as a bridge future
       * does; the done callback below cancels us. */
      PyObject *inner = PyObject_GetAttr (self, s_inner);

      if (inner != NULL)
        ret = PyObject_CallMethod (inner, "cancel", NULL);
      Py_XDECREF (inner);
    }
  else
    {
      GCancellable *cancellable = PyCapsule_GetPointer (capsule, "GCancellable");

      /* GIO's cancellation handlers must run on the runtime thread, where
       * the operation lives. */
      if (cancellable != NULL)
        {
          gab_invoke (cancel_on_runtime, g_object_ref (cancellable), g_object_unref);
          ret = Py_NewRef (Py_None);
        }
    }
  Py_DECREF (capsule);
  if (ret == NULL)
    return NULL;
  Py_DECREF (ret);
  Py_RETURN_TRUE;
}

static PyMethodDef operation_cancel_def = {
  "cancel", (PyCFunction) (void (*) (void)) operation_cancel,
  METH_FASTCALL | METH_KEYWORDS,
  "cancel(self, /, msg=None)\n--\n\n"
  "Ask the GIO operation to stop. Returns False if the future is already\n"
  "done, else True; like Task.cancel(), the future is not done yet: it\n"
  "completes, cancelled, once GIO has stopped and cleaned up (a partial\n"
  "file removed, a child process killed and reaped). An awaiting task sees\n"
  "CancelledError only then."
};

/* The bridge future is done: complete the Operation that waits on it. The
 * callback holds the Operation weakly, so that the bridge, which holds it
 * as the future's owner, sees when Python drops it and cancels the GIO
 * call. */
static PyObject *
operation_inner_done (PyObject *weakref,
                      PyObject *inner)
{
  PyObject *self, *value, *exception = NULL, *ret = NULL;
  int cancelled, done;

  /* Take the outcome in any case, so that asyncio never warns that the
   * bridge future's exception was not retrieved: the Operation has it. */
  value = PyObject_CallMethod (inner, "cancelled", NULL);
  if (value == NULL)
    return NULL;
  cancelled = PyObject_IsTrue (value);
  Py_DECREF (value);
  if (!cancelled)
    {
      exception = PyObject_CallMethod (inner, "exception", NULL);
      if (exception == NULL)
        return NULL;
    }

  self = PyWeakref_GetObject (weakref);
  if (self == NULL || self == Py_None)
    {
      Py_XDECREF (exception);
      Py_RETURN_NONE;
    }
  Py_INCREF (self);
  value = PyObject_CallMethod (self, "done", NULL);
  done = value != NULL ? PyObject_IsTrue (value) : -1;
  Py_XDECREF (value);
  if (done != 0)
    goto out;

  if (PyObject_HasAttr (self, s_cancel_msg))
    {
      /* cancel() said True: cancelled it is, whatever GIO had come to. */
      PyObject *msg = PyObject_GetAttr (self, s_cancel_msg);

      if (msg != NULL)
        ret = base_cancel (self, msg);
      Py_XDECREF (msg);
    }
  else if (cancelled
           || PyObject_IsInstance (exception, cancelled_error_type) == 1)
    /* G_IO_ERROR_CANCELLED without our cancel(): the bridge cancelled
     * (say, at shutdown); a cancel all the same. */
    ret = base_cancel (self, NULL);
  else if (exception != Py_None)
    ret = call_method_one (self, "set_exception", exception);
  else
    {
      value = PyObject_CallMethod (inner, "result", NULL);
      if (value != NULL)
        ret = call_method_one (self, "set_result", value);
      Py_XDECREF (value);
    }

out:
  Py_XDECREF (exception);
  Py_DECREF (self);
  if (ret == NULL)
    return NULL;
  Py_DECREF (ret);
  Py_RETURN_NONE;
}

static PyMethodDef operation_inner_done_def = {
  "_operation_done", operation_inner_done, METH_O, NULL
};

PyObject *
gab_module_operation_new (GabStartFunc    start,
                          GabFinishFunc   finish,
                          gpointer        user_data,
                          GDestroyNotify  user_data_free,
                          GCancellable   *cancellable)
{
  OperationData *data;
  PyObject *inner, *loop = NULL, *kwargs = NULL, *empty = NULL, *self = NULL;
  PyObject *capsule = NULL, *weakref = NULL, *callback = NULL, *ret;
  GError *error = NULL;

  /* In a child of fork(), GIO work may have nobody to run it. */
  if (!gab_check_fork_child (&error))
    {
      if (user_data_free != NULL)
        user_data_free (user_data);
      g_clear_object (&cancellable);
      gab_error_to_python (error);
      g_error_free (error);
      return NULL;
    }
  data = g_new0 (OperationData, 1);
  data->start = start;
  data->finish = finish;
  data->user_data = user_data;
  data->user_data_free = user_data_free;
  data->cancellable = cancellable;
  /* On failure the bridge frees data (and user_data) itself. */
  inner = gab_future_into_py (operation_start, operation_finish, data,
                              operation_data_free);
  if (inner == NULL)
    return NULL;

  loop = PyObject_CallMethod (inner, "get_loop", NULL);
  empty = PyTuple_New (0);
  kwargs = loop != NULL ? Py_BuildValue ("{s:O}", "loop", loop) : NULL;
  if (empty == NULL || kwargs == NULL)
    goto out;
  self = PyObject_Call (operation_type, empty, kwargs);
  if (self == NULL)
    goto out;
  if (cancellable != NULL)
    capsule = PyCapsule_New (g_object_ref (cancellable), "GCancellable",
                             cancellable_capsule_free);
  else
    capsule = Py_NewRef (Py_None);
  if (capsule == NULL
      || PyObject_SetAttr (self, s_cancellable, capsule) < 0
      || PyObject_SetAttr (self, s_inner, inner) < 0
      /* The bridge holds the Operation while GIO runs, and cancels when
       * Python drops it (our callback below holds it only weakly). */
      || !gab_future_set_owner (inner, self))
    goto fail;
  weakref = PyWeakref_NewRef (self, NULL);
  if (weakref == NULL)
    goto fail;
  callback = PyCFunction_New (&operation_inner_done_def, weakref);
  if (callback == NULL)
    goto fail;
  ret = call_method_one (inner, "add_done_callback", callback);
  if (ret == NULL)
    goto fail;
  Py_DECREF (ret);
  goto out;

fail:
  Py_CLEAR (self);
out:
  /* Dropping the bridge future on failure cancels the operation. */
  Py_XDECREF (callback);
  Py_XDECREF (weakref);
  Py_XDECREF (capsule);
  Py_XDECREF (kwargs);
  Py_XDECREF (empty);
  Py_XDECREF (loop);
  Py_DECREF (inner);
  return self;
}

static gboolean
operation_type_init (void)
{
  PyObject *asyncio, *future_type = NULL, *func = NULL, *method = NULL;
  PyObject *dict = NULL;

  s_inner = PyUnicode_InternFromString ("_gab_inner");
  s_cancellable = PyUnicode_InternFromString ("_gab_cancellable");
  s_cancel_msg = PyUnicode_InternFromString ("_gab_cancel_msg");
  if (s_inner == NULL || s_cancellable == NULL || s_cancel_msg == NULL)
    return FALSE;
  asyncio = PyImport_ImportModule ("asyncio");
  if (asyncio == NULL)
    return FALSE;
  future_type = PyObject_GetAttrString (asyncio, "Future");
  cancelled_error_type = PyObject_GetAttrString (asyncio, "CancelledError");
  Py_DECREF (asyncio);
  if (cancelled_error_type == NULL)
    {
      Py_XDECREF (future_type);
      return FALSE;
    }
  if (future_type == NULL)
    return FALSE;
  future_cancel = PyObject_GetAttrString (future_type, "cancel");
  func = PyCFunction_New (&operation_cancel_def, NULL);
  /* An instancemethod binds like a Python function: self comes first. */
  method = func != NULL ? PyInstanceMethod_New (func) : NULL;
  dict = method != NULL ? Py_BuildValue (
    "{s:O,s:s,s:s}", "cancel", method, "__module__", "gasyncbridge.gio", "__doc__",
    "An asyncio.Future for a GIO operation of gasyncbridge.\n\n"
    "What the functions of gasyncbridge.gio and gasyncbridge.call_gio return.\n"
    "It differs from asyncio.Future in cancel() only: that asks GIO to stop\n"
    "and returns True, and the future completes, cancelled, once GIO has\n"
    "stopped, as a Task does. So when an awaiting task sees CancelledError,\n"
    "the operation's cleanup is done: no partial file of a copy is left, a\n"
    "child of communicate() has been killed and reaped.") : NULL;
  if (future_cancel != NULL && dict != NULL)
    operation_type = PyObject_CallFunction ((PyObject *) &PyType_Type, "s(O)O",
                                            "Operation", future_type, dict);
  Py_XDECREF (dict);
  Py_XDECREF (method);
  Py_XDECREF (func);
  Py_DECREF (future_type);
  return operation_type != NULL;
}

/* ---- arguments -------------------------------------------------------- */

/* GIL: str, bytes or os.PathLike to a new bytes object; NULL with
 * TypeError or ValueError set. */
static PyObject *
fs_bytes (PyObject   *path,
          const char *what)
{
  PyObject *bytes = NULL;

  if (!PyUnicode_Check (path) && !PyBytes_Check (path)
      && !PyObject_HasAttrString (path, "__fspath__"))
    {
      PyErr_Format (PyExc_TypeError, "%s must be str, bytes or os.PathLike, not %s",
                    what, Py_TYPE (path)->tp_name);
      return NULL;
    }
  /* Also checks for NUL bytes (ValueError). */
  if (!PyUnicode_FSConverter (path, &bytes))
    return NULL;
  return bytes;
}

GFile *
gab_module_file_from_path (PyObject   *path,
                           const char *what)
{
  PyObject *bytes = fs_bytes (path, what);
  GFile *file;

  if (bytes == NULL)
    return NULL;
  if (PyBytes_GET_SIZE (bytes) == 0)
    {
      PyErr_Format (PyExc_ValueError, "%s must not be empty", what);
      Py_DECREF (bytes);
      return NULL;
    }
  file = g_file_new_for_path (PyBytes_AS_STRING (bytes));
  Py_DECREF (bytes);
  return file;
}

/* GIL: a GIO filename (bytes in the file system encoding) for Python, as
 * os.listdir gives it: bytes when the caller passed bytes, else str. */
static PyObject *
filename_to_python (const char *name,
                    gboolean    as_bytes)
{
  if (as_bytes)
    return PyBytes_FromString (name);
  return PyUnicode_DecodeFSDefault (name);
}

/* ---- load_contents ---------------------------------------------------- */

static void
load_contents_start (GCancellable        *cancellable,
                     GAsyncReadyCallback  callback,
                     gpointer             callback_data,
                     gpointer             user_data)
{
  g_file_load_contents_async (G_FILE (user_data), cancellable, callback, callback_data);
}

static PyObject *
load_contents_finish (GObject       *source,
                      GAsyncResult  *result,
                      gpointer       user_data,
                      GError       **error)
{
  g_autofree gchar *contents = NULL;
  gsize length = 0;

  if (!g_file_load_contents_finish (G_FILE (source), result, &contents, &length,
                                    NULL, error))
    return NULL;
  return PyBytes_FromStringAndSize (contents, (Py_ssize_t) length);
}

PyDoc_STRVAR (load_contents_doc,
"load_contents(path)\n--\n\n"
"Read a whole file.\n\n"
"path is a str, bytes or os.PathLike. Returns the contents as bytes.\n"
"Raises FileNotFoundError, IsADirectoryError, PermissionError, ... with\n"
".domain and .code of the GError. Example::\n\n"
"    data = await gasyncbridge.gio.load_contents('/etc/hostname')");

static PyObject *
gio_load_contents (PyObject *self,
                   PyObject *path)
{
  GFile *file = gab_module_file_from_path (path, "load_contents: path");

  if (file == NULL)
    return NULL;
  return gab_module_operation_new (load_contents_start, load_contents_finish,
                                   file, g_object_unref, g_cancellable_new ());
}

/* ---- replace_contents ------------------------------------------------- */

typedef struct
{
  GFile    *file;
  GBytes   *contents;
  gchar    *etag;
  gboolean  make_backup;
} Replace;

static void
replace_free (gpointer data)
{
  Replace *self = data;

  g_clear_object (&self->file);
  g_clear_pointer (&self->contents, g_bytes_unref);
  g_free (self->etag);
  g_free (self);
}

static void
replace_start (GCancellable        *cancellable,
               GAsyncReadyCallback  callback,
               gpointer             callback_data,
               gpointer             user_data)
{
  Replace *self = user_data;

  g_file_replace_contents_bytes_async (self->file, self->contents, self->etag,
                                       self->make_backup, G_FILE_CREATE_NONE,
                                       cancellable, callback, callback_data);
}

static PyObject *
replace_finish (GObject       *source,
                GAsyncResult  *result,
                gpointer       user_data,
                GError       **error)
{
  if (!g_file_replace_contents_finish (G_FILE (source), result, NULL, error))
    return NULL;
  Py_RETURN_NONE;
}

PyDoc_STRVAR (replace_contents_doc,
"replace_contents(path, data, *, etag=None, make_backup=False)\n--\n\n"
"Replace the contents of a file, or create it.\n\n"
"data is any bytes-like object. The replacement is atomic for a regular\n"
"file: GIO writes a temporary file in the same directory and renames it\n"
"over path, so readers see the old or the new contents, never a mix, and\n"
"a failed or cancelled call leaves the old file as it was. (As editors do,\n"
"GIO writes in place instead when the file has several hard links or\n"
"cannot be recreated with its owner.)\n\n"
"etag: if given, the file must still have this entity tag (the 'etag' of\n"
"query_info()), else GLibError with code G_IO_ERROR_WRONG_ETAG (23) is\n"
"raised and nothing is written: a check that nobody changed the file\n"
"since you read it.\n"
"make_backup: keep the previous contents as path + '~'.\n\n"
"Example::\n\n"
"    info = await gio.query_info(path, ['etag'])\n"
"    await gio.replace_contents(path, b'new', etag=info['etag'])");

static PyObject *
gio_replace_contents (PyObject *self,
                      PyObject *args,
                      PyObject *kwargs)
{
  static char *kwlist[] = { "path", "data", "etag", "make_backup", NULL };
  PyObject *path, *data;
  const char *etag = NULL;
  int make_backup = 0;
  Py_buffer view;
  Replace *replace;
  GFile *file;

  if (!PyArg_ParseTupleAndKeywords (args, kwargs, "OO|$zp:replace_contents", kwlist,
                                    &path, &data, &etag, &make_backup))
    return NULL;
  if (PyUnicode_Check (data))
    {
      PyErr_SetString (PyExc_TypeError,
                       "replace_contents: data must be a bytes-like object, not str "
                       "(encode it first)");
      return NULL;
    }
  if (PyObject_GetBuffer (data, &view, PyBUF_SIMPLE) < 0)
    return NULL;
  file = gab_module_file_from_path (path, "replace_contents: path");
  if (file == NULL)
    {
      PyBuffer_Release (&view);
      return NULL;
    }
  replace = g_new0 (Replace, 1);
  replace->file = file;
  /* A copy: the runtime thread must not read a Python buffer without the
   * GIL, and the caller may change a bytearray while we write. Empty data
   * needs a non-NULL pointer: GIO's replace writes it with
   * g_output_stream_write_async(), which rejects NULL (and then never calls
   * back), and g_bytes_new() of nothing gives NULL. */
  replace->contents = view.len > 0 ? g_bytes_new (view.buf, (gsize) view.len)
                                   : g_bytes_new_static ("", 0);
  PyBuffer_Release (&view);
  replace->etag = g_strdup (etag);
  replace->make_backup = make_backup;
  return gab_module_operation_new (replace_start, replace_finish, replace,
                                   replace_free, g_cancellable_new ());
}

/* ---- query_info ------------------------------------------------------- */

/* The friendly keys of the dict and the GIO attributes they stand for. */
static const struct
{
  const char *key;
  const char *attribute;
  const char *usec;        /* for times: the microseconds attribute */
} info_keys[] = {
  { "name", G_FILE_ATTRIBUTE_STANDARD_NAME, NULL },
  { "display_name", G_FILE_ATTRIBUTE_STANDARD_DISPLAY_NAME, NULL },
  { "size", G_FILE_ATTRIBUTE_STANDARD_SIZE, NULL },
  { "type", G_FILE_ATTRIBUTE_STANDARD_TYPE, NULL },
  { "is_symlink", G_FILE_ATTRIBUTE_STANDARD_IS_SYMLINK, NULL },
  { "is_hidden", G_FILE_ATTRIBUTE_STANDARD_IS_HIDDEN, NULL },
  { "symlink_target", G_FILE_ATTRIBUTE_STANDARD_SYMLINK_TARGET, NULL },
  { "content_type", G_FILE_ATTRIBUTE_STANDARD_CONTENT_TYPE, NULL },
  { "mtime", G_FILE_ATTRIBUTE_TIME_MODIFIED, G_FILE_ATTRIBUTE_TIME_MODIFIED_USEC },
  { "atime", G_FILE_ATTRIBUTE_TIME_ACCESS, G_FILE_ATTRIBUTE_TIME_ACCESS_USEC },
  { "ctime", G_FILE_ATTRIBUTE_TIME_CHANGED, G_FILE_ATTRIBUTE_TIME_CHANGED_USEC },
  { "permissions", G_FILE_ATTRIBUTE_UNIX_MODE, NULL },
  { "etag", G_FILE_ATTRIBUTE_ETAG_VALUE, NULL },
};

static const char *const default_info_keys[] = {
  "name", "display_name", "size", "type", "is_symlink", "mtime", "permissions", "etag",
};

static const char *const file_type_names[] = {
  [G_FILE_TYPE_UNKNOWN] = "unknown",
  [G_FILE_TYPE_REGULAR] = "regular",
  [G_FILE_TYPE_DIRECTORY] = "directory",
  [G_FILE_TYPE_SYMBOLIC_LINK] = "symbolic-link",
  [G_FILE_TYPE_SPECIAL] = "special",
  [G_FILE_TYPE_SHORTCUT] = "shortcut",
  [G_FILE_TYPE_MOUNTABLE] = "mountable",
};

typedef struct
{
  GFile               *file;
  gchar               *attributes;
  GFileQueryInfoFlags  flags;
} QueryInfo;

static void
query_info_free (gpointer data)
{
  QueryInfo *self = data;

  g_clear_object (&self->file);
  g_free (self->attributes);
  g_free (self);
}

/* GIL: one item of attributes=, a friendly key or a GIO attribute
 * ("unix::uid", "standard::*", "*"), appended to @out. */
static gboolean
add_info_attribute (GString    *out,
                    const char *item)
{
  g_autofree gchar *name = g_strstrip (g_strdup (item));

  if (name[0] == '\0')
    {
      PyErr_SetString (PyExc_ValueError, "query_info: empty attribute name");
      return FALSE;
    }
  if (out->len > 0)
    g_string_append_c (out, ',');
  if (strstr (name, "::") != NULL || strcmp (name, "*") == 0)
    {
      g_string_append (out, name);
      return TRUE;
    }
  for (gsize i = 0; i < G_N_ELEMENTS (info_keys); i++)
    if (strcmp (name, info_keys[i].key) == 0)
      {
        g_string_append (out, info_keys[i].attribute);
        if (info_keys[i].usec != NULL)
          g_string_append_printf (out, ",%s", info_keys[i].usec);
        return TRUE;
      }
  PyErr_Format (PyExc_ValueError,
                "query_info: unknown attribute '%s': use one of the keys name, "
                "display_name, size, type, is_symlink, is_hidden, symlink_target, "
                "content_type, mtime, atime, ctime, permissions, etag, or a GIO "
                "attribute such as 'unix::uid' or 'standard::*'", name);
  return FALSE;
}

/* GIL: attributes= (None, a comma-separated str, or an iterable of str) as
 * a GIO attribute list. */
static gchar *
parse_info_attributes (PyObject *attributes)
{
  GString *out = g_string_new (NULL);
  PyObject *iter, *item;

  if (attributes == NULL || attributes == Py_None)
    {
      for (gsize i = 0; i < G_N_ELEMENTS (default_info_keys); i++)
        add_info_attribute (out, default_info_keys[i]);
      return g_string_free (out, FALSE);
    }
  if (PyUnicode_Check (attributes))
    {
      const char *text = PyUnicode_AsUTF8 (attributes);
      g_auto(GStrv) items = NULL;

      if (text == NULL)
        goto fail;
      items = g_strsplit (text, ",", -1);
      if (items[0] == NULL)
        {
          PyErr_SetString (PyExc_ValueError, "query_info: attributes must not be empty");
          goto fail;
        }
      for (gsize i = 0; items[i] != NULL; i++)
        if (!add_info_attribute (out, items[i]))
          goto fail;
      return g_string_free (out, FALSE);
    }
  if (PyBytes_Check (attributes) || (iter = PyObject_GetIter (attributes)) == NULL)
    {
      PyErr_Clear ();
      PyErr_Format (PyExc_TypeError,
                    "query_info: attributes must be None, a str or an iterable "
                    "of str, not %s", Py_TYPE (attributes)->tp_name);
      goto fail;
    }
  while ((item = PyIter_Next (iter)) != NULL)
    {
      const char *text = PyUnicode_Check (item) ? PyUnicode_AsUTF8 (item) : NULL;

      if (text == NULL)
        {
          if (!PyErr_Occurred ())
            PyErr_Format (PyExc_TypeError,
                          "query_info: attributes must be str, not %s",
                          Py_TYPE (item)->tp_name);
          Py_DECREF (item);
          Py_DECREF (iter);
          goto fail;
        }
      if (strchr (text, ',') != NULL)
        PyErr_Format (PyExc_ValueError,
                      "query_info: attribute '%s' has a comma: give one per item", text);
      if (PyErr_Occurred () || !add_info_attribute (out, text))
        {
          Py_DECREF (item);
          Py_DECREF (iter);
          goto fail;
        }
      Py_DECREF (item);
    }
  Py_DECREF (iter);
  if (PyErr_Occurred ())
    goto fail;
  if (out->len == 0)
    {
      PyErr_SetString (PyExc_ValueError, "query_info: attributes must not be empty");
      goto fail;
    }
  return g_string_free (out, FALSE);

fail:
  g_string_free (out, TRUE);
  return NULL;
}

static void
query_info_start (GCancellable        *cancellable,
                  GAsyncReadyCallback  callback,
                  gpointer             callback_data,
                  gpointer             user_data)
{
  QueryInfo *self = user_data;

  g_file_query_info_async (self->file, self->attributes, self->flags,
                           G_PRIORITY_DEFAULT, cancellable, callback, callback_data);
}

/* GIL: a GFileInfo attribute as a Python value by its type; NULL without
 * an exception for what has no Python form. */
static PyObject *
attribute_to_python (GFileInfo  *info,
                     const char *attribute)
{
  switch (g_file_info_get_attribute_type (info, attribute))
    {
    case G_FILE_ATTRIBUTE_TYPE_STRING:
      {
        const char *s = g_file_info_get_attribute_string (info, attribute);

        return PyUnicode_DecodeUTF8 (s, (Py_ssize_t) strlen (s), "replace");
      }
    case G_FILE_ATTRIBUTE_TYPE_BYTE_STRING:
      /* File names and link targets, in the file system encoding. */
      return PyUnicode_DecodeFSDefault (g_file_info_get_attribute_byte_string (info, attribute));
    case G_FILE_ATTRIBUTE_TYPE_BOOLEAN:
      return PyBool_FromLong (g_file_info_get_attribute_boolean (info, attribute));
    case G_FILE_ATTRIBUTE_TYPE_UINT32:
      return PyLong_FromUnsignedLong (g_file_info_get_attribute_uint32 (info, attribute));
    case G_FILE_ATTRIBUTE_TYPE_INT32:
      return PyLong_FromLong (g_file_info_get_attribute_int32 (info, attribute));
    case G_FILE_ATTRIBUTE_TYPE_UINT64:
      return PyLong_FromUnsignedLongLong (g_file_info_get_attribute_uint64 (info, attribute));
    case G_FILE_ATTRIBUTE_TYPE_INT64:
      return PyLong_FromLongLong (g_file_info_get_attribute_int64 (info, attribute));
    case G_FILE_ATTRIBUTE_TYPE_STRINGV:
      {
        char **v = g_file_info_get_attribute_stringv (info, attribute);
        PyObject *list = PyList_New (0);

        for (gsize i = 0; list != NULL && v != NULL && v[i] != NULL; i++)
          {
            PyObject *s = PyUnicode_DecodeUTF8 (v[i], (Py_ssize_t) strlen (v[i]), "replace");

            if (s == NULL || PyList_Append (list, s) < 0)
              Py_CLEAR (list);
            Py_XDECREF (s);
          }
        return list;
      }
    case G_FILE_ATTRIBUTE_TYPE_OBJECT:
      {
        GObject *object = g_file_info_get_attribute_object (info, attribute);

        if (G_IS_ICON (object))
          {
            g_autofree gchar *s = g_icon_to_string (G_ICON (object));

            if (s != NULL)
              return PyUnicode_FromString (s);
          }
        return NULL;
      }
    case G_FILE_ATTRIBUTE_TYPE_INVALID:
    default:
      return NULL;
    }
}

/* GIL: the dict of query_info(). */
static PyObject *
file_info_to_dict (GFileInfo *info)
{
  g_auto(GStrv) attributes = g_file_info_list_attributes (info, NULL);
  PyObject *dict = PyDict_New ();

  for (gsize i = 0; dict != NULL && attributes[i] != NULL; i++)
    {
      const char *attribute = attributes[i];
      const char *key = attribute;
      PyObject *value = NULL;
      gboolean consumed = FALSE;

      /* A -usec attribute is part of its time when that was asked too. */
      for (gsize k = 0; k < G_N_ELEMENTS (info_keys); k++)
        if (info_keys[k].usec != NULL && strcmp (attribute, info_keys[k].usec) == 0
            && g_file_info_has_attribute (info, info_keys[k].attribute))
          consumed = TRUE;
      if (consumed)
        continue;

      for (gsize k = 0; k < G_N_ELEMENTS (info_keys); k++)
        if (strcmp (attribute, info_keys[k].attribute) == 0)
          key = info_keys[k].key;

      if (strcmp (attribute, G_FILE_ATTRIBUTE_STANDARD_TYPE) == 0)
        {
          guint32 type = g_file_info_get_attribute_uint32 (info, attribute);

          value = PyUnicode_FromString (type < G_N_ELEMENTS (file_type_names)
                                        ? file_type_names[type] : "unknown");
        }
      else if (key != attribute && strncmp (attribute, "time::", 6) == 0)
        {
          /* Seconds as a float, like os.stat().st_mtime. */
          g_autofree gchar *usec = g_strconcat (attribute, "-usec", NULL);
          gdouble t = (gdouble) g_file_info_get_attribute_uint64 (info, attribute);

          if (g_file_info_has_attribute (info, usec))
            t += g_file_info_get_attribute_uint32 (info, usec) / 1e6;
          value = PyFloat_FromDouble (t);
        }
      else
        value = attribute_to_python (info, attribute);

      if (value == NULL)
        {
          if (PyErr_Occurred ())
            Py_CLEAR (dict);
          continue;
        }
      if (PyDict_SetItemString (dict, key, value) < 0)
        Py_CLEAR (dict);
      Py_DECREF (value);
    }
  return dict;
}

static PyObject *
query_info_finish (GObject       *source,
                   GAsyncResult  *result,
                   gpointer       user_data,
                   GError       **error)
{
  QueryInfo *self = user_data;
  g_autoptr(GFileInfo) info = g_file_query_info_finish (G_FILE (source), result, error);
  GFileAttributeMatcher *matcher;
  PyObject *dict;

  if (info == NULL)
    return NULL;
  dict = file_info_to_dict (info);
  if (dict == NULL)
    return NULL;
  /* GIO sets these flags only when they are true: asked for, absent
   * means False. */
  matcher = g_file_attribute_matcher_new (self->attributes);
  for (gsize k = 0; k < G_N_ELEMENTS (info_keys); k++)
    if ((strcmp (info_keys[k].key, "is_symlink") == 0
         || strcmp (info_keys[k].key, "is_hidden") == 0)
        && g_file_attribute_matcher_matches (matcher, info_keys[k].attribute)
        && !g_file_info_has_attribute (info, info_keys[k].attribute)
        && PyDict_SetItemString (dict, info_keys[k].key, Py_False) < 0)
      Py_CLEAR (dict);
  g_file_attribute_matcher_unref (matcher);
  return dict;
}

PyDoc_STRVAR (query_info_doc,
"query_info(path, attributes=None, *, follow_symlinks=True)\n--\n\n"
"Information about a file, as a dict.\n\n"
"By default the keys are name (str), display_name (str), size (int),\n"
"type ('regular', 'directory', 'symbolic-link', 'special', 'shortcut',\n"
"'mountable' or 'unknown'), is_symlink (bool), mtime (float seconds since\n"
"the epoch, like os.stat().st_mtime), permissions (int, st_mode-like:\n"
"stat.S_ISREG(info['permissions']) works) and etag (str, see\n"
"replace_contents()).\n\n"
"attributes selects what to ask GIO for: a comma-separated str or an\n"
"iterable of str, each a key above or one of is_hidden, symlink_target,\n"
"content_type, atime, ctime, or a GIO attribute name or pattern such as\n"
"'unix::uid', 'standard::*' or '*'. GIO attributes without a key above\n"
"appear under their GIO names. An attribute the file system does not\n"
"have is left out of the dict.\n\n"
"follow_symlinks=False describes a symbolic link itself, like os.lstat.\n\n"
"Example::\n\n"
"    info = await gio.query_info('setup.py', ['size', 'mtime', 'unix::uid'])");

static PyObject *
gio_query_info (PyObject *self,
                PyObject *args,
                PyObject *kwargs)
{
  static char *kwlist[] = { "path", "attributes", "follow_symlinks", NULL };
  PyObject *path, *attributes = Py_None;
  int follow = 1;
  QueryInfo *query;
  gchar *attrs;
  GFile *file;

  if (!PyArg_ParseTupleAndKeywords (args, kwargs, "O|O$p:query_info", kwlist,
                                    &path, &attributes, &follow))
    return NULL;
  file = gab_module_file_from_path (path, "query_info: path");
  if (file == NULL)
    return NULL;
  attrs = parse_info_attributes (attributes);
  if (attrs == NULL)
    {
      g_object_unref (file);
      return NULL;
    }
  query = g_new0 (QueryInfo, 1);
  query->file = file;
  query->attributes = attrs;
  query->flags = follow ? G_FILE_QUERY_INFO_NONE : G_FILE_QUERY_INFO_NOFOLLOW_SYMLINKS;
  return gab_module_operation_new (query_info_start, query_info_finish, query,
                                   query_info_free, g_cancellable_new ());
}

/* ---- list_dir: the enumerator, in batches ----------------------------- */

typedef struct
{
  GFile           *file;
  gboolean         as_bytes;
  /* runtime thread, then the loop thread once the task has returned */
  GTask           *task;
  GCancellable    *cancellable;
  GFileEnumerator *enumerator;
  GPtrArray       *names;
  GError          *error;
} ListDir;

static void
list_dir_free (gpointer data)
{
  ListDir *self = data;

  g_clear_object (&self->file);
  g_clear_object (&self->cancellable);
  g_clear_object (&self->enumerator);
  g_clear_pointer (&self->names, g_ptr_array_unref);
  g_clear_error (&self->error);
  g_free (self);
}

/* Runtime thread: complete *@task_slot with the error kept in *@error_slot,
 * or with success; both slots are emptied. */
static void
task_return_outcome (GTask  **task_slot,
                     GError **error_slot)
{
  GTask *task = g_steal_pointer (task_slot);

  if (*error_slot != NULL)
    g_task_return_error (task, g_steal_pointer (error_slot));
  else
    g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static void
list_dir_return (ListDir *self)
{
  task_return_outcome (&self->task, &self->error);
}

static void
list_dir_closed (GObject      *source,
                 GAsyncResult *result,
                 gpointer      data)
{
  ListDir *self = data;
  GError *error = NULL;

  /* A close error matters only when all else went well. */
  if (!g_file_enumerator_close_finish (G_FILE_ENUMERATOR (source), result, &error))
    {
      if (self->error == NULL)
        self->error = error;
      else
        g_error_free (error);
    }
  list_dir_return (self);
}

static void
list_dir_close (ListDir *self)
{
  /* Not cancellable: the enumerator is always closed. */
  g_file_enumerator_close_async (self->enumerator, G_PRIORITY_DEFAULT, NULL,
                                 list_dir_closed, self);
}

static void list_dir_next (ListDir *self);

static void
list_dir_got_files (GObject      *source,
                    GAsyncResult *result,
                    gpointer      data)
{
  ListDir *self = data;
  GList *files;

  files = g_file_enumerator_next_files_finish (G_FILE_ENUMERATOR (source), result,
                                               &self->error);
  if (files == NULL)
    {
      /* An error, or the end. */
      list_dir_close (self);
      return;
    }
  for (GList *l = files; l != NULL; l = l->next)
    g_ptr_array_add (self->names, g_strdup (g_file_info_get_name (l->data)));
  g_list_free_full (files, g_object_unref);
  list_dir_next (self);
}

static void
list_dir_next (ListDir *self)
{
  g_file_enumerator_next_files_async (self->enumerator, LIST_DIR_BATCH,
                                      G_PRIORITY_DEFAULT, self->cancellable,
                                      list_dir_got_files, self);
}

static void
list_dir_enumerated (GObject      *source,
                     GAsyncResult *result,
                     gpointer      data)
{
  ListDir *self = data;

  self->enumerator = g_file_enumerate_children_finish (G_FILE (source), result,
                                                       &self->error);
  if (self->enumerator == NULL)
    list_dir_return (self);
  else
    list_dir_next (self);
}

static void
list_dir_start (GCancellable        *cancellable,
                GAsyncReadyCallback  callback,
                gpointer             callback_data,
                gpointer             user_data)
{
  ListDir *self = user_data;

  self->task = g_task_new (NULL, NULL, callback, callback_data);
  self->cancellable = g_object_ref (cancellable);
  self->names = g_ptr_array_new_with_free_func (g_free);
  g_file_enumerate_children_async (self->file, G_FILE_ATTRIBUTE_STANDARD_NAME,
                                   G_FILE_QUERY_INFO_NOFOLLOW_SYMLINKS,
                                   G_PRIORITY_DEFAULT, cancellable,
                                   list_dir_enumerated, self);
}

static PyObject *
list_dir_finish (GObject       *source,
                 GAsyncResult  *result,
                 gpointer       user_data,
                 GError       **error)
{
  ListDir *self = user_data;
  PyObject *list;

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  list = PyList_New ((Py_ssize_t) self->names->len);
  for (guint i = 0; list != NULL && i < self->names->len; i++)
    {
      PyObject *name = filename_to_python (g_ptr_array_index (self->names, i),
                                           self->as_bytes);

      if (name == NULL)
        Py_CLEAR (list);
      else
        PyList_SET_ITEM (list, i, name);
    }
  return list;
}

PyDoc_STRVAR (list_dir_doc,
"list_dir(path)\n--\n\n"
"The names of the entries of a directory, like os.listdir: in no\n"
"particular order, without '.' and '..', str names for a str or\n"
"os.PathLike path and bytes names for a bytes path. The enumerator is\n"
"read in batches of 128 entries. Raises NotADirectoryError,\n"
"FileNotFoundError, PermissionError, ... Example::\n\n"
"    for name in await gio.list_dir('/etc'):\n"
"        ...");

static PyObject *
gio_list_dir (PyObject *self,
              PyObject *path)
{
  ListDir *list;
  GFile *file;
  gboolean as_bytes = PyBytes_Check (path);

  if (!as_bytes && !PyUnicode_Check (path)
      && PyObject_HasAttrString (path, "__fspath__"))
    {
      /* os.PathLike: as os.listdir, bytes names for a bytes path. */
      PyObject *fspath = PyOS_FSPath (path);

      if (fspath == NULL)
        return NULL;
      as_bytes = PyBytes_Check (fspath);
      Py_DECREF (fspath);
    }
  file = gab_module_file_from_path (path, "list_dir: path");
  if (file == NULL)
    return NULL;
  list = g_new0 (ListDir, 1);
  list->file = file;
  list->as_bytes = as_bytes;
  return gab_module_operation_new (list_dir_start, list_dir_finish, list,
                                   list_dir_free, g_cancellable_new ());
}

/* ---- copy, with throttled progress ------------------------------------ */

/* Progress crosses to the loop with gab_call_async(), which calls a module
 * function by name: the callables wait here, by copy id. GIL only. */
static PyObject *progress_callbacks;
static guint64   progress_next_id = 1;

typedef struct
{
  GFile          *src;
  GFile          *dst;
  GFileCopyFlags  flags;
  guint64         progress_id;     /* 0: no progress callback */
  GabTaskLocals  *locals;          /* the caller's loop, for progress */

  /* runtime thread */
  GTask          *task;
  GCancellable   *cancellable;
  gboolean        dst_existed;
  gboolean        copy_done;
  gboolean        cleaned_up;
  GError         *error;           /* the copy's, or the progress callback's */
  goffset         current, total;  /* the latest numbers from GIO */
  gboolean        have_progress;
  goffset         sent_current, sent_total;
  gboolean        have_sent;
  gint64          sent_time;
  gboolean        call_pending;    /* a progress call is on its way */
  GSource        *throttle;        /* sends the latest numbers later */
} Copy;

static void
copy_free (gpointer data)
{
  Copy *self = data;

  /* GIL held: forget the progress callable. */
  if (self->progress_id != 0 && progress_callbacks != NULL)
    {
      PyObject *key = PyLong_FromUnsignedLongLong (self->progress_id);

      if (key == NULL || PyDict_DelItem (progress_callbacks, key) < 0)
        PyErr_Clear ();
      Py_XDECREF (key);
    }
  g_clear_pointer (&self->locals, gab_task_locals_unref);
  g_clear_object (&self->src);
  g_clear_object (&self->dst);
  g_clear_object (&self->cancellable);
  g_clear_error (&self->error);
  g_free (self);
}

static void copy_try_complete (Copy *self);
static void progress_maybe_send (Copy *self);

static void
progress_sent (GObject      *source,
               GAsyncResult *result,
               gpointer      data)
{
  Copy *self = data;
  GError *error = NULL;
  GVariant *ret = gab_call_finish (result, &error);

  g_clear_pointer (&ret, g_variant_unref);
  self->call_pending = FALSE;
  if (error != NULL)
    {
      /* The callback raised: that is the copy's outcome, and the copy
       * stops (the partial destination is removed as for a cancel). */
      if (self->error == NULL)
        self->error = error;
      else
        g_error_free (error);
      g_cancellable_cancel (self->cancellable);
    }
  if (self->copy_done)
    copy_try_complete (self);
  else
    progress_maybe_send (self);
}

/* Runtime thread: one call of the Python callback, on the caller's loop,
 * through the bridge's batched queue; no GIL needed here. */
static void
progress_send (Copy *self)
{
  self->have_sent = TRUE;
  self->sent_current = self->current;
  self->sent_total = self->total;
  self->sent_time = g_get_monotonic_time ();
  self->call_pending = TRUE;
  gab_task_locals_push (self->locals);
  gab_call_async ("gasyncbridge.gio", "_copy_progress",
                  g_variant_new ("(txx)", self->progress_id,
                                 (gint64) self->current, (gint64) self->total),
                  NULL, progress_sent, self);
  gab_task_locals_pop (self->locals);
}

static gboolean
progress_throttle_cb (gpointer data)
{
  Copy *self = data;

  g_clear_pointer (&self->throttle, g_source_unref);
  progress_maybe_send (self);
  return G_SOURCE_REMOVE;
}

/* Runtime thread: send the latest numbers if they are new, at most one
 * call in flight and one per PROGRESS_INTERVAL_USEC. */
static void
progress_maybe_send (Copy *self)
{
  gint64 wait;

  if (self->call_pending || self->throttle != NULL || self->copy_done
      || self->error != NULL || !self->have_progress)
    return;
  if (self->have_sent && self->current == self->sent_current
      && self->total == self->sent_total)
    return;
  wait = self->have_sent
         ? self->sent_time + PROGRESS_INTERVAL_USEC - g_get_monotonic_time () : 0;
  if (wait > 0)
    {
      self->throttle = g_timeout_source_new ((guint) (wait / 1000) + 1);
      g_source_set_callback (self->throttle, progress_throttle_cb, self, NULL);
      g_source_attach (self->throttle, g_main_context_get_thread_default ());
      return;
    }
  progress_send (self);
}

static void
copy_progress_cb (goffset  current,
                  goffset  total,
                  gpointer data)
{
  Copy *self = data;

  /* Cheap: GIO may call this for every chunk. */
  if (self->copy_done)
    return;
  self->current = current;
  self->total = total;
  self->have_progress = TRUE;
  progress_maybe_send (self);
}

static void
copy_return (Copy *self)
{
  task_return_outcome (&self->task, &self->error);
}

static void
copy_deleted (GObject      *source,
              GAsyncResult *result,
              gpointer      data)
{
  /* Whatever became of the partial file, the copy's error is the news. */
  g_file_delete_finish (G_FILE (source), result, NULL);
  copy_try_complete (data);
}

/* Runtime thread: the copy is over; report the final progress, remove a
 * partial destination, then complete — in that order, so that Python sees
 * the last progress before the result and no file after a failure. */
static void
copy_try_complete (Copy *self)
{
  if (self->call_pending)
    return;   /* progress_sent() comes back here */
  if (self->error == NULL && self->progress_id != 0 && self->have_progress
      && !(self->have_sent && self->current == self->sent_current
           && self->total == self->sent_total))
    {
      progress_send (self);
      return;
    }
  /* GIO leaves what it wrote when a copy fails (with overwrite, into an
   * existing file, it writes a temporary file and the old one stays). A
   * destination that existed before is never ours to delete, and EXISTS
   * means GIO did not touch it. */
  if (self->error != NULL && !self->dst_existed && !self->cleaned_up
      && !g_error_matches (self->error, G_IO_ERROR, G_IO_ERROR_EXISTS))
    {
      self->cleaned_up = TRUE;
      /* Not cancellable: the cleanup is what a cancel is waiting for. */
      g_file_delete_async (self->dst, G_PRIORITY_DEFAULT, NULL, copy_deleted, self);
      return;
    }
  copy_return (self);
}

static void
copy_ready (GObject      *source,
            GAsyncResult *result,
            gpointer      data)
{
  Copy *self = data;
  GError *error = NULL;

  if (!g_file_copy_finish (G_FILE (source), result, &error))
    {
      /* A progress callback that raised made us cancel: keep its error. */
      if (self->error == NULL)
        self->error = error;
      else
        g_error_free (error);
    }
  self->copy_done = TRUE;
  if (self->throttle != NULL)
    {
      g_source_destroy (self->throttle);
      g_clear_pointer (&self->throttle, g_source_unref);
    }
  copy_try_complete (self);
}

static void
copy_dst_queried (GObject      *source,
                  GAsyncResult *result,
                  gpointer      data)
{
  Copy *self = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GFileInfo) info = g_file_query_info_finish (G_FILE (source), result, &error);

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      self->dst_existed = TRUE;   /* nothing written, nothing to clean */
      self->error = g_steal_pointer (&error);
      copy_return (self);
      return;
    }
  /* When in doubt (no permission to look, say), it is not ours. */
  self->dst_existed = info != NULL || !g_error_matches (error, G_IO_ERROR,
                                                        G_IO_ERROR_NOT_FOUND);
  /* Cancelled while we looked: GIO would copy a small file whole before
   * it checks the cancellable. */
  if (g_cancellable_set_error_if_cancelled (self->cancellable, &self->error))
    {
      copy_return (self);
      return;
    }
  g_file_copy_async (self->src, self->dst, self->flags, G_PRIORITY_DEFAULT,
                     self->cancellable,
                     self->progress_id != 0 ? copy_progress_cb : NULL, self,
                     copy_ready, self);
}

static void
copy_start (GCancellable        *cancellable,
            GAsyncReadyCallback  callback,
            gpointer             callback_data,
            gpointer             user_data)
{
  Copy *self = user_data;

  self->task = g_task_new (NULL, NULL, callback, callback_data);
  self->cancellable = g_object_ref (cancellable);
  /* Whether the destination exists decides whether a failed copy may
   * delete it. */
  g_file_query_info_async (self->dst, G_FILE_ATTRIBUTE_STANDARD_TYPE,
                           G_FILE_QUERY_INFO_NOFOLLOW_SYMLINKS, G_PRIORITY_DEFAULT,
                           cancellable, copy_dst_queried, self);
}

static PyObject *
copy_finish (GObject       *source,
             GAsyncResult  *result,
             gpointer       user_data,
             GError       **error)
{
  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  Py_RETURN_NONE;
}

PyDoc_STRVAR (copy_doc,
"copy(src, dst, *, overwrite=False, progress=None)\n--\n\n"
"Copy the file src to dst (both str, bytes or os.PathLike).\n\n"
"Without overwrite an existing dst raises FileExistsError. With\n"
"overwrite=True an existing dst is replaced; GIO writes a temporary file\n"
"and renames it, so a failed or cancelled copy leaves the old dst intact.\n"
"A failed or cancelled copy to a new dst removes what it wrote.\n\n"
"progress, if given, is called as progress(current, total) (bytes) on\n"
"the event loop's thread, in the caller's context: at most every 50 ms\n"
"however fast GIO reports, and always once with the final numbers before\n"
"copy() returns. If it raises, the copy stops and copy() raises that\n"
"exception. Example::\n\n"
"    def show(current, total):\n"
"        print(f'{current}/{total}')\n"
"    await gio.copy('big.iso', 'backup.iso', progress=show)");

static PyObject *
gio_copy (PyObject *self,
          PyObject *args,
          PyObject *kwargs)
{
  static char *kwlist[] = { "src", "dst", "overwrite", "progress", NULL };
  PyObject *src_path, *dst_path, *progress = Py_None;
  int overwrite = 0;
  GFile *src, *dst;
  Copy *copy;

  if (!PyArg_ParseTupleAndKeywords (args, kwargs, "OO|$pO:copy", kwlist,
                                    &src_path, &dst_path, &overwrite, &progress))
    return NULL;
  if (progress != Py_None && !PyCallable_Check (progress))
    {
      PyErr_Format (PyExc_TypeError, "copy: progress must be callable or None, not %s",
                    Py_TYPE (progress)->tp_name);
      return NULL;
    }
  src = gab_module_file_from_path (src_path, "copy: src");
  if (src == NULL)
    return NULL;
  dst = gab_module_file_from_path (dst_path, "copy: dst");
  if (dst == NULL)
    {
      g_object_unref (src);
      return NULL;
    }

  copy = g_new0 (Copy, 1);
  copy->src = src;
  copy->dst = dst;
  copy->flags = overwrite ? G_FILE_COPY_OVERWRITE : G_FILE_COPY_NONE;
  if (progress != Py_None)
    {
      PyObject *key;

      /* Progress runs on this loop, in (a copy of) this context. */
      copy->locals = gab_task_locals_get_current ();
      if (copy->locals == NULL)
        {
          PyErr_SetString (PyExc_RuntimeError, "copy: no running event loop");
          copy_free (copy);
          return NULL;
        }
      copy->progress_id = progress_next_id++;
      key = PyLong_FromUnsignedLongLong (copy->progress_id);
      if (key == NULL || PyDict_SetItem (progress_callbacks, key, progress) < 0)
        {
          Py_XDECREF (key);
          copy_free (copy);
          return NULL;
        }
      Py_DECREF (key);
    }
  return gab_module_operation_new (copy_start, copy_finish, copy, copy_free,
                                   g_cancellable_new ());
}

/* gasyncbridge.gio._copy_progress (id, current, total): called on the loop
 * through gab_call_async(); an exception here stops the copy. */
static PyObject *
gio_copy_progress (PyObject *self,
                   PyObject *args)
{
  PyObject *key, *callback, *ret;
  long long current, total;

  if (!PyArg_ParseTuple (args, "OLL:_copy_progress", &key, &current, &total))
    return NULL;
  callback = PyDict_GetItemWithError (progress_callbacks, key);
  if (callback == NULL)
    {
      if (PyErr_Occurred ())
        return NULL;
      Py_RETURN_NONE;   /* the copy is over: a late report, dropped */
    }
  Py_INCREF (callback);
  ret = PyObject_CallFunction (callback, "LL", current, total);
  Py_DECREF (callback);
  if (ret == NULL)
    return NULL;
  Py_DECREF (ret);
  Py_RETURN_NONE;
}

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
  task_return_outcome (&self->task, &self->error);
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

/* GIL: an environment value or key (str, bytes or os.PathLike) as bytes. */
static gboolean
env_item (PyObject    *object,
          const char  *what,
          PyObject   **out)
{
  *out = fs_bytes (object, what);
  return *out != NULL;
}

/* GIL: env= as a NULL-terminated "KEY=VALUE" array. */
static gchar **
parse_env (PyObject *env)
{
  GPtrArray *envp;
  PyObject *items, *iter, *item;

  /* Lists have a mapping slot too: a mapping here is a dict or a
   * non-sequence mapping. */
  if (!(PyDict_Check (env) || (PyMapping_Check (env) && !PySequence_Check (env))))
    {
      PyErr_Format (PyExc_TypeError, "communicate: env must be a mapping or None, not %s",
                    Py_TYPE (env)->tp_name);
      return NULL;
    }
  items = PyMapping_Items (env);
  if (items == NULL)
    return NULL;
  iter = PyObject_GetIter (items);
  Py_DECREF (items);
  if (iter == NULL)
    return NULL;
  envp = g_ptr_array_new_with_free_func (g_free);
  while ((item = PyIter_Next (iter)) != NULL)
    {
      PyObject *key = NULL, *value = NULL;
      gboolean ok = PyTuple_Check (item) && PyTuple_GET_SIZE (item) == 2
                    && env_item (PyTuple_GET_ITEM (item, 0), "communicate: env key", &key)
                    && env_item (PyTuple_GET_ITEM (item, 1), "communicate: env value", &value);

      if (ok && (PyBytes_GET_SIZE (key) == 0
                 || strchr (PyBytes_AS_STRING (key), '=') != NULL))
        {
          PyErr_Format (PyExc_ValueError,
                        "communicate: env key %R must be non-empty and without '='", key);
          ok = FALSE;
        }
      if (ok)
        g_ptr_array_add (envp, g_strconcat (PyBytes_AS_STRING (key), "=",
                                            PyBytes_AS_STRING (value), NULL));
      Py_XDECREF (key);
      Py_XDECREF (value);
      Py_DECREF (item);
      if (!ok)
        {
          Py_DECREF (iter);
          g_ptr_array_unref (envp);
          return NULL;
        }
    }
  Py_DECREF (iter);
  if (PyErr_Occurred ())
    {
      g_ptr_array_unref (envp);
      return NULL;
    }
  g_ptr_array_add (envp, NULL);
  return (gchar **) g_ptr_array_free (envp, FALSE);
}

/* GIL: argv= as a NULL-terminated array. */
static gchar **
parse_argv (PyObject *argv)
{
  PyObject *seq;
  GPtrArray *out;
  Py_ssize_t n;

  if (PyUnicode_Check (argv) || PyBytes_Check (argv) || !PySequence_Check (argv))
    {
      PyErr_Format (PyExc_TypeError,
                    "communicate: argv must be a list or tuple of str, bytes or "
                    "os.PathLike, not %s", Py_TYPE (argv)->tp_name);
      return NULL;
    }
  seq = PySequence_Fast (argv, "communicate: argv must be a sequence");
  if (seq == NULL)
    return NULL;
  n = PySequence_Fast_GET_SIZE (seq);
  if (n == 0)
    {
      PyErr_SetString (PyExc_ValueError, "communicate: argv must not be empty");
      Py_DECREF (seq);
      return NULL;
    }
  out = g_ptr_array_new_with_free_func (g_free);
  for (Py_ssize_t i = 0; i < n; i++)
    {
      PyObject *bytes = fs_bytes (PySequence_Fast_GET_ITEM (seq, i), "communicate: argv items");

      if (bytes == NULL)
        {
          Py_DECREF (seq);
          g_ptr_array_unref (out);
          return NULL;
        }
      if (i == 0 && PyBytes_GET_SIZE (bytes) == 0)
        {
          PyErr_SetString (PyExc_ValueError, "communicate: argv[0] must not be empty");
          Py_DECREF (bytes);
          Py_DECREF (seq);
          g_ptr_array_unref (out);
          return NULL;
        }
      g_ptr_array_add (out, g_strdup (PyBytes_AS_STRING (bytes)));
      Py_DECREF (bytes);
    }
  Py_DECREF (seq);
  g_ptr_array_add (out, NULL);
  return (gchar **) g_ptr_array_free (out, FALSE);
}

PyDoc_STRVAR (communicate_doc,
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
"    code, out, err = await gio.communicate(['sort'], b'b\\na\\n')");

static PyObject *
gio_communicate (PyObject *self,
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
  comm->argv = parse_argv (argv);
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
      PyObject *bytes = fs_bytes (cwd, "communicate: cwd");

      if (bytes == NULL)
        goto fail;
      comm->cwd = g_strdup (PyBytes_AS_STRING (bytes));
      Py_DECREF (bytes);
    }
  if (env != Py_None)
    {
      comm->envp = parse_env (env);
      if (comm->envp == NULL)
        goto fail;
    }
  return gab_module_operation_new (communicate_start, communicate_finish, comm,
                                   communicate_free, g_cancellable_new ());

fail:
  communicate_free (comm);
  return NULL;
}

/* ---- resolve ---------------------------------------------------------- */

typedef struct
{
  gchar                    *host;
  GResolverNameLookupFlags  flags;
} Resolve;

static void
resolve_free (gpointer data)
{
  Resolve *self = data;

  g_free (self->host);
  g_free (self);
}

static void
resolve_start (GCancellable        *cancellable,
               GAsyncReadyCallback  callback,
               gpointer             callback_data,
               gpointer             user_data)
{
  Resolve *self = user_data;
  g_autoptr(GResolver) resolver = g_resolver_get_default ();

  g_resolver_lookup_by_name_with_flags_async (resolver, self->host, self->flags,
                                              cancellable, callback, callback_data);
}

static PyObject *
resolve_finish (GObject       *source,
                GAsyncResult  *result,
                gpointer       user_data,
                GError       **error)
{
  GList *addresses;
  PyObject *list;

  addresses = g_resolver_lookup_by_name_with_flags_finish (G_RESOLVER (source), result,
                                                           error);
  if (addresses == NULL)
    return NULL;
  list = PyList_New (0);
  for (GList *l = addresses; list != NULL && l != NULL; l = l->next)
    {
      g_autofree gchar *text = g_inet_address_to_string (l->data);
      PyObject *s = PyUnicode_FromString (text);

      if (s == NULL || PyList_Append (list, s) < 0)
        Py_CLEAR (list);
      Py_XDECREF (s);
    }
  g_resolver_free_addresses (addresses);
  return list;
}

PyDoc_STRVAR (resolve_doc,
"resolve(host, *, family=0)\n--\n\n"
"Resolve a host name with GResolver (the system resolver, in GLib's\n"
"thread pool). Returns the addresses as a list of str, such as\n"
"['127.0.0.1', '::1'], in the resolver's order. family may be\n"
"socket.AF_INET or socket.AF_INET6 to ask for one kind only (0: both).\n"
"A name that does not resolve raises GLibError with the domain\n"
"'g-resolver-error-quark'. Example::\n\n"
"    addresses = await gio.resolve('localhost')");

static PyObject *
gio_resolve (PyObject *self,
             PyObject *args,
             PyObject *kwargs)
{
  static char *kwlist[] = { "host", "family", NULL };
  PyObject *host;
  int family = 0;
  Py_ssize_t len;
  const char *text;
  Resolve *resolve;

  if (!PyArg_ParseTupleAndKeywords (args, kwargs, "O|$i:resolve", kwlist, &host, &family))
    return NULL;
  if (!PyUnicode_Check (host))
    {
      PyErr_Format (PyExc_TypeError, "resolve: host must be a str, not %s",
                    Py_TYPE (host)->tp_name);
      return NULL;
    }
  text = PyUnicode_AsUTF8AndSize (host, &len);
  if (text == NULL)
    return NULL;
  if (len == 0 || (gsize) len != strlen (text))
    {
      PyErr_SetString (PyExc_ValueError,
                       "resolve: host must be non-empty and without NUL characters");
      return NULL;
    }
  if (family != 0 && family != G_SOCKET_FAMILY_IPV4 && family != G_SOCKET_FAMILY_IPV6)
    {
      PyErr_Format (PyExc_ValueError,
                    "resolve: family must be 0, socket.AF_INET or socket.AF_INET6, not %d",
                    family);
      return NULL;
    }
  resolve = g_new0 (Resolve, 1);
  resolve->host = g_strdup (text);
  resolve->flags = family == G_SOCKET_FAMILY_IPV4 ? G_RESOLVER_NAME_LOOKUP_FLAGS_IPV4_ONLY
                   : family == G_SOCKET_FAMILY_IPV6 ? G_RESOLVER_NAME_LOOKUP_FLAGS_IPV6_ONLY
                   : G_RESOLVER_NAME_LOOKUP_FLAGS_DEFAULT;
  return gab_module_operation_new (resolve_start, resolve_finish, resolve,
                                   resolve_free, g_cancellable_new ());
}

/* ---- the submodule ---------------------------------------------------- */

static PyMethodDef gio_methods[] = {
  { "load_contents", gio_load_contents, METH_O, load_contents_doc },
  { "replace_contents", (PyCFunction) (void (*) (void)) gio_replace_contents,
    METH_VARARGS | METH_KEYWORDS, replace_contents_doc },
  { "query_info", (PyCFunction) (void (*) (void)) gio_query_info,
    METH_VARARGS | METH_KEYWORDS, query_info_doc },
  { "list_dir", gio_list_dir, METH_O, list_dir_doc },
  { "copy", (PyCFunction) (void (*) (void)) gio_copy,
    METH_VARARGS | METH_KEYWORDS, copy_doc },
  { "communicate", (PyCFunction) (void (*) (void)) gio_communicate,
    METH_VARARGS | METH_KEYWORDS, communicate_doc },
  { "resolve", (PyCFunction) (void (*) (void)) gio_resolve,
    METH_VARARGS | METH_KEYWORDS, resolve_doc },
  { "_copy_progress", gio_copy_progress, METH_VARARGS,
    "_copy_progress(id, current, total)\n--\n\n"
    "Internal: delivers copy progress on the loop (see copy())." },
  { NULL }
};

static struct PyModuleDef gio_def = {
  PyModuleDef_HEAD_INIT,
  .m_name = "gasyncbridge.gio",
  .m_doc = "GIO operations as asyncio awaitables, on the gasyncbridge runtime.\n\n"
           "Each function returns an Operation (an asyncio.Future) at once: bad\n"
           "arguments raise TypeError or ValueError at the call, before anything\n"
           "starts. The GIO work runs on the runtime thread; await the result on\n"
           "any asyncio loop (uvloop too). GErrors raise the mapped exceptions\n"
           "(FileNotFoundError, PermissionError, ..., else gasyncbridge.GLibError),\n"
           "each with .domain and .code. Cancelling the awaiting task cancels the\n"
           "GIO operation and waits until it has cleaned up.",
  .m_size = -1,
  .m_methods = gio_methods,
};

PyObject *
gab_module_gio_new (void)
{
  PyObject *module = PyModule_Create (&gio_def);

  if (module == NULL)
    return NULL;
  if (progress_callbacks == NULL)
    progress_callbacks = PyDict_New ();
  if (progress_callbacks == NULL
      || (operation_type == NULL && !operation_type_init ())
      || PyModule_AddObject (module, "Operation", Py_NewRef (operation_type)) < 0)
    {
      Py_DECREF (module);
      return NULL;
    }
  return module;
}
