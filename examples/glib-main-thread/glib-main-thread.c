/* glib-main-thread.c: a GLib program that keeps its main thread for its own
 * GMainLoop, as a GTK application does, and awaits Python coroutines.
 *
 * gab_init_with_context (g_main_context_default ()) makes the main context
 * the bridge's runtime, and gab_start_asyncio_thread () embeds Python and
 * runs an asyncio loop on a background thread. gab_call_async() then works
 * from the main thread, with no GIL, and its callbacks come back to the
 * main loop. At the end, gab_stop_asyncio_thread () stops the loop, joins
 * its thread and finalizes Python.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gasyncbridge.h>

typedef struct
{
  GMainLoop *main_loop;
  GThread   *main_thread;
  guint      pending;
  gint64     squares[3];
  gchar     *description;
  gboolean   callbacks_on_main;
  GError    *error;
} App;

static void
app_step (App    *app,
          GError *error)
{
  /* Every callback runs on the main thread, from the main loop. */
  app->callbacks_on_main = app->callbacks_on_main && g_thread_self () == app->main_thread;
  if (error != NULL && app->error == NULL)
    app->error = error;
  else if (error != NULL)
    g_error_free (error);
  if (--app->pending == 0)
    g_main_loop_quit (app->main_loop);
}

typedef struct
{
  App  *app;
  guint index;
} SquareCall;

static void
squared (GObject      *source,
         GAsyncResult *result,
         gpointer      data)
{
  SquareCall *call = data;
  GError *error = NULL;
  g_autoptr(GVariant) value = gab_call_finish (result, &error);

  if (value != NULL)
    call->app->squares[call->index] = g_variant_get_int64 (value);
  app_step (call->app, error);
  g_free (call);
}

static void
described (GObject      *source,
           GAsyncResult *result,
           gpointer      data)
{
  App *app = data;
  GError *error = NULL;
  g_autoptr(GVariant) value = gab_call_finish (result, &error);

  if (value != NULL)
    app->description = g_variant_dup_string (value, NULL);
  app_step (app, error);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GError) error = NULL;
  App app = { 0 };
  PyObject *loop;
  PyGILState_STATE state;

  if (!gab_init_with_context (g_main_context_default (), &error))
    {
      g_printerr ("%s: %s\n", argv[0], error->message);
      return 1;
    }
  loop = gab_start_asyncio_thread (&error);
  if (loop == NULL)
    {
      g_printerr ("%s: %s\n", argv[0], error->message);
      return 1;
    }
  /* We do not need the loop object itself: drop it, with the GIL. */
  state = PyGILState_Ensure ();
  Py_DECREF (loop);
  PyGILState_Release (state);

  app.main_loop = g_main_loop_new (NULL, FALSE);
  app.main_thread = g_thread_self ();
  app.callbacks_on_main = TRUE;

  /* Four coroutines at once, on the asyncio thread. */
  for (guint i = 0; i < G_N_ELEMENTS (app.squares); i++)
    {
      SquareCall *call = g_new0 (SquareCall, 1);

      call->app = &app;
      call->index = i;
      app.pending++;
      gab_call_async ("worker", "square", g_variant_new ("(x)", (gint64) i + 2),
                      NULL, squared, call);
    }
  app.pending++;
  gab_call_async ("worker", "describe", NULL, NULL, described, &app);

  g_main_loop_run (app.main_loop);
  g_main_loop_unref (app.main_loop);

  if (app.error == NULL)
    {
      for (guint i = 0; i < G_N_ELEMENTS (app.squares); i++)
        g_print ("%u squared is %" G_GINT64_FORMAT "\n", i + 2, app.squares[i]);
      g_print ("%s\n", app.description);
      g_print ("callbacks ran on %s\n",
               app.callbacks_on_main ? "the main thread" : "another thread");
    }

  /* Stop the loop, join its thread, finalize Python (the runtime first). */
  gab_stop_asyncio_thread ();
  g_print ("stopped\n");

  g_free (app.description);
  if (app.error != NULL)
    {
      g_printerr ("%s: %s\n", argv[0], app.error->message);
      g_error_free (app.error);
      return 1;
    }
  return 0;
}
