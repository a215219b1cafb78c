/* gab-error.c: GError <-> Python exception.
 *
 * Mapped both ways: G_IO_ERROR_CANCELLED <-> asyncio.CancelledError,
 * TIMED_OUT <-> TimeoutError, errno-like G_IO_ERROR, G_FILE_ERROR and
 * G_SPAWN_ERROR codes <-> the OSError subclass of that errno (back to the
 * same domain and code through the .domain and .code the OSError carries,
 * as long as they agree with its errno; else to G_IO_ERROR by errno);
 * other GErrors become gasyncbridge.GLibError, and a GLibError its own
 * domain and code (but for a domain that is no quark yet, past the limit
 * on new ones: see glib_error_domain()). Other Python exceptions become
 * GAB_PYTHON_ERROR, an extended GError that keeps the exception object so
 * that it can be raised again, the same object with its traceback.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gasyncbridge.h>
#include "gab-python.h"
#include "gab-lifecycle.h"
#include "gab-error-private.h"
#include "gab-python-sources.h"

#include <errno.h>
#include <string.h>

typedef struct
{
  GabPyRef *exception;   /* shared by copies; dropped without the GIL too */
} GabPythonErrorPrivate;

static void
gab_python_error_private_init (GabPythonErrorPrivate *priv)
{
  priv->exception = NULL;
}

static void
gab_python_error_private_copy (const GabPythonErrorPrivate *src,
                               GabPythonErrorPrivate       *dest)
{
  /* GErrors are copied on any thread: share the box, no GIL needed. */
  dest->exception = src->exception != NULL ? gab_py_ref_ref (src->exception) : NULL;
}

static void
gab_python_error_private_clear (GabPythonErrorPrivate *priv)
{
  g_clear_pointer (&priv->exception, gab_py_ref_unref);
}

/* What G_DEFINE_EXTENDED_ERROR expands to, but registered under the
 * conventional "gab-python-error-quark" name (the macro would use the type
 * name), which Python code sees as the exception's `.domain`. */
static inline gsize
private_size (void)
{
  const gsize align = 2 * sizeof (gsize);

  return (sizeof (GabPythonErrorPrivate) + (align - 1)) & -align;
}

static GabPythonErrorPrivate *
gab_python_error_get_private (const GError *error)
{
  return (GabPythonErrorPrivate *) (((guint8 *) error) - private_size ());
}

static void
private_init (GError *error)
{
  gab_python_error_private_init (gab_python_error_get_private (error));
}

static void
private_copy (const GError *src,
              GError       *dest)
{
  gab_python_error_private_copy (gab_python_error_get_private (src),
                                 gab_python_error_get_private (dest));
}

static void
private_clear (GError *error)
{
  gab_python_error_private_clear (gab_python_error_get_private (error));
}

GQuark
gab_python_error_quark (void)
{
  static GQuark quark;
  static gsize initialized;

  if (g_once_init_enter (&initialized))
    {
      quark = g_error_domain_register_static ("gab-python-error-quark",
                                              sizeof (GabPythonErrorPrivate),
                                              private_init, private_copy,
                                              private_clear);
      g_once_init_leave (&initialized, 1);
    }
  return quark;
}

/**
 * gab_python_error_quark:
 *
 * The %GAB_PYTHON_ERROR domain.
 *
 * Returns: the quark
 *
 * Since: 0.1
 */

/**
 * gab_error_quark:
 *
 * The %GAB_ERROR domain.
 *
 * Returns: the quark
 *
 * Since: 0.1
 */
G_DEFINE_QUARK (gab-error-quark, gab_error)

/* G_IO_ERROR codes that mean an errno, for both directions. */
static const struct
{
  GIOErrorEnum code;
  int          errnum;
} io_errno[] = {
  { G_IO_ERROR_NOT_FOUND, ENOENT },
  { G_IO_ERROR_EXISTS, EEXIST },
  { G_IO_ERROR_PERMISSION_DENIED, EACCES },
  { G_IO_ERROR_IS_DIRECTORY, EISDIR },
  { G_IO_ERROR_NOT_DIRECTORY, ENOTDIR },
  { G_IO_ERROR_NOT_EMPTY, ENOTEMPTY },
  { G_IO_ERROR_CONNECTION_REFUSED, ECONNREFUSED },
  { G_IO_ERROR_BROKEN_PIPE, EPIPE },
  { G_IO_ERROR_CONNECTION_CLOSED, ECONNRESET },
  { G_IO_ERROR_NO_SPACE, ENOSPC },
  { G_IO_ERROR_FILENAME_TOO_LONG, ENAMETOOLONG },
  { G_IO_ERROR_TOO_MANY_OPEN_FILES, EMFILE },
  { G_IO_ERROR_READ_ONLY, EROFS },
  { G_IO_ERROR_TOO_MANY_LINKS, ELOOP },
  { G_IO_ERROR_BUSY, EBUSY },
  { G_IO_ERROR_WOULD_BLOCK, EAGAIN },
  { G_IO_ERROR_ADDRESS_IN_USE, EADDRINUSE },
  { G_IO_ERROR_HOST_UNREACHABLE, EHOSTUNREACH },
  { G_IO_ERROR_NETWORK_UNREACHABLE, ENETUNREACH },
  { G_IO_ERROR_NOT_CONNECTED, ENOTCONN },
  { G_IO_ERROR_MESSAGE_TOO_LARGE, EMSGSIZE },
  { G_IO_ERROR_NOT_SUPPORTED, EOPNOTSUPP },
  { G_IO_ERROR_INVALID_ARGUMENT, EINVAL },
};

/* Python's OSError subclasses, for exceptions raised without an errno. */
static const struct
{
  const char  *name;
  GIOErrorEnum code;
} os_subclass[] = {
  { "FileNotFoundError", G_IO_ERROR_NOT_FOUND },
  { "FileExistsError", G_IO_ERROR_EXISTS },
  { "PermissionError", G_IO_ERROR_PERMISSION_DENIED },
  { "IsADirectoryError", G_IO_ERROR_IS_DIRECTORY },
  { "NotADirectoryError", G_IO_ERROR_NOT_DIRECTORY },
  { "ConnectionRefusedError", G_IO_ERROR_CONNECTION_REFUSED },
  { "BrokenPipeError", G_IO_ERROR_BROKEN_PIPE },
  { "ConnectionResetError", G_IO_ERROR_CONNECTION_CLOSED },
  { "BlockingIOError", G_IO_ERROR_WOULD_BLOCK },
};

/* GLibError, made by _error.py when the unit starts. */
static PyObject *glib_error_class;

static gboolean
error_start (void)
{
  /* Register the extended domain before a GLibError's .domain can make a
   * plain quark of its name: a GAB_PYTHON_ERROR made then would have no
   * private part, and reading it would read before the GError. */
  (void) gab_python_error_quark ();

  glib_error_class = gab_py_run_file_get (&gab_py_source_error, "gasyncbridge._error",
                                          "GLibError");
  return glib_error_class != NULL;
}

static GabSubsystem error_subsystem = {
  .name = "error",
  .start = error_start,
};

gboolean
gab_error_start_subsystem (GabSubsystem *subsystem,
                           GError      **error)
{
  if (!Py_IsInitialized ())
    {
      g_set_error_literal (error, GAB_ERROR, GAB_ERROR_PYTHON_NOT_INITIALIZED,
                           "The Python interpreter is not initialized");
      return FALSE;
    }
  if (gab_lifecycle_start (&error_subsystem) && gab_lifecycle_start (subsystem))
    return TRUE;
  gab_error_set_from_python (error);
  return FALSE;
}

/**
 * gab_error_get_glib_error_class:
 *
 * The `gasyncbridge.GLibError` exception class, for extension modules that
 * raise or catch it: a Python class object (as gab_stream_reader_get_class()
 * gives its class), not a #GType. Needs the GIL.
 *
 * Returns: (transfer none) (nullable): the class, or %NULL with an
 *   exception set if the bridge could not initialize
 *
 * Since: 0.1
 */
PyObject *
gab_error_get_glib_error_class (void)
{
  if (!gab_lifecycle_start (&error_subsystem))
    return NULL;
  return glib_error_class;
}

gchar *
gab_exception_describe (PyObject *exception)
{
  PyObject *str = PyObject_Str (exception);
  const char *text = str != NULL ? PyUnicode_AsUTF8 (str) : NULL;
  gchar *ret;

  if (text == NULL)
    {
      PyErr_Clear ();
      text = "";
    }
  if (text[0] != '\0')
    ret = g_strdup_printf ("%s: %s", Py_TYPE (exception)->tp_name, text);
  else
    ret = g_strdup (Py_TYPE (exception)->tp_name);
  Py_XDECREF (str);
  return ret;
}

static int
get_int_attr (PyObject   *object,
              PyObject   *name,
              long       *out)
{
  PyObject *value = PyObject_GetAttr (object, name);
  int ok = 0;

  if (value != NULL && PyLong_Check (value))
    {
      *out = PyLong_AsLong (value);
      ok = !(*out == -1 && PyErr_Occurred ());
    }
  Py_XDECREF (value);
  PyErr_Clear ();
  return ok;
}

/* isinstance() that never leaves an exception set: it can raise (a
 * __class__ property that raises), and the mapping goes on calling Python,
 * which must not run with an exception pending. Failing counts as no. */
static gboolean
is_instance (PyObject *exception,
             PyObject *cls)
{
  int status = PyObject_IsInstance (exception, cls);

  if (status < 0)
    PyErr_Clear ();
  return status == 1;
}

static int errno_for (GQuark domain,
                      gint   code);

/* GLib keeps every quark for the life of the process: left to make one of
 * each new GLibError domain, a program could grow memory without bound. A
 * domain that is a quark already costs nothing; new ones are limited in
 * number and length. */
#define MAX_NEW_DOMAINS 256
#define MAX_NEW_DOMAIN_LENGTH 128

/* The quark of a GLibError's .domain, or 0 when it is no quark yet and may
 * not become one: past the limits above, or with a NUL, which a quark
 * would cut off. */
static GQuark
glib_error_domain (const char *name,
                   Py_ssize_t  length)
{
  static gint n_new_domains;
  GQuark quark;
  gint n;

  if (strlen (name) != (gsize) length)
    return 0;
  quark = g_quark_try_string (name);
  if (quark != 0)
    return quark;
  if (length > MAX_NEW_DOMAIN_LENGTH)
    return 0;

  do
    {
      n = g_atomic_int_get (&n_new_domains);
      if (n >= MAX_NEW_DOMAINS)
        return 0;
    }
  while (!g_atomic_int_compare_and_exchange (&n_new_domains, n, n + 1));

  return g_quark_from_string (name);
}

/* An OSError that gab_error_new_python_exception() made carries the
 * .domain and .code of its GError. G_FILE_ERROR and G_SPAWN_ERROR share
 * their errnos with G_IO_ERROR, so only these attributes tell which the
 * error came from: take them back when they agree with @errnum (an errno
 * changed since, or attributes of some other meaning, lose to the errno).
 * Never creates a quark. */
static gboolean
errno_error_kept (PyObject *exception,
                  long      errnum,
                  GQuark   *domain,
                  gint     *code)
{
  PyObject *value = PyObject_GetAttr (exception, gab_py.s_domain);
  const char *name = NULL;
  GQuark quark = 0;
  long number;

  if (value != NULL && PyUnicode_Check (value))
    name = PyUnicode_AsUTF8 (value);
  if (name != NULL)
    quark = g_quark_try_string (name);
  Py_XDECREF (value);
  PyErr_Clear ();

  if (quark == 0
      || !get_int_attr (exception, gab_py.s_code, &number)
      || number < G_MININT || number > G_MAXINT
      || errno_for (quark, (gint) number) != errnum)
    return FALSE;

  *domain = quark;
  *code = (gint) number;
  return TRUE;
}

static gboolean
is_instance_of_builtin (PyObject   *exception,
                        const char *name)
{
  PyObject *builtins = PyEval_GetBuiltins ();
  PyObject *cls = builtins != NULL ? PyDict_GetItemString (builtins, name) : NULL;

  return cls != NULL && is_instance (exception, cls);
}

/* GIL held. Turns an exception object into a GError, mapping it when it
 * has a GLib equivalent and keeping it (GAB_PYTHON_ERROR) otherwise. */
GError *
gab_error_from_exception (PyObject *exception)
{
  g_autofree gchar *message = NULL;
  GError *error;
  long errnum;

  if (gab_py.cancelled_error != NULL
      && is_instance (exception, gab_py.cancelled_error))
    {
      PyObject *str = PyObject_Str (exception);
      const char *text = str != NULL ? PyUnicode_AsUTF8 (str) : NULL;

      error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                   text != NULL && text[0] != '\0'
                                   ? text : "Operation was cancelled");
      Py_XDECREF (str);
      PyErr_Clear ();
      return error;
    }

  if (glib_error_class != NULL
      && is_instance (exception, glib_error_class))
    {
      PyObject *domain, *msg = NULL;
      const char *domain_utf8 = NULL, *msg_utf8 = NULL;
      Py_ssize_t domain_length = 0;
      GQuark quark = 0;
      long code = 0;

      /* Each lookup only while no exception is pending: they run Python
       * code (properties) that must not start with one set. */
      domain = PyObject_GetAttr (exception, gab_py.s_domain);
      if (domain != NULL && PyUnicode_Check (domain))
        domain_utf8 = PyUnicode_AsUTF8AndSize (domain, &domain_length);
      if (domain_utf8 != NULL)
        msg = PyObject_GetAttr (exception, gab_py.s_message);
      if (msg != NULL && PyUnicode_Check (msg))
        msg_utf8 = PyUnicode_AsUTF8 (msg);
      /* A .code that is no int, or does not fit a GError's, would become
       * a wrong code: such an exception is kept instead, as below. Checked
       * before the domain, which may make a quark. */
      if (msg_utf8 != NULL
          && get_int_attr (exception, gab_py.s_code, &code)
          && code >= G_MININT && code <= G_MAXINT)
        quark = glib_error_domain (domain_utf8, domain_length);
      if (quark != 0)
        {
          error = g_error_new_literal (quark, (gint) code, msg_utf8);
          Py_DECREF (domain);
          Py_DECREF (msg);
          return error;
        }
      Py_XDECREF (domain);
      Py_XDECREF (msg);
      PyErr_Clear ();
      /* A GLibError without a domain it may have as a GError is a plain
       * Python exception: kept, it comes back with its .domain. */
    }

  message = gab_exception_describe (exception);

  if (is_instance (exception, PyExc_TimeoutError))
    return g_error_new_literal (G_IO_ERROR, G_IO_ERROR_TIMED_OUT, message);

  if (is_instance (exception, PyExc_OSError))
    {
      PyObject *name = PyUnicode_InternFromString ("errno");
      gboolean has_errno = name != NULL && get_int_attr (exception, name, &errnum);

      Py_XDECREF (name);
      PyErr_Clear ();
      if (has_errno && errnum > 0)
        {
          GIOErrorEnum code;
          GQuark kept_domain;
          gint kept_code;

          if (errno_error_kept (exception, errnum, &kept_domain, &kept_code))
            {
              /* Made from a GError, whose message is its strerror: the
               * same message goes back, not "FileNotFoundError: [Errno 2] ..." */
              PyObject *strerror = PyObject_GetAttrString (exception, "strerror");
              const char *text = strerror != NULL && PyUnicode_Check (strerror)
                                 ? PyUnicode_AsUTF8 (strerror) : NULL;

              error = g_error_new_literal (kept_domain, kept_code,
                                           text != NULL ? text : message);
              Py_XDECREF (strerror);
              PyErr_Clear ();
              return error;
            }

          code = g_io_error_from_errno ((gint) errnum);
          if (code != G_IO_ERROR_FAILED)
            return g_error_new_literal (G_IO_ERROR, code, message);
        }
      for (gsize i = 0; i < G_N_ELEMENTS (os_subclass); i++)
        if (is_instance_of_builtin (exception, os_subclass[i].name))
          return g_error_new_literal (G_IO_ERROR, os_subclass[i].code, message);
    }

  error = g_error_new_literal (GAB_PYTHON_ERROR, GAB_PYTHON_ERROR_EXCEPTION, message);
  {
    GabPythonErrorPrivate *priv = gab_python_error_get_private (error);
    priv->exception = gab_py_ref_new (exception);
  }
  return error;
}

/**
 * gab_error_set_from_python:
 * @error: return location for a #GError
 *
 * Takes the current Python exception (clearing it) and stores it in @error,
 * mapped as described in gab-error.h: CancelledError, TimeoutError and
 * OSError subclasses become their %G_IO_ERROR codes, a GLibError its own
 * domain and code, and anything else %GAB_PYTHON_ERROR keeping the
 * exception object. An OSError made from a #GError (by
 * gab_error_new_python_exception()) becomes that #GError's domain and code
 * again, %G_FILE_ERROR and %G_SPAWN_ERROR included, unless its `.errno`
 * no longer matches them. Needs the GIL. With no exception set, @error
 * says so.
 *
 * GLib keeps every error domain (a #GQuark) for the life of the process,
 * so the bridge makes at most 256 new ones from GLibError domains, each at
 * most 128 bytes long. A GLibError whose domain is no quark yet and would
 * be past these limits, or has a NUL in it, becomes a %GAB_PYTHON_ERROR
 * keeping the exception (and so its `.domain`) instead; so does one whose
 * `.code` is not an int that fits a #GError's code. A domain that is a
 * quark already, such as one the C code that checks for it has used,
 * always maps.
 *
 * Since: 0.1
 */
void
gab_error_set_from_python (GError **error)
{
  PyObject *value;
  GError *new_error;

  g_return_if_fail (error == NULL || *error == NULL);
  g_return_if_fail (GAB_GIL_HELD ());

  if (!PyErr_Occurred ())
    {
      g_set_error_literal (error, GAB_PYTHON_ERROR, GAB_PYTHON_ERROR_EXCEPTION,
                           "A Python call failed without setting an exception");
      return;
    }
  value = PyErr_GetRaisedException ();
  new_error = value != NULL ? gab_error_from_exception (value) : NULL;
  if (new_error == NULL)
    new_error = g_error_new_literal (GAB_PYTHON_ERROR, GAB_PYTHON_ERROR_EXCEPTION,
                                     "A Python exception could not be normalized");
  Py_XDECREF (value);
  /* Mapping must not leave an exception of its own behind. */
  PyErr_Clear ();
  g_propagate_error (error, new_error);
}

/**
 * gab_python_error_get_exception:
 * @error: a #GError
 *
 * The exception object kept by a %GAB_PYTHON_ERROR error. Needs the GIL.
 *
 * Returns: (transfer full) (nullable): the exception, or %NULL if @error is
 *   of another domain
 *
 * Since: 0.1
 */
PyObject *
gab_python_error_get_exception (const GError *error)
{
  GabPythonErrorPrivate *priv;

  g_return_val_if_fail (error != NULL, NULL);
  g_return_val_if_fail (GAB_GIL_HELD (), NULL);
  if (error->domain != GAB_PYTHON_ERROR)
    return NULL;
  priv = gab_python_error_get_private (error);
  if (priv == NULL || priv->exception == NULL)
    return NULL;
  return Py_NewRef (gab_py_ref_get (priv->exception));
}

/* @table[@code] of a table of @n errnos indexed by code, or 0. */
static int
errno_lookup (const int *table,
              gsize      n,
              gint       code)
{
  return code >= 0 && (gsize) code < n ? table[code] : 0;
}

/* The errno an error of @domain and @code means, or 0. */
static int
errno_for (GQuark domain,
           gint   code)
{
  if (domain == G_IO_ERROR)
    {
      for (gsize i = 0; i < G_N_ELEMENTS (io_errno); i++)
        if (io_errno[i].code == (GIOErrorEnum) code)
          return io_errno[i].errnum;
    }
  else if (domain == G_FILE_ERROR)
    {
      static const int file_errno[] = {
        [G_FILE_ERROR_EXIST] = EEXIST, [G_FILE_ERROR_ISDIR] = EISDIR,
        [G_FILE_ERROR_ACCES] = EACCES, [G_FILE_ERROR_NAMETOOLONG] = ENAMETOOLONG,
        [G_FILE_ERROR_NOENT] = ENOENT, [G_FILE_ERROR_NOTDIR] = ENOTDIR,
        [G_FILE_ERROR_NXIO] = ENXIO, [G_FILE_ERROR_NODEV] = ENODEV,
        [G_FILE_ERROR_ROFS] = EROFS, [G_FILE_ERROR_TXTBSY] = ETXTBSY,
        [G_FILE_ERROR_FAULT] = EFAULT, [G_FILE_ERROR_LOOP] = ELOOP,
        [G_FILE_ERROR_NOSPC] = ENOSPC, [G_FILE_ERROR_NOMEM] = ENOMEM,
        [G_FILE_ERROR_MFILE] = EMFILE, [G_FILE_ERROR_NFILE] = ENFILE,
        [G_FILE_ERROR_BADF] = EBADF, [G_FILE_ERROR_INVAL] = EINVAL,
        [G_FILE_ERROR_PIPE] = EPIPE, [G_FILE_ERROR_AGAIN] = EAGAIN,
        [G_FILE_ERROR_INTR] = EINTR, [G_FILE_ERROR_IO] = EIO,
        [G_FILE_ERROR_PERM] = EPERM, [G_FILE_ERROR_NOSYS] = ENOSYS,
      };

      return errno_lookup (file_errno, G_N_ELEMENTS (file_errno), code);
    }
  else if (domain == G_SPAWN_ERROR)
    {
      /* A program that cannot be started: what asyncio raises there. */
      static const int spawn_errno[] = {
        [G_SPAWN_ERROR_NOMEM] = ENOMEM, [G_SPAWN_ERROR_ACCES] = EACCES,
        [G_SPAWN_ERROR_PERM] = EPERM, [G_SPAWN_ERROR_TOO_BIG] = E2BIG,
        [G_SPAWN_ERROR_NOEXEC] = ENOEXEC, [G_SPAWN_ERROR_NAMETOOLONG] = ENAMETOOLONG,
        [G_SPAWN_ERROR_NOENT] = ENOENT, [G_SPAWN_ERROR_NOTDIR] = ENOTDIR,
        [G_SPAWN_ERROR_LOOP] = ELOOP, [G_SPAWN_ERROR_TXTBUSY] = ETXTBSY,
        [G_SPAWN_ERROR_IO] = EIO, [G_SPAWN_ERROR_NFILE] = ENFILE,
        [G_SPAWN_ERROR_MFILE] = EMFILE, [G_SPAWN_ERROR_INVAL] = EINVAL,
        [G_SPAWN_ERROR_ISDIR] = EISDIR,
      };

      return errno_lookup (spawn_errno, G_N_ELEMENTS (spawn_errno), code);
    }
  return 0;
}

/**
 * gab_error_new_python_exception:
 * @error: a #GError
 *
 * The Python exception for @error, without raising it: the kept object for
 * %GAB_PYTHON_ERROR; asyncio.CancelledError for %G_IO_ERROR_CANCELLED;
 * TimeoutError for %G_IO_ERROR_TIMED_OUT; the OSError subclass of the errno
 * for errno-like %G_IO_ERROR and %G_FILE_ERROR codes; gasyncbridge.GLibError
 * for anything else. Each but the kept object carries `.domain` (str) and
 * `.code` (int). Needs the GIL.
 *
 * Returns: (transfer full) (nullable): the exception, or %NULL with a
 *   Python exception set if even that failed
 *
 * Since: 0.1
 */
PyObject *
gab_error_new_python_exception (const GError *error)
{
  PyObject *exception = NULL, *value, *message;
  int errnum;

  g_return_val_if_fail (error != NULL, NULL);
  g_return_val_if_fail (GAB_GIL_HELD (), NULL);
  if (!gab_lifecycle_start (&error_subsystem))
    return NULL;

  exception = gab_python_error_get_exception (error);
  if (exception != NULL)
    return exception;

  /* GError messages should be UTF-8 but are not always (file names):
   * decode with replacement rather than fail and lose the error. */
  message = PyUnicode_DecodeUTF8 (error->message ? error->message : "",
                                  error->message ? (Py_ssize_t) strlen (error->message) : 0,
                                  "replace");
  if (message == NULL)
    return NULL;
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    exception = PyObject_CallOneArg (gab_py.cancelled_error, message);
  else if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
    exception = PyObject_CallFunction (PyExc_TimeoutError, "iO", ETIMEDOUT, message);
  else if ((errnum = errno_for (error->domain, error->code)) != 0)
    /* OSError(errno, msg) returns the subclass for that errno. */
    exception = PyObject_CallFunction (PyExc_OSError, "iO", errnum, message);
  else
    exception = PyObject_CallFunction (glib_error_class, "Osi", message,
                                       g_quark_to_string (error->domain),
                                       error->code);
  Py_DECREF (message);
  if (exception == NULL)
    return NULL;

  value = PyUnicode_FromString (g_quark_to_string (error->domain));
  if (value == NULL || PyObject_SetAttr (exception, gab_py.s_domain, value) < 0)
    goto fail;
  Py_DECREF (value);
  value = PyLong_FromLong (error->code);
  if (value == NULL || PyObject_SetAttr (exception, gab_py.s_code, value) < 0)
    goto fail;
  Py_DECREF (value);
  return exception;

fail:
  Py_XDECREF (value);
  Py_DECREF (exception);
  return NULL;
}

/**
 * gab_error_to_python:
 * @error: a #GError
 *
 * Raises the Python exception for @error (see
 * gab_error_new_python_exception()). Needs the GIL.
 *
 * Returns: (transfer none) (nullable): always %NULL, so that a function can
 *   `return gab_error_to_python (error);`
 *
 * Since: 0.1
 */
PyObject *
gab_error_to_python (const GError *error)
{
  PyObject *exception;

  g_return_val_if_fail (error != NULL, NULL);
  g_return_val_if_fail (GAB_GIL_HELD (), NULL);
  exception = gab_error_new_python_exception (error);
  if (exception != NULL)
    {
      PyErr_SetObject ((PyObject *) Py_TYPE (exception), exception);
      Py_DECREF (exception);
    }
  return NULL;
}
