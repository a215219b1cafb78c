/* fuzz-error-from-python.c: Python exception -> GError -> Python exception.
 *
 * Input: CLASS NUMBER[4] FLAGS MESSAGE...
 *   CLASS picks an exception class of the table in `classes` below: the
 *     builtin ones, asyncio.CancelledError, gasyncbridge.GLibError and
 *     hostile subclasses (a __str__ that raises or returns no str, an errno
 *     or a domain that raises, an int errno too big for C, a __class__ that
 *     raises, ...).
 *   NUMBER (int32, little endian) is the errno or the GLibError code; FLAGS
 *     chooses how the class is called (with or without an errno, the
 *     GLibError's domain as a str, None or an int) and bounds the errno.
 *     A GLibError's str domain is a known one or two parts of a small set
 *     picked by NUMBER's high byte (see domain_name()).
 *   MESSAGE is the rest, decoded as UTF-8 with surrogateescape, so lone
 *     surrogates and NULs reach the mapping too.
 *
 * Properties:
 *   1. gab_error_set_from_python() takes the exception (none left set) and
 *      gives a GError with a UTF-8 message: G_IO_ERROR_CANCELLED for a
 *      CancelledError, G_IO_ERROR_TIMED_OUT for a TimeoutError, the
 *      GLibError's own domain and code, a G_IO_ERROR for an OSError whose
 *      errno GIO knows, and otherwise GAB_PYTHON_ERROR keeping the very
 *      exception object.
 *   2. gab_error_new_python_exception() of that GError works: the kept
 *      object itself for GAB_PYTHON_ERROR, else an exception with its
 *      .domain and .code; and that exception maps to the same GError
 *      domain and code again (a fixed point), the same message too for a
 *      GLibError; G_FILE_ERROR too (a GLibError can name it), whose
 *      errno-like codes become OSErrors that carry it in .domain.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "fuzz-common.h"

#include <string.h>

static const char classes_source[] =
  "import asyncio, errno\n"
  "CancelledError = asyncio.CancelledError\n"
  "class BadStr(Exception):\n"
  "    def __str__(self): raise RuntimeError('no str for you')\n"
  "class NotStrStr(Exception):\n"
  "    def __str__(self): return 42\n"
  "class BadClass(Exception):\n"
  "    @property\n"
  "    def __class__(self): raise RuntimeError('no class for you')\n"
  "class BadErrno(OSError):\n"
  "    @property\n"
  "    def errno(self): raise RuntimeError('no errno for you')\n"
  "class StrErrno(OSError):\n"
  "    errno = '2'\n"
  "class HugeErrno(OSError):\n"
  "    errno = 2 ** 100\n"
  "class CancelledOSError(OSError, asyncio.CancelledError):\n"
  "    pass\n"
  "class TimeoutGLibError(GLibError, TimeoutError):\n"
  "    pass\n"
  "class BadDomain(GLibError):\n"
  "    @property\n"
  "    def domain(self): raise RuntimeError('no domain for you')\n"
  "    @domain.setter\n"
  "    def domain(self, value): pass\n"
  "class BytesMessage(GLibError):\n"
  "    def __init__(self, message='', domain=None, code=0):\n"
  "        super().__init__(message, domain, code)\n"
  "        self.message = message.encode('utf-8', 'surrogateescape')\n"
  "class HugeCode(GLibError):\n"
  "    def __init__(self, message='', domain=None, code=0):\n"
  "        super().__init__(message, domain, code)\n"
  "        self.code = code * 2 ** 40\n"
  "class BadCode(GLibError):\n"
  "    @property\n"
  "    def code(self): raise RuntimeError('no code for you')\n"
  "    @code.setter\n"
  "    def code(self, value): pass\n"
  "class BadAll(GLibError):\n"
  "    def __init__(self, message='', domain=None, code=0): pass\n"
  "    def _raise(self, value=None): raise RuntimeError('no attribute for you')\n"
  "    domain = property(_raise, _raise)\n"
  "    message = property(_raise, _raise)\n"
  "    code = property(_raise, _raise)\n"
  "    errno = property(_raise, _raise)\n"
  "    __class__ = property(_raise)\n"
  "    def __str__(self): raise RuntimeError('no str for you')\n"
  "class CancelledBadStr(asyncio.CancelledError):\n"
  "    def __str__(self): raise RuntimeError('no str for you')\n"
  "# Domain names: two of these. GLib keeps every quark forever (and leaks\n"
  "# its old quark table whenever 2048 more make it grow), so the names come\n"
  "# from a small set, with the awkward ones: empty, NUL, lone surrogate.\n"
  "PARTS = ['', 'a', 'g-io-error-quark', 'g-file-error-quark', '\\0', '\\udcff',\n"
  "         '\\u00e9', '\\U0001f600', ' ', '-quark', 'gab-python-error-quark',\n"
  "         'x' * 100, '\\ud800', 'Z', '.', '\\n']\n"
  "def domain_name(n):\n"
  "    return PARTS[n & 15] + PARTS[(n >> 4) & 15]\n"
  "def group(message):\n"
  "    return BaseExceptionGroup(message, [ValueError(message), KeyError(1)])\n"
  "classes = [\n"
  "    ValueError, RuntimeError, KeyError, KeyboardInterrupt, SystemExit,\n"
  "    GeneratorExit, StopIteration, BaseException, Exception, MemoryError,\n"
  "    OSError, FileNotFoundError, FileExistsError, PermissionError,\n"
  "    IsADirectoryError, NotADirectoryError, ConnectionRefusedError,\n"
  "    BrokenPipeError, ConnectionResetError, BlockingIOError, TimeoutError,\n"
  "    InterruptedError, ChildProcessError, ProcessLookupError,\n"
  "    ConnectionAbortedError, CancelledError, GLibError, BadStr, NotStrStr,\n"
  "    BadClass, BadErrno, StrErrno, HugeErrno, CancelledOSError,\n"
  "    TimeoutGLibError, BadDomain, BytesMessage, HugeCode, BadCode,\n"
  "    CancelledBadStr, group, UnicodeDecodeError, BadAll,\n"
  "]\n";

static PyObject *classes;
static PyObject *cancelled_error;
static PyObject *glib_error;
static PyObject *group_factory;
static PyObject *domain_name;

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  PyObject *globals, *result;

  gab_fuzz_init ();
  glib_error = gab_error_get_glib_error_class ();
  if (glib_error == NULL)
    gab_fuzz_fail ("no GLibError class");
  globals = PyDict_New ();
  PyDict_SetItemString (globals, "__builtins__", PyEval_GetBuiltins ());
  PyDict_SetItemString (globals, "GLibError", glib_error);
  result = PyRun_String (classes_source, Py_file_input, globals, globals);
  if (result == NULL)
    gab_fuzz_fail ("cannot define the exception classes");
  Py_DECREF (result);
  classes = PyDict_GetItemString (globals, "classes");
  cancelled_error = PyDict_GetItemString (globals, "CancelledError");
  group_factory = PyDict_GetItemString (globals, "group");
  domain_name = PyDict_GetItemString (globals, "domain_name");
  Py_INCREF (domain_name);
  Py_INCREF (classes);
  Py_INCREF (cancelled_error);
  Py_INCREF (group_factory);
  Py_INCREF (glib_error);
  Py_DECREF (globals);
  return 0;
}

static gboolean
is_subclass (PyObject *object,
             PyObject *cls)
{
  /* The real type: a __class__ property must not fool the expectations. */
  return PyType_IsSubtype (Py_TYPE (object), (PyTypeObject *) cls);
}

/* A new exception object from the input, or NULL (the class refused the
 * arguments: not a finding, nothing to map). */
static PyObject *
make_exception (guint8      class_index,
                gint32      number,
                guint8      flags,
                PyObject   *message)
{
  PyObject *cls = PyList_GET_ITEM (classes, class_index % PyList_GET_SIZE (classes));
  PyObject *exception;

  if (cls == group_factory)
    exception = PyObject_CallFunctionObjArgs (cls, message, NULL);
  else if (PyType_IsSubtype ((PyTypeObject *) cls, (PyTypeObject *) glib_error))
    {
      PyObject *domain;

      switch (flags & 0x3)
        {
        case 0:
          domain = Py_NewRef (Py_None);
          break;
        case 1:
          domain = PyLong_FromLong (number);
          break;
        case 2:
          /* A known domain, so that mapped codes are reached. */
          domain = PyUnicode_FromString ((flags & 0x4) ? "g-io-error-quark"
                                                       : "g-file-error-quark");
          break;
        default:
          domain = PyObject_CallFunction (domain_name, "i", (int) ((guint32) number >> 24));
          if (domain == NULL)
            gab_fuzz_fail ("cannot make a domain name");
          break;
        }
      exception = PyObject_CallFunction (cls, "OOi", message, domain,
                                         (flags & 0x8) ? (int) number
                                                       : (int) ((guint32) number % 48));
      Py_DECREF (domain);
    }
  else if (PyType_IsSubtype ((PyTypeObject *) cls, (PyTypeObject *) PyExc_OSError)
           && (flags & 0x10))
    {
      /* OSError (errno, strerror): an errno GIO may know, or anything. */
      long errnum = (flags & 0x20) ? (long) number : (long) ((guint32) number % 140);

      exception = PyObject_CallFunction (cls, "lO", errnum, message);
    }
  else if (cls == PyExc_UnicodeDecodeError)
    exception = PyObject_CallFunction (cls, "sy#nns", "utf-8", "\xff", (Py_ssize_t) 1,
                                       (Py_ssize_t) 0, (Py_ssize_t) 1, "invalid");
  else
    exception = PyObject_CallFunctionObjArgs (cls, message, NULL);

  if (exception == NULL)
    {
      PyErr_Clear ();
      return NULL;
    }
  if (!PyExceptionInstance_Check (exception))
    gab_fuzz_fail ("the test's class table made no exception");
  return exception;
}

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

/* GError -> Python, which must work, with .domain and .code. */
static void check_exception (const GError *error,
                             PyObject     *exception);

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
  check_exception (error, exception);
  return exception;
}

static void
check_error (PyObject     *exception,
             const GError *error)
{
  const char *type_name = Py_TYPE (exception)->tp_name;

  if (is_subclass (exception, cancelled_error))
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        gab_fuzz_fail ("a %s became %s %d, not G_IO_ERROR_CANCELLED", type_name,
                       g_quark_to_string (error->domain), error->code);
      return;
    }

  if (is_subclass (exception, glib_error))
    {
      /* Its own domain and code when they are a str and an int (and the
       * message a str); a plain Python exception otherwise. */
      return;
    }

  if (is_subclass (exception, PyExc_TimeoutError))
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
        gab_fuzz_fail ("a %s became %s %d, not G_IO_ERROR_TIMED_OUT", type_name,
                       g_quark_to_string (error->domain), error->code);
      return;
    }

  if (is_subclass (exception, PyExc_OSError))
    {
      if (error->domain != G_IO_ERROR && error->domain != GAB_PYTHON_ERROR)
        gab_fuzz_fail ("a %s became %s %d", type_name,
                       g_quark_to_string (error->domain), error->code);
      if (error->domain == G_IO_ERROR && error->code == G_IO_ERROR_FAILED)
        gab_fuzz_fail ("a %s became G_IO_ERROR_FAILED", type_name);
    }
  else if (error->domain != GAB_PYTHON_ERROR)
    gab_fuzz_fail ("a %s became %s %d, not GAB_PYTHON_ERROR", type_name,
                   g_quark_to_string (error->domain), error->code);

  if (error->domain == GAB_PYTHON_ERROR)
    {
      PyObject *kept = gab_python_error_get_exception (error);

      if (kept != exception)
        gab_fuzz_fail ("the GAB_PYTHON_ERROR of a %s does not keep it", type_name);
      Py_DECREF (kept);
      if (error->code != GAB_PYTHON_ERROR_EXCEPTION)
        gab_fuzz_fail ("a %s became GAB_PYTHON_ERROR code %d", type_name, error->code);
    }
}

static void
check_exception (const GError *error,
                 PyObject     *exception)
{
  PyObject *value;

  if (error->domain == GAB_PYTHON_ERROR)
    {
      PyObject *kept = gab_python_error_get_exception (error);

      if (kept != NULL && kept != exception)
        gab_fuzz_fail ("a GAB_PYTHON_ERROR did not give back its exception");
      Py_XDECREF (kept);
      if (kept != NULL)
        return;
    }

  value = PyObject_GetAttrString (exception, "domain");
  if (value == NULL || !PyUnicode_Check (value)
      || g_strcmp0 (PyUnicode_AsUTF8 (value), g_quark_to_string (error->domain)) != 0)
    gab_fuzz_fail ("the exception of %s %d has the wrong .domain",
                   g_quark_to_string (error->domain), error->code);
  Py_DECREF (value);
  value = PyObject_GetAttrString (exception, "code");
  if (value == NULL || !PyLong_Check (value) || PyLong_AsLong (value) != error->code)
    gab_fuzz_fail ("the exception of %s %d has the wrong .code",
                   g_quark_to_string (error->domain), error->code);
  Py_DECREF (value);
}

void
gab_fuzz_one (const uint8_t *data,
              size_t         size)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) again = NULL;
  PyObject *message, *exception, *exception2;
  guint32 number;
  guint8 class_index, flags;

  if (size < 6)
    return;
  class_index = data[0];
  memcpy (&number, data + 1, 4);
  number = GUINT32_FROM_LE (number);
  flags = data[5];

  message = PyUnicode_DecodeUTF8 ((const char *) data + 6, (Py_ssize_t) (size - 6),
                                  "surrogateescape");
  if (message == NULL)
    gab_fuzz_fail ("cannot decode the message");
  exception = make_exception (class_index, (gint32) number, flags, message);
  Py_DECREF (message);
  if (exception == NULL)
    return;

  /* 1. Python -> GError. */
  error = error_from_exception (exception);
  check_error (exception, error);

  /* 2. GError -> Python -> GError: a fixed point. */
  exception2 = exception_from_error (error);
  again = error_from_exception (exception2);
  if (again->domain != error->domain || again->code != error->code)
    gab_fuzz_fail ("%s %d (from a %s) is not stable: it came back as %s %d",
                   g_quark_to_string (error->domain), error->code,
                   Py_TYPE (exception)->tp_name,
                   g_quark_to_string (again->domain), again->code);
  if (is_subclass (exception2, glib_error) && strcmp (again->message, error->message) != 0)
    gab_fuzz_fail ("the message %s came back as %s", error->message, again->message);

  Py_DECREF (exception2);
  Py_DECREF (exception);
  gab_fuzz_assert_no_exception ("the round trip");
  return;
}
