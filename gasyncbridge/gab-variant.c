/* gab-variant.c: GVariant <-> Python value conversion.
 *
 * Every function here is called with the GIL held.
 *
 * GVariant -> Python (gab_variant_to_python()):
 *
 *   NULL                     None
 *   b                        bool
 *   y n q i u x t h          int
 *   d                        float
 *   s o g                    str (GVariant strings are always valid UTF-8)
 *   ay                       bytes (one copy, through g_variant_get_fixed_array())
 *   v                        the boxed value, converted
 *   mT                       None for Nothing, else the value converted
 *                            (so Just (Nothing) of an mmT also gives None)
 *   a{KV}                    dict (a later duplicate key wins)
 *   aT (other arrays)        list
 *   (...)                    tuple; () gives ()
 *   {KV} (a bare entry)      the 2-tuple (key, value)
 *
 * Python -> GVariant, without a type (inference):
 *
 *   None                     mv Nothing (at any position but a list element,
 *                            see lists)
 *   bool                     b (checked before int: bool is an int)
 *   int                      x, or t when it only fits in a uint64; larger
 *                            ints are an error
 *   float                    d
 *   str                      s
 *   any buffer (bytes, bytearray, memoryview, array.array, ...)
 *                            ay, the raw bytes
 *   tuple                    a tuple of the inferred members; () gives ()
 *   list                     aT when every element that is not None infers
 *                            to the same T; if some elements are None, amT
 *                            with every element a maybe; a list of only
 *                            None gives amv of Nothings; [] gives av; a list
 *                            with elements of different types gives av, each
 *                            element boxed (None boxed as mv Nothing)
 *   dict                     a{sv} when every key is a str (and for {}),
 *                            a{xv} when every key is an int (not a bool),
 *                            values boxed; other keys are an error
 *   anything else            an error naming the Python type
 *
 * Python -> GVariant, with a definite type:
 *
 *   b                        bool only
 *   y n q i u x t h          int (or an object with __index__), range
 *                            checked against the width of the type
 *   d                        float or int
 *   s o g                    str; o and g must be a valid object path /
 *                            signature
 *   v                        the value inferred as above, boxed
 *   mT                       None for Nothing, else converted to T
 *                            (so an mmT can never hold Just (Nothing))
 *   ay                       any buffer, or a sequence of int
 *   a{KV}                    a mapping (a dict, or anything with keys() and
 *                            items(), as the dict constructor decides), or
 *                            a sequence of (key, value) pairs
 *   aT (other arrays)        any sequence but str, bytes and bytearray
 *   (...)                    a tuple or list with exactly as many members
 *   {KV}                     a tuple or list (key, value)
 *
 * With an indefinite type ("*", "?", "r", "a*", "(s*)", ...), the value is
 * inferred and accepted when the inferred type is a subtype of the one
 * requested.
 *
 * Failures are GAB_ERROR_CONVERSION errors naming the expected GVariant
 * type and the Python type, prefixed with where in the value they happened
 * ("element 3: ", "member 1: ", "key 'a': ", "value for key 'a': "). Python
 * containers nested more than GAB_VARIANT_MAX_DEPTH levels deep are
 * refused, which also turns a cyclic container into an error. Only
 * containers count as levels: the tuples, lists and dicts inferred, and the
 * objects converted as an array, a tuple or a (key, value) pair; a scalar
 * or a buffer given for `ay` is no level, and the entries of a mapping are
 * the mapping's own level. So 64 nested lists around an int convert, 65 do
 * not. No Python exception is ever left set by gab_variant_from_python():
 * one that was pending when it was called is set again on return,
 * untouched.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gasyncbridge.h>
#include "gab-python.h"

#include <string.h>

/* Deepest nesting of Python containers gab_variant_from_python() accepts:
 * the outermost container is level 1. */
#define GAB_VARIANT_MAX_DEPTH 64

/* Longest str(), in characters, quoted in a message from a Python value or
 * from an exception. */
#define DESCRIBE_MAX_CHARS 40
#define DESCRIBE_EXCEPTION_MAX_CHARS 200

/* A GVariantType's string is not nul-terminated: print it with "%.*s". */
#define TYPE_ARGS(type) \
  (int) g_variant_type_get_string_length (type), g_variant_type_peek_string (type)

#define PY_TYPE_NAME(object) (Py_TYPE (object)->tp_name)

/* ------------------------------------------------------------------------ */
/* GVariant -> Python                                                       */
/* ------------------------------------------------------------------------ */

static PyObject *variant_to_python (GVariant *value);

static PyObject *
array_to_dict (GVariant *value)
{
  gsize n = g_variant_n_children (value);
  PyObject *dict;
  gsize i;

  dict = PyDict_New ();
  if (dict == NULL)
    return NULL;

  for (i = 0; i < n; i++)
    {
      g_autoptr(GVariant) entry = g_variant_get_child_value (value, i);
      g_autoptr(GVariant) key_value = g_variant_get_child_value (entry, 0);
      g_autoptr(GVariant) value_value = g_variant_get_child_value (entry, 1);
      PyObject *key;
      PyObject *item;
      int status;

      key = variant_to_python (key_value);
      if (key == NULL)
        goto fail;

      item = variant_to_python (value_value);
      if (item == NULL)
        {
          Py_DECREF (key);
          goto fail;
        }

      status = PyDict_SetItem (dict, key, item);
      Py_DECREF (key);
      Py_DECREF (item);
      if (status < 0)
        goto fail;
    }

  return dict;

fail:
  Py_DECREF (dict);
  return NULL;
}

/* Arrays give a list; tuples and bare dict entries a tuple. */
static PyObject *
children_to_sequence (GVariant *value,
                      gboolean  tuple)
{
  gsize n = g_variant_n_children (value);
  PyObject *sequence;
  gsize i;

  sequence = tuple ? PyTuple_New ((Py_ssize_t) n) : PyList_New ((Py_ssize_t) n);
  if (sequence == NULL)
    return NULL;

  for (i = 0; i < n; i++)
    {
      g_autoptr(GVariant) child = g_variant_get_child_value (value, i);
      PyObject *item = variant_to_python (child);

      if (item == NULL)
        {
          /* The slots not filled yet are NULL, which both types handle. */
          Py_DECREF (sequence);
          return NULL;
        }
      if (tuple)
        PyTuple_SET_ITEM (sequence, (Py_ssize_t) i, item);
      else
        PyList_SET_ITEM (sequence, (Py_ssize_t) i, item);
    }

  return sequence;
}

static PyObject *
container_to_python (GVariant *value)
{
  switch (g_variant_classify (value))
    {
    case G_VARIANT_CLASS_VARIANT:
      {
        g_autoptr(GVariant) inner = g_variant_get_variant (value);

        return variant_to_python (inner);
      }

    case G_VARIANT_CLASS_MAYBE:
      {
        g_autoptr(GVariant) inner = g_variant_get_maybe (value);

        if (inner == NULL)
          Py_RETURN_NONE;
        return variant_to_python (inner);
      }

    case G_VARIANT_CLASS_ARRAY:
      {
        const GVariantType *element =
          g_variant_type_element (g_variant_get_type (value));

        if (g_variant_type_equal (element, G_VARIANT_TYPE_BYTE))
          {
            gsize n = 0;
            const guint8 *data = g_variant_get_fixed_array (value, &n, 1);

            return PyBytes_FromStringAndSize ((const char *) data,
                                              (Py_ssize_t) n);
          }
        if (g_variant_type_is_dict_entry (element))
          return array_to_dict (value);
        return children_to_sequence (value, FALSE);
      }

    case G_VARIANT_CLASS_TUPLE:
    case G_VARIANT_CLASS_DICT_ENTRY:
      return children_to_sequence (value, TRUE);

    default:
      g_assert_not_reached ();
    }

  return NULL;
}

static PyObject *
variant_to_python (GVariant *value)
{
  switch (g_variant_classify (value))
    {
    case G_VARIANT_CLASS_BOOLEAN:
      return PyBool_FromLong (g_variant_get_boolean (value));

    case G_VARIANT_CLASS_BYTE:
      return PyLong_FromLong (g_variant_get_byte (value));

    case G_VARIANT_CLASS_INT16:
      return PyLong_FromLong (g_variant_get_int16 (value));

    case G_VARIANT_CLASS_UINT16:
      return PyLong_FromLong (g_variant_get_uint16 (value));

    case G_VARIANT_CLASS_INT32:
      return PyLong_FromLong (g_variant_get_int32 (value));

    case G_VARIANT_CLASS_UINT32:
      return PyLong_FromUnsignedLong (g_variant_get_uint32 (value));

    case G_VARIANT_CLASS_INT64:
      return PyLong_FromLongLong (g_variant_get_int64 (value));

    case G_VARIANT_CLASS_UINT64:
      return PyLong_FromUnsignedLongLong (g_variant_get_uint64 (value));

    case G_VARIANT_CLASS_HANDLE:
      return PyLong_FromLong (g_variant_get_handle (value));

    case G_VARIANT_CLASS_DOUBLE:
      return PyFloat_FromDouble (g_variant_get_double (value));

    case G_VARIANT_CLASS_STRING:
    case G_VARIANT_CLASS_OBJECT_PATH:
    case G_VARIANT_CLASS_SIGNATURE:
      {
        gsize length = 0;
        const char *string = g_variant_get_string (value, &length);

        return PyUnicode_DecodeUTF8 (string, (Py_ssize_t) length, "strict");
      }

    case G_VARIANT_CLASS_VARIANT:
    case G_VARIANT_CLASS_MAYBE:
    case G_VARIANT_CLASS_ARRAY:
    case G_VARIANT_CLASS_TUPLE:
    case G_VARIANT_CLASS_DICT_ENTRY:
      {
        PyObject *result;

        /* GVariants cannot be cyclic, but boxes in boxes can go deep. */
        if (Py_EnterRecursiveCall (" while converting a GVariant to Python"))
          return NULL;
        result = container_to_python (value);
        Py_LeaveRecursiveCall ();
        return result;
      }

    default:
      break;
    }

  PyErr_Format (PyExc_TypeError, "unknown GVariant type '%s'",
                g_variant_get_type_string (value));
  return NULL;
}

/**
 * gab_variant_to_python:
 * @value: (nullable): the #GVariant to convert; not consumed, even if its
 *   reference is floating
 *
 * Converts @value into a new Python object. The GIL must be held.
 *
 * Booleans give a bool; every integer type (`y`, `n`, `q`, `i`, `u`, `x`,
 * `t` and the handle `h`) gives an int; `d` gives a float; strings, object
 * paths and signatures give a str; `ay` gives bytes. A variant gives its
 * boxed value converted; a maybe gives None for Nothing, else its value
 * converted. Arrays of dictionary entries give a dict, other arrays a list,
 * tuples a tuple and a lone dictionary entry a 2-tuple (key, value). A %NULL
 * @value gives None.
 *
 * Returns: (transfer full) (nullable): a new reference to the Python object,
 *   or %NULL with a Python exception set (MemoryError, or RecursionError for
 *   a value too deeply nested)
 *
 * Since: 0.1
 */
PyObject *
gab_variant_to_python (GVariant *value)
{
  g_return_val_if_fail (GAB_GIL_HELD (), NULL);
  if (value == NULL)
    Py_RETURN_NONE;

  return variant_to_python (value);
}

/* ------------------------------------------------------------------------ */
/* Python -> GVariant                                                       */
/* ------------------------------------------------------------------------ */

/* str() or repr() of @object for a message, cut to @max_chars characters.
 * Never fails and leaves no exception set. */
static char *
describe_full (PyObject   *object,
               gboolean    repr,
               Py_ssize_t  max_chars)
{
  PyObject *text;
  const char *utf8;
  gboolean truncated = FALSE;
  char *result;

  text = repr ? PyObject_Repr (object) : PyObject_Str (object);
  if (text == NULL)
    goto fail;

  if (PyUnicode_GetLength (text) > max_chars)
    {
      PyObject *head = PyUnicode_Substring (text, 0, max_chars);

      Py_DECREF (text);
      text = head;
      if (text == NULL)
        goto fail;
      truncated = TRUE;
    }

  utf8 = PyUnicode_AsUTF8 (text);
  if (utf8 == NULL)
    {
      Py_DECREF (text);
      goto fail;
    }

  result = g_strconcat (utf8, truncated ? "..." : "", NULL);
  Py_DECREF (text);
  return result;

fail:
  PyErr_Clear ();
  return g_strdup_printf ("<unprintable '%s' object>", PY_TYPE_NAME (object));
}

static char *
describe (PyObject *object,
          gboolean  repr)
{
  return describe_full (object, repr, DESCRIBE_MAX_CHARS);
}

/* Turns the pending Python exception (which must be set) into @error,
 * "<what>: <ExceptionType>: <message>", and clears it. */
static void
set_error_from_exception (GError     **error,
                          const char  *format,
                          ...) G_GNUC_PRINTF (2, 3);

static void
set_error_from_exception (GError     **error,
                          const char  *format,
                          ...)
{
  g_autofree char *what = NULL;
  g_autofree char *message = NULL;
  PyObject *exception;
  va_list args;

  va_start (args, format);
  what = g_strdup_vprintf (format, args);
  va_end (args);

  exception = PyErr_GetRaisedException ();
  if (exception == NULL)
    {
      g_set_error (error, GAB_ERROR, GAB_ERROR_CONVERSION, "%s", what);
      return;
    }

  message = describe_full (exception, FALSE, DESCRIBE_EXCEPTION_MAX_CHARS);
  g_set_error (error, GAB_ERROR, GAB_ERROR_CONVERSION, "%s: %s: %s",
               what, PY_TYPE_NAME (exception), message);
  Py_DECREF (exception);
}

static void
set_type_error (GError             **error,
                PyObject            *object,
                const GVariantType  *type,
                const char          *expected)
{
  g_set_error (error, GAB_ERROR, GAB_ERROR_CONVERSION,
               "expected %s for GVariant type '%.*s', "
               "got Python object of type '%s'",
               expected, TYPE_ARGS (type), PY_TYPE_NAME (object));
}

/* Reading the @what ("elements", "members", "items", "buffer") of @object
 * raised: @error says so, and for which GVariant @type (%NULL when
 * inferring). */
static void
set_read_error (GError             **error,
                const char          *what,
                PyObject            *object,
                const GVariantType  *type)
{
  if (type == NULL)
    set_error_from_exception (error, "cannot read the %s of Python object "
                              "of type '%s'", what, PY_TYPE_NAME (object));
  else
    set_error_from_exception (error, "cannot read the %s of Python object "
                              "of type '%s' for GVariant type '%.*s'",
                              what, PY_TYPE_NAME (object), TYPE_ARGS (type));
}

/* Making a number of @object for @type raised. */
static void
set_number_error (GError             **error,
                  PyObject            *object,
                  const GVariantType  *type)
{
  set_error_from_exception (error,
                            "cannot convert Python object of type '%s' "
                            "to GVariant type '%.*s'",
                            PY_TYPE_NAME (object), TYPE_ARGS (type));
}

/* @number, the value of @object, does not fit in @type. */
static void
set_range_error (GError             **error,
                 PyObject            *number,
                 PyObject            *object,
                 const GVariantType  *type)
{
  g_autofree char *text = describe (number, FALSE);

  g_set_error (error, GAB_ERROR, GAB_ERROR_CONVERSION,
               "value %s out of range for GVariant type '%.*s' "
               "(Python object of type '%s')",
               text, TYPE_ARGS (type), PY_TYPE_NAME (object));
}

static void
variant_unref0 (gpointer value)
{
  if (value != NULL)
    g_variant_unref (value);
}

typedef struct
{
  /* The error is the depth limit: the path to it would be all noise. */
  gboolean too_deep;
} Converter;

#define prefix_error(self, error, ...) \
  G_STMT_START { \
    if (!(self)->too_deep) \
      g_prefix_error ((error), __VA_ARGS__); \
  } G_STMT_END

/* Prefixes @error with the @key of the dict entry whose key (or, if
 * @value, whose value) failed. */
static void
prefix_entry_error (Converter  *self,
                    GError    **error,
                    PyObject   *key,
                    gboolean    value)
{
  g_autofree char *text = NULL;

  if (self->too_deep)
    return;
  text = describe (key, TRUE);
  g_prefix_error (error, "%skey %s: ", value ? "value for " : "", text);
}

/* Called for each Python container, with @depth the number of containers
 * around it: the container itself is level @depth + 1. */
static gboolean
check_depth (Converter  *self,
             guint       depth,
             GError    **error)
{
  if (depth < GAB_VARIANT_MAX_DEPTH)
    return TRUE;

  self->too_deep = TRUE;
  g_set_error (error, GAB_ERROR, GAB_ERROR_CONVERSION,
               "Python containers nested deeper than %d levels "
               "(a cyclic container?) cannot be converted to a GVariant",
               GAB_VARIANT_MAX_DEPTH);
  return FALSE;
}

static GVariant *infer   (Converter           *self,
                          PyObject            *object,
                          guint                depth,
                          GError             **error);
static GVariant *convert (Converter           *self,
                          PyObject            *object,
                          const GVariantType  *type,
                          guint                depth,
                          GError             **error);

/* @object is a str; @type is s, o or g. */
static GVariant *
string_to_variant (PyObject            *object,
                   const GVariantType  *type,
                   GError             **error)
{
  const char *utf8;
  Py_ssize_t length = 0;

  utf8 = PyUnicode_AsUTF8AndSize (object, &length);
  if (utf8 == NULL)
    {
      set_error_from_exception (error,
                                "cannot encode Python object of type '%s' "
                                "as UTF-8 for GVariant type '%.*s'",
                                PY_TYPE_NAME (object), TYPE_ARGS (type));
      return NULL;
    }

  if (memchr (utf8, '\0', (size_t) length) != NULL)
    {
      g_set_error (error, GAB_ERROR, GAB_ERROR_CONVERSION,
                   "Python object of type '%s' with an embedded NUL "
                   "character cannot be converted to GVariant type '%.*s'",
                   PY_TYPE_NAME (object), TYPE_ARGS (type));
      return NULL;
    }

  if (g_variant_type_equal (type, G_VARIANT_TYPE_OBJECT_PATH)
      || g_variant_type_equal (type, G_VARIANT_TYPE_SIGNATURE))
    {
      gboolean path = g_variant_type_equal (type, G_VARIANT_TYPE_OBJECT_PATH);

      if (!(path ? g_variant_is_object_path (utf8) : g_variant_is_signature (utf8)))
        {
          g_autofree char *text = describe (object, TRUE);

          g_set_error (error, GAB_ERROR, GAB_ERROR_CONVERSION,
                       "%s (Python object of type '%s') is not a valid "
                       "%s for GVariant type '%.*s'",
                       text, PY_TYPE_NAME (object),
                       path ? "object path" : "signature", TYPE_ARGS (type));
          return NULL;
        }
      return g_variant_ref_sink (path ? g_variant_new_object_path (utf8)
                                      : g_variant_new_signature (utf8));
    }

  return g_variant_ref_sink (g_variant_new_string (utf8));
}

/* @object supports the buffer protocol: an ay of its bytes. */
static GVariant *
buffer_to_bytestring (PyObject  *object,
                      GError   **error)
{
  Py_buffer view;
  GVariant *result;
  gpointer data;

  if (PyObject_GetBuffer (object, &view, PyBUF_SIMPLE) == 0)
    {
      result = g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, view.buf,
                                          (gsize) view.len, 1);
      PyBuffer_Release (&view);
      return g_variant_ref_sink (result);
    }

  /* Not contiguous (a strided memoryview, say): copy it in C order. */
  PyErr_Clear ();
  if (PyObject_GetBuffer (object, &view, PyBUF_FULL_RO) < 0)
    {
      set_read_error (error, "buffer", object, G_VARIANT_TYPE_BYTESTRING);
      return NULL;
    }

  data = g_malloc (view.len > 0 ? (gsize) view.len : 1);
  if (PyBuffer_ToContiguous (data, &view, view.len, 'C') < 0)
    {
      PyBuffer_Release (&view);
      g_free (data);
      set_read_error (error, "buffer", object, G_VARIANT_TYPE_BYTESTRING);
      return NULL;
    }

  result = g_variant_new_from_data (G_VARIANT_TYPE_BYTESTRING, data,
                                    (gsize) view.len, TRUE, g_free, data);
  PyBuffer_Release (&view);
  return g_variant_ref_sink (result);
}

/* @type is one of y n q i u x t h. */
static GVariant *
int_to_variant (PyObject            *object,
                const GVariantType  *type,
                GError             **error)
{
  const char kind = g_variant_type_peek_string (type)[0];
  PyObject *number;
  GVariant *result = NULL;
  long long value;
  int overflow = 0;

  if (PyLong_Check (object))
    {
      number = object;
      Py_INCREF (number);
    }
  else if (PyIndex_Check (object))
    {
      number = PyNumber_Index (object);
      if (number == NULL)
        {
          set_number_error (error, object, type);
          return NULL;
        }
    }
  else
    {
      set_type_error (error, object, type, "an int");
      return NULL;
    }

  value = PyLong_AsLongLongAndOverflow (number, &overflow);
  if (value == -1 && PyErr_Occurred ())
    {
      set_number_error (error, object, type);
      Py_DECREF (number);
      return NULL;
    }

  if (overflow == 0)
    {
      switch (kind)
        {
        case 'y':
          if (value >= 0 && value <= G_MAXUINT8)
            result = g_variant_new_byte ((guint8) value);
          break;
        case 'n':
          if (value >= G_MININT16 && value <= G_MAXINT16)
            result = g_variant_new_int16 ((gint16) value);
          break;
        case 'q':
          if (value >= 0 && value <= G_MAXUINT16)
            result = g_variant_new_uint16 ((guint16) value);
          break;
        case 'i':
          if (value >= G_MININT32 && value <= G_MAXINT32)
            result = g_variant_new_int32 ((gint32) value);
          break;
        case 'h':
          if (value >= G_MININT32 && value <= G_MAXINT32)
            result = g_variant_new_handle ((gint32) value);
          break;
        case 'u':
          if (value >= 0 && value <= G_MAXUINT32)
            result = g_variant_new_uint32 ((guint32) value);
          break;
        case 'x':
          result = g_variant_new_int64 ((gint64) value);
          break;
        case 't':
          if (value >= 0)
            result = g_variant_new_uint64 ((guint64) value);
          break;
        default:
          g_assert_not_reached ();
        }
    }
  else if (overflow > 0 && kind == 't')
    {
      unsigned long long unsigned_value = PyLong_AsUnsignedLongLong (number);

      if (unsigned_value == (unsigned long long) -1 && PyErr_Occurred ())
        PyErr_Clear ();
      else
        result = g_variant_new_uint64 ((guint64) unsigned_value);
    }

  if (result == NULL)
    set_range_error (error, number, object, type);

  Py_DECREF (number);
  return result != NULL ? g_variant_ref_sink (result) : NULL;
}

static GVariant *
double_to_variant (PyObject            *object,
                   const GVariantType  *type,
                   GError             **error)
{
  PyObject *number;
  double value;

  if (PyFloat_Check (object))
    return g_variant_ref_sink (g_variant_new_double (PyFloat_AS_DOUBLE (object)));

  if (!PyIndex_Check (object))
    {
      set_type_error (error, object, type, "a float or an int");
      return NULL;
    }

  number = PyNumber_Index (object);
  if (number == NULL)
    {
      set_number_error (error, object, type);
      return NULL;
    }

  value = PyLong_AsDouble (number);
  if (value == -1.0 && PyErr_Occurred ())
    {
      PyErr_Clear ();
      set_range_error (error, number, object, type);
      Py_DECREF (number);
      return NULL;
    }

  Py_DECREF (number);
  return g_variant_ref_sink (g_variant_new_double (value));
}

/* Inference ---------------------------------------------------------------- */

static GVariant *
infer_int (PyObject  *object,
           GError   **error)
{
  long long value;
  int overflow = 0;
  g_autofree char *text = NULL;

  value = PyLong_AsLongLongAndOverflow (object, &overflow);
  if (value == -1 && PyErr_Occurred ())
    {
      set_error_from_exception (error,
                                "cannot convert Python object of type '%s' "
                                "to a GVariant", PY_TYPE_NAME (object));
      return NULL;
    }

  if (overflow == 0)
    return g_variant_ref_sink (g_variant_new_int64 ((gint64) value));

  if (overflow > 0)
    {
      unsigned long long unsigned_value = PyLong_AsUnsignedLongLong (object);

      if (!(unsigned_value == (unsigned long long) -1 && PyErr_Occurred ()))
        return g_variant_ref_sink (g_variant_new_uint64 ((guint64) unsigned_value));
      PyErr_Clear ();
    }

  text = describe (object, FALSE);
  g_set_error (error, GAB_ERROR, GAB_ERROR_CONVERSION,
               "int %s out of range for a GVariant (int64/uint64)", text);
  return NULL;
}

static GVariant *
infer_tuple (Converter  *self,
             PyObject   *object,
             guint       depth,
             GError    **error)
{
  Py_ssize_t n = PyTuple_GET_SIZE (object);
  g_autoptr(GPtrArray) children = NULL;
  Py_ssize_t i;

  children = g_ptr_array_new_full ((guint) n, variant_unref0);
  for (i = 0; i < n; i++)
    {
      GVariant *child = infer (self, PyTuple_GET_ITEM (object, i),
                               depth + 1, error);

      if (child == NULL)
        {
          prefix_error (self, error, "member %" G_GSSIZE_FORMAT ": ", i);
          return NULL;
        }
      g_ptr_array_add (children, child);
    }

  return g_variant_ref_sink (g_variant_new_tuple ((GVariant **) children->pdata,
                                                  (gsize) n));
}

static GVariant *
infer_list (Converter  *self,
            PyObject   *object,
            guint       depth,
            GError    **error)
{
  g_autoptr(GPtrArray) children = NULL;
  const GVariantType *common = NULL;
  gboolean mixed = FALSE;
  gboolean has_none = FALSE;
  GVariant **elements;
  GVariant *result;
  PyObject *items;
  Py_ssize_t n, i;

  /* A snapshot, in case converting an element changes the list. */
  items = PySequence_Tuple (object);
  if (items == NULL)
    {
      set_read_error (error, "elements", object, NULL);
      return NULL;
    }

  n = PyTuple_GET_SIZE (items);
  if (n == 0)
    {
      Py_DECREF (items);
      return g_variant_ref_sink (g_variant_new_array (G_VARIANT_TYPE_VARIANT,
                                                      NULL, 0));
    }

  children = g_ptr_array_new_full ((guint) n, variant_unref0);
  for (i = 0; i < n; i++)
    {
      PyObject *item = PyTuple_GET_ITEM (items, i);
      GVariant *child;

      if (item == Py_None)
        {
          has_none = TRUE;
          g_ptr_array_add (children, NULL);
          continue;
        }

      child = infer (self, item, depth + 1, error);
      if (child == NULL)
        {
          Py_DECREF (items);
          prefix_error (self, error, "element %" G_GSSIZE_FORMAT ": ", i);
          return NULL;
        }

      /* `common` points into the first child, which `children` keeps. */
      if (common == NULL)
        common = g_variant_get_type (child);
      else if (!g_variant_type_equal (common, g_variant_get_type (child)))
        mixed = TRUE;
      g_ptr_array_add (children, child);
    }
  Py_DECREF (items);

  if (!mixed && !has_none)
    return g_variant_ref_sink (g_variant_new_array (common,
                                                    (GVariant **) children->pdata,
                                                    (gsize) n));

  /* Wrap every element, in floating references g_variant_new_array() sinks. */
  elements = g_new (GVariant *, n);
  for (i = 0; i < n; i++)
    {
      GVariant *child = g_ptr_array_index (children, i);

      if (mixed)
        elements[i] = g_variant_new_variant (
            child != NULL ? child
                          : g_variant_new_maybe (G_VARIANT_TYPE_VARIANT, NULL));
      else
        elements[i] = g_variant_new_maybe (common != NULL ? common
                                                          : G_VARIANT_TYPE_VARIANT,
                                           child);
    }
  result = g_variant_new_array (NULL, elements, (gsize) n);
  g_free (elements);

  return g_variant_ref_sink (result);
}

static GVariant *
infer_dict (Converter  *self,
            PyObject   *object,
            guint       depth,
            GError    **error)
{
  GVariantBuilder builder;
  const GVariantType *key_type;
  PyObject *items;
  PyObject *bad_key = NULL;
  gboolean all_str = TRUE;
  gboolean all_int = TRUE;
  Py_ssize_t n, i;

  /* A snapshot, in case converting a value changes the dict. */
  items = PyDict_Items (object);
  if (items == NULL)
    {
      set_read_error (error, "items", object, NULL);
      return NULL;
    }
  n = PyList_GET_SIZE (items);

  for (i = 0; i < n; i++)
    {
      PyObject *key = PyTuple_GET_ITEM (PyList_GET_ITEM (items, i), 0);
      gboolean is_str = PyUnicode_Check (key);
      gboolean is_int = PyLong_Check (key) && !PyBool_Check (key);

      all_str = all_str && is_str;
      all_int = all_int && is_int;
      if (!all_str && !all_int)
        {
          /* The first key that does not fit the ones before it. */
          bad_key = key;
          break;
        }
    }

  if (!all_str && !all_int)
    {
      g_set_error (error, GAB_ERROR, GAB_ERROR_CONVERSION,
                   "cannot convert Python object of type '%s' with a key of "
                   "type '%s' to a GVariant: the keys must be all str "
                   "(a{sv}) or all int (a{xv})",
                   PY_TYPE_NAME (object), PY_TYPE_NAME (bad_key));
      Py_DECREF (items);
      return NULL;
    }

  key_type = all_str ? G_VARIANT_TYPE_STRING : G_VARIANT_TYPE_INT64;
  g_variant_builder_init (&builder, all_str ? G_VARIANT_TYPE ("a{sv}")
                                            : G_VARIANT_TYPE ("a{xv}"));

  for (i = 0; i < n; i++)
    {
      PyObject *pair = PyList_GET_ITEM (items, i);
      PyObject *key = PyTuple_GET_ITEM (pair, 0);
      PyObject *item = PyTuple_GET_ITEM (pair, 1);
      GVariant *key_value;
      GVariant *value;

      key_value = all_str ? string_to_variant (key, key_type, error)
                          : int_to_variant (key, key_type, error);
      if (key_value == NULL)
        {
          prefix_entry_error (self, error, key, FALSE);
          goto fail;
        }

      value = infer (self, item, depth + 1, error);
      if (value == NULL)
        {
          g_variant_unref (key_value);
          prefix_entry_error (self, error, key, TRUE);
          goto fail;
        }

      g_variant_builder_add_value (&builder,
                                   g_variant_new_dict_entry (key_value,
                                                             g_variant_new_variant (value)));
      g_variant_unref (key_value);
      g_variant_unref (value);
    }

  Py_DECREF (items);
  return g_variant_ref_sink (g_variant_builder_end (&builder));

fail:
  g_variant_builder_clear (&builder);
  Py_DECREF (items);
  return NULL;
}

static GVariant *
infer (Converter  *self,
       PyObject   *object,
       guint       depth,
       GError    **error)
{
  if (object == Py_None)
    return g_variant_ref_sink (g_variant_new_maybe (G_VARIANT_TYPE_VARIANT,
                                                    NULL));
  /* Before int: bool is a subclass of int. */
  if (PyBool_Check (object))
    return g_variant_ref_sink (g_variant_new_boolean (object == Py_True));
  if (PyLong_Check (object))
    return infer_int (object, error);
  if (PyFloat_Check (object))
    return g_variant_ref_sink (g_variant_new_double (PyFloat_AS_DOUBLE (object)));
  if (PyUnicode_Check (object))
    return string_to_variant (object, G_VARIANT_TYPE_STRING, error);
  if (PyObject_CheckBuffer (object))
    return buffer_to_bytestring (object, error);
  if ((PyTuple_Check (object) || PyList_Check (object) ||
       PyDict_Check (object)) &&
      !check_depth (self, depth, error))
    return NULL;
  if (PyTuple_Check (object))
    return infer_tuple (self, object, depth, error);
  if (PyList_Check (object))
    return infer_list (self, object, depth, error);
  if (PyDict_Check (object))
    return infer_dict (self, object, depth, error);

  g_set_error (error, GAB_ERROR, GAB_ERROR_CONVERSION,
               "cannot convert Python object of type '%s' to a GVariant",
               PY_TYPE_NAME (object));
  return NULL;
}

/* Explicit types ----------------------------------------------------------- */

/* What the dict constructor takes for a mapping rather than for pairs. */
static gboolean
is_mapping (PyObject *object)
{
  return PyDict_Check (object) ||
         (!PyUnicode_Check (object) &&
          !PyBytes_Check (object) &&
          !PyByteArray_Check (object) &&
          PyMapping_Check (object) &&
          PyObject_HasAttrString (object, "keys"));
}

static gboolean
is_sequence (PyObject *object)
{
  return PySequence_Check (object) &&
         !PyUnicode_Check (object) &&
         !PyBytes_Check (object) &&
         !PyByteArray_Check (object);
}

/* @pair is a key and a value from a mapping, or an element given for an
 * entry type. Its key and value are one level deeper than @depth. */
static GVariant *
convert_dict_entry (Converter           *self,
                    PyObject            *pair,
                    const GVariantType  *type,
                    guint                depth,
                    GError             **error)
{
  GVariant *key_value;
  GVariant *value;
  GVariant *result;
  PyObject *items;
  PyObject *key;

  if (!PyTuple_Check (pair) && !PyList_Check (pair))
    {
      set_type_error (error, pair, type, "a (key, value) pair");
      return NULL;
    }

  items = PySequence_Tuple (pair);
  if (items == NULL)
    {
      set_read_error (error, "members", pair, NULL);
      return NULL;
    }

  if (PyTuple_GET_SIZE (items) != 2)
    {
      g_set_error (error, GAB_ERROR, GAB_ERROR_CONVERSION,
                   "expected a (key, value) pair for GVariant type '%.*s', "
                   "got Python object of type '%s' of length %" G_GSSIZE_FORMAT,
                   TYPE_ARGS (type), PY_TYPE_NAME (pair),
                   PyTuple_GET_SIZE (items));
      Py_DECREF (items);
      return NULL;
    }

  key = PyTuple_GET_ITEM (items, 0);
  key_value = convert (self, key, g_variant_type_key (type), depth + 1, error);
  if (key_value == NULL)
    {
      prefix_entry_error (self, error, key, FALSE);
      Py_DECREF (items);
      return NULL;
    }

  value = convert (self, PyTuple_GET_ITEM (items, 1),
                   g_variant_type_value (type), depth + 1, error);
  if (value == NULL)
    {
      prefix_entry_error (self, error, key, TRUE);
      g_variant_unref (key_value);
      Py_DECREF (items);
      return NULL;
    }

  Py_DECREF (items);
  result = g_variant_new_dict_entry (key_value, value);
  g_variant_unref (key_value);
  g_variant_unref (value);
  return g_variant_ref_sink (result);
}

static GVariant *
convert_array (Converter           *self,
               PyObject            *object,
               const GVariantType  *type,
               guint                depth,
               GError             **error)
{
  const GVariantType *element = g_variant_type_element (type);
  gboolean entries = g_variant_type_is_dict_entry (element);
  gboolean mapping;
  GVariantBuilder builder;
  PyObject *items;
  Py_ssize_t n, i;

  if (g_variant_type_equal (element, G_VARIANT_TYPE_BYTE) &&
      PyObject_CheckBuffer (object))
    return buffer_to_bytestring (object, error);

  mapping = entries && is_mapping (object);
  if (!mapping && !is_sequence (object))
    {
      const char *expected = "a sequence (list or tuple)";

      if (entries)
        expected = "a dict or a sequence of (key, value) pairs";
      else if (g_variant_type_equal (element, G_VARIANT_TYPE_BYTE))
        expected = "a bytes-like object or a sequence of int";
      set_type_error (error, object, type, expected);
      return NULL;
    }
  if (!check_depth (self, depth, error))
    return NULL;

  /* A list of the (key, value) pairs of a mapping, or a tuple of the
   * elements of a sequence. */
  if (mapping)
    items = PyDict_Check (object) ? PyDict_Items (object) : PyMapping_Items (object);
  else
    items = PySequence_Tuple (object);
  if (items == NULL)
    {
      set_read_error (error, mapping ? "items" : "elements", object, type);
      return NULL;
    }

  g_variant_builder_init (&builder, type);
  n = PySequence_Fast_GET_SIZE (items);
  for (i = 0; i < n; i++)
    {
      PyObject *item = PySequence_Fast_GET_ITEM (items, i);
      GVariant *child;

      if (mapping)
        /* The pair is the mapping's own level: no depth of its own. */
        child = convert_dict_entry (self, item, element, depth, error);
      else
        {
          child = convert (self, item, element, depth + 1, error);
          if (child == NULL)
            prefix_error (self, error, "element %" G_GSSIZE_FORMAT ": ", i);
        }
      if (child == NULL)
        {
          g_variant_builder_clear (&builder);
          Py_DECREF (items);
          return NULL;
        }
      g_variant_builder_add_value (&builder, child);
      g_variant_unref (child);
    }

  Py_DECREF (items);
  return g_variant_ref_sink (g_variant_builder_end (&builder));
}

static GVariant *
convert_tuple (Converter           *self,
               PyObject            *object,
               const GVariantType  *type,
               guint                depth,
               GError             **error)
{
  g_autoptr(GPtrArray) children = NULL;
  const GVariantType *member;
  gsize n_members = g_variant_type_n_items (type);
  PyObject *items;
  Py_ssize_t i;

  if (!PyTuple_Check (object) && !PyList_Check (object))
    {
      set_type_error (error, object, type, "a tuple or list");
      return NULL;
    }
  if (!check_depth (self, depth, error))
    return NULL;

  items = PySequence_Tuple (object);
  if (items == NULL)
    {
      set_read_error (error, "members", object, type);
      return NULL;
    }

  if ((gsize) PyTuple_GET_SIZE (items) != n_members)
    {
      g_set_error (error, GAB_ERROR, GAB_ERROR_CONVERSION,
                   "expected %" G_GSIZE_FORMAT " members for GVariant type "
                   "'%.*s', got Python object of type '%s' of length "
                   "%" G_GSSIZE_FORMAT,
                   n_members, TYPE_ARGS (type), PY_TYPE_NAME (object),
                   PyTuple_GET_SIZE (items));
      Py_DECREF (items);
      return NULL;
    }

  children = g_ptr_array_new_full ((guint) n_members, variant_unref0);
  for (i = 0, member = g_variant_type_first (type);
       member != NULL;
       i++, member = g_variant_type_next (member))
    {
      GVariant *child = convert (self, PyTuple_GET_ITEM (items, i), member,
                                 depth + 1, error);

      if (child == NULL)
        {
          prefix_error (self, error, "member %" G_GSSIZE_FORMAT ": ", i);
          Py_DECREF (items);
          return NULL;
        }
      g_ptr_array_add (children, child);
    }

  Py_DECREF (items);
  return g_variant_ref_sink (g_variant_new_tuple ((GVariant **) children->pdata,
                                                  n_members));
}

static GVariant *
convert_indefinite (Converter           *self,
                    PyObject            *object,
                    const GVariantType  *type,
                    guint                depth,
                    GError             **error)
{
  g_autoptr(GVariant) inferred = infer (self, object, depth, error);

  if (inferred == NULL)
    return NULL;

  if (!g_variant_type_is_subtype_of (g_variant_get_type (inferred), type))
    {
      g_set_error (error, GAB_ERROR, GAB_ERROR_CONVERSION,
                   "cannot convert Python object of type '%s' to GVariant "
                   "type '%.*s': its inferred type '%s' does not match",
                   PY_TYPE_NAME (object), TYPE_ARGS (type),
                   g_variant_get_type_string (inferred));
      return NULL;
    }

  return g_steal_pointer (&inferred);
}

static GVariant *
convert (Converter           *self,
         PyObject            *object,
         const GVariantType  *type,
         guint                depth,
         GError             **error)
{
  if (!g_variant_type_is_definite (type))
    return convert_indefinite (self, object, type, depth, error);

  switch (g_variant_type_peek_string (type)[0])
    {
    case 'b':
      if (!PyBool_Check (object))
        {
          set_type_error (error, object, type, "a bool");
          return NULL;
        }
      return g_variant_ref_sink (g_variant_new_boolean (object == Py_True));

    case 'y':
    case 'n':
    case 'q':
    case 'i':
    case 'u':
    case 'x':
    case 't':
    case 'h':
      return int_to_variant (object, type, error);

    case 'd':
      return double_to_variant (object, type, error);

    case 's':
    case 'o':
    case 'g':
      if (!PyUnicode_Check (object))
        {
          set_type_error (error, object, type, "a str");
          return NULL;
        }
      return string_to_variant (object, type, error);

    case 'v':
      {
        g_autoptr(GVariant) inner = infer (self, object, depth, error);

        if (inner == NULL)
          return NULL;
        return g_variant_ref_sink (g_variant_new_variant (inner));
      }

    case 'm':
      {
        const GVariantType *element = g_variant_type_element (type);
        g_autoptr(GVariant) inner = NULL;

        if (object == Py_None)
          return g_variant_ref_sink (g_variant_new_maybe (element, NULL));

        inner = convert (self, object, element, depth, error);
        if (inner == NULL)
          return NULL;
        return g_variant_ref_sink (g_variant_new_maybe (NULL, inner));
      }

    case 'a':
      return convert_array (self, object, type, depth, error);

    case '(':
      return convert_tuple (self, object, type, depth, error);

    case '{':
      /* A lone entry is given as a pair, a container; anything else is a
       * type error, which convert_dict_entry() reports. */
      if ((PyTuple_Check (object) || PyList_Check (object)) &&
          !check_depth (self, depth, error))
        return NULL;
      return convert_dict_entry (self, object, type, depth, error);

    default:
      break;
    }

  g_set_error (error, GAB_ERROR, GAB_ERROR_CONVERSION,
               "unsupported GVariant type '%.*s'", TYPE_ARGS (type));
  return NULL;
}

/**
 * gab_variant_from_python:
 * @object: the Python object to convert
 * @type: (nullable): the #GVariantType to convert to, or %NULL to infer one
 * @error: return location for a #GError, or %NULL
 *
 * Converts @object into a #GVariant. The GIL must be held.
 *
 * With a %NULL @type, the type is inferred: None gives `mv` Nothing, bool
 * `b`, int `x` (or `t` for ints that only fit in a uint64), float `d`, str
 * `s`, any bytes-like object `ay`, a tuple a tuple of its inferred members.
 * A list gives `aT` when all its elements that are not None infer to the
 * same `T` (`amT`, elements wrapped in maybes, when some of them are None),
 * and `av` when it is empty or its elements differ. A dict gives `a{sv}`
 * when all its keys are str and `a{xv}` when they are all int.
 *
 * With a definite @type, @object is converted to exactly that type: every
 * integer type is range checked, `d` takes an int or a float, `s`, `o` and
 * `g` take a valid str, `v` boxes the inferred value, `mT` takes None or a
 * `T`, `ay` takes any bytes-like object, arrays take any sequence but str
 * and bytes (arrays of dictionary entries also take a mapping) and tuples a
 * tuple or list of the right length. With an indefinite @type, the inferred
 * value is accepted when its type is a subtype of @type.
 *
 * Python containers nested more than 64 levels deep are refused, so that a
 * cyclic container gives an error: 64 nested lists around an int convert,
 * 65 do not. Only containers count (tuples, lists, dicts and whatever is
 * converted as an array, a tuple or a dictionary entry); the entries of a
 * mapping are the mapping's own level, and a bytes-like object given for
 * `ay` is no level at all. Strings with an embedded NUL cannot be
 * converted.
 *
 * No Python exception is left set: a failure is reported through @error,
 * in the %GAB_ERROR_CONVERSION code of the %GAB_ERROR domain, with a
 * message naming the GVariant type and the Python type involved, and an
 * exception already pending when the function was called is pending again,
 * untouched, when it returns.
 *
 * Returns: (transfer full) (nullable): a new, non-floating #GVariant, or
 *   %NULL with @error set
 *
 * Since: 0.1
 */
GVariant *
gab_variant_from_python (PyObject            *object,
                         const GVariantType  *type,
                         GError             **error)
{
  Converter self = { FALSE };
  PyObject *saved;
  GError *local_error = NULL;
  GVariant *result;

  g_return_val_if_fail (object != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_return_val_if_fail (GAB_GIL_HELD (), NULL);

  /* Conversion calls Python and tells its failures by PyErr_Occurred():
   * set aside whatever exception the caller has pending. */
  saved = PyErr_GetRaisedException ();

  if (type == NULL)
    result = infer (&self, object, 0, &local_error);
  else
    result = convert (&self, object, type, 0, &local_error);

  if (G_UNLIKELY (PyErr_Occurred ()))
    {
      g_critical ("%s: a Python exception was left set", G_STRFUNC);
      PyErr_Clear ();
    }

  PyErr_SetRaisedException (saved);

  if (G_UNLIKELY (result == NULL && local_error == NULL))
    {
      g_critical ("%s: conversion failed without an error", G_STRFUNC);
      g_set_error (&local_error, GAB_ERROR, GAB_ERROR_CONVERSION,
                   "cannot convert Python object of type '%s' to a GVariant",
                   PY_TYPE_NAME (object));
    }
  if (local_error != NULL)
    g_propagate_error (error, local_error);

  return result;
}
