/* gab-loop-queue.c: how completions reach an asyncio event loop.
 *
 * One queue per loop: a list guarded by a mutex, and an eventfd the loop
 * watches with add_reader(). A push writes the eventfd only when the list
 * goes from empty to non-empty, so completions arriving together cost one
 * wakeup of the loop and one call into Python. Pushing needs no GIL, so the
 * runtime thread never waits for it.
 *
 * The loop runs what it finds in slices: a drain stops when its time
 * budget (GAB_LOOP_BUDGET_USEC_DEFAULT) is spent and puts the rest back at
 * the head of the list, with the eventfd left readable, so the next loop
 * iteration continues where this one stopped and the loop's other
 * callbacks and timers run in between. A batch of a thousand completions
 * therefore never freezes the loop for longer than about one budget, and
 * when nothing is left no extra wakeup happens.
 *
 * A queue lives as long as its loop is open. Two signals end it: the loop
 * releasing our reader callback, which asyncio and uvloop do in close(),
 * and a weak reference to the loop, for a loop collected without being
 * closed. Then the queue is marked dead, what is still in it is cleaned
 * up, and its watches (gab-loop-watch.c) hear that the loop is closed.
 * Items that arrive for a dead queue go to the orphans
 * (gab-loop-orphans.c).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gasyncbridge.h>
#include "gab-python.h"
#include "gab-lifecycle.h"
#include "gab-loop-queue.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct _GabLoopQueue
{
  GMutex       lock;
  GabLoopItem *head;          /* lock; peeked at atomically without it */
  GabLoopItem *tail;          /* lock */
  gboolean     wake_pending;  /* lock: the eventfd was written, not yet drained */
  gboolean     dead;          /* lock */
  int          fd;            /* eventfd; closed with the last reference */
  PyObject    *loop;          /* GIL; borrowed, valid until the weakref fires */
  PyObject    *loop_ref;      /* GIL; weakref to the loop, strong */
  GMainContext *dispatch_context;  /* GIL; created on first use */
  GabLoopWatchSet watches;    /* GIL */
  gpointer     data;          /* GIL: gab_loop_queue_get_data() */
  GDestroyNotify data_free;
};

static gint64 loop_budget_usec = -1;

/* The Python faces of a queue. */
typedef enum
{
  HANDLE_READER,      /* the loop's reader: drains; its release means close() */
  HANDLE_LOOP_GONE,   /* the weakref callback: the loop was collected */
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

GabLoopQueue *
gab_loop_queue_ref (GabLoopQueue *queue)
{
  return g_atomic_rc_box_acquire (queue);
}

/* The last reference went (a queue is a GLib reference-counted box). */
static void
queue_clear (gpointer data)
{
  GabLoopQueue *queue = data;

  /* Nobody can push any more: the eventfd may go. */
  g_assert (queue->head == NULL);
  if (queue->fd >= 0)
    close (queue->fd);
  if (queue->data_free != NULL)
    queue->data_free (queue->data);
  /* Destroys the idle sources of GTasks whose callbacks never ran. */
  g_clear_pointer (&queue->dispatch_context, g_main_context_unref);
  g_mutex_clear (&queue->lock);
}

void
gab_loop_queue_unref (GabLoopQueue *queue)
{
  if (queue != NULL)
    g_atomic_rc_box_release_full (queue, queue_clear);
}

static gpointer
queue_ref_cb (gpointer queue)
{
  return gab_loop_queue_ref (queue);
}

static void
queue_unref_cb (gpointer queue)
{
  gab_loop_queue_unref (queue);
}

PyObject *
gab_loop_queue_get_loop (GabLoopQueue *queue)
{
  return queue->dead ? NULL : queue->loop;
}

gboolean
gab_loop_queue_has_items (GabLoopQueue *queue)
{
  return g_atomic_pointer_get (&queue->head) != NULL;
}

gpointer
gab_loop_queue_get_data (GabLoopQueue  *queue,
                         gpointer     (*create) (GabLoopQueue *queue),
                         GDestroyNotify destroy)
{
  if (G_UNLIKELY (queue->data == NULL))
    {
      queue->data = create (queue);
      queue->data_free = destroy;
    }
  return queue->data;
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
gab_loop_queue_watch (GabLoopQueue *queue,
                      GabLoopWatch *watch)
{
  gab_loop_watch_set_add (&queue->watches, watch);
}

void
gab_loop_queue_push (GabLoopQueue *queue,
                     GabLoopItem  *item)
{
  if (G_UNLIKELY (!gab_loop_queue_try_push (queue, item)))
    gab_orphan_push (item);
}

static void
queue_wake (GabLoopQueue *queue)
{
  guint64 one = 1;

  /* The fd stays open while the caller holds its reference. */
  if (queue->fd >= 0)
    while (write (queue->fd, &one, sizeof one) < 0 && errno == EINTR)
      ;
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
    /* Atomic: gab_loop_queue_has_items() peeks at it without the lock. */
    g_atomic_pointer_set (&queue->head, item);
  queue->tail = item;
  wake = !queue->wake_pending;
  queue->wake_pending = TRUE;
  g_mutex_unlock (&queue->lock);

  if (wake)
    queue_wake (queue);
  return TRUE;
}

/* Takes the whole list; its last item goes to @tail if wanted. */
static GabLoopItem *
queue_steal (GabLoopQueue  *queue,
             gboolean       mark_dead,
             GabLoopItem  **tail)
{
  GabLoopItem *items;

  g_mutex_lock (&queue->lock);
  items = queue->head;
  if (tail != NULL)
    *tail = queue->tail;
  g_atomic_pointer_set (&queue->head, NULL);
  queue->tail = NULL;
  queue->wake_pending = FALSE;
  if (mark_dead)
    queue->dead = TRUE;
  g_mutex_unlock (&queue->lock);
  return items;
}

/* Loop thread, GIL: put @items .. @last (not run, in order) back in
 * front of what arrived meanwhile, and leave the eventfd readable for the
 * next loop iteration. @last comes from the steal: walking a list of
 * 100,000 completions to find it, once per slice, cost more than the
 * slices themselves. */
static void
queue_put_back (GabLoopQueue *queue,
                GabLoopItem  *items,
                GabLoopItem  *last)
{
  gboolean wake, dead;

  g_mutex_lock (&queue->lock);
  dead = queue->dead;
  if (!dead)
    {
      last->next = queue->head;
      if (queue->tail == NULL)
        queue->tail = last;
      g_atomic_pointer_set (&queue->head, items);
    }
  wake = !dead && !queue->wake_pending;
  if (!dead)
    queue->wake_pending = TRUE;
  g_mutex_unlock (&queue->lock);

  if (wake)
    queue_wake (queue);
  else if (dead)
    /* The loop closed while the slice ran: what is left only cleans up. */
    while (items != NULL)
      {
        GabLoopItem *item = items;

        items = item->next;
        item->run (item, FALSE);
      }
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

static gint64
budget_usec (void)
{
  if (G_UNLIKELY (loop_budget_usec < 0))
    {
      const gchar *env = g_getenv ("GAB_LOOP_BUDGET_USEC");
      gint64 value = env != NULL ? g_ascii_strtoll (env, NULL, 10) : 0;

      loop_budget_usec = value > 0 ? value : GAB_LOOP_BUDGET_USEC_DEFAULT;
    }
  return loop_budget_usec;
}

/* Loop thread, GIL: the eventfd became readable. Runs one slice. */
static void
queue_drain (GabLoopQueue *queue)
{
  GabLoopItem *items, *last;
  guint64 count;
  gint64 deadline;

  /* Read first, steal second: a push in between finds wake_pending still
   * set, adds to the list and is taken by the steal below. */
  while (read (queue->fd, &count, sizeof count) < 0 && errno == EINTR)
    ;
  items = queue_steal (queue, FALSE, &last);
  deadline = g_get_monotonic_time () + budget_usec ();
  /* At least one item per slice, so that a slow item cannot stall the
   * queue; the clock is read once per item (a vDSO call). */
  while (items != NULL)
    {
      GabLoopItem *item = items;

      items = item->next;
      item->run (item, TRUE);
      if (items != NULL && g_get_monotonic_time () >= deadline)
        {
          queue_put_back (queue, items, last);
          break;
        }
    }
  gab_orphans_flush ();
}

/* GIL: the loop was closed or collected. Idempotent. */
static void
queue_lost (GabLoopQueue *queue)
{
  PyObject *exception;

  if (queue->loop == NULL)
    return;
  /* May run inside a deallocation (the reader's): keep any exception
   * being raised out of our way. */
  exception = PyErr_GetRaisedException ();
  /* The registry holds one reference of the queue; keep ours meanwhile. */
  gab_loop_queue_ref (queue);
  if (queues != NULL && g_hash_table_lookup (queues, queue->loop) == queue)
    g_hash_table_remove (queues, queue->loop);
  if (last_queue == queue)
    {
      last_queue = NULL;
      last_loop = NULL;
    }
  run_items (queue_steal (queue, TRUE, NULL), FALSE);
  Py_CLEAR (queue->loop_ref);
  queue->loop = NULL;
  gab_loop_watch_set_close (&queue->watches);
  gab_loop_queue_unref (queue);
  gab_orphans_flush ();
  PyErr_SetRaisedException (exception);
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
  for (GabLoopWatch *watch = queue->watches.head; watch != NULL; watch = watch->next)
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
  GAB_PY_TYPE_HEAD ("gasyncbridge._LoopQueue", QueueHandle,
                    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
                    "Wakes an asyncio loop for gasyncbridge completions."),
  .tp_call = queue_handle_call,
  .tp_dealloc = queue_handle_dealloc,
  .tp_traverse = queue_handle_traverse,
  .tp_clear = queue_handle_clear,
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

  if (!gab_loop_queues_start ())
    return NULL;

  queue = g_atomic_rc_box_new0 (GabLoopQueue);
  g_mutex_init (&queue->lock);
  queue->fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (queue->fd < 0)
    {
      PyErr_SetFromErrno (PyExc_OSError);
      g_mutex_clear (&queue->lock);
      g_atomic_rc_box_release (queue);
      return NULL;
    }
  queue->loop = loop;
  queue->watches.loop = loop;
  queue->watches.owner = queue;
  queue->watches.owner_ref = queue_ref_cb;
  queue->watches.owner_unref = queue_unref_cb;

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
  queue->watches.loop = NULL;
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

static void
queues_close (void)
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
          GabLoopItem *items = queue_steal (queue, FALSE, NULL);

          if (items != NULL)
            batches = g_slist_prepend (batches, items);
        }
    }
  for (GSList *l = batches; l != NULL; l = l->next)
    run_items (l->data, FALSE);
  g_slist_free (batches);
}

static void
queues_after_fork (void)
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
      gab_loop_watch_set_forget (&queue->watches);
      run_items (queue_steal (queue, TRUE, NULL), FALSE);
      Py_CLEAR (queue->loop_ref);
      queue->loop = NULL;
    }
  g_hash_table_remove_all (queues);
}

PyObject *
gab_loop_queue_new_future (GabLoopQueue *queue,
                           const char   *misuse)
{
  PyObject *loop = gab_py_running_loop ();
  PyObject *future;

  if (loop == NULL)
    return PyErr_Format (PyExc_RuntimeError, "gasyncbridge: no running event loop");
  if (loop != gab_loop_queue_get_loop (queue))
    {
      Py_DECREF (loop);
      PyErr_SetString (PyExc_RuntimeError, misuse);
      return NULL;
    }
  future = PyObject_CallMethodNoArgs (loop, gab_py.s_create_future);
  Py_DECREF (loop);
  return future;
}

/* ---- the unit's lifecycle --------------------------------------------- */

static gboolean
queues_start (void)
{
  return PyType_Ready (&QueueHandle_Type) == 0 && gab_loop_watch_types_ready ();
}

/* The loops' queues: closed at interpreter exit, unhooked in a child. */
static GabSubsystem queues_subsystem = {
  .name = "loop-queues",
  .start = queues_start,
  .at_exit = queues_close,
  .after_fork = queues_after_fork,
};

gboolean
gab_loop_queues_start (void)
{
  return gab_lifecycle_start (&queues_subsystem);
}
