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
