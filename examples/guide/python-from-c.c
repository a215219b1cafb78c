/* python-from-c.c: C awaits Python (doc/guide/01-python-from-c.md).
 *
 * A program with an asynchronous main (GAB_MAIN) that runs five jobs at
 * once against shop.py, which ships next to it: a call with GVariants
 * (gab_call_async), an awaitable object (gab_into_future_async), a Python
 * exception seen from C, an async generator (GabAsyncIterator), and a
 * coroutine cancelled from C. Every callback runs on the runtime thread,
 * like async_main(): no locking is needed between them.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gasyncbridge.h>

static guint   jobs_left;
static GError *first_error;

/* A job is over (@error taken, if any): after the last one, end the program. */
static void
job_done (GTask  *task,
          GError *error)
{
  if (error != NULL && first_error == NULL)
    first_error = error;
  else
    g_clear_error (&error);
  if (--jobs_left > 0)
    return;
  if (first_error != NULL)
    g_task_return_error (task, g_steal_pointer (&first_error));
  else
    g_task_return_boolean (task, TRUE);
}

/* ---- a call with GVariants: no GIL, no Python objects ---------------- */

/* [guide:call-async] */
static void
priced (GObject      *source,
        GAsyncResult *result,
        gpointer      user_data)
{
  GTask *task = user_data;
  GError *error = NULL;
  g_autoptr(GVariant) price = gab_call_finish (result, &error);   /* no GIL */

  if (price != NULL)                       /* a Python int arrives as an int64 */
    g_print ("an apple costs %" G_GINT64_FORMAT "\n", g_variant_get_int64 (price));
  job_done (task, error);
}

static void
ask_price (GTask *task)
{
  /* shop.price ("apple"): arguments in a tuple GVariant, awaited on the loop */
  gab_call_async ("shop", "price", g_variant_new ("(s)", "apple"),
                  g_task_get_cancellable (task), priced, task);
}
/* [/guide:call-async] */

/* ---- an awaitable object: with the GIL ------------------------------- */

/* [guide:into-future] */
static void
pear_priced (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  GError *error = NULL;
  PyGILState_STATE gil = PyGILState_Ensure ();        /* Python objects: take the GIL */
  PyObject *price = gab_into_future_finish (result, &error);

  if (price != NULL)
    g_print ("a pear costs %ld\n", PyLong_AsLong (price));
  Py_XDECREF (price);
  PyGILState_Release (gil);                           /* before anything else */
  job_done (user_data, error);
}

static void
ask_pear_price (GTask *task)
{
  GError *error = NULL;
  PyGILState_STATE gil = PyGILState_Ensure ();
  PyObject *shop = PyImport_ImportModule ("shop");
  PyObject *coro = shop != NULL ? PyObject_CallMethod (shop, "price", "s", "pear") : NULL;

  if (coro != NULL)                                   /* any awaitable will do */
    gab_into_future_async (coro, g_task_get_cancellable (task), pear_priced, task);
  else
    gab_error_set_from_python (&error);               /* the exception, as a GError */
  Py_XDECREF (coro);
  Py_XDECREF (shop);
  PyGILState_Release (gil);
  if (error != NULL)
    job_done (task, error);
}
/* [/guide:into-future] */

/* ---- a Python exception, seen from C --------------------------------- */

/* [guide:python-error] */
static void
kiwi_priced (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) price G_GNUC_UNUSED = gab_call_finish (result, &error);

  /* KeyError has no GLib equivalent: it comes as GAB_PYTHON_ERROR, with the
   * message "KeyError: 'kiwi'", and the GError keeps the exception object. */
  if (g_error_matches (error, GAB_PYTHON_ERROR, GAB_PYTHON_ERROR_EXCEPTION))
    g_print ("no kiwis: %s\n", error->message);
  job_done (user_data, NULL);                          /* expected: not a failure */
}

static void
ask_kiwi_price (GTask *task)
{
  gab_call_async ("shop", "price", g_variant_new ("(s)", "kiwi"),
                  g_task_get_cancellable (task), kiwi_priced, task);
}
/* [/guide:python-error] */

/* ---- an async generator ---------------------------------------------- */

/* [guide:async-iterator] */
typedef struct
{
  GTask            *task;
  GabAsyncIterator *deliveries;
} Unloading;

static void
delivered (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  Unloading *unloading = user_data;
  GError *error = NULL;
  g_autoptr(GVariant) crate =
    gab_async_iterator_next_variant_finish (unloading->deliveries, result, &error);
  gint64 number;

  if (crate != NULL)                                   /* a dict comes as a{sv} */
    {
      if (g_variant_lookup (crate, "crate", "x", &number))
        g_print ("crate %" G_GINT64_FORMAT " unloaded\n", number);
      gab_async_iterator_next_variant_async (unloading->deliveries,
                                             g_task_get_cancellable (unloading->task),
                                             delivered, unloading);
      return;
    }
  if (error == NULL)                                   /* NULL, no error: the end */
    g_print ("all crates unloaded\n");
  job_done (unloading->task, error);
  g_object_unref (unloading->deliveries);
  g_free (unloading);
}

static void
unload (GTask *task)
{
  GError *error = NULL;
  GabAsyncIterator *deliveries = NULL;
  PyGILState_STATE gil = PyGILState_Ensure ();
  PyObject *shop = PyImport_ImportModule ("shop");
  PyObject *generator = shop != NULL ? PyObject_CallMethod (shop, "deliveries", "i", 3)
                                     : NULL;

  if (generator != NULL)     /* 1: the generator may run one item ahead of us */
    deliveries = gab_async_iterator_new (generator, 1, &error);
  else
    gab_error_set_from_python (&error);
  Py_XDECREF (generator);
  Py_XDECREF (shop);
  PyGILState_Release (gil);

  if (deliveries != NULL)
    {
      Unloading *unloading = g_new0 (Unloading, 1);

      unloading->task = task;
      unloading->deliveries = deliveries;
      gab_async_iterator_next_variant_async (deliveries, g_task_get_cancellable (task),
                                             delivered, unloading);
    }
  else
    job_done (task, error);
}
/* [/guide:async-iterator] */

/* ---- cancelling a coroutine from C ------------------------------------ */

/* [guide:cancel-python] */
static void
stocktake_stopped (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  GError *error = NULL;
  g_autoptr(GVariant) value G_GNUC_UNUSED = gab_call_finish (result, &error);

  /* Reported once the Python task has really stopped: its cleanup has run. */
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      g_print ("stocktake stopped\n");
      g_clear_error (&error);
    }
  job_done (user_data, error);
}

static gboolean
cancel_now (gpointer cancellable)
{
  g_cancellable_cancel (cancellable);
  return G_SOURCE_REMOVE;
}

static void
stocktake (GTask *task)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GSource) timeout = g_timeout_source_new (50);

  gab_call_async ("shop", "stocktake", NULL, cancellable, stocktake_stopped, task);

  /* Give up after 50 ms. The timeout goes to this thread's context (the
   * runtime's), not to g_main_context_default (): g_timeout_add () would
   * put it there, where nobody is looking. */
  g_source_set_callback (timeout, cancel_now, g_object_ref (cancellable), g_object_unref);
  g_source_attach (timeout, g_main_context_get_thread_default ());
}
/* [/guide:cancel-python] */

/* [guide:python-from-c-main] */
static void
async_main (GTask  *task,
            int     argc,
            char  **argv)                  /* on the runtime thread */
{
  jobs_left = 5;                           /* all five run at the same time */
  ask_price (task);
  ask_pear_price (task);
  ask_kiwi_price (task);
  unload (task);
  stocktake (task);
}

GAB_MAIN (async_main)
/* [/guide:python-from-c-main] */
