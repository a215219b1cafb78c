/* fuzz-common.c: the embedded interpreter and the failure reports of the
 * fuzz targets.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "fuzz-common.h"

#include <stdio.h>
#include <stdlib.h>

static void
fatal_log_handler (const gchar    *log_domain,
                   GLogLevelFlags  log_level,
                   const gchar    *message,
                   gpointer        user_data)
{
  /* A critical is a broken precondition or an invariant of ours that
   * failed: for a fuzzer that is a finding like any other. */
  gab_fuzz_fail ("GLib log message (%s, level %d): %s",
                 log_domain != NULL ? log_domain : "-", (int) log_level,
                 message);
}

void
gab_fuzz_init (void)
{
  static gboolean done;
  PyPreConfig preconfig;
  PyConfig config;
  PyStatus status;

  if (done)
    return;
  done = TRUE;

  g_log_set_default_handler (fatal_log_handler, NULL);
  g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);

  /* Plain malloc for every Python object: AddressSanitizer then checks
   * each one, and LeakSanitizer sees a Python object we fail to release
   * as what it is. */
  PyPreConfig_InitPythonConfig (&preconfig);
  preconfig.allocator = PYMEM_ALLOCATOR_MALLOC;
  status = Py_PreInitialize (&preconfig);
  if (PyStatus_Exception (status))
    Py_ExitStatusException (status);

  PyConfig_InitPythonConfig (&config);
  config.site_import = 0;           /* the standard library is enough */
  config.install_signal_handlers = 0;   /* libFuzzer has its own */
  config.use_hash_seed = 1;         /* reproducible runs */
  config.hash_seed = 0;
  config.parse_argv = 0;
  status = Py_InitializeFromConfig (&config);
  PyConfig_Clear (&config);
  if (PyStatus_Exception (status))
    Py_ExitStatusException (status);

#ifdef Py_REF_DEBUG
  /* No collection in the middle of an input, where it would change the
   * reference total by what earlier inputs left in cycles. */
  PyGC_Disable ();
#endif
  /* The main thread keeps the GIL for the whole run. */
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
#ifdef Py_REF_DEBUG
  Py_ssize_t before, after, again;

  /* The first run fills the caches an input may touch (interned names,
   * type attribute caches, free lists); the second must leave the total
   * where it found it. A cache slot that the first run filled and the
   * second refilled can still move it once: a leak moves it every time,
   * so a third run tells them apart. */
  gab_fuzz_one (data, size);
  before = _Py_GetRefTotal ();
  gab_fuzz_one (data, size);
  after = _Py_GetRefTotal ();
  if (after != before)
    {
      gab_fuzz_one (data, size);
      again = _Py_GetRefTotal ();
      if (again != after)
        gab_fuzz_fail ("each run of the input changes the interpreter's "
                       "reference total (by %" G_GSSIZE_FORMAT ", then by %"
                       G_GSSIZE_FORMAT "): a reference leaked or released "
                       "once too often", (gssize) (after - before),
                       (gssize) (again - after));
    }
#else
  gab_fuzz_one (data, size);
#endif
  return 0;
}

void
gab_fuzz_fail (const char *format,
               ...)
{
  va_list args;

  fflush (stdout);
  fputs ("gasyncbridge fuzz: property violated: ", stderr);
  va_start (args, format);
  vfprintf (stderr, format, args);
  va_end (args);
  fputc ('\n', stderr);
  if (Py_IsInitialized () && PyGILState_Check () && PyErr_Occurred ())
    {
      fputs ("gasyncbridge fuzz: pending Python exception:\n", stderr);
      PyErr_Print ();
    }
  fflush (stderr);
  abort ();
}

char *
gab_fuzz_repr (PyObject *object)
{
  PyObject *repr;
  const char *utf8;
  char *result;

  repr = PyObject_Repr (object);
  if (repr == NULL)
    gab_fuzz_fail ("repr() failed on a converted value");
  utf8 = PyUnicode_AsUTF8 (repr);
  if (utf8 == NULL)
    gab_fuzz_fail ("repr() of a converted value is not valid UTF-8");
  result = g_strdup (utf8);
  Py_DECREF (repr);
  return result;
}

void
gab_fuzz_assert_no_exception (const char *where)
{
  if (PyErr_Occurred ())
    gab_fuzz_fail ("%s left a Python exception set", where);
}
