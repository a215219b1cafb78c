/* async-main.c: the async main of a C program (doc/guide/04-c-programs.md).
 *
 *     guide-async-main 3     serves 3 requests in Python, exit status 0
 *     guide-async-main       serves until SIGINT/SIGTERM: 130 or 143
 *     guide-async-main -5    Python raises ValueError: exit status 1
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/* [guide:gab-main] */
#include <gasyncbridge/gasyncbridge.h>

static void
served (GObject      *source,
        GAsyncResult *result,
        gpointer      user_data)
{
  GTask *task = user_data;
  GError *error = NULL;
  g_autoptr(GVariant) count = gab_call_finish (result, &error);

  if (count == NULL)
    {
      g_task_return_error (task, error);    /* after a signal: G_IO_ERROR_CANCELLED */
      return;
    }
  g_print ("served %" G_GINT64_FORMAT " requests\n", g_variant_get_int64 (count));
  g_task_return_boolean (task, TRUE);
}

static void
async_main (GTask  *task,
            int     argc,
            char  **argv)                   /* the runtime thread; argv is ours */
{
  gint64 requests = argc > 1 ? g_ascii_strtoll (argv[1], NULL, 10) : -1;

  gab_call_async ("jobs", "serve", g_variant_new ("(x)", requests),
                  g_task_get_cancellable (task), served, task);
}

GAB_MAIN (async_main)
/* [/guide:gab-main] */
