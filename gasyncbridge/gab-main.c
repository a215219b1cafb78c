/* gab-main.c: gab_main(), the async main of a C program that embeds
 * Python (pyo3-asyncio's #[main] attribute, for C).
 *
 * The main thread embeds Python and runs asyncio; the program's async main
 * runs on the runtime thread as the start function of a C future that the
 * main thread awaits. SIGINT and SIGTERM are caught by the asyncio loop and
 * cancel the main task's GCancellable (on the runtime thread), so the C
 * side cleans up and finishes; the exit status is then 128 + the signal.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gab-private.h"

#include <signal.h>

typedef struct
{
  GabMainFunc   async_main;
  int           argc;
  char        **argv;
  GCancellable *cancellable;   /* the main task's; set on the runtime thread */
  GMutex        lock;
  int           signum;        /* the signal that cancelled us, or 0 */
  GError       *task_error;    /* how the program's task failed, as is */
} MainData;

static MainData main_data;

static void
main_task_done (GObject      *source,
                GAsyncResult *result,
                gpointer      data)
{
  GTask *outer = data;
  GError *error = NULL;

  /* Hand the outcome to the bridge's callback, which takes the GTask. */
  if (g_task_propagate_boolean (G_TASK (result), &error))
    g_task_return_boolean (outer, TRUE);
  else
    {
      /* Kept for the message: on its way through Python it would be
       * reworded ("FileNotFoundError: [Errno 2] ..."). */
      g_mutex_lock (&main_data.lock);
      if (main_data.task_error == NULL)
        main_data.task_error = g_error_copy (error);
      g_mutex_unlock (&main_data.lock);
      g_task_return_error (outer, error);
    }
  g_object_unref (outer);
  /* The program's task was lent to async_main (transfer none): our
   * reference, kept until now, goes. GTask holds its own while it calls
   * us. */
  g_object_unref (result);
}

static void
main_start (GCancellable        *cancellable,
            GAsyncReadyCallback  callback,
            gpointer             callback_data,
            gpointer             user_data)
{
  GTask *outer = g_task_new (NULL, cancellable, callback, callback_data);
  GTask *task;

  g_mutex_lock (&main_data.lock);
  main_data.cancellable = g_object_ref (cancellable);
  g_mutex_unlock (&main_data.lock);

  /* The program's task: its cancellable is the one signals cancel. */
  task = g_task_new (NULL, cancellable, main_task_done, outer);
  g_task_set_name (task, "gab_main");
  main_data.async_main (task, main_data.argc, main_data.argv);
}

static PyObject *
main_finish (GObject       *source,
             GAsyncResult  *result,
             gpointer       user_data,
             GError       **error)
{
  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  Py_RETURN_NONE;
}

static gboolean
cancel_main (gpointer data)
{
  GCancellable *cancellable;

  g_mutex_lock (&main_data.lock);
  cancellable = main_data.cancellable ? g_object_ref (main_data.cancellable) : NULL;
  g_mutex_unlock (&main_data.lock);
  if (cancellable != NULL)
    {
      g_cancellable_cancel (cancellable);
      g_object_unref (cancellable);
    }
  return G_SOURCE_REMOVE;
}

static PyObject *
on_signal (PyObject *self,
           PyObject *arg)
{
  int signum = (int) PyLong_AsLong (arg);

  g_mutex_lock (&main_data.lock);
  if (main_data.signum == 0)
    main_data.signum = signum;
  g_mutex_unlock (&main_data.lock);
  /* GIO's cancelled handlers run on the runtime thread. */
  gab_invoke (cancel_main, NULL, NULL);
  Py_RETURN_NONE;
}

static PyMethodDef on_signal_def = { "_on_signal", on_signal, METH_O, NULL };

/* Runs on the loop: install the signal handlers, start the main task. */
static PyObject *
main_factory (PyObject *self,
              PyObject *unused)
{
  PyObject *loop = gab_py_running_loop ();
  PyObject *handler;
  const int signals[] = { SIGINT, SIGTERM };

  if (loop == NULL)
    {
      PyErr_SetString (PyExc_RuntimeError, "gab_main: no running loop");
      return NULL;
    }
  handler = PyCFunction_New (&on_signal_def, NULL);
  for (gsize i = 0; handler != NULL && i < G_N_ELEMENTS (signals); i++)
    {
      PyObject *ret = PyObject_CallMethod (loop, "add_signal_handler", "iOi",
                                           signals[i], handler, signals[i]);
      Py_XDECREF (ret);
      PyErr_Clear ();
    }
  Py_XDECREF (handler);
  Py_DECREF (loop);
  return gab_future_into_py (main_start, main_finish, NULL, NULL);
}

static PyMethodDef main_factory_def = { "_gab_main", main_factory, METH_NOARGS, NULL };

static PyObject *
main_coroutine (void)
{
  return gab_py_coroutine_from_factory (&main_factory_def);
}

/**
 * gab_main:
 * @argc: the program's argument count
 * @argv: (array length=argc): the program's arguments
 * @async_main: the program's asynchronous main function; the #GTask it
 *   gets is lent (transfer none): gab_main() keeps a reference until the
 *   task completes, so a callback may use it without taking one
 *
 * Runs a C program whose main is asynchronous: embeds Python (@argv becomes
 * `sys.argv`, and the program's directory is importable), keeps the main
 * thread for the asyncio event loop, and calls @async_main on the runtime
 * thread with a #GTask to complete. SIGINT and SIGTERM cancel the task's
 * #GCancellable. When the task completes, the runtime and then Python are
 * shut down.
 *
 * Returns: 0 if the task succeeded; 128 + the signal number if a signal
 *   cancelled it; 1 otherwise, after printing the error to stderr
 *
 * Since: 0.1
 */
int
gab_main (int          argc,
          char       **argv,
          GabMainFunc  async_main)
{
  g_autoptr(GError) error = NULL;
  PyObject *coro, *ret;
  int status = 0;

  g_return_val_if_fail (async_main != NULL, 1);

  main_data.async_main = async_main;
  main_data.argc = argc;
  main_data.argv = argv;

  if (!gab_python_embed (argc, argv, FALSE, &error))
    {
      g_printerr ("%s: %s\n", argc > 0 ? argv[0] : "gab_main", error->message);
      return 1;
    }

  coro = main_coroutine ();
  ret = coro != NULL ? gab_run (coro) : NULL;
  Py_XDECREF (coro);
  if (ret == NULL)
    {
      gab_error_set_from_python (&error);
      status = 1;
    }
  Py_XDECREF (ret);

  g_mutex_lock (&main_data.lock);
  if (error != NULL && main_data.task_error != NULL)
    {
      /* The program's own error, not its Python rendering. */
      g_clear_error (&error);
      error = g_steal_pointer (&main_data.task_error);
    }
  g_clear_error (&main_data.task_error);
  if (main_data.signum != 0
      && (error == NULL || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED)))
    {
      status = 128 + main_data.signum;
      g_clear_error (&error);
    }
  g_clear_object (&main_data.cancellable);
  g_mutex_unlock (&main_data.lock);

  if (error != NULL)
    {
      g_autofree gchar *name = g_path_get_basename (argc > 0 ? argv[0] : "gab_main");

      g_printerr ("%s: %s\n", name, error->message);
    }

  /* Runtime first, while Python still works; then Python. */
  gab_shutdown ();
  g_clear_error (&error);
  if (Py_FinalizeEx () < 0 && status == 0)
    status = 120;
  return status;
}
