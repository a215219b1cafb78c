/* fuzz-error-to-python.c: GError -> Python exception -> GError.
 *
 * Input: SELECTOR CODE[4] [LENGTH DOMAIN...] MESSAGE...
 *   SELECTOR & 0x0f picks the error domain from known_domain(); past its
 *     end the domain's name is LENGTH % 4 more bytes, each picking a byte
 *     of a small alphabet (with bytes that are not UTF-8).
 *   SELECTOR & 0x80 takes CODE (int32, little endian) as is; otherwise
 *     CODE % 48, where the codes that map to something are.
 *   MESSAGE is the rest (any bytes, up to a NUL; not necessarily UTF-8).
 *
 * Properties:
 *   1. gab_error_new_python_exception() gives an exception instance that
 *      carries .domain and .code of the GError, of the class the contract
 *      names (CancelledError, TimeoutError, the OSError subclass of the
 *      errno, gasyncbridge.GLibError with the message otherwise); the
 *      errno of an OSError maps back to the same code. It fails only for a
 *      message or domain that is not UTF-8, with the Python exception set,
 *      or shows such a message decoded with U+FFFD replacements.
 *   2. Raised and taken back with gab_error_set_from_python(), it gives
 *      the same domain and code (and message, for GLibError), no exception
 *      left set, G_FILE_ERROR included (its errnos are G_IO_ERROR's: the
 *      OSError's .domain tells them apart); and Python -> GError ->
 *      Python -> GError is a fixed point.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "fuzz-common.h"

#include <errno.h>
#include <string.h>

static PyObject *cancelled_error;
static PyObject *glib_error;

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  PyObject *asyncio;

  gab_fuzz_init ();
  asyncio = PyImport_ImportModule ("asyncio");
  if (asyncio == NULL)
    gab_fuzz_fail ("cannot import asyncio");
  cancelled_error = PyObject_GetAttrString (asyncio, "CancelledError");
  Py_DECREF (asyncio);
  glib_error = gab_error_get_glib_error_class ();
  if (cancelled_error == NULL || glib_error == NULL)
    gab_fuzz_fail ("cannot look up the exception classes");
  Py_INCREF (glib_error);
  return 0;
}

static GQuark
known_domain (guint index)
{
  switch (index)
    {
    case 0: return G_IO_ERROR;
    case 1: return G_FILE_ERROR;
    case 2: return G_IO_ERROR;
    case 3: return GAB_ERROR;
    case 4: return GAB_PYTHON_ERROR;
    case 5: return G_KEY_FILE_ERROR;
    case 6: return G_CONVERT_ERROR;
    case 7: return G_DBUS_ERROR;
    case 8: return G_RESOLVER_ERROR;
    case 9: return G_VARIANT_PARSE_ERROR;
    case 10: return G_FILE_ERROR;
    default: return 0;
    }
}

static long
get_long_attr (PyObject   *object,
               const char *name)
{
  PyObject *value = PyObject_GetAttrString (object, name);
  long result;

  if (value == NULL || !PyLong_Check (value))
    gab_fuzz_fail ("the exception has no int .%s", name);
  result = PyLong_AsLong (value);
  Py_DECREF (value);
  if (PyErr_Occurred ())
    gab_fuzz_fail ("the exception's .%s does not fit a long", name);
  return result;
}

static char *
get_str_attr (PyObject   *object,
              const char *name)
{
  PyObject *value = PyObject_GetAttrString (object, name);
  char *result;

  if (value == NULL || !PyUnicode_Check (value) || PyUnicode_AsUTF8 (value) == NULL)
    gab_fuzz_fail ("the exception has no str .%s", name);
  result = g_strdup (PyUnicode_AsUTF8 (value));
  Py_DECREF (value);
  return result;
}

/* A GError's message as Python shows it: itself when it is UTF-8 (as GLib
 * wants), else either that or its bytes decoded with U+FFFD for what is not
 * UTF-8 (the bridge may do either; see property 1). */
static gboolean
message_matches (const char *python_message,
                 const char *message)
{
  PyObject *decoded;
  gboolean matches;

  if (strcmp (python_message, message) == 0)
    return TRUE;
  if (g_utf8_validate (message, -1, NULL))
    return FALSE;
  decoded = PyUnicode_DecodeUTF8 (message, (Py_ssize_t) strlen (message), "replace");
  if (decoded == NULL || PyUnicode_AsUTF8 (decoded) == NULL)
    gab_fuzz_fail ("cannot decode a message with replacement");
  matches = strcmp (python_message, PyUnicode_AsUTF8 (decoded)) == 0;
  Py_DECREF (decoded);
  return matches;
}

static gboolean
is_a (PyObject *object,
      PyObject *cls)
{
  return PyObject_TypeCheck (object, (PyTypeObject *) cls);
}

/* Raises @exception and takes it back as a GError. */
static GError *
error_from_exception (PyObject *exception)
{
  GError *error = NULL;

  PyErr_SetObject ((PyObject *) Py_TYPE (exception), exception);
  gab_error_set_from_python (&error);
  gab_fuzz_assert_no_exception ("gab_error_set_from_python()");
  if (error == NULL)
    gab_fuzz_fail ("gab_error_set_from_python() gave no GError");
  if (error->message == NULL || !g_utf8_validate (error->message, -1, NULL))
    gab_fuzz_fail ("gab_error_set_from_python() gave a message that is not UTF-8");
  return error;
}

/* GError -> Python, which must work (valid UTF-8 strings). */
static PyObject *
exception_from_error (const GError *error)
{
  PyObject *exception = gab_error_new_python_exception (error);

  if (exception == NULL)
    gab_fuzz_fail ("gab_error_new_python_exception() failed for %s %d",
                   g_quark_to_string (error->domain), error->code);
  gab_fuzz_assert_no_exception ("gab_error_new_python_exception()");
  if (!PyExceptionInstance_Check (exception))
    gab_fuzz_fail ("gab_error_new_python_exception() gave no exception instance");
  return exception;
}

/* The class the contract names for a G_IO_ERROR code, or NULL. */
static PyObject *
contract_class (const GError *error)
{
  if (error->domain != G_IO_ERROR)
    return NULL;
  switch (error->code)
    {
    case G_IO_ERROR_CANCELLED: return cancelled_error;
    case G_IO_ERROR_TIMED_OUT: return PyExc_TimeoutError;
    case G_IO_ERROR_NOT_FOUND: return PyExc_FileNotFoundError;
    case G_IO_ERROR_EXISTS: return PyExc_FileExistsError;
    case G_IO_ERROR_PERMISSION_DENIED: return PyExc_PermissionError;
    case G_IO_ERROR_IS_DIRECTORY: return PyExc_IsADirectoryError;
    case G_IO_ERROR_NOT_DIRECTORY: return PyExc_NotADirectoryError;
    case G_IO_ERROR_CONNECTION_REFUSED: return PyExc_ConnectionRefusedError;
    case G_IO_ERROR_BROKEN_PIPE: return PyExc_BrokenPipeError;
    default: return NULL;
    }
}

static void
check_exception (const GError *error,
                 PyObject     *exception)
{
  PyObject *expected_class = contract_class (error);
  g_autofree char *domain = NULL;
  long code;

  domain = get_str_attr (exception, "domain");
  code = get_long_attr (exception, "code");
  if (g_strcmp0 (domain, g_quark_to_string (error->domain)) != 0 || code != error->code)
    gab_fuzz_fail ("%s %d became an exception with .domain %s, .code %ld",
                   g_quark_to_string (error->domain), error->code, domain, code);

  if (expected_class != NULL && !is_a (exception, expected_class))
    gab_fuzz_fail ("%s %d became a %s, not a %s", g_quark_to_string (error->domain),
                   error->code, Py_TYPE (exception)->tp_name,
                   ((PyTypeObject *) expected_class)->tp_name);

  if (is_a (exception, glib_error))
    {
      g_autofree char *message = get_str_attr (exception, "message");

      if (expected_class != NULL)
        gab_fuzz_fail ("%s %d became a GLibError", g_quark_to_string (error->domain),
                       error->code);
      if (!message_matches (message, error->message))
        gab_fuzz_fail ("the GLibError's message is %s, not %s", message, error->message);
    }
  else if (is_a (exception, PyExc_OSError) && !is_a (exception, PyExc_TimeoutError))
    {
      long errnum = get_long_attr (exception, "errno");

      if (errnum <= 0)
        gab_fuzz_fail ("%s %d became an OSError with errno %ld",
                       g_quark_to_string (error->domain), error->code, errnum);
      if (error->domain == G_IO_ERROR && (long) g_io_error_from_errno ((gint) errnum) != error->code)
        gab_fuzz_fail ("G_IO_ERROR %d became errno %ld, which is G_IO_ERROR %d",
                       error->code, errnum, g_io_error_from_errno ((gint) errnum));
      if (error->domain == G_FILE_ERROR && (long) g_file_error_from_errno ((gint) errnum) != error->code)
        gab_fuzz_fail ("G_FILE_ERROR %d became errno %ld, which is G_FILE_ERROR %d",
                       error->code, errnum, g_file_error_from_errno ((gint) errnum));
      if (error->domain != G_IO_ERROR && error->domain != G_FILE_ERROR)
        gab_fuzz_fail ("%s %d became an OSError", g_quark_to_string (error->domain),
                       error->code);
    }
  else if (!is_a (exception, cancelled_error) && !is_a (exception, PyExc_TimeoutError))
    gab_fuzz_fail ("%s %d became a %s", g_quark_to_string (error->domain),
                   error->code, Py_TYPE (exception)->tp_name);
}

void
gab_fuzz_one (const uint8_t *data,
              size_t         size)
{
  const uint8_t *end = data + size;
  g_autofree char *domain_name = NULL;
  g_autofree char *message = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) back = NULL;
  g_autoptr(GError) again = NULL;
  PyObject *exception, *exception2;
  guint8 selector;
  guint32 raw_code;
  GQuark domain;
  gint code;

  if (size < 5)
    return;
  selector = data[0];
  memcpy (&raw_code, data + 1, 4);
  raw_code = GUINT32_FROM_LE (raw_code);
  data += 5;

  domain = known_domain (selector & 0x0f);
  if (domain == 0)
    {
      /* GLib keeps every quark forever and leaks its old quark table each
       * time 2048 more make it grow (lock-free lookups): a few hundred
       * names, from 0 to 3 bytes of a small alphabet that has invalid
       * UTF-8 in it, keep the table from growing in a long run. */
      static const char alphabet[] = "a-\xff\xc3\xa9q\x80z";
      char name[4] = { 0 };
      gsize length = 0, i;

      if (data < end)
        {
          length = *data++ % 4;
          length = MIN (length, (gsize) (end - data));
        }
      for (i = 0; i < length; i++)
        name[i] = alphabet[*data++ % (sizeof alphabet - 1)];
      domain_name = g_strdup (length > 0 ? name : "fuzz-empty-quark");
      domain = g_quark_from_string (domain_name);
    }
  code = (selector & 0x80) ? (gint) raw_code : (gint) (raw_code % 48);
  message = g_strndup ((const char *) data, (gsize) (end - data));
  error = g_error_new_literal (domain, code, message);

  /* 1. GError -> Python. */
  exception = gab_error_new_python_exception (error);
  if (exception == NULL)
    {
      if (!PyErr_Occurred ())
        gab_fuzz_fail ("gab_error_new_python_exception() failed without an exception");
      if (g_utf8_validate (message, -1, NULL)
          && g_utf8_validate (g_quark_to_string (domain), -1, NULL))
        gab_fuzz_fail ("gab_error_new_python_exception() failed for %s %d",
                       g_quark_to_string (domain), code);
      PyErr_Clear ();
      return;
    }
  gab_fuzz_assert_no_exception ("gab_error_new_python_exception()");
  if (!PyExceptionInstance_Check (exception))
    gab_fuzz_fail ("gab_error_new_python_exception() gave no exception instance");
  check_exception (error, exception);

  /* 2. Back to a GError. */
  back = error_from_exception (exception);
  if (back->domain != error->domain || back->code != error->code)
    gab_fuzz_fail ("%s %d came back as %s %d", g_quark_to_string (error->domain),
                   error->code, g_quark_to_string (back->domain), back->code);
  if (is_a (exception, glib_error) && !message_matches (back->message, error->message))
    gab_fuzz_fail ("the message %s came back as %s", error->message, back->message);
  if (back->domain == GAB_PYTHON_ERROR)
    {
      PyObject *kept = gab_python_error_get_exception (back);

      if (kept != exception && error->domain != GAB_PYTHON_ERROR)
        gab_fuzz_fail ("a GAB_PYTHON_ERROR does not keep its exception");
      Py_XDECREF (kept);
    }

  /* From the first GError that came from Python on, a fixed point. */
  exception2 = exception_from_error (back);
  again = error_from_exception (exception2);
  if (again->domain != back->domain || again->code != back->code)
    gab_fuzz_fail ("%s %d is not stable: it came back as %s %d",
                   g_quark_to_string (back->domain), back->code,
                   g_quark_to_string (again->domain), again->code);

  Py_DECREF (exception2);
  Py_DECREF (exception);
  gab_fuzz_assert_no_exception ("the round trip");
  return;
}
