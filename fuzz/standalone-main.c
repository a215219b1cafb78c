/* standalone-main.c: runs a fuzz target over files, for compilers without
 * libFuzzer (gcc). Takes the same command line as a libFuzzer binary run
 * on a corpus: options (-flag=value) are ignored, each other argument is a
 * file or a directory of files, each run once through
 * LLVMFuzzerTestOneInput(). A property violation aborts, naming the file.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "fuzz-common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static guint n_run;

static gint
compare_paths (gconstpointer a,
               gconstpointer b)
{
  return strcmp (*(char * const *) a, *(char * const *) b);
}

static void
run_file (const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *contents = NULL;
  gsize length = 0;
  guint8 *copy;

  if (!g_file_get_contents (path, &contents, &length, &error))
    {
      fprintf (stderr, "cannot read %s: %s\n", path, error->message);
      exit (1);
    }
  fprintf (stderr, "Running: %s\n", path);
  /* A buffer of exactly the input's size, as libFuzzer gives. */
  copy = g_memdup2 (contents, length);
  LLVMFuzzerTestOneInput (copy, length);
  g_free (copy);
  n_run++;
}

static void
run_path (const char *path)
{
  if (g_file_test (path, G_FILE_TEST_IS_DIR))
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GDir) dir = g_dir_open (path, 0, &error);
      g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
      const char *name;

      if (dir == NULL)
        {
          fprintf (stderr, "cannot open %s: %s\n", path, error->message);
          exit (1);
        }
      while ((name = g_dir_read_name (dir)) != NULL)
        g_ptr_array_add (names, g_build_filename (path, name, NULL));
      /* A stable order, whatever the file system's. */
      g_ptr_array_sort (names, compare_paths);
      for (guint i = 0; i < names->len; i++)
        {
          const char *child = g_ptr_array_index (names, i);

          if (!g_file_test (child, G_FILE_TEST_IS_DIR))
            run_file (child);
        }
    }
  else
    run_file (path);
}

int
main (int    argc,
      char **argv)
{
  int i;

  LLVMFuzzerInitialize (&argc, &argv);
  for (i = 1; i < argc; i++)
    if (argv[i][0] != '-')
      run_path (argv[i]);
  if (n_run == 0)
    {
      fprintf (stderr, "usage: %s [-option=value...] FILE-OR-DIRECTORY...\n", argv[0]);
      return 2;
    }
  fprintf (stderr, "Executed %u inputs\n", n_run);
  return 0;
}
