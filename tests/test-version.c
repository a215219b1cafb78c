/* test-version.c: GAB_CHECK_VERSION, gab_check_version(), and one version
 * everywhere: the headers, the library and the Python module's
 * __version__ all come from the project() of meson.build.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gasyncbridge.h>

/* The macro is usable in #if. */
#if !GAB_CHECK_VERSION (0, 1, 0)
# error "GAB_CHECK_VERSION (0, 1, 0) is false for gasyncbridge 0.1 or newer"
#endif
#if GAB_CHECK_VERSION (GAB_MAJOR_VERSION + 1, 0, 0)
# error "GAB_CHECK_VERSION is true for the next major version"
#endif

G_STATIC_ASSERT (GAB_CHECK_VERSION (GAB_MAJOR_VERSION, GAB_MINOR_VERSION, GAB_MICRO_VERSION));
G_STATIC_ASSERT (!GAB_CHECK_VERSION (GAB_MAJOR_VERSION, GAB_MINOR_VERSION, GAB_MICRO_VERSION + 1));
G_STATIC_ASSERT (!GAB_CHECK_VERSION (GAB_MAJOR_VERSION, GAB_MINOR_VERSION + 1, 0));
G_STATIC_ASSERT (GAB_CHECK_VERSION (GAB_MAJOR_VERSION, 0, 0));

static void
test_check_version_macro (void)
{
  /* The same comparisons at run time, with values the preprocessor does
   * not see. */
  volatile int major = GAB_MAJOR_VERSION, minor = GAB_MINOR_VERSION, micro = GAB_MICRO_VERSION;

  g_assert_true (GAB_CHECK_VERSION (major, minor, micro));
  g_assert_true (GAB_CHECK_VERSION (major, minor, 0));
  g_assert_true (GAB_CHECK_VERSION (major, 0, 0));
  g_assert_true (GAB_CHECK_VERSION (major - 1, minor + 5, micro + 5));
  g_assert_false (GAB_CHECK_VERSION (major, minor, micro + 1));
  g_assert_false (GAB_CHECK_VERSION (major, minor + 1, 0));
  g_assert_false (GAB_CHECK_VERSION (major + 1, 0, 0));
  if (minor > 0)
    g_assert_true (GAB_CHECK_VERSION (major, minor - 1, micro + 5));
}

static void
test_check_version_function (void)
{
  const gchar *mismatch;

  g_assert_null (gab_check_version (GAB_MAJOR_VERSION, GAB_MINOR_VERSION, GAB_MICRO_VERSION));
  g_assert_null (gab_check_version (GAB_MAJOR_VERSION, GAB_MINOR_VERSION, 0));
  g_assert_null (gab_check_version (GAB_MAJOR_VERSION, 0, 0));
  if (GAB_MINOR_VERSION > 0)
    g_assert_null (gab_check_version (GAB_MAJOR_VERSION, GAB_MINOR_VERSION - 1, 99));

  mismatch = gab_check_version (GAB_MAJOR_VERSION, GAB_MINOR_VERSION, GAB_MICRO_VERSION + 1);
  g_assert_cmpstr (mismatch, ==, "gasyncbridge version too old (micro mismatch)");
  mismatch = gab_check_version (GAB_MAJOR_VERSION, GAB_MINOR_VERSION + 1, 0);
  g_assert_cmpstr (mismatch, ==, "gasyncbridge version too old (minor mismatch)");
  mismatch = gab_check_version (GAB_MAJOR_VERSION + 1, 0, 0);
  g_assert_cmpstr (mismatch, ==, "gasyncbridge version too old (major mismatch)");
  if (GAB_MAJOR_VERSION > 0)
    {
      mismatch = gab_check_version (GAB_MAJOR_VERSION - 1, 0, 0);
      g_assert_cmpstr (mismatch, ==, "gasyncbridge version too new (major mismatch)");
    }
}

static void
test_version_string (void)
{
  g_autofree gchar *numbers = g_strdup_printf ("%d.%d.%d", GAB_MAJOR_VERSION,
                                               GAB_MINOR_VERSION, GAB_MICRO_VERSION);

  g_assert_cmpstr (GAB_VERSION_STRING, ==, numbers);
}

/* gasyncbridge.__version__ is the headers' version (GAB_VERSION_STRING). */
static void
test_module_version (void)
{
#ifdef GAB_TEST_HAVE_MODULE
  PyObject *module, *version;

  module = PyImport_ImportModule ("gasyncbridge");
  if (module == NULL)
    PyErr_Print ();
  g_assert_nonnull (module);
  version = PyObject_GetAttrString (module, "__version__");
  g_assert_nonnull (version);
  g_assert_cmpstr (PyUnicode_AsUTF8 (version), ==, GAB_VERSION_STRING);
  Py_DECREF (version);
  Py_DECREF (module);
#else
  g_test_skip ("built with -Dmodule=false");
#endif
}

int
main (int argc, char **argv)
{
  int ret;

  g_test_init (&argc, &argv, NULL);
  Py_InitializeEx (0);
  g_test_add_func ("/version/check-version-macro", test_check_version_macro);
  g_test_add_func ("/version/check-version-function", test_check_version_function);
  g_test_add_func ("/version/version-string", test_version_string);
  g_test_add_func ("/version/module-version", test_module_version);
  ret = g_test_run ();
  /* atexit runs gab_shutdown() before Python goes. */
  if (Py_FinalizeEx () < 0)
    ret = 1;
  return ret;
}
