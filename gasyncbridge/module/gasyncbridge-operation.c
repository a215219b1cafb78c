/* gasyncbridge-operation.c: helpers of the module's GIO operations.
 * (gio.Operation itself is the bridge's: gab_future_into_py_full() with
 * GAB_FUTURE_CANCEL_WAITS makes one.)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gasyncbridge-module.h"

/* Runtime thread: complete *@task_slot with the error kept in *@error_slot,
 * or with success; both slots are emptied. */
void
gab_module_task_return_outcome (GTask  **task_slot,
                                GError **error_slot)
{
  GTask *task = g_steal_pointer (task_slot);

  if (*error_slot != NULL)
    g_task_return_error (task, g_steal_pointer (error_slot));
  else
    g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

void
gab_module_keep_first_error (GError **error_slot,
                             GError  *error)
{
  if (*error_slot == NULL)
    *error_slot = error;
  else
    g_error_free (error);
}

void
gab_module_source_clear (GSource **source_slot)
{
  GSource *source = g_steal_pointer (source_slot);

  if (source != NULL)
    {
      g_source_destroy (source);
      g_source_unref (source);
    }
}

PyObject *
gab_module_gio_future (GabStartFunc    start,
                       GabFinishFunc   finish,
                       gpointer        user_data,
                       GDestroyNotify  user_data_free,
                       GabFutureFlags  flags)
{
  GError *error = NULL;

  /* In a child of fork(), GIO work may have nobody to run it. */
  if (!gab_check_fork_child (&error))
    {
      if (user_data_free != NULL)
        user_data_free (user_data);   /* the GIL is held, as promised */
      gab_error_to_python (error);
      g_error_free (error);
      return NULL;
    }
  return gab_future_into_py_full (start, finish, user_data, user_data_free, flags);
}

gboolean
gab_module_check_fork_child (void)
{
  GError *error = NULL;

  if (gab_check_fork_child (&error))
    return TRUE;
  gab_error_to_python (error);
  g_error_free (error);
  return FALSE;
}
