/* readme.c: the README's "C awaits Python" example; calc.py is its Python
 * side. Run by `meson test --suite examples` (it prints 20 + 22 = 42).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/* [guide:readme-c] */
#include <gasyncbridge/gasyncbridge.h>

static void added (GObject *source, GAsyncResult *result, gpointer task)  /* runtime thread */
{
  GError *error = NULL;
  g_autoptr(GVariant) sum = gab_call_finish (result, &error);            /* no GIL needed */

  if (sum != NULL)
    g_print ("20 + 22 = %" G_GINT64_FORMAT "\n", g_variant_get_int64 (sum));
  if (error != NULL)
    g_task_return_error (task, error);         /* exit status 1, the error on stderr */
  else
    g_task_return_boolean (task, TRUE);        /* exit status 0 */
}

static void async_main (GTask *task, int argc, char **argv)
{
  gab_call_async ("calc", "add", g_variant_new ("(ii)", 20, 22),
                  g_task_get_cancellable (task), added, task);  /* Ctrl-C cancels it */
}

GAB_MAIN (async_main)
/* [/guide:readme-c] */
