/* gasyncbridge-workers.c: the threads that copy bulk data for the module
 * (local file reads into bytes, subprocess output into bytes).
 *
 * Not GTask's shared pool: that one grows past the processors when jobs
 * block, and a batch of loads then runs as many memory-bound copies at
 * once as it has threads, each a runnable thread beside the loop's. On a
 * small machine the loop thread waits for a CPU behind them (the
 * workloads benchmark saw 100-300 ms of loop lag that way, with GTask's
 * pool and with run_in_executor alike). Here at most one job runs per
 * processor, and the threads run one nice level below the process, so
 * that the loop thread, woken by a completion or a timer, gets a CPU
 * first. A job that waits for the GIL (gab_module_bytes_alloc) is never
 * starved by the loop: the loop thread waiting for the GIL does not run.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gasyncbridge-module.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* How much lower than the process these threads run: enough for the
 * scheduler to prefer a woken loop thread, little enough that the jobs
 * still get the idle CPUs at once. */
#define WORKER_NICE_DELTA 5

typedef struct
{
  GTask          *task;   /* owned */
  GTaskThreadFunc func;
} Job;

static GThreadPool *pool;
static gsize pool_made;
static __thread gboolean reniced;

static void
job_run (gpointer data,
         gpointer user_data)
{
  Job *job = data;

  if (!reniced)
    {
      /* This thread only (Linux: a thread is a PRIO_PROCESS of its own
       * id). A failure leaves it at the process's level: no harm. */
      pid_t tid = (pid_t) syscall (SYS_gettid);
      int nice_now = getpriority (PRIO_PROCESS, (id_t) tid);

      (void) setpriority (PRIO_PROCESS, (id_t) tid, nice_now + WORKER_NICE_DELTA);
      reniced = TRUE;
    }
  job->func (job->task, g_task_get_source_object (job->task),
             g_task_get_task_data (job->task), g_task_get_cancellable (job->task));
  g_object_unref (job->task);
  g_free (job);
}

void
gab_module_run_in_worker (GTask          *task,
                          GTaskThreadFunc func)
{
  Job *job;

  if (g_once_init_enter (&pool_made))
    {
      /* Exclusive: its threads are never lent to GLib's other pools
       * (GTask's among them), which would then run at our lower priority. */
      pool = g_thread_pool_new (job_run, NULL, (gint) MAX (1, g_get_num_processors ()),
                                TRUE, NULL);
      g_once_init_leave (&pool_made, 1);
    }
  if (G_UNLIKELY (pool == NULL))
    {
      /* No threads could be made: GTask's pool, at the usual priority. */
      g_task_run_in_thread (task, func);
      return;
    }
  job = g_new (Job, 1);
  job->task = g_object_ref (task);   /* the job's: the task returns from the worker */
  job->func = func;
  g_thread_pool_push (pool, job, NULL);
}
