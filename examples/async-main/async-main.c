/* async-main.c: a C program whose main is asynchronous (GAB_MAIN).
 *
 * It awaits a Python coroutine (greeter.py, shipped next to the program)
 * and GIO work at the same time, then prints what came back:
 *
 *     async-main [FILE]      greet, load FILE (default: greeter.py) and
 *                            list the Python files beside the program
 *     async-main --wait      wait for SIGINT or SIGTERM, which cancel the
 *                            task's GCancellable: the Python coroutine and
 *                            the GIO read are cancelled, the program cleans
 *                            up and exits with 128 + the signal number
 *
 * async_main() runs on the runtime thread, so every callback below does
 * too: no locking is needed between them.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gasyncbridge.h>
#include <gio/gunixinputstream.h>

typedef struct
{
  GTask     *task;        /* the program's: complete it to exit */
  guint      pending;     /* operations still running */
  GError    *error;       /* the first failure */
  gchar     *greeting;
  gsize      lines;
  gchar     *file_name;
  GPtrArray *py_files;
  GFile     *dir;         /* the program's directory */
} Demo;

static void
demo_free (Demo *demo)
{
  g_clear_object (&demo->task);
  g_clear_error (&demo->error);
  g_free (demo->greeting);
  g_free (demo->file_name);
  g_clear_pointer (&demo->py_files, g_ptr_array_unref);
  g_clear_object (&demo->dir);
  g_free (demo);
}

static gint
compare_strings (gconstpointer a,
                 gconstpointer b)
{
  return g_strcmp0 (*(const gchar * const *) a, *(const gchar * const *) b);
}

/* One operation is over (@error taken, if any): when all are, report. */
static void
demo_step (Demo   *demo,
           GError *error)
{
  if (error != NULL && demo->error == NULL)
    demo->error = error;
  else if (error != NULL)
    g_error_free (error);
  if (--demo->pending > 0)
    return;

  if (demo->error != NULL)
    g_task_return_error (demo->task, g_steal_pointer (&demo->error));
  else
    {
      g_autofree gchar *py_files = NULL;

      g_ptr_array_sort (demo->py_files, compare_strings);
      g_ptr_array_add (demo->py_files, NULL);
      py_files = g_strjoinv (", ", (gchar **) demo->py_files->pdata);
      g_print ("python says: %s\n", demo->greeting);
      g_print ("%s has %" G_GSIZE_FORMAT " lines\n", demo->file_name, demo->lines);
      g_print ("python files here: %s\n", py_files);
      g_task_return_boolean (demo->task, TRUE);
    }
  demo_free (demo);
}

/* Python: greeter.greet ("world"). */
static void
greeted (GObject      *source,
         GAsyncResult *result,
         gpointer      data)
{
  Demo *demo = data;
  GError *error = NULL;
  g_autoptr(GVariant) greeting = gab_call_finish (result, &error);

  if (greeting != NULL)
    demo->greeting = g_variant_dup_string (greeting, NULL);
  demo_step (demo, error);
}

/* GIO: the file's contents. */
static void
loaded (GObject      *source,
        GAsyncResult *result,
        gpointer      data)
{
  Demo *demo = data;
  GError *error = NULL;
  g_autofree gchar *contents = NULL;
  gsize length;

  if (g_file_load_contents_finish (G_FILE (source), result, &contents, &length, NULL, &error))
    for (gsize i = 0; i < length; i++)
      demo->lines += contents[i] == '\n';
  demo_step (demo, error);
}

/* GIO: the program's directory, a batch of entries at a time. */
static void
listed (GObject      *source,
        GAsyncResult *result,
        gpointer      data)
{
  GFileEnumerator *enumerator = G_FILE_ENUMERATOR (source);
  Demo *demo = data;
  GError *error = NULL;
  GList *infos = g_file_enumerator_next_files_finish (enumerator, result, &error);

  for (GList *l = infos; l != NULL; l = l->next)
    {
      const gchar *name = g_file_info_get_name (l->data);

      if (g_str_has_suffix (name, ".py"))
        g_ptr_array_add (demo->py_files, g_strdup (name));
    }
  if (infos != NULL)
    {
      g_list_free_full (infos, g_object_unref);
      g_file_enumerator_next_files_async (enumerator, 32, G_PRIORITY_DEFAULT,
                                          g_task_get_cancellable (demo->task),
                                          listed, demo);
      return;
    }
  g_object_unref (enumerator);
  demo_step (demo, error);
}

static void
enumerated (GObject      *source,
            GAsyncResult *result,
            gpointer      data)
{
  Demo *demo = data;
  GError *error = NULL;
  GFileEnumerator *enumerator = g_file_enumerate_children_finish (G_FILE (source), result, &error);

  if (enumerator == NULL)
    {
      demo_step (demo, error);
      return;
    }
  g_file_enumerator_next_files_async (enumerator, 32, G_PRIORITY_DEFAULT,
                                      g_task_get_cancellable (demo->task), listed, demo);
}

static void
run_demo (Demo        *demo,
          const gchar *path)
{
  GCancellable *cancellable = g_task_get_cancellable (demo->task);
  g_autoptr(GFile) file = path != NULL ? g_file_new_for_commandline_arg (path)
                                       : g_file_get_child (demo->dir, "greeter.py");

  demo->file_name = g_file_get_basename (file);
  demo->py_files = g_ptr_array_new_with_free_func (g_free);
  /* All three run at once: Python on the asyncio loop, GIO here. */
  demo->pending = 3;
  gab_call_async ("greeter", "greet", g_variant_new ("(s)", "world"),
                  cancellable, greeted, demo);
  g_file_load_contents_async (file, cancellable, loaded, demo);
  g_file_enumerate_children_async (demo->dir, G_FILE_ATTRIBUTE_STANDARD_NAME,
                                   G_FILE_QUERY_INFO_NONE, G_PRIORITY_DEFAULT,
                                   cancellable, enumerated, demo);
}

/* ---- --wait: until a signal cancels us -------------------------------- */

static void
wait_step (Demo        *demo,
           const gchar *what,
           GError      *error)
{
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    g_print ("cancelled: %s stopped\n", what);
  if (error != NULL && demo->error == NULL)
    demo->error = error;
  else if (error != NULL)
    g_error_free (error);
  if (--demo->pending > 0)
    return;
  /* Everything we started is over: nothing is left to clean up. */
  g_print ("cleaned up\n");
  if (demo->error != NULL)
    g_task_return_error (demo->task, g_steal_pointer (&demo->error));
  else
    g_task_return_boolean (demo->task, TRUE);
  demo_free (demo);
}

static void
wait_python_done (GObject      *source,
                  GAsyncResult *result,
                  gpointer      data)
{
  GError *error = NULL;
  g_autoptr(GVariant) value G_GNUC_UNUSED = gab_call_finish (result, &error);

  wait_step (data, "python task", error);
}

static void
wait_read_done (GObject      *source,
                GAsyncResult *result,
                gpointer      data)
{
  GError *error = NULL;

  g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);
  wait_step (data, "stdin read", error);
}

static guchar read_buffer[64];

/* greeter.greet() answered: the coroutine started before it is waiting
 * now (calls start in order), so a signal from here on reaches it. */
static void
waiting (GObject      *source,
         GAsyncResult *result,
         gpointer      data)
{
  Demo *demo = data;
  GError *error = NULL;
  g_autoptr(GVariant) greeting = gab_call_finish (result, &error);

  if (greeting != NULL)
    g_print ("waiting for a signal\n");
  wait_step (demo, "greeting", error);
}

static void
run_wait (Demo *demo)
{
  GCancellable *cancellable = g_task_get_cancellable (demo->task);
  g_autoptr(GInputStream) in = g_unix_input_stream_new (0, FALSE);

  demo->pending = 3;
  gab_call_async ("greeter", "wait_for_cancel", NULL, cancellable, wait_python_done, demo);
  g_input_stream_read_async (in, read_buffer, sizeof read_buffer, G_PRIORITY_DEFAULT,
                             cancellable, wait_read_done, demo);
  gab_call_async ("greeter", "greet", g_variant_new ("(s)", "signal"), NULL, waiting, demo);
}

static void
async_main (GTask  *task,
            int     argc,
            char  **argv)
{
  Demo *demo = g_new0 (Demo, 1);
  g_autofree gchar *exe = g_file_read_link ("/proc/self/exe", NULL);
  g_autoptr(GFile) exe_file = g_file_new_for_path (exe != NULL ? exe : argv[0]);

  demo->task = g_object_ref (task);
  demo->dir = g_file_get_parent (exe_file);
  if (argc > 1 && g_strcmp0 (argv[1], "--wait") == 0)
    run_wait (demo);
  else
    run_demo (demo, argc > 1 ? argv[1] : NULL);
}

GAB_MAIN (async_main)
