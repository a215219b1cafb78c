/* rel-main.c: a GAB_MAIN program for the reliability tests
 * (pytests/test_reliability.py).
 *
 *     rel-main FUNCTION [ARG]   awaits relmod.FUNCTION (ARG) through
 *                               gab_call_async(), with the program's
 *                               cancellable, and prints "result: VALUE"
 *     rel-main --detach FUNCTION
 *                               starts relmod.FUNCTION () without a
 *                               cancellable and leaves it running: the
 *                               program's task completes once relmod.ok ()
 *                               has returned
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gasyncbridge.h>

static void
called (GObject      *source,
        GAsyncResult *result,
        gpointer      data)
{
  GTask *task = data;
  GError *error = NULL;
  g_autoptr(GVariant) value = gab_call_finish (result, &error);

  if (error != NULL)
    {
      g_print ("error: %s %d: %s\n", g_quark_to_string (error->domain), error->code,
               error->message);
      g_task_return_error (task, error);
      return;
    }
  if (value != NULL)
    {
      g_autofree gchar *text = g_variant_print (value, FALSE);

      g_print ("result: %s\n", text);
    }
  else
    g_print ("result: None\n");
  g_task_return_boolean (task, TRUE);
}

static void
detached (GObject      *source,
          GAsyncResult *result,
          gpointer      data)
{
  GError *error = NULL;
  GVariant *value = gab_call_finish (result, &error);

  /* At exit, after the program's task is over: the bridge closed it. */
  g_print ("detached call ended: %s\n", error != NULL ? error->message : "with a result");
  g_clear_pointer (&value, g_variant_unref);
  g_clear_error (&error);
}

static void
async_main (GTask  *task,
            int     argc,
            char  **argv)
{
  GVariant *args;

  if (argc == 3 && g_str_equal (argv[1], "--detach"))
    {
      gab_call_async ("relmod", argv[2], NULL, NULL, detached, NULL);
      gab_call_async ("relmod", "ok", NULL, g_task_get_cancellable (task), called, task);
      return;
    }

  if (argc < 2)
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                               "usage: rel-main FUNCTION [ARG]");
      return;
    }
  args = argc > 2 ? g_variant_new ("(s)", argv[2]) : g_variant_new ("()");
  gab_call_async ("relmod", argv[1], args, g_task_get_cancellable (task), called, task);
}

GAB_MAIN (async_main)
