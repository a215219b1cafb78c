/* glib-main.c: GLib keeps the main thread (as a GTK application does) and
 * asyncio runs on a background thread (doc/guide/03-event-loops.md).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gasyncbridge.h>

/* [guide:glib-main] */
static void
squared (GObject      *source,
         GAsyncResult *result,
         gpointer      main_loop)           /* the main thread, from its main loop */
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) square = gab_call_finish (result, &error);

  if (square != NULL)
    g_print ("7 squared is %" G_GINT64_FORMAT "\n", g_variant_get_int64 (square));
  else
    g_printerr ("glib-main: %s\n", error->message);
  g_main_loop_quit (main_loop);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GMainLoop) main_loop = g_main_loop_new (NULL, FALSE);
  PyGILState_STATE gil;
  PyObject *loop;

  /* The application's context is the runtime: GIO work of the bridge runs
   * there, on this thread. Then Python is embedded and asyncio runs on a
   * thread of its own, "gab-asyncio", as the default loop. */
  if (!gab_init_with_context (g_main_context_default (), &error)
      || (loop = gab_start_asyncio_thread (&error)) == NULL)
    {
      g_printerr ("glib-main: %s\n", error->message);
      return 1;
    }
  gil = PyGILState_Ensure ();               /* we need no loop object: drop it */
  Py_DECREF (loop);
  PyGILState_Release (gil);

  gab_call_async ("jobs", "square", g_variant_new ("(x)", (gint64) 7),
                  NULL, squared, main_loop);
  g_main_loop_run (main_loop);              /* or gtk_main (), g_application_run () */

  gab_stop_asyncio_thread ();               /* stop the loop, join it, finalize Python */
  return 0;
}
/* [/guide:glib-main] */
