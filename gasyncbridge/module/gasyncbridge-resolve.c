/* gasyncbridge-resolve.c: gio.resolve, host names to addresses. *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gasyncbridge-module.h"

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

const char gab_module_resolve_doc[] =
"resolve(host, *, family=0)\n--\n\n"
"Resolve a host name with GResolver (the system resolver, in GLib's\n"
"thread pool). Returns the addresses as a list of str, such as\n"
"['127.0.0.1', '::1'], in the resolver's order. family may be\n"
"socket.AF_INET or socket.AF_INET6 to ask for one kind only (0: both).\n"
"A name that does not resolve raises GLibError with the domain\n"
"'g-resolver-error-quark'. Example::\n\n"
"    addresses = await gio.resolve('localhost')";

PyObject *
gab_module_resolve (PyObject *self,
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
  return gab_module_gio_future (resolve_start, resolve_finish, resolve,
                                  resolve_free,
                                  GAB_FUTURE_CANCEL_WAITS);
}

