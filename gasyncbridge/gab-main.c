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
#include <gasyncbridge/gasyncbridge.h>
#include "gab-python.h"
#include "gab-loop-private.h"
#include "gab-error-private.h"
#include "gab-embed.h"
#include "gab-asyncio-private.h"
#include "gab-python-sources.h"

#include <signal.h>
#include <stdio.h>
#include <unistd.h>

/* The grace period of an exit (seconds): see gab_main(). */
#define GAB_EXIT_GRACE_SECONDS_DEFAULT 5.0

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

  if (signum == -1 && PyErr_Occurred ())
    return NULL;
  g_mutex_lock (&main_data.lock);
  if (main_data.signum == 0)
    main_data.signum = signum;
  g_mutex_unlock (&main_data.lock);
  /* GIO's cancelled handlers run on the runtime thread. */
  gab_invoke (cancel_main, NULL, NULL);
  Py_RETURN_NONE;
}

static PyMethodDef on_signal_def = { "_on_signal", on_signal, METH_O, NULL };

/* Runs on the loop: start the main task. */
static PyObject *
main_factory (PyObject *self,
              PyObject *unused)
{
  return gab_future_into_py (main_start, gab_future_finish_none, NULL, NULL);
}

static PyMethodDef main_factory_def = { "_gab_main", main_factory, METH_NOARGS, NULL };

/* GIL: the grace period of an exit, in seconds: GAB_EXIT_GRACE_SECONDS,
 * or 5. */
static double
exit_grace (void)
{
  const gchar *text = g_getenv ("GAB_EXIT_GRACE_SECONDS");
  gchar *end = NULL;
  double grace;

  if (text == NULL || *text == '\0')
    return GAB_EXIT_GRACE_SECONDS_DEFAULT;
  grace = g_ascii_strtod (text, &end);
  if (end == text || *end != '\0' || !(grace >= 0) || grace > 1e6)
    {
      g_printerr ("gab_main: ignoring GAB_EXIT_GRACE_SECONDS=%s (not a number of seconds)\n",
                  text);
      return GAB_EXIT_GRACE_SECONDS_DEFAULT;
    }
  return grace;
}

static PyObject *
forget_quietly_func (PyObject *self,
                     PyObject *task)
{
  gab_asyncio_task_forget_quietly (task);
  Py_RETURN_NONE;
}

static PyMethodDef forget_quietly_def = {
  "_forget_quietly", forget_quietly_func, METH_O, NULL
};

/* GIL: runs the program's main task on a new loop (see python/_gab_main.py).
 * Returns the outcome's exception (new ref, or NULL if it succeeded); sets
 * *forced when the process must exit without waiting any longer. FALSE
 * with a Python exception set if the runner itself failed. */
static gboolean
run_main_task (const char  *prog,
               PyObject   **outcome,
               gboolean    *forced)
{
  PyObject *globals, *forget, *coro = NULL, *wrapped = NULL, *handler = NULL;
  PyObject *ret = NULL;
  gboolean ok = FALSE;

  *outcome = NULL;
  *forced = FALSE;
  forget = PyCFunction_New (&forget_quietly_def, NULL);
  if (forget == NULL)
    return FALSE;
  globals = gab_py_run_file (&gab_py_source_gab_main, "gasyncbridge._gab_main",
                             "_forget_quietly", forget);
  Py_DECREF (forget);
  if (globals == NULL)
    return FALSE;
  coro = gab_py_coroutine_from_factory (&main_factory_def);
  if (coro != NULL)
    wrapped = gab_loop_wrap_main (coro);
  handler = PyCFunction_New (&on_signal_def, NULL);
  if (wrapped != NULL && handler != NULL)
    ret = PyObject_CallFunction (PyDict_GetItemString (globals, "run"), "OdOs",
                                 wrapped, exit_grace (), handler, prog);
  if (ret != NULL && PyTuple_Check (ret) && PyTuple_GET_SIZE (ret) == 2)
    {
      PyObject *exception = PyTuple_GET_ITEM (ret, 1);

      *forced = PyObject_IsTrue (PyTuple_GET_ITEM (ret, 0)) == 1;
      *outcome = exception != Py_None ? Py_NewRef (exception) : NULL;
      ok = TRUE;
    }
  else if (ret != NULL)
    PyErr_SetString (PyExc_SystemError, "gab_main: the runner returned something else");
  Py_XDECREF (ret);
  Py_XDECREF (handler);
  Py_XDECREF (wrapped);
  Py_XDECREF (coro);
  Py_DECREF (globals);
  return ok;
}

/* GIL: the exit status of a SystemExit, as Python's own exit computes it
 * (None: 0; an int: itself; anything else: printed, then 1). */
static int
system_exit_status (PyObject *exception,
                    const char *prog)
{
  PyObject *code = PyObject_GetAttrString (exception, "code");
  int status = 1;

  if (code == NULL || code == Py_None)
    status = code == NULL ? 1 : 0;
  else if (PyLong_Check (code))
    {
      long value = PyLong_AsLong (code);

      status = value == -1 && PyErr_Occurred () ? 1 : (int) (value & 0xff);
    }
  else
    {
      PyObject *text = PyObject_Str (code);
      const char *utf8 = text != NULL ? PyUnicode_AsUTF8 (text) : NULL;

      g_printerr ("%s\n", utf8 != NULL ? utf8 : prog);
      Py_XDECREF (text);
    }
  Py_XDECREF (code);
  PyErr_Clear ();
  return status;
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
 * #GCancellable. When the task completes, the Python tasks still running
 * are cancelled, and the runtime and then Python are shut down.
 *
 * Shutdown never hangs: after a signal, and for what still runs once the
 * task is over, gab_main() waits at most a grace period
 * (`GAB_EXIT_GRACE_SECONDS` in the environment, default 5 seconds), then
 * names what still runs on stderr and exits without waiting for it (with
 * `_exit()`, stdio flushed). A second SIGINT or SIGTERM exits at once.
 *
 * Returns: 0 if the task succeeded; 128 + the signal number if a signal
 *   cancelled it (or it was still running a grace period later); the code
 *   of a `SystemExit`, or 130 for a `KeyboardInterrupt`, raised by Python
 *   code on the loop (a coroutine that C awaited, say); 1 otherwise, after
 *   printing the error to stderr
 *
 * Since: 0.1
 */
int
gab_main (int          argc,
          char       **argv,
          GabMainFunc  async_main)
{
  g_autoptr(GError) error = NULL;
  g_autofree gchar *prog = NULL;
  PyObject *outcome = NULL;
  gboolean forced = FALSE, exit_exception = FALSE;
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

  prog = g_path_get_basename (argc > 0 ? argv[0] : "gab_main");
  if (!run_main_task (prog, &outcome, &forced))
    {
      gab_error_set_from_python (&error);
      status = 1;
    }
  else if (outcome != NULL
           && PyErr_GivenExceptionMatches (outcome, PyExc_SystemExit))
    /* Raised by Python code, or by a coroutine that C awaited: the
     * program exits as Python would. */
    {
      status = system_exit_status (outcome, prog);
      exit_exception = TRUE;
    }
  else if (outcome != NULL
           && PyErr_GivenExceptionMatches (outcome, PyExc_KeyboardInterrupt))
    {
      status = 128 + SIGINT;
      exit_exception = TRUE;
    }
  else if (outcome != NULL)
    {
      error = gab_error_from_exception (outcome);
      status = 1;
    }
  Py_CLEAR (outcome);

  g_mutex_lock (&main_data.lock);
  if (exit_exception)
    g_clear_error (&main_data.task_error);
  if (error != NULL && main_data.task_error != NULL)
    {
      /* The program's own error, not its Python rendering. */
      g_clear_error (&error);
      error = g_steal_pointer (&main_data.task_error);
    }
  g_clear_error (&main_data.task_error);
  if (main_data.signum != 0 && !exit_exception
      && (error == NULL || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED)
          || forced))
    {
      status = 128 + main_data.signum;
      g_clear_error (&error);
    }
  g_clear_object (&main_data.cancellable);
  g_mutex_unlock (&main_data.lock);

  if (error != NULL)
    g_printerr ("%s: %s\n", prog, error->message);

  if (forced)
    {
      /* Something still runs and would keep a normal exit waiting: the
       * runtime's shutdown, Python's finalization (threads, executors).
       * Exit without them, as promised. */
      fflush (NULL);
      _exit (status);
    }

  /* Runtime first, while Python still works; then Python. */
  gab_shutdown ();
  g_clear_error (&error);
  if (Py_FinalizeEx () < 0 && status == 0)
    status = 120;
  return status;
}
