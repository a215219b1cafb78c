/* gasyncbridge-args.c: Python arguments as plain C data, one parser per
 * kind of argument (paths, argv, env), shared by every function. *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gasyncbridge-module.h"

#include <string.h>

/* ---- arguments -------------------------------------------------------- */

/* GIL: str, bytes or os.PathLike to a new bytes object; NULL with
 * TypeError or ValueError set. */
PyObject *
gab_module_fs_bytes (PyObject   *path,
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
  PyObject *bytes = gab_module_fs_bytes (path, what);
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
PyObject *
gab_module_filename_to_python (const char *name,
                    gboolean    as_bytes)
{
  if (as_bytes)
    return PyBytes_FromString (name);
  return PyUnicode_DecodeFSDefault (name);
}

GBytes *
gab_module_data_bytes (PyObject    *data,
                       const char  *what,
                       gboolean     none_ok,
                       PyObject   **owner)
{
  Py_buffer view;
  GBytes *bytes;

  *owner = NULL;
  if (PyUnicode_Check (data))
    {
      PyErr_Format (PyExc_TypeError,
                    "%s must be a bytes-like object%s, not str (encode it first)",
                    what, none_ok ? " or None" : "");
      return NULL;
    }
  if (PyObject_GetBuffer (data, &view, PyBUF_SIMPLE) < 0)
    return NULL;
  /* Empty data needs a non-NULL pointer: GIO's writes reject NULL (and then
   * never call back), and g_bytes_new() of nothing gives NULL. */
  if (view.len == 0)
    bytes = g_bytes_new_static ("", 0);
  else if (PyBytes_CheckExact (data))
    {
      /* No copy: a bytes object never changes and its buffer never moves,
       * so GIO's threads may read it without the GIL while @owner holds
       * it. The GBytes does not own the memory. */
      bytes = g_bytes_new_static (view.buf, (gsize) view.len);
      *owner = Py_NewRef (data);
    }
  else
    /* A copy: the caller may change a bytearray (or what a memoryview
     * shows) while GIO reads it. */
    bytes = g_bytes_new (view.buf, (gsize) view.len);
  PyBuffer_Release (&view);
  return bytes;
}

/* GIL: an environment value or key (str, bytes or os.PathLike) as bytes. */
static gboolean
env_item (PyObject    *object,
          const char  *what,
          PyObject   **out)
{
  *out = gab_module_fs_bytes (object, what);
  return *out != NULL;
}

/* GIL: env= as a NULL-terminated "KEY=VALUE" array. */
gchar **
gab_module_parse_env (PyObject   *env,
                      const char *what)
{
  g_autofree gchar *key_what = g_strconcat (what, " key", NULL);
  g_autofree gchar *value_what = g_strconcat (what, " value", NULL);
  GPtrArray *envp;
  PyObject *items, *iter, *item;

  /* Lists have a mapping slot too: a mapping here is a dict or a
   * non-sequence mapping. */
  if (!(PyDict_Check (env) || (PyMapping_Check (env) && !PySequence_Check (env))))
    {
      PyErr_Format (PyExc_TypeError, "%s must be a mapping or None, not %s",
                    what, Py_TYPE (env)->tp_name);
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
                    && env_item (PyTuple_GET_ITEM (item, 0), key_what, &key)
                    && env_item (PyTuple_GET_ITEM (item, 1), value_what, &value);

      if (ok && (PyBytes_GET_SIZE (key) == 0
                 || strchr (PyBytes_AS_STRING (key), '=') != NULL))
        {
          PyErr_Format (PyExc_ValueError,
                        "%s key %R must be non-empty and without '='", what, key);
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
gchar **
gab_module_parse_argv (PyObject   *argv,
                       const char *what)
{
  g_autofree gchar *items_what = g_strconcat (what, " items", NULL);
  PyObject *seq;
  GPtrArray *out;
  Py_ssize_t n;

  if (PyUnicode_Check (argv) || PyBytes_Check (argv) || !PySequence_Check (argv))
    {
      PyErr_Format (PyExc_TypeError,
                    "%s must be a list or tuple of str, bytes or "
                    "os.PathLike, not %s", what, Py_TYPE (argv)->tp_name);
      return NULL;
    }
  seq = PySequence_Fast (argv, "argv must be a sequence");
  if (seq == NULL)
    return NULL;
  n = PySequence_Fast_GET_SIZE (seq);
  if (n == 0)
    {
      PyErr_Format (PyExc_ValueError, "%s must not be empty", what);
      Py_DECREF (seq);
      return NULL;
    }
  out = g_ptr_array_new_with_free_func (g_free);
  for (Py_ssize_t i = 0; i < n; i++)
    {
      PyObject *bytes = gab_module_fs_bytes (PySequence_Fast_GET_ITEM (seq, i), items_what);

      if (bytes == NULL)
        {
          Py_DECREF (seq);
          g_ptr_array_unref (out);
          return NULL;
        }
      if (i == 0 && PyBytes_GET_SIZE (bytes) == 0)
        {
          PyErr_Format (PyExc_ValueError, "%s[0] must not be empty", what);
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

