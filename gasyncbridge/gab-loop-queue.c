/* gab-loop-queue.c: how completions reach an asyncio event loop.
 *
 * One queue per loop: a list guarded by a mutex, and an eventfd the loop
 * watches with add_reader(). A push writes the eventfd only when the list
 * goes from empty to non-empty, so a thousand completions arriving together
 * cost one wakeup of the loop and one call into Python, which then runs
 * them all. Pushing needs no GIL, so the runtime thread never waits for it.
 *
 * A queue lives as long as its loop is open. Two signals end it: the loop
 * releasing our reader callback, which asyncio and uvloop do in close(),
 * and a weak reference to the loop, for a loop collected without being
 * closed. Then the queue is marked dead, what is still in it is cleaned
 * up, and everything watched on it (operations whose futures the loop was
 * to complete, Python tasks that C code awaits) hears that the loop is
 * closed. Items that arrive for a dead queue, and references dropped by
 * threads without the GIL, go to the orphan list, which the next holder of
 * the GIL inside the bridge empties.
 *
 * While anything is watched, a timer of the loop sweeps the watches now and
 * then: that is how an operation learns that Python dropped its future.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gab-private.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct _GabLoopQueue
{
  gint         ref_count;
  GMutex       lock;
  GabLoopItem *head;          /* lock */
  GabLoopItem *tail;          /* lock */
  gboolean     wake_pending;  /* lock: the eventfd was written, not yet drained */
  gboolean     dead;          /* lock */
  int          fd;            /* eventfd; closed with the last reference */
  PyObject    *loop;          /* GIL; borrowed, valid until the weakref fires */
  PyObject    *loop_ref;      /* GIL; weakref to the loop, strong */
  GMainContext *dispatch_context;  /* GIL; created on first use */
  /* GIL: the adaptive spin of gab_loop_queue_spin() */
  guint        in_flight;
  guint        awaits;        /* Python tasks that C callers await */
  gint         spin_score;    /* > 0 after hits, < 0 after misses */
  guint        spin_skipped;
  /* GIL */
  GabLoopWatch *watches;
  gboolean     sweep_armed;   /* a call_later of the sweep is pending */
};

/* How often the watches are swept while there are any: the longest an
 * operation runs on after Python dropped its future. */
#define GAB_LOOP_SWEEP_SECONDS 0.1

/* How long a lone operation waits inline for its completion (see
 * gab_loop_queue_spin). GAB_LOOP_SPIN_USEC overrides it; 0 turns it off. */
#define GAB_LOOP_SPIN_USEC_DEFAULT 30
#define GAB_LOOP_SPIN_PROBE_EVERY  32

static gint64 loop_spin_usec = -1;

/* The Python faces of a queue. */
typedef enum
{
  HANDLE_READER,      /* the loop's reader: drains; its release means close() */
  HANDLE_LOOP_GONE,   /* the weakref callback: the loop was collected */
  HANDLE_SWEEP,       /* the sweep timer's callback */
} HandleKind;

typedef struct
{
  PyObject_HEAD
  GabLoopQueue *queue;        /* strong */
  HandleKind    kind;
} QueueHandle;

static PyTypeObject QueueHandle_Type;

/* GIL-protected registry: loop pointer -> queue (strong). */
static GHashTable   *queues;
static PyObject     *last_loop;   /* one-entry cache; borrowed */
static GabLoopQueue *last_queue;

static GMutex        orphan_lock;
static GabLoopItem  *orphan_head;
static gint          orphan_count;   /* atomic, for the cheap check */

GabLoopQueue *
gab_loop_queue_ref (GabLoopQueue *queue)
{
  g_atomic_int_inc (&queue->ref_count);
  return queue;
}

void
gab_loop_queue_unref (GabLoopQueue *queue)
{
  if (queue == NULL || !g_atomic_int_dec_and_test (&queue->ref_count))
    return;
  /* Nobody can push any more: the eventfd may go. */
  g_assert (queue->head == NULL);
  if (queue->fd >= 0)
    close (queue->fd);
  /* Destroys the idle sources of GTasks whose callbacks never ran. */
  g_clear_pointer (&queue->dispatch_context, g_main_context_unref);
  g_mutex_clear (&queue->lock);
  g_free (queue);
}

PyObject *
gab_loop_queue_get_loop (GabLoopQueue *queue)
{
  return queue->dead ? NULL : queue->loop;
}

GMainContext *
gab_loop_queue_get_dispatch_context (GabLoopQueue *queue)
{
  if (queue->dispatch_context == NULL)
    queue->dispatch_context = g_main_context_new ();
  return queue->dispatch_context;
}

void
gab_loop_queue_dispatch (GabLoopQueue *queue)
{
  GMainContext *ctx = queue->dispatch_context;

  if (ctx == NULL || !g_main_context_acquire (ctx))
    return;
  while (g_main_context_iteration (ctx, FALSE))
    ;
  g_main_context_release (ctx);
}

void
gab_orphan_push (GabLoopItem *item)
{
  g_mutex_lock (&orphan_lock);
  item->next = orphan_head;
  orphan_head = item;
  g_atomic_int_inc (&orphan_count);
  g_mutex_unlock (&orphan_lock);
}

void
gab_orphans_flush (void)
{
  GabLoopItem *items;

  if (g_atomic_int_get (&orphan_count) == 0)
    return;
  g_mutex_lock (&orphan_lock);
  items = orphan_head;
  orphan_head = NULL;
  g_atomic_int_set (&orphan_count, 0);
  g_mutex_unlock (&orphan_lock);

  while (items != NULL)
    {
      GabLoopItem *item = items;

      items = item->next;
      item->run (item, FALSE);
    }
}

void
gab_loop_queue_push (GabLoopQueue *queue,
                     GabLoopItem  *item)
{
  if (G_UNLIKELY (!gab_loop_queue_try_push (queue, item)))
    gab_orphan_push (item);
}

gboolean
gab_loop_queue_try_push (GabLoopQueue *queue,
                         GabLoopItem  *item)
{
  gboolean wake;

  item->next = NULL;
  g_mutex_lock (&queue->lock);
  if (G_UNLIKELY (queue->dead))
    {
      g_mutex_unlock (&queue->lock);
      return FALSE;
    }
  if (queue->tail != NULL)
    queue->tail->next = item;
  else
    /* Atomic: gab_loop_queue_spin() peeks at it without the lock. */
    g_atomic_pointer_set (&queue->head, item);
  queue->tail = item;
  wake = !queue->wake_pending;
  queue->wake_pending = TRUE;
  g_mutex_unlock (&queue->lock);

  if (wake && queue->fd >= 0)
    {
      guint64 one = 1;

      /* The fd stays open while the caller holds its reference. */
      while (write (queue->fd, &one, sizeof one) < 0 && errno == EINTR)
        ;
    }
  return TRUE;
}

static GabLoopItem *
queue_steal (GabLoopQueue *queue,
             gboolean      mark_dead)
{
  GabLoopItem *items;

  g_mutex_lock (&queue->lock);
  items = queue->head;
  queue->head = queue->tail = NULL;
  queue->wake_pending = FALSE;
  if (mark_dead)
    queue->dead = TRUE;
  g_mutex_unlock (&queue->lock);
  return items;
}

static void
run_items (GabLoopItem *items,
           gboolean     alive)
{
  while (items != NULL)
    {
      GabLoopItem *item = items;

      items = item->next;
      item->run (item, alive);
    }
}

/* Loop thread, GIL: the eventfd became readable. */
static void
queue_drain (GabLoopQueue *queue)
{
  guint64 count;

  /* Read first, steal second: a push in between finds wake_pending still
   * set, adds to the list and is taken by the steal below. */
  while (read (queue->fd, &count, sizeof count) < 0 && errno == EINTR)
    ;
  run_items (queue_steal (queue, FALSE), TRUE);
  gab_orphans_flush ();
}

void
gab_loop_queue_op_started (GabLoopQueue *queue)
{
  queue->in_flight++;
}

void
gab_loop_queue_op_finished (GabLoopQueue *queue)
{
  queue->in_flight--;
}

void
gab_loop_queue_await_started (GabLoopQueue *queue)
{
  queue->awaits++;
}

void
gab_loop_queue_await_finished (GabLoopQueue *queue)
{
  queue->awaits--;
}

static void spin_wait (GabLoopQueue *queue);

void
gab_loop_queue_spin (GabLoopQueue *queue)
{
  /* Only for one operation at a time: with others in flight the loop has
   * work to do, and waiting would only delay it. */
  if (queue->in_flight == 1 && queue->awaits == 0)
    spin_wait (queue);
}

void
gab_loop_queue_spin_after_await (GabLoopQueue *queue)
{
  /* A C caller that awaits Python one call at a time sends its next call
   * a few microseconds after it hears of this one. (Operations in flight
   * do not stop it: the C caller's own driver may be one of them.) */
  if (queue->awaits == 0)
    spin_wait (queue);
}

static void
spin_wait (GabLoopQueue *queue)
{
  gint64 deadline;
  gboolean hit;

  if (G_UNLIKELY (loop_spin_usec < 0))
    {
      const gchar *env = g_getenv ("GAB_LOOP_SPIN_USEC");

      loop_spin_usec = env != NULL ? MAX (0, g_ascii_strtoll (env, NULL, 10))
                                   : GAB_LOOP_SPIN_USEC_DEFAULT;
    }
  if (loop_spin_usec == 0 || queue->dead)
    return;
  /* After misses (slow operations), spin only now and then, to notice when
   * operations become quick again. */
  if (queue->spin_score < 0 && ++queue->spin_skipped % GAB_LOOP_SPIN_PROBE_EVERY != 0)
    return;

  /* Let other Python threads run while we wait; the runtime thread needs
   * no GIL to complete an operation, and a C caller that needs it for its
   * callback gets it now rather than when the loop next sleeps. */
  Py_BEGIN_ALLOW_THREADS
  deadline = g_get_monotonic_time () + loop_spin_usec;
  while (g_atomic_pointer_get (&queue->head) == NULL
         && g_get_monotonic_time () < deadline)
    ;
  Py_END_ALLOW_THREADS

  /* On a hit, the eventfd is readable before the loop polls it: the loop
   * finds the completion without going to sleep. It still runs from the
   * loop, never inside the caller's gab_future_into_py(). */
  hit = g_atomic_pointer_get (&queue->head) != NULL;
  queue->spin_score = hit ? MIN (queue->spin_score + 1, 4)
                          : MAX (queue->spin_score - 2, -4);
}

/* ---- watches --------------------------------------------------------- */

static void
watch_link (GabLoopWatch  *watch,
            GabLoopWatch **list)
{
  watch->list = list;
  watch->prev = NULL;
  watch->next = *list;
  if (*list != NULL)
    (*list)->prev = watch;
  *list = watch;
}

void
gab_loop_queue_unwatch (GabLoopWatch *watch)
{
  if (watch->list == NULL)
    return;
  if (watch->prev != NULL)
    watch->prev->next = watch->next;
  else
    *watch->list = watch->next;
  if (watch->next != NULL)
    watch->next->prev = watch->prev;
  watch->prev = watch->next = NULL;
  watch->list = NULL;
}

static QueueHandle *queue_handle_new (GabLoopQueue *queue,
                                      HandleKind    kind);

/* GIL, loop thread: make sure a sweep is coming. */
static void
sweep_arm (GabLoopQueue *queue)
{
  QueueHandle *handle;
  PyObject *delay, *ret = NULL;

  if (queue->sweep_armed || queue->dead)
    return;
  handle = queue_handle_new (queue, HANDLE_SWEEP);
  delay = PyFloat_FromDouble (GAB_LOOP_SWEEP_SECONDS);
  if (handle != NULL && delay != NULL)
    ret = PyObject_CallMethodObjArgs (queue->loop, gab_py.s_call_later, delay,
                                      (PyObject *) handle, NULL);
  if (ret != NULL)
    queue->sweep_armed = TRUE;
  else
    /* Without a timer a dropped future's operation runs to its end rather
     * than being cancelled early; nothing is lost but time. */
    PyErr_Clear ();
  Py_XDECREF (ret);
  Py_XDECREF (delay);
  Py_XDECREF ((PyObject *) handle);
}

void
gab_loop_queue_watch (GabLoopQueue *queue,
                      GabLoopWatch *watch)
{
  g_return_if_fail (watch->list == NULL);

  if (queue->dead)
    {
      watch->kind->closed (watch);
      return;
    }
  watch_link (watch, &queue->watches);
  if (watch->kind->candidate != NULL)
    sweep_arm (queue);
}

/* GIL, loop thread, from the timer. Two passes: the first only reads
 * (no Python runs, so the list cannot change under it) and moves the
 * candidates aside; the second asks each of them, and what they run may
 * add or remove watches freely. */
static void
queue_sweep (GabLoopQueue *queue)
{
  GabLoopWatch *candidates = NULL, *watch, *next;
  gboolean any = FALSE;

  queue->sweep_armed = FALSE;
  for (watch = queue->watches; watch != NULL; watch = next)
    {
      next = watch->next;
      if (watch->kind->candidate == NULL)
        continue;
      any = TRUE;
      if (watch->kind->candidate (watch))
        {
          gab_loop_queue_unwatch (watch);
          watch_link (watch, &candidates);
        }
    }
  while ((watch = candidates) != NULL)
    {
      gab_loop_queue_unwatch (watch);
      if (!watch->kind->sweep (watch) && !queue->dead)
        watch_link (watch, &queue->watches);
    }
  if (any && !queue->dead)
    sweep_arm (queue);
}

/* GIL: the loop was closed or collected. Idempotent. */
static void
queue_lost (GabLoopQueue *queue)
{
  GabLoopWatch *closing, *watch;
  PyObject *type, *value, *tb;

  if (queue->loop == NULL)
    return;
  /* May run inside a deallocation (the reader's): keep any exception
   * being raised out of our way. */
  PyErr_Fetch (&type, &value, &tb);
  /* The registry holds one reference of the queue; keep ours meanwhile. */
  gab_loop_queue_ref (queue);
  if (queues != NULL && g_hash_table_lookup (queues, queue->loop) == queue)
    g_hash_table_remove (queues, queue->loop);
  if (last_queue == queue)
    {
      last_queue = NULL;
      last_loop = NULL;
    }
  run_items (queue_steal (queue, TRUE), FALSE);
  Py_CLEAR (queue->loop_ref);
  queue->loop = NULL;

  /* Move the watches to a list of our own first: each closed() may run
   * Python, which may finish (and unwatch) any of the others. */
  closing = queue->watches;
  queue->watches = NULL;
  for (watch = closing; watch != NULL; watch = watch->next)
    watch->list = &closing;
  while ((watch = closing) != NULL)
    {
      gab_loop_queue_unwatch (watch);
      watch->kind->closed (watch);
    }
  gab_loop_queue_unref (queue);
  gab_orphans_flush ();
  PyErr_Restore (type, value, tb);
}

static PyObject *
queue_handle_call (PyObject *self,
                   PyObject *args,
                   PyObject *kwargs)
{
  QueueHandle *handle = (QueueHandle *) self;

  switch (handle->kind)
    {
    case HANDLE_READER:
      queue_drain (handle->queue);
      break;
    case HANDLE_LOOP_GONE:
      queue_lost (handle->queue);
      break;
    case HANDLE_SWEEP:
      queue_sweep (handle->queue);
      break;
    }
  Py_RETURN_NONE;
}

/* The loop holds its reader; what the queue's watches hold (futures,
 * tasks: see GabLoopWatchKind.traverse) holds the loop. Reported to the
 * garbage collector as the reader's, those make a loop dropped without
 * close() collectable like any reference cycle, instead of being kept alive
 * from C: the weak reference's callback (or the clear below) then closes
 * the queue, and the watches let go. (Issue 16: dropped loops.) */
static int
queue_handle_traverse (PyObject  *self,
                       visitproc  visit,
                       void      *arg)
{
  QueueHandle *handle = (QueueHandle *) self;
  GabLoopQueue *queue = handle->queue;

  if (handle->kind != HANDLE_READER || queue->dead)
    return 0;
  for (GabLoopWatch *watch = queue->watches; watch != NULL; watch = watch->next)
    if (watch->kind->traverse != NULL)
      {
        int ret = watch->kind->traverse (watch, visit, arg);

        if (ret != 0)
          return ret;
      }
  return 0;
}

static int
queue_handle_clear (PyObject *self)
{
  QueueHandle *handle = (QueueHandle *) self;

  if (handle->kind == HANDLE_READER && !handle->queue->dead)
    queue_lost (handle->queue);
  return 0;
}

static void
queue_handle_dealloc (PyObject *self)
{
  QueueHandle *handle = (QueueHandle *) self;

  PyObject_GC_UnTrack (self);
  /* asyncio and uvloop drop their readers in close(): the loop is closed
   * (or somebody removed our reader, which leaves us as deaf). */
  if (handle->kind == HANDLE_READER && !handle->queue->dead)
    queue_lost (handle->queue);
  gab_loop_queue_unref (handle->queue);
  Py_TYPE (self)->tp_free (self);
}

static PyTypeObject QueueHandle_Type = {
  PyVarObject_HEAD_INIT (NULL, 0)
  .tp_name = "gasyncbridge._LoopQueue",
  .tp_basicsize = sizeof (QueueHandle),
  .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
  .tp_call = queue_handle_call,
  .tp_dealloc = queue_handle_dealloc,
  .tp_traverse = queue_handle_traverse,
  .tp_clear = queue_handle_clear,
  .tp_doc = "Wakes an asyncio loop for gasyncbridge completions.",
};

static QueueHandle *
queue_handle_new (GabLoopQueue *queue,
                  HandleKind    kind)
{
  QueueHandle *handle = PyObject_GC_New (QueueHandle, &QueueHandle_Type);

  if (handle == NULL)
    return NULL;
  handle->queue = gab_loop_queue_ref (queue);
  handle->kind = kind;
  PyObject_GC_Track (handle);
  return handle;
}

static void
registry_value_free (gpointer data)
{
  gab_loop_queue_unref (data);
}

static GabLoopQueue *
queue_new (PyObject *loop)
{
  GabLoopQueue *queue;
  QueueHandle *handle = NULL, *reader = NULL;
  PyObject *ret, *fd_obj;

  if (PyType_Ready (&QueueHandle_Type) < 0)
    return NULL;

  queue = g_new0 (GabLoopQueue, 1);
  queue->ref_count = 1;
  g_mutex_init (&queue->lock);
  queue->fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (queue->fd < 0)
    {
      PyErr_SetFromErrno (PyExc_OSError);
      g_mutex_clear (&queue->lock);
      g_free (queue);
      return NULL;
    }
  queue->loop = loop;

  handle = queue_handle_new (queue, HANDLE_LOOP_GONE);
  reader = queue_handle_new (queue, HANDLE_READER);
  if (handle == NULL || reader == NULL)
    goto fail;

  /* The loop holds the reader, the weakref holds the other handle; both
   * hold the queue, never the loop, so the loop can be collected. */
  queue->loop_ref = PyWeakref_NewRef (loop, (PyObject *) handle);
  if (queue->loop_ref == NULL)
    goto fail;
  fd_obj = PyLong_FromLong (queue->fd);
  if (fd_obj == NULL)
    goto fail;
  ret = PyObject_CallMethodObjArgs (loop, gab_py.s_add_reader, fd_obj,
                                    (PyObject *) reader, NULL);
  Py_DECREF (fd_obj);
  if (ret == NULL)
    goto fail;
  Py_DECREF (ret);
  Py_DECREF (handle);
  Py_DECREF (reader);
  return queue;

fail:
  Py_CLEAR (queue->loop_ref);
  queue->loop = NULL;
  /* Dead first, so that the reader's release is not taken for a close. */
  queue->dead = TRUE;
  Py_XDECREF (handle);
  Py_XDECREF (reader);
  gab_loop_queue_unref (queue);
  return NULL;
}

GabLoopQueue *
gab_loop_queue_get (PyObject *loop)
{
  GabLoopQueue *queue;

  if (G_LIKELY (loop == last_loop && last_queue != NULL))
    return last_queue;
  if (queues == NULL)
    queues = g_hash_table_new_full (NULL, NULL, NULL, registry_value_free);
  queue = g_hash_table_lookup (queues, loop);
  if (queue == NULL)
    {
      queue = queue_new (loop);
      if (queue == NULL)
        return NULL;
      g_hash_table_insert (queues, loop, queue);
    }
  last_loop = loop;
  last_queue = queue;
  return queue;
}

void
gab_loop_queues_close (void)
{
  g_autoptr(GPtrArray) snapshot = NULL;
  GSList *batches = NULL;
  GHashTableIter iter;
  gpointer value;

  if (queues == NULL)
    return;
  /* A snapshot with references: asking a loop whether it runs is a Python
   * call, and a collection meanwhile may close or drop a loop, which
   * edits the table. */
  snapshot = g_ptr_array_new_with_free_func ((GDestroyNotify) gab_loop_queue_unref);
  g_hash_table_iter_init (&iter, queues);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (snapshot, gab_loop_queue_ref (value));

  /* Take the items first, run them after: running one may drop the last
   * reference to a loop. */
  for (guint i = 0; i < snapshot->len; i++)
    {
      GabLoopQueue *queue = snapshot->pdata[i];
      PyObject *loop = queue->loop, *running;
      int is_running = 0;

      if (loop == NULL)
        continue;
      Py_INCREF (loop);
      running = PyObject_CallMethodNoArgs (loop, gab_py.s_is_running);
      Py_DECREF (loop);
      if (running != NULL)
        is_running = PyObject_IsTrue (running);
      Py_XDECREF (running);
      PyErr_Clear ();
      /* A running loop drains its own queue; the others never will. */
      if (is_running != 1)
        {
          GabLoopItem *items = queue_steal (queue, FALSE);

          if (items != NULL)
            batches = g_slist_prepend (batches, items);
        }
    }
  for (GSList *l = batches; l != NULL; l = l->next)
    run_items (l->data, FALSE);
  g_slist_free (batches);
}

void
gab_loop_queues_after_fork (void)
{
  GHashTableIter iter;
  gpointer value;

  last_loop = NULL;
  last_queue = NULL;
  if (queues == NULL)
    return;
  /* The child shares each eventfd with the parent: reading it here would
   * steal the parent's wakeups. Close our copies and forget the queues; a
   * loop made in the child gets a new one. No remove_reader(): the loop's
   * epoll instance is shared with the parent too, and unregistering there
   * would unregister the parent's reader. (asyncio does not let a child
   * run its parent's loop anyway.) */
  g_hash_table_iter_init (&iter, queues);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      GabLoopQueue *queue = value;

      close (queue->fd);
      queue->fd = -1;
      /* What the watches stand for is failed by its own after-fork code. */
      while (queue->watches != NULL)
        gab_loop_queue_unwatch (queue->watches);
      run_items (queue_steal (queue, TRUE), FALSE);
      Py_CLEAR (queue->loop_ref);
      queue->loop = NULL;
    }
  g_hash_table_remove_all (queues);
}
