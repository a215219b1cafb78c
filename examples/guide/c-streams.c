/* c-streams.c: a Python async generator as a GInputStream (doc/guide/09).
 *
 * shop.report() yields bytes; gab_input_stream_new() turns it into a
 * GInputStream that any GIO consumer reads: here g_output_stream_splice
 * into memory, then printed.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gasyncbridge.h>

/* [guide:input-stream] */
static void
spliced (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  GTask *task = user_data;
  GError *error = NULL;
  GMemoryOutputStream *memory = G_MEMORY_OUTPUT_STREAM (source);

  if (g_output_stream_splice_finish (G_OUTPUT_STREAM (memory), result, &error) < 0)
    {
      g_task_return_error (task, error);
      return;
    }
  g_print ("%.*s", (int) g_memory_output_stream_get_data_size (memory),
           (const char *) g_memory_output_stream_get_data (memory));
  g_task_return_boolean (task, TRUE);
}

static void
async_main (GTask  *task,
            int     argc,
            char  **argv)
{
  GError *error = NULL;
  g_autoptr(GInputStream) report = NULL;
  g_autoptr(GOutputStream) memory = g_memory_output_stream_new_resizable ();
  PyGILState_STATE gil = PyGILState_Ensure ();
  PyObject *shop = PyImport_ImportModule ("shop");
  PyObject *chunks = shop != NULL ? PyObject_CallMethod (shop, "report", NULL) : NULL;

  if (chunks != NULL)               /* an async iterable of bytes-like chunks */
    report = gab_input_stream_new (chunks, &error);
  else
    gab_error_set_from_python (&error);
  Py_XDECREF (chunks);
  Py_XDECREF (shop);
  PyGILState_Release (gil);
  if (report == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  /* Any GIO consumer: a file, a socket, a GSubprocess's stdin, ... */
  g_output_stream_splice_async (memory, report,
                                G_OUTPUT_STREAM_SPLICE_CLOSE_SOURCE
                                | G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET,
                                G_PRIORITY_DEFAULT, g_task_get_cancellable (task),
                                spliced, task);
}

GAB_MAIN (async_main)
/* [/guide:input-stream] */
