/* gab-call.c: call a Python (async) function from C with GVariant
 * arguments and get a GVariant back — for GLib code that never touches
 * Python objects, and needs no GIL.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gasyncbridge.h>
#include "gab-python.h"
#include "gab-runtime-private.h"
#include "gab-loop-queue.h"
#include "gab-caller-task.h"
#include "gab-task-locals-private.h"
#include "gab-into-future-private.h"

typedef struct
{
  GabLoopItem    item;
  GTask         *task;
  GabLoopQueue  *dispatch_queue;
  GabTaskLocals *locals;
  gchar         *module;
  gchar         *function;
  GVariant      *args;
} Call;

static void
call_free (Call *call)
{
  g_clear_pointer (&call->locals, gab_task_locals_unref);
  g_clear_pointer (&call->args, g_variant_unref);
  g_free (call->module);
  g_free (call->function);
  g_free (call);
}

/* Loop thread, GIL: import, convert, call, and await what comes back. */
static void
call_run (GabLoopItem *item,
          gboolean     alive)
{
  Call *call = (Call *) item;
  PyObject *module = NULL, *func = NULL, *args = NULL, *value = NULL;
  GError *error = NULL;

  if (!alive)
    {
      error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CLOSED,
                                   "The asyncio event loop has been closed");
      goto done;
    }

  module = PyImport_ImportModule (call->module);
  if (module != NULL)
    func = PyObject_GetAttrString (module, call->function);
  if (func != NULL)
    {
      if (call->args != NULL)
        args = gab_variant_to_python (call->args);
      else
        args = PyTuple_New (0);
    }
  if (args != NULL)
    {
      /* The call itself, like the task after it, runs in the context of
       * the task locals. */
      PyObject *run = PyObject_GetAttr (call->locals->context, gab_py.s_run);
      PyObject *run_args = NULL;

      if (run != NULL)
        {
          Py_ssize_t n = PyTuple_GET_SIZE (args);

          run_args = PyTuple_New (n + 1);
          if (run_args != NULL)
            {
              PyTuple_SET_ITEM (run_args, 0, Py_NewRef (func));
              for (Py_ssize_t i = 0; i < n; i++)
                PyTuple_SET_ITEM (run_args, i + 1, Py_NewRef (PyTuple_GET_ITEM (args, i)));
              value = PyObject_Call (run, run_args, NULL);
            }
        }
      Py_XDECREF (run);
      Py_XDECREF (run_args);
    }
  if (value == NULL)
    {
      gab_error_set_from_python (&error);
      goto done;
    }

  if (gab_py_is_awaitable (value))
    {
      gab_into_future_start (call->locals, value, g_steal_pointer (&call->task),
                             g_steal_pointer (&call->dispatch_queue), TRUE);
    }
  else
    {
      /* A plain function: its return value is the result. */
      GVariant *variant = NULL;

      if (value != Py_None)
        variant = gab_variant_from_python (value, NULL, &error);
      if (error == NULL)
        gab_into_future_return (g_steal_pointer (&call->task),
                                g_steal_pointer (&call->dispatch_queue),
                                TRUE, NULL, variant, NULL);
    }

done:
  if (call->task != NULL)
    gab_into_future_return (g_steal_pointer (&call->task),
                            g_steal_pointer (&call->dispatch_queue),
                            TRUE, NULL, NULL, error);
  Py_XDECREF (module);
  Py_XDECREF (func);
  Py_XDECREF (args);
  Py_XDECREF (value);
  PyErr_Clear ();
  call_free (call);
}

/**
 * gab_call_async:
 * @module: the module to import, e.g. "mypackage.tasks"
 * @function: the name of a function in @module
 * @args: (nullable): the arguments, a tuple #GVariant (floating references
 *   are sunk)
 * @cancellable: (nullable): cancels the Python task
 * @callback: (scope async): called when the call is done
 * @user_data: (closure): data for @callback
 *
 * Calls `module.function(*args)` on the loop of the current task locals
 * (see gab_task_locals_get_current()), awaits the result if it is
 * awaitable, and converts it to a #GVariant (see gab_variant_from_python()).
 * Works from any thread and needs no GIL. @callback runs in the caller's
 * thread-default #GMainContext. Import errors, Python exceptions and values
 * that cannot be converted fail the call with a #GError.
 *
 * Since: 0.1
 */
void
gab_call_async (const gchar         *module,
                const gchar         *function,
                GVariant            *args,
                GCancellable        *cancellable,
                GAsyncReadyCallback  callback,
                gpointer             user_data)
{
  g_autoptr(GVariant) owned_args = NULL;
  GabLoopQueue *dispatch_queue = NULL;
  GError *error = NULL;
  GTask *task;
  Call *call;

  g_return_if_fail (module != NULL);
  g_return_if_fail (function != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  if (args != NULL)
    owned_args = g_variant_ref_sink (args);

  task = gab_caller_task_new (NULL, cancellable, callback, user_data,
                              GAB_TAG (gab_call_async), &dispatch_queue);
  g_task_set_name (task, "gab_call_async");

  if (owned_args != NULL && !g_variant_is_of_type (owned_args, G_VARIANT_TYPE_TUPLE))
    {
      g_set_error (&error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "gab_call_async: the arguments must be a tuple GVariant, "
                   "not '%s'", g_variant_get_type_string (owned_args));
      goto fail;
    }
  if (!Py_IsInitialized ())
    {
      g_set_error_literal (&error, GAB_ERROR, GAB_ERROR_PYTHON_NOT_INITIALIZED,
                           "gab_call_async: the Python interpreter is not "
                           "initialized (or is finalizing)");
      goto fail;
    }
  if (!gab_runtime_ensure (&error))
    goto fail;

  call = g_new0 (Call, 1);
  call->locals = gab_task_locals_resolve (&error);
  if (call->locals == NULL)
    {
      g_free (call);
      goto fail;
    }
  call->item.run = call_run;
  call->task = task;
  call->dispatch_queue = dispatch_queue;
  call->module = g_strdup (module);
  call->function = g_strdup (function);
  call->args = g_steal_pointer (&owned_args);
  /* Always through the queue, even on the loop thread: the call must not
   * run Python inside the caller's stack. */
  if (gab_loop_queue_try_push (call->locals->queue, &call->item))
    return;
  /* The loop is gone: say so now rather than when somebody next holds the
   * GIL. Nothing here needs it. */
  call->task = NULL;
  call->dispatch_queue = NULL;
  call_free (call);
  g_set_error_literal (&error, G_IO_ERROR, G_IO_ERROR_CLOSED,
                       "gab_call_async: the asyncio event loop of the task "
                       "locals has been closed");

fail:
  gab_into_future_return (task, dispatch_queue, TRUE, NULL, NULL, error);
}

/**
 * gab_call_finish:
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * The result of gab_call_async(). A Python result of None gives %NULL with
 * no error set. No GIL needed.
 *
 * Returns: (transfer full) (nullable): the result
 *
 * Since: 0.1
 */
GVariant *
gab_call_finish (GAsyncResult  *result,
                 GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == gab_call_async, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}
