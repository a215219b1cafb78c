/* bench-handoff.c: the cost of handing work to another thread, with no
 * Python in the process (it is linked, never initialized).
 *
 *   eventfd-pingpong     two threads, blocking eventfd reads: one round
 *                        trip = two wakeups. The floor of any cross-thread
 *                        request/response on this machine.
 *   glib-invoke-rt       g_main_context_invoke() to a GMainLoop thread,
 *                        answered by an eventfd: one idle GSource per call.
 *   gab-invoke-rt        gab_invoke() to the gasyncbridge runtime thread,
 *                        answered the same way: the runtime inbox.
 *   glib-invoke-batch    n g_main_context_invoke() calls in a row, the
 *                        last answers: cost per item of a burst.
 *   gab-invoke-batch     the same with gab_invoke(): one wakeup per batch.
 *
 * Each figure is the median over --repeats runs of --n operations, in
 * nanoseconds per operation (per round trip, or per item of a batch); the
 * lines run in rounds, each once per round. With --json the runs of each
 * line are printed as one JSON object on stdout. Under callgrind
 * (valgrind --tool=callgrind) each phase is dumped separately, named after
 * its line, so that instructions per operation can be read off the dumps.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gasyncbridge.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_CALLGRIND
# include <valgrind/callgrind.h>
#else
# define RUNNING_ON_VALGRIND 0
# define CALLGRIND_ZERO_STATS
# define CALLGRIND_DUMP_STATS_AT(name)
#endif

static gint64
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64) ts.tv_sec * G_GINT64_CONSTANT (1000000000) + ts.tv_nsec;
}

static void
efd_signal (int fd)
{
  guint64 one = 1;

  while (write (fd, &one, sizeof one) < 0 && errno == EINTR)
    ;
}

static void
efd_wait (int fd)
{
  guint64 value;

  while (read (fd, &value, sizeof value) < 0 && errno == EINTR)
    ;
}

/* ---- eventfd ping-pong ------------------------------------------------ */

typedef struct
{
  int request;
  int response;
  gint n;
} PingPong;

static gpointer
pong_thread (gpointer data)
{
  PingPong *pp = data;

  for (gint i = 0; i < pp->n; i++)
    {
      efd_wait (pp->request);
      efd_signal (pp->response);
    }
  return NULL;
}

static gdouble
run_pingpong (gint n)
{
  PingPong pp = { eventfd (0, EFD_CLOEXEC), eventfd (0, EFD_CLOEXEC), n };
  GThread *thread = g_thread_new ("pong", pong_thread, &pp);
  gint64 t0 = now_ns ();

  for (gint i = 0; i < n; i++)
    {
      efd_signal (pp.request);
      efd_wait (pp.response);
    }
  t0 = now_ns () - t0;
  g_thread_join (thread);
  close (pp.request);
  close (pp.response);
  return (gdouble) t0 / n;
}

/* ---- a plain GLib thread, reached with g_main_context_invoke() -------- */

static int answer_fd;
static GMainContext *glib_context;
static GMainLoop *glib_loop;

static gpointer
glib_thread (gpointer data)
{
  g_main_context_push_thread_default (glib_context);
  g_main_loop_run (glib_loop);
  g_main_context_pop_thread_default (glib_context);
  return NULL;
}

static gboolean
answer (gpointer data)
{
  efd_signal (answer_fd);
  return G_SOURCE_REMOVE;
}

static gboolean
nothing (gpointer data)
{
  return G_SOURCE_REMOVE;
}

static gdouble
run_glib_rt (gint n)
{
  gint64 t0 = now_ns ();

  for (gint i = 0; i < n; i++)
    {
      g_main_context_invoke (glib_context, answer, NULL);
      efd_wait (answer_fd);
    }
  return (gdouble) (now_ns () - t0) / n;
}

static gdouble
run_glib_batch (gint n)
{
  gint64 t0 = now_ns ();

  for (gint i = 0; i < n - 1; i++)
    g_main_context_invoke (glib_context, nothing, NULL);
  g_main_context_invoke (glib_context, answer, NULL);
  efd_wait (answer_fd);
  return (gdouble) (now_ns () - t0) / n;
}

/* ---- the gasyncbridge runtime, reached with gab_invoke() -------------- */

static gdouble
run_gab_rt (gint n)
{
  gint64 t0 = now_ns ();

  for (gint i = 0; i < n; i++)
    {
      gab_invoke (answer, NULL, NULL);
      efd_wait (answer_fd);
    }
  return (gdouble) (now_ns () - t0) / n;
}

static gdouble
run_gab_batch (gint n)
{
  gint64 t0 = now_ns ();

  for (gint i = 0; i < n - 1; i++)
    gab_invoke (nothing, NULL, NULL);
  gab_invoke (answer, NULL, NULL);
  efd_wait (answer_fd);
  return (gdouble) (now_ns () - t0) / n;
}

/* ---- driver ----------------------------------------------------------- */

typedef gdouble (*BenchFunc) (gint n);

typedef struct
{
  const gchar *name;
  BenchFunc    func;
  gboolean     batch;   /* n is multiplied by --batch-factor */
} Bench;

static const Bench benches[] = {
  { "eventfd-pingpong",  run_pingpong,   FALSE },
  { "glib-invoke-rt",    run_glib_rt,    FALSE },
  { "gab-invoke-rt",     run_gab_rt,     FALSE },
  { "glib-invoke-batch", run_glib_batch, TRUE },
  { "gab-invoke-batch",  run_gab_batch,  TRUE },
};

static gint
compare_doubles (gconstpointer a,
                 gconstpointer b)
{
  gdouble x = *(const gdouble *) a, y = *(const gdouble *) b;

  return x < y ? -1 : x > y;
}

int
main (int    argc,
      char **argv)
{
  gint n = 20000, repeats = 7, batch_factor = 10;
  gboolean json = FALSE;
  g_autoptr(GError) error = NULL;
  g_autoptr(GOptionContext) options = NULL;
  GOptionEntry entries[] = {
    { "n", 'n', 0, G_OPTION_ARG_INT, &n, "Round trips per run (default 20000)", "N" },
    { "repeats", 'r', 0, G_OPTION_ARG_INT, &repeats, "Runs per figure (default 7)", "R" },
    { "batch-factor", 0, 0, G_OPTION_ARG_INT, &batch_factor,
      "Batches are this many times larger than n (default 10)", "K" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object", NULL },
    { NULL }
  };
  GThread *thread;
  gdouble *runs;

  options = g_option_context_new ("- cross-thread hand-off micro benchmark");
  g_option_context_add_main_entries (options, entries, NULL);
  if (!g_option_context_parse (options, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }
  if (n < 1 || repeats < 1 || batch_factor < 1)
    {
      g_printerr ("--n, --repeats and --batch-factor must be positive\n");
      return 2;
    }

  answer_fd = eventfd (0, EFD_CLOEXEC);
  glib_context = g_main_context_new ();
  glib_loop = g_main_loop_new (glib_context, FALSE);
  thread = g_thread_new ("glib-loop", glib_thread, NULL);
  if (!gab_init (&error))
    {
      g_printerr ("gab_init: %s\n", error->message);
      return 1;
    }
  /* Warm up both threads and their allocators. */
  run_glib_batch (1000);
  run_gab_batch (1000);

  /* In rounds: every line once per round, so that a slow spell of the
   * machine hits all lines alike. runs[b * repeats + r] */
  runs = g_new (gdouble, G_N_ELEMENTS (benches) * repeats);
  for (gint r = 0; r < repeats; r++)
    for (gsize b = 0; b < G_N_ELEMENTS (benches); b++)
      {
        gint count = benches[b].batch ? n * batch_factor : n;

        if (RUNNING_ON_VALGRIND && r == 0)
          CALLGRIND_ZERO_STATS;
        runs[b * repeats + r] = benches[b].func (count);
        if (RUNNING_ON_VALGRIND && r == 0)
          {
            gchar *dump = g_strdup_printf ("%s n=%d", benches[b].name, count);

            CALLGRIND_DUMP_STATS_AT (dump);
            g_free (dump);
          }
      }

  if (json)
    g_print ("{");
  for (gsize b = 0; b < G_N_ELEMENTS (benches); b++)
    {
      gdouble *mine = runs + b * repeats;
      gint count = benches[b].batch ? n * batch_factor : n;

      if (json)
        {
          g_print ("%s\"%s\": [", b == 0 ? "" : ", ", benches[b].name);
          for (gint r = 0; r < repeats; r++)
            g_print ("%s%.1f", r == 0 ? "" : ", ", mine[r]);
          g_print ("]");
          continue;
        }
      qsort (mine, repeats, sizeof (gdouble),
             (int (*) (const void *, const void *)) compare_doubles);
      g_print ("%-20s %10.1f ns/op   (n=%d, median of %d)\n",
               benches[b].name, mine[repeats / 2], count, repeats);
    }
  if (json)
    g_print ("}\n");

  g_free (runs);
  gab_shutdown ();
  g_main_loop_quit (glib_loop);
  g_main_context_wakeup (glib_context);
  g_thread_join (thread);
  g_main_loop_unref (glib_loop);
  g_main_context_unref (glib_context);
  close (answer_fd);
  return 0;
}
