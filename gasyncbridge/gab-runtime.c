/* gab-runtime.c: the runtime — a GMainContext run by a GMainLoop on the
 * background thread "gab-runtime", or an application's own context.
 *
 * Work reaches the runtime thread through an inbox: a FIFO list of items
 * embedded in the callers' structs, guarded by one mutex, and one GSource
 * whose ready time is set only when the list goes from empty to non-empty.
 * A burst of a thousand requests therefore costs one wakeup of the context,
 * not a thousand idle sources.
 *
 * This file includes no Python.h: the bridge installs GabRuntimeHooks for
 * the few moments (shutdown) where Python must be taken care of.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gab-runtime-private.h"

#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* How long shutdown waits for cancelled GIO operations to call back. */
#define GAB_SHUTDOWN_GRACE_USEC (2 * G_USEC_PER_SEC)

typedef enum
{
  STATE_NONE,
  STATE_RUNNING,
  STATE_CLOSING,
  STATE_SHUT_DOWN,
} RuntimeState;

/* After a batch, the runtime thread keeps polling (without blocking) for
 * this long before it sleeps: the next request of a busy caller then finds
 * it awake, which saves a thread wakeup (tens of microseconds) per round
 * trip. GAB_RUNTIME_SPIN_USEC overrides it; 0 turns it off. */
#define GAB_RUNTIME_SPIN_USEC_DEFAULT 100

typedef struct
{
  GSource parent;
  gint64  spin_until;   /* runtime thread only */
  gint64  spin_usec;
} InboxSource;

/* Everything below is guarded by `lock`, except what only the runtime
 * thread touches (noted). */
static GMutex        lock;
static GCond         cond;
static RuntimeState  state = STATE_NONE;
static GMainContext *context;      /* runtime's context, strong ref */
static GMainLoop    *main_loop;    /* only with our own thread */
static GThread      *thread;       /* NULL when the application owns the context */
static GSource      *inbox_source; /* strong ref */
static GabRuntimeItem *inbox_head;
static GabRuntimeItem *inbox_tail;
static gboolean      inbox_wake_pending;
static gboolean      closing_done;
static const GabRuntimeHooks *hooks;
static gboolean      forked;        /* a parent's runtime was lost in fork() */
static GabRuntimeItem *forked_items; /* what its inbox held */
static GabRuntimeItem *dispatching;  /* runtime thread: rest of the batch */

static __thread gboolean on_own_thread;

/* A copy of (state, thread) that every operation's start reads without the
 * lock (the runtime thread takes it all the time): RUNNING_NO while the
 * state is not STATE_RUNNING, else RUNNING_APP_CONTEXT or
 * RUNNING_OWN_THREAD. Written under `lock`. */
enum { RUNNING_NO, RUNNING_APP_CONTEXT, RUNNING_OWN_THREAD };
static gint running_mode;

static gboolean
inbox_prepare (GSource *source,
               gint    *timeout)
{
  InboxSource *self = (InboxSource *) source;

  /* Within the spin window, poll without blocking; the ready time (set by
   * a push from another thread) makes us dispatch. */
  if (self->spin_until != 0)
    {
      if (g_get_monotonic_time () < self->spin_until)
        {
          *timeout = 0;
          return FALSE;
        }
      self->spin_until = 0;
    }
  *timeout = -1;
  return FALSE;
}

static gboolean
inbox_dispatch (GSource     *source,
                GSourceFunc  callback,
                gpointer     user_data)
{
  InboxSource *self = (InboxSource *) source;
  GabRuntimeItem *items;

  /* Re-arm before taking the batch: a push that lands after the steal below
   * sees inbox_wake_pending == FALSE and sets the ready time again. */
  g_source_set_ready_time (source, -1);

  g_mutex_lock (&lock);
  items = inbox_head;
  inbox_head = inbox_tail = NULL;
  inbox_wake_pending = FALSE;
  g_mutex_unlock (&lock);

  /* `dispatching` keeps the rest of the batch findable by a child of
   * fork() (see runtime_atfork_child). */
  while (items != NULL)
    {
      GabRuntimeItem *item = items;

      items = item->next;
      dispatching = items;
      item->next = NULL;
      item->run (item);
    }
  dispatching = NULL;

  if (self->spin_usec > 0)
    self->spin_until = g_get_monotonic_time () + self->spin_usec;
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs inbox_funcs = {
  .prepare = inbox_prepare,
  .dispatch = inbox_dispatch,
};

static GSource *
inbox_source_new (void)
{
  GSource *source = g_source_new (&inbox_funcs, sizeof (InboxSource));
  InboxSource *self = (InboxSource *) source;
  const gchar *spin = g_getenv ("GAB_RUNTIME_SPIN_USEC");

  self->spin_usec = spin != NULL ? g_ascii_strtoll (spin, NULL, 10)
                                 : GAB_RUNTIME_SPIN_USEC_DEFAULT;

  g_source_set_static_name (source, "gab-runtime-inbox");
  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_ready_time (source, -1);
  return source;
}

static gpointer
runtime_thread_main (gpointer data)
{
  GMainLoop *loop = data;

  on_own_thread = TRUE;
  g_main_context_push_thread_default (g_main_loop_get_context (loop));
  g_main_loop_run (loop);
  if (hooks != NULL && hooks->thread_exit != NULL)
    hooks->thread_exit ();
  g_main_context_pop_thread_default (g_main_loop_get_context (loop));
  g_main_loop_unref (loop);
  return NULL;
}

/* fork() while the runtime thread runs: park it first at a point where it
 * holds no lock (ours or GLib's: slice allocator, type system, contexts),
 * so the child inherits none of them locked. The wait is bounded: a runtime
 * thread busy elsewhere (waiting for the GIL that the forking thread holds,
 * say) is not waited for, and the fork proceeds as it would without us. */
#define GAB_FORK_PARK_USEC (250 * G_TIME_SPAN_MILLISECOND)

static gboolean park_requested;   /* lock */
static gboolean parked;           /* lock */

static void
park_item_run (GabRuntimeItem *item)
{
  g_mutex_lock (&lock);
  if (park_requested)
    {
      parked = TRUE;
      g_cond_broadcast (&cond);
      while (park_requested)
        g_cond_wait (&cond, &lock);
      parked = FALSE;
    }
  g_mutex_unlock (&lock);
  g_free (item);
}

/* GLib's own helper threads that a child of fork() would miss: its worker
 * thread ("gmain", which delivers child-process exits and Unix signals),
 * GIO's thread pool ("pool", "pool-*": blocking file I/O, DNS), GDBus's
 * ("gdbus"). Their names, as the parent had them at fork(); set in
 * prepare, inherited by the child, cleared in the parent. */
static gchar lost_threads[128];

/* TRUE in a child of fork() (once the bridge had started in its parent)
 * whose parent ran GLib helper threads. */
static gboolean in_fork_child;

/* @stat: a thread's /proc/self/task/<tid>/stat ("tid (name) state ...").
 * Notes whether the thread is one of GLib's helpers, and which; sets
 * @running if it is one and is on a CPU or waiting for one. */
static void
note_glib_thread (const gchar *stat,
                  gboolean    *gmain,
                  gboolean    *pool,
                  gboolean    *gdbus,
                  gboolean    *running)
{
  const gchar *open = strchr (stat, '('), *close = strrchr (stat, ')');
  gsize length;

  if (open == NULL || close == NULL || close < open)
    return;
  open++;
  length = (gsize) (close - open);
  if (length == 5 && strncmp (open, "gmain", 5) == 0)
    *gmain = TRUE;
  else if (length == 5 && strncmp (open, "gdbus", 5) == 0)
    *gdbus = TRUE;
  else if ((length == 4 && strncmp (open, "pool", 4) == 0)
           || (length > 5 && strncmp (open, "pool-", 5) == 0))
    *pool = TRUE;
  else
    return;
  if (close[1] == ' ' && close[2] == 'R')
    *running = TRUE;
}

/* Notes GLib's helper threads in `lost_threads`; TRUE if one of them is
 * running right now. */
static gboolean
note_glib_threads (void)
{
  GDir *dir;
  gboolean gmain = FALSE, pool = FALSE, gdbus = FALSE, running = FALSE;
  const gchar *tid;
  gchar self[24];

  /* A child that lost them passes GLib's broken state on to its own
   * children: they lost the same threads. */
  if (in_fork_child && lost_threads[0] != '\0')
    return FALSE;
  dir = g_dir_open ("/proc/self/task", 0, NULL);
  lost_threads[0] = '\0';
  if (dir == NULL)
    return FALSE;
  g_snprintf (self, sizeof self, "%ld", (long) syscall (SYS_gettid));
  while ((tid = g_dir_read_name (dir)) != NULL)
    {
      gchar path[64], *stat = NULL;

      /* A helper thread that forks itself is running, and not waited for. */
      if (strcmp (tid, self) == 0)
        continue;
      g_snprintf (path, sizeof path, "/proc/self/task/%s/stat", tid);
      if (!g_file_get_contents (path, &stat, NULL, NULL))
        continue;
      note_glib_thread (stat, &gmain, &pool, &gdbus, &running);
      g_free (stat);
    }
  g_dir_close (dir);
  g_snprintf (lost_threads, sizeof lost_threads, "%s%s%s%s%s",
              gmain ? "gmain" : "",
              gmain && (pool || gdbus) ? ", " : "", pool ? "pool" : "",
              pool && gdbus ? ", " : "", gdbus ? "gdbus" : "");
  return running;
}

/**
 * gab_check_fork_child:
 * @error: return location for a #GError
 *
 * Whether GIO can work in this process as far as fork() is concerned.
 * fork() copies only the calling thread: in the child, GLib's helper
 * threads of the parent are gone while GLib still counts on them (its
 * worker thread "gmain" delivers child-process exits and Unix signals;
 * GIO's thread pool runs blocking file I/O and DNS lookups), so GIO
 * operations that need them would wait forever. In a child whose parent
 * had any of them at fork(), this fails with %G_IO_ERROR_NOT_SUPPORTED and
 * a message that says so; anywhere else it returns %TRUE. The bridge's own
 * work (timeouts, gab_invoke(), C awaiting Python) does not need them and
 * works in the child after gab_init(). The functions of the Python module
 * that start GIO work check this first; a binding that starts its own GIO
 * work may do the same. Any thread.
 *
 * Returns: %FALSE (with @error set) if GIO work would hang here
 *
 * Since: 0.1
 */
gboolean
gab_check_fork_child (GError **error)
{
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!in_fork_child || lost_threads[0] == '\0')
    return TRUE;
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
               "gasyncbridge: this process is a child of fork(), and GLib's helper "
               "threads of its parent (%s) do not exist here: GIO work that needs "
               "them would never complete. Start children with exec (multiprocessing's "
               "'spawn' or 'forkserver' start method), or fork before GLib starts them",
               lost_threads);
  return FALSE;
}

/* fork() while a GLib helper thread runs: it may hold one of GLib's
 * process-wide locks for that instant (GObject's notify lock, taken by
 * every last g_object_unref(); the signal lock; the slice allocator's),
 * which the child would then wait for at its first GObject call, for
 * ever. A pool thread finishing a GTask just after its result reached
 * Python does so: forking right after GIO work met it. So wait until none
 * of them is running (a sleeping one waits for work and holds none), up to
 * @deadline; the bridge's own runtime thread is parked by then. A
 * thread that runs longer (a long copy) is not waited for. */
static void
wait_glib_threads_idle (gint64 deadline)
{
  while (note_glib_threads () && g_get_monotonic_time () < deadline)
    g_usleep (50);
}

static void
runtime_atfork_prepare (void)
{
  GabRuntimeItem *item;
  gint64 deadline = g_get_monotonic_time () + GAB_FORK_PARK_USEC;

  g_mutex_lock (&lock);
  if (state != STATE_RUNNING || thread == NULL || on_own_thread)
    {
      wait_glib_threads_idle (deadline);
      return;   /* `lock` stays held across fork(); released after it */
    }
  item = g_new0 (GabRuntimeItem, 1);
  item->run = park_item_run;
  if (inbox_tail != NULL)
    inbox_tail->next = item;
  else
    inbox_head = item;
  inbox_tail = item;
  if (!inbox_wake_pending)
    {
      inbox_wake_pending = TRUE;
      g_source_set_ready_time (inbox_source, 0);
    }
  park_requested = TRUE;
  while (!parked)
    if (!g_cond_wait_until (&cond, &lock, deadline))
      break;
  wait_glib_threads_idle (deadline);
  /* Holding `lock` keeps the parked thread parked through fork(). */
}

static void
runtime_atfork_parent (void)
{
  park_requested = FALSE;
  g_cond_broadcast (&cond);
  g_mutex_unlock (&lock);
}

/* In the child of fork(), only the forking thread exists: the runtime
 * thread is gone, and `lock` may have been held by it. The parent's objects
 * are left alone (freeing them could touch state of threads that no longer
 * exist); the runtime counts as shut down until gab_init() is called. */
static void
runtime_atfork_child (void)
{
  in_fork_child = TRUE;
  g_mutex_init (&lock);
  g_cond_init (&cond);
  park_requested = parked = FALSE;
  if (state == STATE_RUNNING || state == STATE_CLOSING)
    {
      forked = TRUE;
      /* The batch the runtime thread was running, then the inbox. */
      if (dispatching != NULL)
        {
          GabRuntimeItem *last = dispatching;

          while (last->next != NULL)
            last = last->next;
          last->next = inbox_head;
          inbox_head = dispatching;
          dispatching = NULL;
        }
      forked_items = inbox_head;
      inbox_head = inbox_tail = NULL;
      inbox_wake_pending = FALSE;
      context = NULL;
      main_loop = NULL;
      inbox_source = NULL;
      thread = NULL;
      state = STATE_SHUT_DOWN;
      g_atomic_int_set (&running_mode, RUNNING_NO);
    }
}

GabRuntimeItem *
gab_runtime_take_forked_items (void)
{
  GabRuntimeItem *items = forked_items;

  forked_items = NULL;
  return items;
}

/* Called with `lock` held. */
static gboolean
start_locked (GMainContext  *app_context,
              GError       **error)
{
  static gsize atfork_registered;

  if (g_once_init_enter (&atfork_registered))
    {
      pthread_atfork (runtime_atfork_prepare, runtime_atfork_parent,
                      runtime_atfork_child);
      /* Register the types the runtime thread uses now, on this thread: a
       * fork() that lands while that thread is inside a type's one-time
       * registration would leave the child waiting for it forever. */
      g_type_ensure (G_TYPE_TASK);
      g_type_ensure (G_TYPE_CANCELLABLE);
      g_once_init_leave (&atfork_registered, 1);
    }
  inbox_head = inbox_tail = NULL;
  inbox_wake_pending = FALSE;
  closing_done = FALSE;
  forked = FALSE;

  if (app_context != NULL)
    {
      context = g_main_context_ref (app_context);
      thread = NULL;
    }
  else
    {
      context = g_main_context_new ();
      main_loop = g_main_loop_new (context, FALSE);
    }

  inbox_source = inbox_source_new ();
  g_source_attach (inbox_source, context);

  if (app_context == NULL)
    {
      /* The thread owns one reference of the loop; main_loop keeps ours. */
      thread = g_thread_try_new ("gab-runtime", runtime_thread_main,
                                 g_main_loop_ref (main_loop), error);
      if (thread == NULL)
        {
          g_main_loop_unref (main_loop);
          g_source_destroy (inbox_source);
          g_clear_pointer (&inbox_source, g_source_unref);
          g_clear_pointer (&main_loop, g_main_loop_unref);
          g_clear_pointer (&context, g_main_context_unref);
          return FALSE;
        }
    }

  state = STATE_RUNNING;
  g_atomic_int_set (&running_mode, thread != NULL ? RUNNING_OWN_THREAD : RUNNING_APP_CONTEXT);
  return TRUE;
}

/* gab_init() (@app_context %NULL: any running runtime will do) and
 * gab_init_with_context() (it must run on @app_context). A runtime that
 * was shut down starts again. */
static gboolean
runtime_init (GMainContext  *app_context,
              GError       **error)
{
  gboolean ok = FALSE;

  g_mutex_lock (&lock);
  if (state == STATE_SHUT_DOWN)
    state = STATE_NONE;
  if (state == STATE_NONE)
    ok = start_locked (app_context, error);
  else if (state == STATE_CLOSING)
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CLOSED,
                         "The gasyncbridge runtime is shutting down");
  else if (app_context != NULL && context != app_context)
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                         "The gasyncbridge runtime is already running on "
                         "another GMainContext");
  else
    ok = TRUE;
  g_mutex_unlock (&lock);
  return ok;
}

/**
 * gab_init:
 * @error: return location for a #GError
 *
 * Starts the runtime: a thread named "gab-runtime" that runs a #GMainLoop on
 * a new #GMainContext, pushed as that thread's thread-default context.
 * Idempotent; every bridge call also starts it on first use. After
 * gab_shutdown(), gab_init() starts a new runtime (implicit first use does
 * not: it fails with %G_IO_ERROR_CLOSED instead).
 *
 * Returns: %TRUE if the runtime is running
 *
 * Since: 0.1
 */
gboolean
gab_init (GError **error)
{
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return runtime_init (NULL, error);
}

/**
 * gab_init_with_context:
 * @context: the application's #GMainContext, usually g_main_context_default()
 * @error: return location for a #GError
 *
 * Makes @context the runtime: no thread is started, and the application
 * iterates @context itself (a GTK main loop, say). Use it with
 * gab_start_asyncio_thread() so that asyncio runs on a background thread.
 * Calling it again with the same context is harmless; with another context,
 * or after the runtime was started on its own thread, it fails with
 * %G_IO_ERROR_EXISTS, and while gab_shutdown() runs, as gab_init() does,
 * with %G_IO_ERROR_CLOSED.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.1
 */
gboolean
gab_init_with_context (GMainContext  *app_context,
                       GError       **error)
{
  g_return_val_if_fail (app_context != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return runtime_init (app_context, error);
}

/* Implicit first use: like gab_init(), but a runtime that was shut down
 * stays down, so that late work at interpreter exit fails cleanly instead
 * of starting a new thread. */
gboolean
gab_runtime_ensure (GError **error)
{
  gboolean ok = TRUE;

  /* Running: nothing to do. (It may be shutting down by now; the push
   * that follows finds out under the lock.) */
  if (g_atomic_int_get (&running_mode) != RUNNING_NO)
    return TRUE;
  g_mutex_lock (&lock);
  if (state == STATE_NONE)
    ok = start_locked (NULL, error);
  else if (state != STATE_RUNNING && forked)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CLOSED,
                           "The gasyncbridge runtime does not survive fork(): "
                           "call gab_init() (gasyncbridge.init() in Python) in "
                           "the child process first, and use new event loops");
      ok = FALSE;
    }
  else if (state != STATE_RUNNING)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CLOSED,
                           "The gasyncbridge runtime has been shut down");
      ok = FALSE;
    }
  g_mutex_unlock (&lock);
  return ok;
}

/**
 * gab_get_context:
 *
 * The runtime's #GMainContext, starting the runtime if needed.
 *
 * Returns: (transfer none) (nullable): the context, or %NULL if the runtime
 *   has been shut down or could not start
 *
 * Since: 0.1
 */
GMainContext *
gab_get_context (void)
{
  GMainContext *ctx;

  if (!gab_runtime_ensure (NULL))
    return NULL;
  g_mutex_lock (&lock);
  ctx = context;
  g_mutex_unlock (&lock);
  return ctx;
}

/**
 * gab_is_runtime_thread:
 *
 * Whether the calling thread is the runtime thread: "gab-runtime", or the
 * owner of the application's context given to gab_init_with_context().
 *
 * Returns: %TRUE on the runtime thread
 *
 * Since: 0.1
 */
gboolean
gab_is_runtime_thread (void)
{
  GMainContext *ctx;

  if (on_own_thread)
    return TRUE;
  /* The runtime thread is ours, and this is not it. */
  if (g_atomic_int_get (&running_mode) == RUNNING_OWN_THREAD)
    return FALSE;
  g_mutex_lock (&lock);
  ctx = thread == NULL && state == STATE_RUNNING ? context : NULL;
  g_mutex_unlock (&lock);
  return ctx != NULL && g_main_context_is_owner (ctx);
}

/**
 * gab_runtime_is_closing:
 *
 * Whether shutdown has begun (or finished).
 */
gboolean
gab_runtime_is_closing (void)
{
  gboolean closing;

  g_mutex_lock (&lock);
  closing = state == STATE_CLOSING || state == STATE_SHUT_DOWN;
  g_mutex_unlock (&lock);
  return closing;
}

gboolean
gab_runtime_is_shutting_down (void)
{
  gboolean closing;

  g_mutex_lock (&lock);
  closing = state == STATE_CLOSING;
  g_mutex_unlock (&lock);
  return closing;
}

/* Queues @item for the runtime thread. FALSE (and @item untouched) once
 * shutdown has begun; the caller then completes its work itself. */
static gboolean
runtime_push_internal (GabRuntimeItem *item,
                       gboolean        during_close)
{
  gboolean wake;

  item->next = NULL;
  g_mutex_lock (&lock);
  if (state != STATE_RUNNING && !(during_close && state == STATE_CLOSING))
    {
      g_mutex_unlock (&lock);
      return FALSE;
    }
  if (inbox_tail != NULL)
    inbox_tail->next = item;
  else
    inbox_head = item;
  inbox_tail = item;
  wake = !inbox_wake_pending;
  inbox_wake_pending = TRUE;
  if (wake)
    /* Thread-safe: takes the context's lock and wakes its poll. */
    g_source_set_ready_time (inbox_source, 0);
  g_mutex_unlock (&lock);
  return TRUE;
}

gboolean
gab_runtime_push (GabRuntimeItem *item)
{
  return runtime_push_internal (item, FALSE);
}

typedef struct
{
  GabRuntimeItem  item;
  GSourceFunc     func;
  gpointer        data;
  GDestroyNotify  notify;
} InvokeItem;

static void
invoke_item_run (GabRuntimeItem *item)
{
  InvokeItem *self = (InvokeItem *) item;

  /* G_SOURCE_CONTINUE asks to run again, as with an idle source: go to the
   * back of the queue so that other work gets its turn. */
  if (self->func (self->data) == G_SOURCE_CONTINUE
      && runtime_push_internal (item, FALSE))
    return;
  if (self->notify != NULL)
    self->notify (self->data);
  g_free (self);
}

/**
 * gab_invoke:
 * @func: the function to call on the runtime thread
 * @data: (closure): data for @func
 * @notify: (nullable): frees @data after @func returned %G_SOURCE_REMOVE
 *
 * Calls @func on the runtime thread, starting the runtime if needed. Calls
 * run in the order they were made, always from the runtime's main loop
 * (never inline, even on the runtime thread). If @func returns
 * %G_SOURCE_CONTINUE it is called again after the work queued meanwhile.
 * After gab_shutdown() @func is not called and @notify is called at once.
 *
 * Since: 0.1
 */
void
gab_invoke (GSourceFunc    func,
            gpointer       data,
            GDestroyNotify notify)
{
  InvokeItem *self;

  g_return_if_fail (func != NULL);

  self = g_new0 (InvokeItem, 1);
  self->item.run = invoke_item_run;
  self->func = func;
  self->data = data;
  self->notify = notify;
  if (!gab_runtime_ensure (NULL) || !gab_runtime_push (&self->item))
    {
      g_debug ("gab_invoke() after gab_shutdown(): the call is dropped");
      if (notify != NULL)
        notify (data);
      g_free (self);
    }
}

/**
 * gab_runtime_set_hooks:
 * @hooks: (nullable): static hooks of the bridge layer
 *
 * Installs the bridge's shutdown hooks. Internal.
 */
void
gab_runtime_set_hooks (const GabRuntimeHooks *new_hooks)
{
  g_mutex_lock (&lock);
  hooks = new_hooks;
  g_mutex_unlock (&lock);
}

typedef struct
{
  GabRuntimeItem item;
  gint64         deadline;
} CloseItem;

static void
close_finish (void)
{
  if (hooks != NULL && hooks->closed != NULL)
    hooks->closed ();
  g_mutex_lock (&lock);
  closing_done = TRUE;
  g_cond_broadcast (&cond);
  g_mutex_unlock (&lock);
  if (main_loop != NULL)
    g_main_loop_quit (main_loop);
}

static gboolean
close_poll (gpointer data)
{
  CloseItem *self = data;

  if ((hooks != NULL && hooks->idle != NULL && !hooks->idle ())
      && g_get_monotonic_time () < self->deadline)
    return G_SOURCE_CONTINUE;
  close_finish ();
  return G_SOURCE_REMOVE;
}

static void
close_item_run (GabRuntimeItem *item)
{
  CloseItem *self = (CloseItem *) item;
  GSource *poll;

  /* Fail what is pending, then give cancelled GIO operations a moment to
   * call back so that their memory is released. */
  if (hooks != NULL && hooks->closing != NULL)
    hooks->closing ();
  poll = g_timeout_source_new (2);
  g_source_set_static_name (poll, "gab-runtime-close");
  g_source_set_callback (poll, close_poll, self, g_free);
  g_source_attach (poll, context);
  g_source_unref (poll);
}

/**
 * gab_shutdown:
 *
 * Stops the runtime: operations still pending fail with %G_IO_ERROR_CLOSED
 * (their GIO calls are cancelled), cancelled GIO calls get up to two seconds
 * to call back, and the runtime thread is joined. Idempotent. Runs by itself
 * at Python interpreter exit, before Python finalizes. Must not be called
 * from the runtime thread.
 *
 * Since: 0.1
 */
void
gab_shutdown (void)
{
  CloseItem *close_item;
  gpointer token = NULL;
  GThread *join;
  GMainContext *ctx;

  g_mutex_lock (&lock);
  if (state != STATE_RUNNING)
    {
      g_mutex_unlock (&lock);
      return;
    }
  if (on_own_thread)
    {
      g_mutex_unlock (&lock);
      g_critical ("gab_shutdown() must not be called from the runtime thread");
      return;
    }
  state = STATE_CLOSING;
  g_atomic_int_set (&running_mode, RUNNING_NO);
  ctx = context;
  join = thread;
  g_mutex_unlock (&lock);

  close_item = g_new0 (CloseItem, 1);
  close_item->item.run = close_item_run;
  close_item->deadline = g_get_monotonic_time () + GAB_SHUTDOWN_GRACE_USEC;

  /* The runtime thread may need the GIL to finish Python work: let go of
   * it while we wait. */
  if (hooks != NULL && hooks->block_begin != NULL)
    token = hooks->block_begin ();

  if (join != NULL)
    {
      runtime_push_internal (&close_item->item, TRUE);
      g_thread_join (join);
    }
  else if (g_main_context_acquire (ctx))
    {
      /* The application's context, and we may iterate it: do it here. */
      runtime_push_internal (&close_item->item, TRUE);
      while (!closing_done)
        g_main_context_iteration (ctx, TRUE);
      g_main_context_release (ctx);
    }
  else
    {
      /* Another thread iterates the application's context: wait for it. */
      runtime_push_internal (&close_item->item, TRUE);
      g_mutex_lock (&lock);
      while (!closing_done)
        g_cond_wait (&cond, &lock);
      g_mutex_unlock (&lock);
    }

  if (hooks != NULL && hooks->block_end != NULL)
    hooks->block_end (token);

  g_mutex_lock (&lock);
  g_source_destroy (inbox_source);
  g_clear_pointer (&inbox_source, g_source_unref);
  g_clear_pointer (&main_loop, g_main_loop_unref);
  g_clear_pointer (&context, g_main_context_unref);
  thread = NULL;
  state = STATE_SHUT_DOWN;
  g_mutex_unlock (&lock);
}
