/* test-variant.c: GVariant <-> Python value conversion.
 *
 * Runs an embedded interpreter; the main thread holds the GIL throughout.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "../gasyncbridge/gab-python-compat.h"  /* Python.h, with the API of newer versions */
#include <gasyncbridge/gasyncbridge.h>

#include <string.h>

static PyObject *globals;

static const char helpers[] =
  "import sys\n"
  "def same(a, b):\n"
  "    if type(a) is not type(b):\n"
  "        return False\n"
  "    if isinstance(a, (list, tuple)):\n"
  "        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))\n"
  "    if isinstance(a, dict):\n"
  "        return (list(a.keys()) == list(b.keys())\n"
  "                and all(same(a[k], b[k]) for k in a))\n"
  "    if isinstance(a, float) and a != a:\n"
  "        return b != b\n"
  "    return a == b\n";

static void
py_exec (const char *code)
{
  PyObject *result = PyRun_String (code, Py_file_input, globals, globals);

  if (result == NULL)
    {
      PyErr_Print ();
      g_error ("cannot run Python code: %s", code);
    }
  Py_DECREF (result);
}

static PyObject *
py_eval (const char *expression)
{
  PyObject *result = PyRun_String (expression, Py_eval_input, globals, globals);

  if (result == NULL)
    {
      PyErr_Print ();
      g_error ("cannot evaluate Python expression: %s", expression);
    }
  return result;
}

static char *
py_repr (PyObject *object)
{
  PyObject *repr = PyObject_Repr (object);
  char *result;

  g_assert_nonnull (repr);
  result = g_strdup (PyUnicode_AsUTF8 (repr));
  Py_DECREF (repr);
  return result;
}

/* @object equals the value of @expression, types included, all the way
 * down. */
static void
assert_py_same (PyObject   *object,
                const char *expression)
{
  PyObject *expected = py_eval (expression);
  PyObject *same = PyDict_GetItemString (globals, "same");
  PyObject *result;

  g_assert_nonnull (object);
  g_assert_null (PyErr_Occurred ());
  result = PyObject_CallFunctionObjArgs (same, object, expected, NULL);
  g_assert_nonnull (result);
  if (result != Py_True)
    {
      g_autofree char *got = py_repr (object);
      g_autofree char *want = py_repr (expected);

      g_error ("Python value %s is not %s (from %s)", got, want, expression);
    }
  Py_DECREF (result);
  Py_DECREF (expected);
}

/* Converts the GVariant text @text (type annotations allowed) to Python and
 * checks the result against @expression. */
static void
check_to_python (const char *text,
                 const char *expression)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) value = g_variant_parse (NULL, text, NULL, NULL, &error);
  PyObject *object;

  /* g_variant_parse() gives a reference that is not floating. */
  g_assert_no_error (error);
  object = gab_variant_to_python (value);
  assert_py_same (object, expression);
  Py_DECREF (object);
}

static void
assert_variant_equal (GVariant   *value,
                      const char *text)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) expected = g_variant_parse (NULL, text, NULL, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (value);
  g_assert_false (g_variant_is_floating (value));
  if (!g_variant_equal (value, expected))
    {
      g_autofree char *got = g_variant_print (value, TRUE);
      g_autofree char *want = g_variant_print (expected, TRUE);

      g_error ("GVariant %s is not %s", got, want);
    }
}

/* Converts the Python value of @expression to @type_string (NULL to infer)
 * and checks the result against the GVariant text @text. */
static void
check_from_python (const char *expression,
                   const char *type_string,
                   const char *text)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) value = NULL;
  PyObject *object = py_eval (expression);
  Py_ssize_t refcount = Py_REFCNT (object);

  value = gab_variant_from_python (object,
                                   type_string ? G_VARIANT_TYPE (type_string) : NULL,
                                   &error);
  g_assert_no_error (error);
  g_assert_null (PyErr_Occurred ());
  g_assert_cmpint (Py_REFCNT (object), ==, refcount);
  assert_variant_equal (value, text);
  Py_DECREF (object);
}

/* Checks the type inferred for the Python value of @expression. */
static void
check_inferred_type (const char *expression,
                     const char *type_string)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) value = NULL;
  PyObject *object = py_eval (expression);

  value = gab_variant_from_python (object, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (PyErr_Occurred ());
  g_assert_cmpstr (g_variant_get_type_string (value), ==, type_string);
  Py_DECREF (object);
}

/* A conversion after a failed one must still work. */
static void
check_still_works (void)
{
  check_from_python ("{'a': [1, None], 'b': ('x', b'\\0')}", NULL,
                     "{'a': <[just int64 1, nothing]>, 'b': <('x', [byte 0])>}");
  check_from_python ("300", "q", "uint16 300");
}

/* Converting the Python value of @object to @type_string (NULL to infer)
 * fails with a GAB_ERROR_CONVERSION whose message contains every one of the
 * NULL-terminated fragments. */
static void
check_error_object (PyObject   *object,
                    const char *type_string,
                    ...)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) value = NULL;
  Py_ssize_t refcount = Py_REFCNT (object);
  const char *fragment;
  va_list args;

  value = gab_variant_from_python (object,
                                   type_string ? G_VARIANT_TYPE (type_string) : NULL,
                                   &error);
  g_assert_null (value);
  g_assert_error (error, GAB_ERROR, GAB_ERROR_CONVERSION);
  g_assert_null (PyErr_Occurred ());
  g_assert_cmpint (Py_REFCNT (object), ==, refcount);
  g_test_message ("%s -> %s: %s", Py_TYPE (object)->tp_name,
                  type_string ? type_string : "(inferred)", error->message);

  va_start (args, type_string);
  while ((fragment = va_arg (args, const char *)) != NULL)
    {
      if (strstr (error->message, fragment) == NULL)
        g_error ("error message \"%s\" lacks \"%s\"", error->message, fragment);
    }
  va_end (args);

  check_still_works ();
}

static void
check_error (const char *expression,
             const char *type_string,
             const char *fragment1,
             const char *fragment2)
{
  PyObject *object = py_eval (expression);

  check_error_object (object, type_string, fragment1, fragment2, NULL);
  Py_DECREF (object);
}

/* GVariant -> Python ------------------------------------------------------- */

static void
test_to_python_null (void)
{
  PyObject *object = gab_variant_to_python (NULL);

  g_assert_true (object == Py_None);
  Py_DECREF (object);
}

static void
test_to_python_basic (void)
{
  check_to_python ("true", "True");
  check_to_python ("false", "False");
  check_to_python ("byte 0", "0");
  check_to_python ("byte 255", "255");
  check_to_python ("int16 -32768", "-32768");
  check_to_python ("int16 32767", "32767");
  check_to_python ("uint16 65535", "65535");
  check_to_python ("int32 -2147483648", "-2**31");
  check_to_python ("int32 2147483647", "2**31 - 1");
  check_to_python ("uint32 4294967295", "2**32 - 1");
  check_to_python ("int64 -9223372036854775808", "-2**63");
  check_to_python ("int64 9223372036854775807", "2**63 - 1");
  check_to_python ("uint64 18446744073709551615", "2**64 - 1");
  check_to_python ("handle 3", "3");
  check_to_python ("handle -1", "-1");
  check_to_python ("1.5", "1.5");
  check_to_python ("-0.0", "-0.0");
  check_to_python ("'héllo ✓ 😀'", "'héllo ✓ 😀'");
  check_to_python ("''", "''");
  check_to_python ("objectpath '/org/gtk/Foo'", "'/org/gtk/Foo'");
  check_to_python ("signature 'a{sv}'", "'a{sv}'");
}

static void
test_to_python_special_doubles (void)
{
  g_autoptr(GVariant) inf = g_variant_ref_sink (g_variant_new_double (INFINITY));
  g_autoptr(GVariant) nan = g_variant_ref_sink (g_variant_new_double (NAN));
  PyObject *object;

  object = gab_variant_to_python (inf);
  assert_py_same (object, "float('inf')");
  Py_DECREF (object);

  object = gab_variant_to_python (nan);
  assert_py_same (object, "float('nan')");
  Py_DECREF (object);
}

static void
test_to_python_bytestring (void)
{
  static const guint8 data[] = { 0, 'a', 0, 0xff, 0x80, 0 };
  g_autoptr(GVariant) value = NULL;
  g_autoptr(GVariant) empty = NULL;
  PyObject *object;

  value = g_variant_ref_sink (g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE,
                                                         data, sizeof data, 1));
  object = gab_variant_to_python (value);
  assert_py_same (object, "b'\\x00a\\x00\\xff\\x80\\x00'");
  Py_DECREF (object);

  empty = g_variant_ref_sink (g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE,
                                                         NULL, 0, 1));
  object = gab_variant_to_python (empty);
  assert_py_same (object, "b''");
  Py_DECREF (object);

  /* Bytestring literals of the text format carry their terminating nul. */
  check_to_python ("[b'ab', b'']", "[b'ab\\0', b'\\0']");
  check_to_python ("[[byte 1, 0], @ay []]", "[b'\\1\\0', b'']");
}

static void
test_to_python_containers (void)
{
  check_to_python ("<int32 5>", "5");
  check_to_python ("<<'x'>>", "'x'");
  check_to_python ("@mi nothing", "None");
  check_to_python ("@mi 5", "5");
  check_to_python ("@mmi just nothing", "None");
  check_to_python ("@ai []", "[]");
  check_to_python ("[1, 2, 3]", "[1, 2, 3]");
  check_to_python ("['a', 'b']", "['a', 'b']");
  check_to_python ("@a{sv} {}", "{}");
  check_to_python ("{'a': <1>, 'b': <'x'>}", "{'a': 1, 'b': 'x'}");
  check_to_python ("{1: 'one', 2: 'two'}", "{1: 'one', 2: 'two'}");
  check_to_python ("{true: 1.5}", "{True: 1.5}");
  check_to_python ("()", "()");
  check_to_python ("(1, 'a', true)", "(1, 'a', True)");
  check_to_python ("((1,),)", "((1,),)");
  check_to_python ("@{sv} {'k', <2>}", "('k', 2)");
  check_to_python ("[@mi 1, nothing]", "[1, None]");
  check_to_python ("{'a': <[<1>, <'x'>, <@mv nothing>]>, "
                   " 'b': <{'c': <(byte 1, [1.5], @ms 'm')>}>, "
                   " 'd': <@aa{sv} [{}, {'e': <objectpath '/'>}]>}",
                   "{'a': [1, 'x', None], 'b': {'c': (1, [1.5], 'm')}, "
                   " 'd': [{}, {'e': '/'}]}");
}

static void
test_to_python_deep (void)
{
  g_autoptr(GVariant) value = NULL;
  PyObject *object;
  guint i;

  /* Boxes in boxes: deeper than the recursion limit of most Pythons. The
   * conversion may either succeed or raise RecursionError, never crash. */
  value = g_variant_new_int32 (7);
  for (i = 0; i < 20000; i++)
    value = g_variant_new_variant (value);
  g_variant_ref_sink (value);

  object = gab_variant_to_python (value);
  if (object == NULL)
    {
      g_assert_true (PyErr_ExceptionMatches (PyExc_RecursionError));
      PyErr_Clear ();
    }
  else
    {
      assert_py_same (object, "7");
      Py_DECREF (object);
    }

  /* A hundred levels is fine everywhere. */
  g_clear_pointer (&value, g_variant_unref);
  value = g_variant_new_int32 (7);
  for (i = 0; i < 100; i++)
    value = g_variant_new_variant (value);
  g_variant_ref_sink (value);
  object = gab_variant_to_python (value);
  assert_py_same (object, "7");
  Py_DECREF (object);
}

/* Untrusted serialized data, random bytes: never a crash, and NULL only
 * with an exception set. */
static void
test_to_python_untrusted (void)
{
  static const char *const types[] = {
    "s", "o", "g", "ay", "as", "a{sv}", "(asmv)", "aay", "a(yqs)", "mmv",
    "a{ss}", "v", "av", "(ybnqiuxthdsog)",
  };
  guint t, round, i;

  for (t = 0; t < G_N_ELEMENTS (types); t++)
    for (round = 0; round < 200; round++)
      {
        guint8 data[64];
        gsize size = (gsize) g_test_rand_int_range (0, sizeof data);
        g_autoptr(GVariant) value = NULL;
        PyObject *object;

        for (i = 0; i < size; i++)
          data[i] = (guint8) g_test_rand_int_range (0, 256);
        value = g_variant_ref_sink (
            g_variant_new_from_data (G_VARIANT_TYPE (types[t]), data, size,
                                     FALSE, NULL, NULL));
        /* The variant copies nothing: keep `data` alive while it lives. */
        object = gab_variant_to_python (value);
        if (object == NULL)
          {
            g_assert_nonnull (PyErr_Occurred ());
            PyErr_Clear ();
          }
        else
          {
            g_assert_null (PyErr_Occurred ());
            Py_DECREF (object);
          }
      }
}

/* Python -> GVariant, inferred --------------------------------------------- */

static void
test_infer_basic (void)
{
  check_from_python ("None", NULL, "@mv nothing");
  check_from_python ("True", NULL, "true");
  check_from_python ("False", NULL, "false");
  check_from_python ("0", NULL, "int64 0");
  check_from_python ("-1", NULL, "int64 -1");
  check_from_python ("2**63 - 1", NULL, "int64 9223372036854775807");
  check_from_python ("-2**63", NULL, "int64 -9223372036854775808");
  check_from_python ("2**63", NULL, "uint64 9223372036854775808");
  check_from_python ("2**64 - 1", NULL, "uint64 18446744073709551615");
  check_from_python ("1.5", NULL, "1.5");
  check_from_python ("float('inf')", NULL, "inf");
  check_from_python ("'héllo ✓ 😀'", NULL, "'héllo ✓ 😀'");
  check_from_python ("''", NULL, "''");
  check_from_python ("b''", NULL, "@ay []");
  check_from_python ("b'\\0a\\0\\xff'", NULL, "[byte 0, 0x61, 0, 0xff]");
  check_from_python ("bytearray(b'x\\0y')", NULL, "[byte 0x78, 0, 0x79]");
  check_from_python ("memoryview(b'abc')", NULL, "[byte 0x61, 0x62, 0x63]");
  check_from_python ("memoryview(b'abcdef')[::2]", NULL, "[byte 0x61, 0x63, 0x65]");
  check_from_python ("__import__('array').array('B', [1, 0, 2])", NULL,
                     "[byte 1, 0, 2]");

  /* Subclasses convert like their base. */
  py_exec ("import enum\n"
           "class Color(enum.IntEnum):\n"
           "    RED = 3\n"
           "class Text(str): pass\n");
  check_from_python ("Color.RED", NULL, "int64 3");
  check_from_python ("Text('t')", NULL, "'t'");
}

static void
test_infer_types (void)
{
  check_inferred_type ("None", "mv");
  check_inferred_type ("True", "b");
  check_inferred_type ("1", "x");
  check_inferred_type ("2**63", "t");
  check_inferred_type ("1.0", "d");
  check_inferred_type ("'s'", "s");
  check_inferred_type ("b'\\0'", "ay");
  check_inferred_type ("()", "()");
  check_inferred_type ("(1, 'x', b'\\0')", "(xsay)");
  check_inferred_type ("(None, True)", "(mvb)");
  check_inferred_type ("[]", "av");
  check_inferred_type ("[1, 2, 3]", "ax");
  check_inferred_type ("[1, None, 3]", "amx");
  check_inferred_type ("[None, 'a']", "ams");
  check_inferred_type ("[None]", "amv");
  check_inferred_type ("[None, None]", "amv");
  check_inferred_type ("[1, 'a']", "av");
  check_inferred_type ("[True, 1]", "av");
  check_inferred_type ("[1, 2**63]", "av");
  check_inferred_type ("[1, 'a', None]", "av");
  check_inferred_type ("[[1, 2], [3]]", "aax");
  check_inferred_type ("[[1], []]", "av");
  check_inferred_type ("[(1, 'a'), (2, 'b')]", "a(xs)");
  check_inferred_type ("[b'a', b'']", "aay");
  check_inferred_type ("{}", "a{sv}");
  check_inferred_type ("{'a': 1}", "a{sv}");
  check_inferred_type ("{1: 'a', -5: None}", "a{xv}");
  check_inferred_type ("[{'a': 1}, {}]", "aa{sv}");
}

static void
test_infer_values (void)
{
  check_from_python ("[1, None, 3]", NULL, "[just int64 1, nothing, just 3]");
  check_from_python ("[None, None]", NULL, "@amv [nothing, nothing]");
  check_from_python ("[1, 'a', None]", NULL, "[<int64 1>, <'a'>, <@mv nothing>]");
  check_from_python ("[]", NULL, "@av []");
  check_from_python ("(1, 'x', b'\\0')", NULL, "(int64 1, 'x', [byte 0])");
  check_from_python ("{'a': 1, 'b': None, 'c': [1.5]}", NULL,
                     "{'a': <int64 1>, 'b': <@mv nothing>, 'c': <[1.5]>}");
  check_from_python ("{-1: 'm', 2**62: b''}", NULL,
                     "{int64 -1: <'m'>, 4611686018427387904: <@ay []>}");
  check_from_python ("{'n': {'m': [(1, [None, 'z'])]}}", NULL,
                     "{'n': <{'m': <[(int64 1, [@ms nothing, 'z'])]>}>}");
}

static void
test_infer_errors (void)
{
  check_error ("2**64", NULL, "18446744073709551616", "int64/uint64");
  check_error ("-2**63 - 1", NULL, "-9223372036854775809", "int64/uint64");
  check_error ("10**100", NULL, "out of range", "...");
  check_error ("set()", NULL, "'set'", "to a GVariant");
  check_error ("object()", NULL, "'object'", "to a GVariant");
  check_error ("frozenset([1])", NULL, "'frozenset'", NULL);
  check_error ("1j", NULL, "'complex'", NULL);
  check_error ("range(3)", NULL, "'range'", NULL);
  check_error ("[1, set()]", NULL, "element 1: ", "'set'");
  check_error ("(1, [2, 2**64])", NULL, "member 1: element 1: ", "int64/uint64");
  check_error ("{'a': {'b': object()}}", NULL,
               "value for key 'a': value for key 'b': ", "'object'");
  check_error ("{'a': 1, 2: 3}", NULL, "'int'", "a{sv}");
  check_error ("{2: 1, 'a': 3}", NULL, "'str'", "a{xv}");
  check_error ("{1.5: 1}", NULL, "'float'", "all str");
  check_error ("{True: 1}", NULL, "'bool'", "all int");
  check_error ("{2**64: 1}", NULL, "key 18446744073709551616: ", "'x'");
  check_error ("'a\\0b'", NULL, "embedded NUL", "'s'");
  check_error ("{'a\\0b': 1}", NULL, "key 'a\\x00b': ", "embedded NUL");
  check_error ("'\\ud800'", NULL, "'str'", "UTF-8");
}

static void
test_infer_cyclic (void)
{
  PyObject *object;

  object = py_eval ("(lambda l: (l.append(l), l)[1])([])");
  check_error_object (object, NULL, "deeper than 64", NULL);
  check_error_object (object, "av", "deeper than 64", NULL);
  check_error_object (object, "*", "deeper than 64", NULL);
  /* Break the cycle, or the interpreter keeps it until a collection. */
  g_assert_cmpint (PyList_SetSlice (object, 0, 1, NULL), ==, 0);
  Py_DECREF (object);

  object = py_eval ("(lambda d: (d.__setitem__('d', d), d)[1])({})");
  check_error_object (object, NULL, "deeper than 64", NULL);
  check_error_object (object, "a{sv}", "deeper than 64", NULL);
  PyDict_Clear (object);
  Py_DECREF (object);

  object = py_eval ("(lambda l: (l.append((1, l)), l)[1])([])");
  check_error_object (object, NULL, "deeper than 64", NULL);
  PyList_SetSlice (object, 0, 1, NULL);
  Py_DECREF (object);
}

/* @n nested lists around the value of @leaf: nested (2, "7") is [[7]]. */
static PyObject *
py_nested (guint       n,
           const char *leaf)
{
  PyObject *object = py_eval (leaf);
  guint i;

  for (i = 0; i < n; i++)
    {
      PyObject *list = PyList_New (1);

      PyList_SET_ITEM (list, 0, object);
      object = list;
    }
  return object;
}

/* @n copies of @open, then @middle, then @n copies of @close. */
static char *
repeat_around (guint       n,
               const char *open,
               const char *middle,
               const char *close)
{
  GString *result = g_string_new (NULL);
  guint i;

  for (i = 0; i < n; i++)
    g_string_append (result, open);
  g_string_append (result, middle);
  for (i = 0; i < n; i++)
    g_string_append (result, close);
  return g_string_free (result, FALSE);
}

/* @object converts (with @type_string, or inferred) to a value of type
 * @expected_type, returned. */
static GVariant *
check_converts_to (PyObject   *object,
                   const char *type_string,
                   const char *expected_type)
{
  g_autoptr(GError) error = NULL;
  GVariant *value;

  value = gab_variant_from_python (object,
                                   type_string ? G_VARIANT_TYPE (type_string) : NULL,
                                   &error);
  g_assert_no_error (error);
  g_assert_null (PyErr_Occurred ());
  g_assert_cmpstr (g_variant_get_type_string (value), ==, expected_type);
  return value;
}

/* The same, and the value converts back to a Python value equal to
 * @object: nothing was cut off. */
static void
check_converts (PyObject   *object,
                const char *type_string,
                const char *expected_type)
{
  g_autoptr(GVariant) value = check_converts_to (object, type_string,
                                                 expected_type);
  PyObject *back = gab_variant_to_python (value);
  PyObject *equal;

  g_assert_nonnull (back);
  equal = PyObject_CallFunctionObjArgs (PyDict_GetItemString (globals, "same"),
                                        object, back, NULL);
  g_assert_true (equal == Py_True);
  Py_DECREF (equal);
  Py_DECREF (back);
}

static void
test_depth_limit (void)
{
  g_autofree char *array_64 = repeat_around (64, "a", "x", "");
  g_autofree char *array_65 = repeat_around (65, "a", "x", "");
  g_autofree char *tuple_64 = repeat_around (64, "(", "x", ")");
  g_autofree char *tuple_65 = repeat_around (65, "(", "x", ")");
  g_autofree char *empty_64 = repeat_around (64, "a", "v", "");
  g_autofree char *bytes_65 = repeat_around (65, "a", "y", "");
  g_autofree char *dict_64 = repeat_around (63, "a", "a{sx}", "");
  g_autofree char *pairs_64 = repeat_around (62, "a", "a{sx}", "");
  g_autoptr(GVariant) value = NULL;
  PyObject *object;

  /* 64 levels of containers convert, 65 do not: the value inside the
   * innermost container is no level of its own. */
  object = py_nested (64, "7");
  check_converts (object, NULL, array_64);
  check_converts (object, array_64, array_64);
  check_converts (object, "*", array_64);
  Py_DECREF (object);

  object = py_nested (65, "7");
  check_error_object (object, NULL, "nested deeper than 64 levels", NULL);
  check_error_object (object, array_65, "nested deeper than 64 levels", NULL);
  check_error_object (object, "*", "nested deeper than 64 levels", NULL);
  check_error_object (object, "av", "nested deeper than 64 levels", NULL);
  Py_DECREF (object);

  /* An empty innermost container is a level. */
  object = py_nested (63, "[]");
  check_converts (object, NULL, empty_64);
  Py_DECREF (object);
  object = py_nested (64, "[]");
  check_error_object (object, NULL, "nested deeper than 64 levels", NULL);
  Py_DECREF (object);

  /* Tuples and dicts count like lists. */
  py_exec ("def nested_in(wrap, n, leaf=7):\n"
           "    for _ in range(n):\n"
           "        leaf = wrap(leaf)\n"
           "    return leaf\n");
  object = py_eval ("nested_in(lambda x: (x,), 64)");
  check_converts (object, NULL, tuple_64);
  check_converts (object, tuple_64, tuple_64);
  Py_DECREF (object);
  object = py_eval ("nested_in(lambda x: (x,), 65)");
  check_error_object (object, NULL, "nested deeper than 64 levels", NULL);
  check_error_object (object, tuple_65, "nested deeper than 64 levels", NULL);
  Py_DECREF (object);

  object = py_eval ("nested_in(lambda x: {'k': x}, 64)");
  check_converts (object, NULL, "a{sv}");
  check_converts (object, "a{sv}", "a{sv}");
  Py_DECREF (object);
  object = py_eval ("nested_in(lambda x: {'k': x}, 65)");
  check_error_object (object, NULL, "nested deeper than 64 levels", NULL);
  check_error_object (object, "a{sv}", "nested deeper than 64 levels", NULL);
  Py_DECREF (object);

  /* Bytes given for `ay` are no container: 64 lists around them make 65
   * arrays. */
  object = py_nested (64, "b'ab'");
  check_converts (object, bytes_65, bytes_65);
  Py_DECREF (object);

  /* The entries of a mapping are its own level, but a (key, value) pair
   * given in a sequence is a container: 63 lists around a dict are 64
   * levels, 63 around a list of pairs 65. */
  object = py_nested (63, "{'k': 7}");
  check_converts (object, dict_64, dict_64);
  Py_DECREF (object);
  object = py_nested (62, "[('k', 7)]");
  value = check_converts_to (object, pairs_64, pairs_64);
  Py_DECREF (object);
  object = py_nested (63, "[('k', 7)]");
  check_error_object (object, dict_64, "nested deeper than 64 levels", NULL);
  Py_DECREF (object);
}

/* GVariant -> Python has no limit of its own: the 64 levels
 * gab_variant_from_python() takes come back, and so do more. */
static void
test_depth_limit_to_python (void)
{
  guint depths[] = { 64, 65, 100 };
  gsize i;

  for (i = 0; i < G_N_ELEMENTS (depths); i++)
    {
      g_autofree char *type_string = repeat_around (depths[i], "a", "x", "");
      g_autoptr(GVariant) value = g_variant_ref_sink (g_variant_new_int64 (7));
      g_autoptr(GVariant) back = NULL;
      g_autoptr(GError) error = NULL;
      PyObject *object;
      PyObject *expected = py_nested (depths[i], "7");
      PyObject *equal;
      guint j;

      for (j = 0; j < depths[i]; j++)
        {
          GVariant *outer = g_variant_new_array (NULL, &value, 1);

          g_variant_unref (value);
          value = g_variant_ref_sink (outer);
        }
      g_assert_cmpstr (g_variant_get_type_string (value), ==, type_string);

      object = gab_variant_to_python (value);
      g_assert_nonnull (object);
      equal = PyObject_CallFunctionObjArgs (PyDict_GetItemString (globals, "same"),
                                            object, expected, NULL);
      g_assert_true (equal == Py_True);
      Py_DECREF (equal);
      Py_DECREF (expected);

      /* And back, up to the limit. */
      back = gab_variant_from_python (object, g_variant_get_type (value), &error);
      if (depths[i] <= 64)
        {
          g_assert_no_error (error);
          g_assert_true (g_variant_equal (back, value));
        }
      else
        {
          g_assert_error (error, GAB_ERROR, GAB_ERROR_CONVERSION);
          g_assert_null (back);
        }
      Py_DECREF (object);
    }
}

/* Python -> GVariant, explicit type ---------------------------------------- */

static void
test_explicit_basic (void)
{
  check_from_python ("True", "b", "true");
  check_from_python ("False", "b", "false");
  check_from_python ("0", "y", "byte 0");
  check_from_python ("255", "y", "byte 255");
  check_from_python ("-32768", "n", "int16 -32768");
  check_from_python ("32767", "n", "int16 32767");
  check_from_python ("0", "q", "uint16 0");
  check_from_python ("65535", "q", "uint16 65535");
  check_from_python ("-2**31", "i", "int32 -2147483648");
  check_from_python ("2**31 - 1", "i", "int32 2147483647");
  check_from_python ("0", "u", "uint32 0");
  check_from_python ("2**32 - 1", "u", "uint32 4294967295");
  check_from_python ("-2**63", "x", "int64 -9223372036854775808");
  check_from_python ("2**63 - 1", "x", "int64 9223372036854775807");
  check_from_python ("0", "t", "uint64 0");
  check_from_python ("2**64 - 1", "t", "uint64 18446744073709551615");
  check_from_python ("-2**31", "h", "handle -2147483648");
  check_from_python ("2**31 - 1", "h", "handle 2147483647");
  check_from_python ("True", "i", "int32 1");
  check_from_python ("1.25", "d", "1.25");
  check_from_python ("3", "d", "3.0");
  check_from_python ("-2**70", "d", "-1180591620717411303424.0");
  check_from_python ("'héllo'", "s", "'héllo'");
  check_from_python ("'/'", "o", "objectpath '/'");
  check_from_python ("'/org/gtk/Foo_1'", "o", "objectpath '/org/gtk/Foo_1'");
  check_from_python ("''", "g", "signature ''");
  check_from_python ("'a{sv}(ii)'", "g", "signature 'a{sv}(ii)'");

  /* Objects with __index__ convert to integer types. */
  py_exec ("class Index:\n"
           "    def __init__(self, v): self.v = v\n"
           "    def __index__(self): return self.v\n");
  check_from_python ("Index(200)", "y", "byte 200");
  check_from_python ("Index(7)", "d", "7.0");
}

static void
test_explicit_containers (void)
{
  check_from_python ("5", "v", "<int64 5>");
  check_from_python ("None", "v", "<@mv nothing>");
  check_from_python ("[1, 'a']", "v", "<[<int64 1>, <'a'>]>");
  check_from_python ("None", "mi", "@mi nothing");
  check_from_python ("5", "mi", "@mi 5");
  check_from_python ("None", "mmi", "@mmi nothing");
  check_from_python ("5", "mmi", "@mmi 5");
  check_from_python ("[]", "ai", "@ai []");
  check_from_python ("[1, 2]", "ai", "[1, 2]");
  check_from_python ("(1, 2)", "aq", "[uint16 1, 2]");
  check_from_python ("range(3)", "an", "[int16 0, 1, 2]");
  check_from_python ("[1, 'a', None]", "av", "[<int64 1>, <'a'>, <@mv nothing>]");
  check_from_python ("[None, 2]", "ami", "[@mi nothing, 2]");
  check_from_python ("[b'a\\0', bytearray(b'')]", "aay", "[[byte 0x61, 0], @ay []]");
  check_from_python ("[1, 2, 255]", "ay", "[byte 1, 2, 255]");
  check_from_python ("b'\\0\\1'", "ay", "[byte 0, 1]");
  check_from_python ("['/a', '/b']", "ao", "[objectpath '/a', '/b']");
  check_from_python ("{}", "a{sv}", "@a{sv} {}");
  check_from_python ("{'a': 1, 'b': 'x'}", "a{sv}", "{'a': <int64 1>, 'b': <'x'>}");
  check_from_python ("{'a': 1, 'b': 2}", "a{si}", "{'a': 1, 'b': 2}");
  check_from_python ("{1: [1.5], 2: []}", "a{yad}", "{byte 1: [1.5], 2: []}");
  check_from_python ("[('a', 1), ('a', 2)]", "a{si}", "{'a': 1, 'a': 2}");
  check_from_python ("__import__('types').MappingProxyType({'k': True})",
                     "a{sb}", "{'k': true}");
  check_from_python ("__import__('collections').OrderedDict(z=1, a=2)",
                     "a{su}", "{'z': uint32 1, 'a': 2}");
  check_from_python ("()", "()", "()");
  check_from_python ("[]", "()", "()");
  check_from_python ("(1, 'a', None)", "(ismi)", "(1, 'a', @mi nothing)");
  check_from_python ("[1, ['x']]", "(yas)", "(byte 1, ['x'])");
  check_from_python ("('k', 5)", "{sv}", "@{sv} {'k', <int64 5>}");
  check_from_python ("{'outer': {'inner': [(1, [None, (2, 'x')])]}}",
                     "a{sa{sa(uam(qs))}}",
                     "{'outer': {'inner': [(uint32 1, [@m(qs) nothing, "
                     "(2, 'x')])]}}");
}

static void
test_explicit_indefinite (void)
{
  check_from_python ("1", "*", "int64 1");
  check_from_python ("'a'", "?", "'a'");
  check_from_python ("None", "*", "@mv nothing");
  check_from_python ("None", "m*", "@mv nothing");
  check_from_python ("(1,)", "r", "(int64 1,)");
  check_from_python ("[1]", "a*", "[int64 1]");
  check_from_python ("[1]", "a?", "[int64 1]");
  check_from_python ("('a', [2])", "(s*)", "('a', [int64 2])");
  check_from_python ("{'a': 1}", "a{?*}", "{'a': <int64 1>}");

  check_error ("[1]", "?", "'?'", "'ax'");
  check_error ("(1,)", "a*", "'a*'", "'(x)'");
  check_error ("None", "?", "'?'", "'NoneType'");
  check_error ("set()", "*", "'set'", NULL);
}

static void
test_explicit_range_errors (void)
{
  static const struct
  {
    const char *expression;
    const char *type;
    const char *value;
  } cases[] = {
    { "256", "y", "value 256 " },
    { "-1", "y", "value -1 " },
    { "32768", "n", "value 32768 " },
    { "-32769", "n", "value -32769 " },
    { "65536", "q", "value 65536 " },
    { "-1", "q", "value -1 " },
    { "2**31", "i", "value 2147483648 " },
    { "-2**31 - 1", "i", "value -2147483649 " },
    { "2**32", "u", "value 4294967296 " },
    { "-1", "u", "value -1 " },
    { "2**63", "x", "value 9223372036854775808 " },
    { "-2**63 - 1", "x", "value -9223372036854775809 " },
    { "-1", "t", "value -1 " },
    { "2**64", "t", "value 18446744073709551616 " },
    { "-2**64", "t", "value -18446744073709551616 " },
    { "2**31", "h", "value 2147483648 " },
    { "-2**31 - 1", "h", "value -2147483649 " },
    { "10**400", "d", "out of range for GVariant type 'd'" },
    { "10**5000", "x", "out of range for GVariant type 'x'" },
  };
  gsize i;

  for (i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *named = g_strdup_printf ("GVariant type '%s'",
                                                cases[i].type);

      check_error (cases[i].expression, cases[i].type, cases[i].value, named);
    }

  check_error ("300", "y", "value 300 out of range for GVariant type 'y'",
               "'int'");
  check_error ("[1, 2, 300]", "ay", "element 2: value 300 ", "'y'");
  check_error ("[[1], [2, 3, 2**40]]", "aai",
               "element 1: element 2: value 1099511627776 out of range", "'i'");
}

static void
test_explicit_type_errors (void)
{
  check_error ("1", "b", "GVariant type 'b'", "'int'");
  check_error ("None", "b", "GVariant type 'b'", "'NoneType'");
  check_error ("'1'", "i", "GVariant type 'i'", "'str'");
  check_error ("1.5", "i", "GVariant type 'i'", "'float'");
  check_error ("None", "t", "GVariant type 't'", "'NoneType'");
  check_error ("'1.5'", "d", "GVariant type 'd'", "'str'");
  check_error ("b'x'", "s", "GVariant type 's'", "'bytes'");
  check_error ("1", "s", "GVariant type 's'", "'int'");
  check_error ("'a\\0b'", "s", "GVariant type 's'", "embedded NUL");
  check_error ("'/a\\0'", "o", "GVariant type 'o'", "embedded NUL");
  check_error ("'\\udcff'", "s", "GVariant type 's'", "UTF-8");
  check_error ("'not/a/path'", "o", "GVariant type 'o'", "'not/a/path'");
  check_error ("'/trailing/'", "o", "GVariant type 'o'", "'str'");
  check_error ("'a{'", "g", "GVariant type 'g'", "'a{'");
  check_error ("'abc'", "as", "GVariant type 'as'", "'str'");
  check_error ("b'abc'", "ai", "GVariant type 'ai'", "'bytes'");
  check_error ("'abc'", "ay", "GVariant type 'ay'", "'str'");
  check_error ("{1: 2}", "ai", "GVariant type 'ai'", "'dict'");
  check_error ("{1, 2}", "ai", "GVariant type 'ai'", "'set'");
  check_error ("5", "a{sv}", "GVariant type 'a{sv}'", "'int'");
  check_error ("[1]", "a{sv}", "element 0: ", "'{sv}'");
  check_error ("[('a',)]", "a{sv}", "element 0: ", "length 1");
  check_error ("{'a': 'x'}", "a{si}", "value for key 'a': ", "GVariant type 'i'");
  check_error ("{1: 'x'}", "a{ss}", "key 1: ", "'int'");
  check_error ("5", "(i)", "GVariant type '(i)'", "'int'");
  check_error ("'ab'", "(ss)", "GVariant type '(ss)'", "'str'");
  check_error ("[1, None]", "ai", "element 1: ", "'NoneType'");
  check_error ("(1, 'a')", "(ii)", "member 1: ", "'str'");
  check_error ("['x']", "mi", "GVariant type 'i'", "'list'");
  check_error ("[set()]", "av", "element 0: ", "'set'");

  /* Failing Python code inside the conversion: turned into the GError. */
  py_exec ("class BadIndex:\n"
           "    def __index__(self): raise ValueError('no index today')\n"
           "class BadSeq:\n"
           "    def __len__(self): return 2\n"
           "    def __getitem__(self, i): raise KeyError('gone')\n"
           "class BadMapping:\n"
           "    def keys(self): return ['a']\n"
           "    def __getitem__(self, k): return 1\n"
           "    def __len__(self): return 1\n"
           "    def items(self): raise RuntimeError('no items')\n");
  check_error ("BadIndex()", "i", "ValueError", "no index today");
  check_error ("BadSeq()", "ai", "KeyError", "'BadSeq'");
  check_error ("BadMapping()", "a{si}", "RuntimeError", "no items");
}

static void
test_tuple_length (void)
{
  check_error ("(1,)", "(is)", "expected 2 members for GVariant type '(is)'",
               "'tuple' of length 1");
  check_error ("(1, 'a', 'b')", "(is)", "expected 2 members",
               "'tuple' of length 3");
  check_error ("[1, 'a']", "(isi)", "expected 3 members", "'list' of length 2");
  check_error ("(1,)", "()", "expected 0 members", "length 1");
  check_error ("('a', 1, 2)", "{si}", "(key, value)", "length 3");
  check_error ("(1, 'a')", "(iii)", "'(iii)'", "length 2");
}

static void
test_string_nul (void)
{
  check_error ("'\\0'", NULL, "embedded NUL", "'str'");
  check_error ("'abc\\0'", "s", "embedded NUL", "'s'");
  check_error ("'/\\0'", "o", "embedded NUL", "'o'");
  check_error ("'i\\0'", "g", "embedded NUL", "'g'");
  check_error ("['ok', 'n\\0']", "as", "element 1: ", "embedded NUL");
  /* NUL is fine in bytes. */
  check_from_python ("b'\\0\\0'", "ay", "[byte 0, 0]");
}

static void
test_round_trip (void)
{
  static const char *const texts[] = {
    "true",
    "byte 0x7f",
    "int16 -5",
    "uint16 5",
    "int32 -7",
    "uint32 7",
    "int64 -9",
    "uint64 18446744073709551615",
    "handle 2",
    "2.5",
    "'s'",
    "objectpath '/o'",
    "signature 'g'",
    "[byte 0, 1, 2, 0xff]",
    "b'nul-terminated'",
    "@ay []",
    "<int64 1>",
    "@mi nothing",
    "@ms 'x'",
    "@as []",
    "['a', 'b']",
    "[[1, 2], @ai []]",
    "()",
    "(1, 'a', (true, [1.5]))",
    "@a{sv} {}",
    "{'a': <int64 1>, 'b': <[<'x'>, <(int64 1, @mv nothing)>]>, "
    " 'c': <{'d': <@ax [1, 2]>, 'e': <[byte 0]>}>, "
    " 'f': <@a(sa{sv}) [('x', {})]>}",
    "{1: 'a', 2: 'b'}",
    "{'k': [@mi 1, nothing]}",
    "[{'a': (@mmi just nothing, @mmi nothing, @mmi 3)}]",
  };
  gsize i;

  for (i = 0; i < G_N_ELEMENTS (texts); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) value = g_variant_parse (NULL, texts[i], NULL, NULL,
                                                   &error);
      g_autoptr(GVariant) back = NULL;
      PyObject *object;

      g_assert_no_error (error);
      object = gab_variant_to_python (value);
      g_assert_nonnull (object);
      back = gab_variant_from_python (object, g_variant_get_type (value), &error);
      g_assert_no_error (error);
      Py_DECREF (object);

      /* Just (Nothing) cannot be told from Nothing in Python. */
      if (strstr (texts[i], "just nothing") != NULL)
        continue;

      if (!g_variant_equal (value, back))
        {
          g_autofree char *got = g_variant_print (back, TRUE);

          g_error ("%s came back as %s", texts[i], got);
        }
    }
}

static void
test_round_trip_python (void)
{
  static const char *const expressions[] = {
    "None", "True", "0", "-1", "2**63", "2**64 - 1", "-2**63", "0.5",
    "'x'", "b'\\0x'", "()", "(1, ('a', (None,)))", "[]", "[1, None, 3]",
    "[None]", "[1, 'a', None, [2]]", "{}", "{'a': 1, 'b': [1.5, None]}",
    "{1: {'x': b''}, -3: ()}", "[[[1]], [[2, 3]]]",
  };
  gsize i;

  for (i = 0; i < G_N_ELEMENTS (expressions); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) value = NULL;
      PyObject *object = py_eval (expressions[i]);
      PyObject *back;

      value = gab_variant_from_python (object, NULL, &error);
      g_assert_no_error (error);
      back = gab_variant_to_python (value);
      assert_py_same (back, expressions[i]);
      Py_DECREF (back);
      Py_DECREF (object);
    }
}

static void
test_pending_exception (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) value = NULL;
  PyObject *object = py_eval ("[1, {2, 3}]");
  PyObject *good = py_eval ("{'a': 5}");
  PyObject *exception;

  /* An exception already pending is left alone, on failure and success. */
  PyErr_SetString (PyExc_KeyError, "pending");
  value = gab_variant_from_python (object, NULL, &error);
  g_assert_null (value);
  g_assert_error (error, GAB_ERROR, GAB_ERROR_CONVERSION);
  g_assert_true (PyErr_ExceptionMatches (PyExc_KeyError));

  value = gab_variant_from_python (good, G_VARIANT_TYPE ("a{sy}"), NULL);
  assert_variant_equal (value, "{'a': byte 5}");
  g_assert_true (PyErr_ExceptionMatches (PyExc_KeyError));

  /* Still the very same exception. */
  {
    PyObject *text;
    exception = PyErr_GetRaisedException ();
    text = PyObject_Str (exception);
    g_assert_cmpstr (PyUnicode_AsUTF8 (text), ==, "'pending'");
    Py_DECREF (text);
    Py_XDECREF (exception);
  }
  g_assert_null (PyErr_Occurred ());

  /* A NULL error is fine too. */
  g_clear_pointer (&value, g_variant_unref);
  value = gab_variant_from_python (object, NULL, NULL);
  g_assert_null (value);
  g_assert_null (PyErr_Occurred ());

  Py_DECREF (object);
  Py_DECREF (good);
}

/* Nothing grows when converting over and over, successfully or not: every
 * Python object made along the way is released. (PYTHONMALLOC=malloc, as
 * under valgrind, turns this into a no-op; valgrind checks then.) */
static void
test_no_python_leaks (void)
{
  PyObject *good = py_eval ("{'a': [1, None, 'x'], 'b': (b'\\0' * 100, 2**63),"
                            " 'c': {1: 2.5}}");
  PyObject *bad = py_eval ("{'a': [1, 2], 'b': [(1, 2**64)]}");
  PyObject *sys_module = PyDict_GetItemString (globals, "sys");
  PyObject *blocks_object;
  long before = 0, after;
  guint round;

  for (round = 0; round < 2000; round++)
    {
      g_autoptr(GVariant) value = NULL;
      g_autoptr(GVariant) typed = NULL;
      g_autoptr(GError) error = NULL;
      PyObject *back;

      if (round == 100)
        {
          blocks_object = PyObject_CallMethod (sys_module, "getallocatedblocks",
                                               NULL);
          before = PyLong_AsLong (blocks_object);
          Py_DECREF (blocks_object);
        }

      value = gab_variant_from_python (good, NULL, &error);
      g_assert_no_error (error);
      back = gab_variant_to_python (value);
      g_assert_nonnull (back);
      Py_DECREF (back);

      typed = gab_variant_from_python (bad, G_VARIANT_TYPE ("a{sa(yy)}"), &error);
      g_assert_null (typed);
      g_assert_nonnull (error);
      g_clear_error (&error);
      typed = gab_variant_from_python (bad, NULL, &error);
      g_assert_null (typed);
      g_assert_nonnull (error);
    }

  blocks_object = PyObject_CallMethod (sys_module, "getallocatedblocks", NULL);
  after = PyLong_AsLong (blocks_object);
  Py_DECREF (blocks_object);
  g_test_message ("allocated blocks: %ld before, %ld after", before, after);
  g_assert_cmpint (after - before, <, 100);

  Py_DECREF (good);
  Py_DECREF (bad);
}

int
main (int   argc,
      char *argv[])
{
  int status;

  g_test_init (&argc, &argv, NULL);

  Py_InitializeEx (0);
  globals = PyDict_New ();
  PyDict_SetItemString (globals, "__builtins__", PyEval_GetBuiltins ());
  py_exec (helpers);

  g_test_add_func ("/variant/to-python/null", test_to_python_null);
  g_test_add_func ("/variant/to-python/basic", test_to_python_basic);
  g_test_add_func ("/variant/to-python/special-doubles", test_to_python_special_doubles);
  g_test_add_func ("/variant/to-python/bytestring", test_to_python_bytestring);
  g_test_add_func ("/variant/to-python/containers", test_to_python_containers);
  g_test_add_func ("/variant/to-python/deep", test_to_python_deep);
  g_test_add_func ("/variant/to-python/untrusted", test_to_python_untrusted);
  g_test_add_func ("/variant/infer/basic", test_infer_basic);
  g_test_add_func ("/variant/infer/types", test_infer_types);
  g_test_add_func ("/variant/infer/values", test_infer_values);
  g_test_add_func ("/variant/infer/errors", test_infer_errors);
  g_test_add_func ("/variant/infer/cyclic", test_infer_cyclic);
  g_test_add_func ("/variant/depth-limit", test_depth_limit);
  g_test_add_func ("/variant/depth-limit/to-python", test_depth_limit_to_python);
  g_test_add_func ("/variant/explicit/basic", test_explicit_basic);
  g_test_add_func ("/variant/explicit/containers", test_explicit_containers);
  g_test_add_func ("/variant/explicit/indefinite", test_explicit_indefinite);
  g_test_add_func ("/variant/explicit/range-errors", test_explicit_range_errors);
  g_test_add_func ("/variant/explicit/type-errors", test_explicit_type_errors);
  g_test_add_func ("/variant/explicit/tuple-length", test_tuple_length);
  g_test_add_func ("/variant/string-nul", test_string_nul);
  g_test_add_func ("/variant/round-trip/gvariant", test_round_trip);
  g_test_add_func ("/variant/round-trip/python", test_round_trip_python);
  g_test_add_func ("/variant/pending-exception", test_pending_exception);
  g_test_add_func ("/variant/no-python-leaks", test_no_python_leaks);

  status = g_test_run ();

  Py_CLEAR (globals);
  if (Py_FinalizeEx () < 0)
    status = 1;

  return status;
}
