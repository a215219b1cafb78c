/* gab-task-locals.c: which event loop and which contextvars.Context the
 * Python work that C starts runs in (pyo3-asyncio's TaskLocals).
 *
 * Every thread has a stack of current locals. The bridge makes the Python
 * caller's locals current while it runs C code on the caller's behalf (the
 * start function of gab_future_into_py(), say), so that C code there that
 * awaits Python lands on the caller's loop, in the caller's context.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gasyncbridge.h>
#include "gab-python.h"
#include "gab-loop-queue.h"
#include "gab-lifecycle.h"
#include "gab-task-locals-private.h"

#include <pthread.h>

static __thread GabTaskLocals *current;
static __thread GPtrArray     *pushed;   /* saved `current` values */

static GMutex         default_lock;
static GabTaskLocals *default_locals;

/* In a child of fork() only the forking thread is left, and another thread
 * (resolving the default, as gab_call_async() does from a C thread, or
 * setting it) may have held the lock at the fork: it would stay held for
 * ever. The default itself is one pointer, never half-changed, so the child
 * keeps it as a fork at any other instant would (the references that
 * thread was taking or dropping are only leaked). */
static void
task_locals_atfork_child (void)
{
  g_mutex_init (&default_lock);
}

/* Registered when the library is loaded, not through the lifecycle's
 * after-fork hook: that runs only for os.fork() (not for a C program's
 * fork()), once the unit has started with the GIL (setting the default
 * without it does not start it), and a lazy registration could itself be
 * cut by a fork. */
__attribute__ ((constructor)) static void
task_locals_register_atfork (void)
{
  pthread_atfork (NULL, NULL, task_locals_atfork_child);
}

static gboolean
task_locals_start (void)
{
  /* Locals hold loop queues: those stop after the default is dropped. */
  return gab_loop_queues_start ();
}

static void
task_locals_at_exit (void)
{
  /* Interpreter exit: the default loop will never run again. */
  gab_task_locals_set_default (NULL);
}

static GabSubsystem task_locals_subsystem = {
  .name = "task-locals",
  .start = task_locals_start,
  .at_exit = task_locals_at_exit,
};

/**
 * gab_task_locals_get_type:
 *
 * The boxed #GType of #GabTaskLocals (copy is a reference).
 *
 * Returns: the type
 *
 * Since: 0.1
 */
/* GLib's macro checks the functions' types through a GCC transparent union,
 * which -Wpedantic reports. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
G_DEFINE_BOXED_TYPE (GabTaskLocals, gab_task_locals,
                     gab_task_locals_ref, gab_task_locals_unref)
#pragma GCC diagnostic pop

GabTaskLocals *
gab_task_locals_new_for_queue (GabLoopQueue *queue,
                               PyObject     *context)
{
  GabTaskLocals *locals = g_atomic_rc_box_new (GabTaskLocals);

  locals->queue = gab_loop_queue_ref (queue);
  locals->context = Py_NewRef (context);
  return locals;
}

/**
 * gab_task_locals_new:
 * @loop: an asyncio event loop
 * @context: (nullable): a `contextvars.Context`, or %NULL for a copy of the
 *   current one
 *
 * Creates task locals for @loop and @context. Needs the GIL.
 *
 * Returns: (transfer full) (nullable): new task locals, or %NULL with a
 *   Python exception set
 *
 * Since: 0.1
 */
GabTaskLocals *
gab_task_locals_new (PyObject *loop,
                     PyObject *context)
{
  GabLoopQueue *queue;
  GabTaskLocals *locals;
  PyObject *copy = NULL;

  g_return_val_if_fail (loop != NULL, NULL);
  g_return_val_if_fail (GAB_GIL_HELD (), NULL);

  if (!gab_lifecycle_start (&task_locals_subsystem))
    return NULL;
  if (context == NULL)
    {
      copy = PyContext_CopyCurrent ();
      if (copy == NULL)
        return NULL;
      context = copy;
    }
  else if (!PyContext_CheckExact (context))
    {
      PyErr_Format (PyExc_TypeError,
                    "gasyncbridge: task locals need a contextvars.Context, not %s",
                    Py_TYPE (context)->tp_name);
      return NULL;
    }
  queue = gab_loop_queue_get (loop);
  locals = queue != NULL ? gab_task_locals_new_for_queue (queue, context) : NULL;
  Py_XDECREF (copy);
  return locals;
}

/**
 * gab_task_locals_ref:
 * @locals: task locals
 *
 * Takes a reference. Any thread, no GIL needed.
 *
 * Returns: (transfer full): @locals
 *
 * Since: 0.1
 */
GabTaskLocals *
gab_task_locals_ref (GabTaskLocals *locals)
{
  g_return_val_if_fail (locals != NULL, NULL);
  return g_atomic_rc_box_acquire (locals);
}

/* The last reference went (task locals are a GLib reference-counted box). */
static void
task_locals_clear (gpointer data)
{
  GabTaskLocals *locals = data;

  gab_py_decref (locals->context);
  gab_loop_queue_unref (locals->queue);
}

/**
 * gab_task_locals_unref:
 * @locals: (transfer full): task locals
 *
 * Drops a reference. Any thread, no GIL needed: Python references are
 * released by the next bridge code that holds the GIL.
 *
 * Since: 0.1
 */
void
gab_task_locals_unref (GabTaskLocals *locals)
{
  g_return_if_fail (locals != NULL);
  g_atomic_rc_box_release_full (locals, task_locals_clear);
}

/**
 * gab_task_locals_get_loop:
 * @locals: task locals
 *
 * The event loop. Needs the GIL.
 *
 * Returns: (transfer none) (nullable): the loop, or %NULL once it has been
 *   closed (asyncio's and uvloop's loops) or collected
 *
 * Since: 0.1
 */
PyObject *
gab_task_locals_get_loop (GabTaskLocals *locals)
{
  g_return_val_if_fail (locals != NULL, NULL);
  return gab_loop_queue_get_loop (locals->queue);
}

/**
 * gab_task_locals_get_context:
 * @locals: task locals
 *
 * The `contextvars.Context`. Needs the GIL.
 *
 * Returns: (transfer none): the context
 *
 * Since: 0.1
 */
PyObject *
gab_task_locals_get_context (GabTaskLocals *locals)
{
  g_return_val_if_fail (locals != NULL, NULL);
  return locals->context;
}

GabTaskLocals *
gab_task_locals_swap (GabTaskLocals *locals)
{
  GabTaskLocals *prev = current;

  current = locals;
  return prev;
}

/**
 * gab_task_locals_push:
 * @locals: task locals
 *
 * Makes @locals current on this thread until the matching
 * gab_task_locals_pop(), like g_main_context_push_thread_default(). Use it
 * in a GIO callback to await Python with the locals you captured when the
 * operation started. No GIL needed.
 *
 * Since: 0.1
 */
void
gab_task_locals_push (GabTaskLocals *locals)
{
  g_return_if_fail (locals != NULL);
  if (pushed == NULL)
    pushed = g_ptr_array_new ();
  g_ptr_array_add (pushed, current);
  current = gab_task_locals_ref (locals);
}

/**
 * gab_task_locals_pop:
 * @locals: the task locals given to gab_task_locals_push()
 *
 * Undoes gab_task_locals_push().
 *
 * Since: 0.1
 */
void
gab_task_locals_pop (GabTaskLocals *locals)
{
  g_return_if_fail (locals != NULL);
  g_return_if_fail (current == locals);
  g_return_if_fail (pushed != NULL && pushed->len > 0);

  current = g_ptr_array_steal_index (pushed, pushed->len - 1);
  gab_task_locals_unref (locals);
  if (pushed->len == 0)
    g_clear_pointer (&pushed, g_ptr_array_unref);
}

/**
 * gab_task_locals_set_default:
 * @locals: (nullable): task locals, or %NULL to forget the default
 *
 * Sets the task locals used where none is current and no loop runs on the
 * calling thread. gab_main(), gab_run() and gab_start_asyncio_thread() set
 * it to their loop. No GIL needed.
 *
 * Since: 0.1
 */
void
gab_task_locals_set_default (GabTaskLocals *locals)
{
  GabTaskLocals *old;

  if (locals != NULL)
    {
      /* Started (when the GIL is here) so that exit drops the default. */
      if (GAB_GIL_HELD () && !gab_lifecycle_start (&task_locals_subsystem))
        PyErr_Clear ();
      gab_task_locals_ref (locals);
    }
  g_mutex_lock (&default_lock);
  old = default_locals;
  default_locals = locals;
  g_mutex_unlock (&default_lock);
  if (old != NULL)
    gab_task_locals_unref (old);
}

/**
 * gab_task_locals_get_current:
 *
 * The task locals that Python work started from this thread would use: the
 * ones made current by the bridge (in a #GabStartFunc, say) or by
 * gab_task_locals_push(); else, on a thread running an asyncio loop, that
 * loop with a copy of the current context; else the default set with
 * gab_task_locals_set_default(). Needs no GIL when locals are current (in
 * a #GabStartFunc, say) or a default is set; the running-loop case needs it.
 *
 * Returns: (transfer full) (nullable): task locals, or %NULL if none is
 *   known
 *
 * Since: 0.1
 */
GabTaskLocals *
gab_task_locals_get_current (void)
{
  return gab_task_locals_resolve (NULL);
}

GabTaskLocals *
gab_task_locals_resolve (GError **error)
{
  GabTaskLocals *locals = NULL;

  if (current != NULL)
    return gab_task_locals_ref (current);

  if (GAB_GIL_HELD () && gab_lifecycle_start (&task_locals_subsystem))
    {
      PyObject *loop = gab_py_running_loop ();

      if (loop != NULL)
        {
          locals = gab_task_locals_new (loop, NULL);
          Py_DECREF (loop);
          if (locals == NULL)
            {
              gab_error_set_from_python (error);
              return NULL;
            }
          return locals;
        }
      PyErr_Clear ();
    }

  g_mutex_lock (&default_lock);
  if (default_locals != NULL)
    locals = gab_task_locals_ref (default_locals);
  g_mutex_unlock (&default_lock);

  if (locals == NULL)
    g_set_error_literal (error, GAB_ERROR, GAB_ERROR_NO_LOOP,
                         "No asyncio event loop is known to gasyncbridge on "
                         "this thread: call from code running on a loop, make "
                         "task locals current with gab_task_locals_push(), or "
                         "start a loop with gab_main(), gab_run() or "
                         "gab_start_asyncio_thread()");
  return locals;
}

/**
 * gab_get_current_loop:
 *
 * The event loop that Python work started from here would run on (see
 * gab_task_locals_get_current()). Needs the GIL.
 *
 * Returns: (transfer full) (nullable): the loop, or %NULL with RuntimeError
 *   set saying why no loop is known
 *
 * Since: 0.1
 */
PyObject *
gab_get_current_loop (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GabTaskLocals) locals = NULL;
  PyObject *loop;

  g_return_val_if_fail (GAB_GIL_HELD (), NULL);
  locals = gab_task_locals_resolve (&error);
  if (locals == NULL)
    {
      PyErr_SetString (PyExc_RuntimeError, error->message);
      return NULL;
    }
  loop = gab_task_locals_get_loop (locals);
  if (loop == NULL)
    {
      PyErr_SetString (PyExc_RuntimeError,
                       "gasyncbridge: the event loop of the current task "
                       "locals has been closed");
      return NULL;
    }
  return Py_NewRef (loop);
}

typedef struct
{
  GabLoopItem     item;
  GabLoopFunc     func;
  gpointer        data;
  GDestroyNotify  notify;
} InvokeItem;

static void
invoke_item_run (GabLoopItem *item,
                 gboolean     alive)
{
  InvokeItem *self = (InvokeItem *) item;

  if (alive)
    {
      self->func (self->data);
      /* A Python error left by func has nobody else to report to. */
      if (PyErr_Occurred ())
        PyErr_WriteUnraisable (Py_None);
    }
  if (self->notify != NULL)
    self->notify (self->data);
  g_free (self);
}

/**
 * gab_task_locals_invoke:
 * @locals: task locals
 * @func: the function to run on @locals' loop
 * @data: (closure): data for @func
 * @notify: (nullable): frees @data; called with the GIL after @func, or
 *   instead of it if the loop has gone away
 *
 * Runs @func on the thread of @locals' event loop, from the loop, with the
 * GIL held — in the order of the calls, batched with the bridge's other
 * completions (one wakeup of the loop per batch). Any thread, no GIL needed:
 * this is how C code on the runtime thread hands work to Python (progress
 * reports, say) without taking the GIL itself.
 *
 * Since: 0.1
 */
void
gab_task_locals_invoke (GabTaskLocals  *locals,
                        GabLoopFunc     func,
                        gpointer        data,
                        GDestroyNotify  notify)
{
  InvokeItem *self;

  g_return_if_fail (locals != NULL);
  g_return_if_fail (func != NULL);

  self = g_new0 (InvokeItem, 1);
  self->item.run = invoke_item_run;
  self->func = func;
  self->data = data;
  self->notify = notify;
  gab_loop_queue_push (locals->queue, &self->item);
}
