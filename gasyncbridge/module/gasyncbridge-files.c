/* gasyncbridge-files.c: gio.replace_contents, query_info, list_dir and
 * copy. (load_contents is in gasyncbridge-file-read.c.) *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gasyncbridge-module.h"

/* Copy progress reaches Python at most this often (plus the final one). */
#define PROGRESS_INTERVAL_USEC (50 * G_TIME_SPAN_MILLISECOND)
/* Directory entries fetched per g_file_enumerator_next_files_async(). */
#define LIST_DIR_BATCH 128

/* ---- replace_contents ------------------------------------------------- */

typedef struct
{
  GFile    *file;
  GBytes   *contents;
  PyObject *data;         /* strong, nullable: the bytes @contents points into */
  gchar    *etag;
  gboolean  make_backup;
} Replace;

static void
replace_free (gpointer data)
{
  Replace *self = data;

  g_clear_object (&self->file);
  g_clear_pointer (&self->contents, g_bytes_unref);
  /* user_data_free runs with the GIL (gab_future_into_py's promise). */
  Py_XDECREF (self->data);
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

const char gab_module_replace_contents_doc[] =
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
"    await gio.replace_contents(path, b'new', etag=info['etag'])";

PyObject *
gab_module_replace_contents (PyObject *self,
                      PyObject *args,
                      PyObject *kwargs)
{
  static char *kwlist[] = { "path", "data", "etag", "make_backup", NULL };
  PyObject *path, *data;
  const char *etag = NULL;
  int make_backup = 0;
  GBytes *contents;
  PyObject *owner;
  Replace *replace;
  GFile *file;

  if (!PyArg_ParseTupleAndKeywords (args, kwargs, "OO|$zp:replace_contents", kwlist,
                                    &path, &data, &etag, &make_backup))
    return NULL;
  contents = gab_module_data_bytes (data, "replace_contents: data", FALSE, &owner);
  if (contents == NULL)
    return NULL;
  file = gab_module_file_from_path (path, "replace_contents: path");
  if (file == NULL)
    {
      g_bytes_unref (contents);
      Py_XDECREF (owner);
      return NULL;
    }
  replace = g_new0 (Replace, 1);
  replace->file = file;
  replace->contents = contents;
  replace->data = owner;
  replace->etag = g_strdup (etag);
  replace->make_backup = make_backup;
  return gab_module_gio_future (replace_start, replace_finish, replace,
                                  replace_free,
                                  GAB_FUTURE_CANCEL_WAITS);
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
  static gchar *default_list;   /* most calls' list: built once, under the GIL */
  GString *out;
  PyObject *iter, *item;

  if (attributes == NULL || attributes == Py_None)
    {
      if (default_list == NULL)
        {
          out = g_string_new (NULL);
          for (gsize i = 0; i < G_N_ELEMENTS (default_info_keys); i++)
            add_info_attribute (out, default_info_keys[i]);
          default_list = g_string_free (out, FALSE);
        }
      return g_strdup (default_list);
    }
  out = g_string_new (NULL);
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

/* A bulk worker: the stat() of a local file, as GIO's async query would
 * do it in GTask's pool. */
static void
query_info_thread (GTask        *task,
                   gpointer      source,
                   gpointer      task_data,
                   GCancellable *cancellable)
{
  QueryInfo *self = task_data;
  GError *error = NULL;
  GFileInfo *info = g_file_query_info (self->file, self->attributes, self->flags,
                                       cancellable, &error);

  if (info != NULL)
    g_task_return_pointer (task, info, g_object_unref);
  else
    g_task_return_error (task, error);
}

/* The worker's function as the task's tag (a function as a data pointer:
 * fine with GCC and clang, undefined for ISO C, hence the extension). */
#define QUERY_INFO_TAG (G_GNUC_EXTENSION ((gpointer) query_info_thread))

/* Runtime thread. A local file is queried in the module's bulk workers:
 * a batch of queries in GTask's pool, which grows past the processors,
 * would keep the loop thread from a CPU (gasyncbridge-workers.c). */
static void
query_info_start (GCancellable        *cancellable,
                  GAsyncReadyCallback  callback,
                  gpointer             callback_data,
                  gpointer             user_data)
{
  QueryInfo *self = user_data;
  GTask *task;

  if (g_file_peek_path (self->file) == NULL)
    {
      g_file_query_info_async (self->file, self->attributes, self->flags,
                               G_PRIORITY_DEFAULT, cancellable, callback, callback_data);
      return;
    }
  task = g_task_new (self->file, cancellable, callback, callback_data);
  g_task_set_source_tag (task, QUERY_INFO_TAG);
  /* The QueryInfo outlives the task: the future frees it, with the GIL. */
  g_task_set_task_data (task, self, NULL);
  gab_module_run_in_worker (task, query_info_thread);
  g_object_unref (task);
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
  g_autoptr(GFileInfo) info = NULL;
  GFileAttributeMatcher *matcher;
  PyObject *dict;

  if (g_task_is_valid (result, source)
      && g_task_get_source_tag (G_TASK (result)) == QUERY_INFO_TAG)
    info = g_task_propagate_pointer (G_TASK (result), error);
  else
    info = g_file_query_info_finish (G_FILE (source), result, error);
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

const char gab_module_query_info_doc[] =
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
"    info = await gio.query_info('setup.py', ['size', 'mtime', 'unix::uid'])";

PyObject *
gab_module_query_info (PyObject *self,
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
  return gab_module_gio_future (query_info_start, query_info_finish, query,
                                  query_info_free,
                                  GAB_FUTURE_CANCEL_WAITS);
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

static void
list_dir_return (ListDir *self)
{
  gab_module_task_return_outcome (&self->task, &self->error);
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
    gab_module_keep_first_error (&self->error, error);
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
      PyObject *name = gab_module_filename_to_python (g_ptr_array_index (self->names, i),
                                           self->as_bytes);

      if (name == NULL)
        Py_CLEAR (list);
      else
        PyList_SET_ITEM (list, i, name);
    }
  return list;
}

const char gab_module_list_dir_doc[] =
"list_dir(path)\n--\n\n"
"The names of the entries of a directory, like os.listdir: in no\n"
"particular order, without '.' and '..', str names for a str or\n"
"os.PathLike path and bytes names for a bytes path. The enumerator is\n"
"read in batches of 128 entries. Raises NotADirectoryError,\n"
"FileNotFoundError, PermissionError, ... Example::\n\n"
"    for name in await gio.list_dir('/etc'):\n"
"        ...";

PyObject *
gab_module_list_dir (PyObject *self,
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
  return gab_module_gio_future (list_dir_start, list_dir_finish, list,
                                  list_dir_free,
                                  GAB_FUTURE_CANCEL_WAITS);
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
      gab_module_keep_first_error (&self->error, error);
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

/* Whether GIO's latest numbers differ from the ones sent last (or none
 * were sent yet). */
static gboolean
progress_is_new (Copy *self)
{
  return !self->have_sent || self->current != self->sent_current
         || self->total != self->sent_total;
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
      || self->error != NULL || !self->have_progress || !progress_is_new (self))
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
  gab_module_task_return_outcome (&self->task, &self->error);
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
      && progress_is_new (self))
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

  /* A progress callback that raised made us cancel: keep its error. */
  if (!g_file_copy_finish (G_FILE (source), result, &error))
    gab_module_keep_first_error (&self->error, error);
  self->copy_done = TRUE;
  gab_module_source_clear (&self->throttle);
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

const char gab_module_copy_doc[] =
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
"    await gio.copy('big.iso', 'backup.iso', progress=show)";

PyObject *
gab_module_copy (PyObject *self,
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
  return gab_module_gio_future (copy_start, gab_future_finish_none, copy, copy_free,
                                  GAB_FUTURE_CANCEL_WAITS);
}

/* gasyncbridge.gio._copy_progress (id, current, total): called on the loop
 * through gab_call_async(); an exception here stops the copy. */
PyObject *
gab_module_copy_progress (PyObject *self,
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


gboolean
gab_module_files_init (void)
{
  if (progress_callbacks == NULL)
    progress_callbacks = PyDict_New ();
  return progress_callbacks != NULL;
}
