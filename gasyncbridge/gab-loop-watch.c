/* gab-loop-watch.c: the watches of a loop, and their sweep.
 *
 * While any watch of a kind that sweeps is on a loop, a timer of that loop
 * looks at them now and then: that is how an operation learns that Python
 * dropped its future. When the loop goes, every watch hears closed().
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gasyncbridge.h>
#include "gab-python.h"
#include "gab-loop-watch.h"

/* How often the watches are swept while there are any: the longest an
 * operation runs on after Python dropped its future. */
#define GAB_LOOP_SWEEP_SECONDS 0.1

/* The sweep timer's callback; it keeps the set's owner alive. */
typedef struct
{
  PyObject_HEAD
  GabLoopWatchSet *set;
} SweepHandle;

static void watch_set_sweep (GabLoopWatchSet *set);

static PyObject *
sweep_handle_call (PyObject *self,
                   PyObject *args,
                   PyObject *kwargs)
{
  watch_set_sweep (((SweepHandle *) self)->set);
  Py_RETURN_NONE;
}

static void
sweep_handle_dealloc (PyObject *self)
{
  GabLoopWatchSet *set = ((SweepHandle *) self)->set;

  set->owner_unref (set->owner);
  Py_TYPE (self)->tp_free (self);
}

static PyTypeObject SweepHandle_Type = {
  GAB_PY_TYPE_HEAD ("gasyncbridge._LoopSweep", SweepHandle,
                    Py_TPFLAGS_DEFAULT,
                    "Looks for gasyncbridge operations whose futures were dropped."),
  .tp_call = sweep_handle_call,
  .tp_dealloc = sweep_handle_dealloc,
};

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
gab_loop_watch_remove (GabLoopWatch *watch)
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

/* GIL, loop thread: make sure a sweep is coming. */
static void
sweep_arm (GabLoopWatchSet *set)
{
  SweepHandle *handle = NULL;
  PyObject *delay, *ret = NULL;

  if (set->sweep_armed || set->loop == NULL)
    return;
  if ((handle = PyObject_New (SweepHandle, &SweepHandle_Type)) != NULL)
    {
      handle->set = set;
      set->owner_ref (set->owner);   /* dropped by the handle's dealloc */
    }
  delay = PyFloat_FromDouble (GAB_LOOP_SWEEP_SECONDS);
  if (handle != NULL && delay != NULL)
    ret = PyObject_CallMethodObjArgs (set->loop, gab_py.s_call_later, delay,
                                      (PyObject *) handle, NULL);
  if (ret != NULL)
    set->sweep_armed = TRUE;
  else
    /* Without a timer a dropped future's operation runs to its end rather
     * than being cancelled early; nothing is lost but time. */
    PyErr_Clear ();
  Py_XDECREF (ret);
  Py_XDECREF (delay);
  Py_XDECREF ((PyObject *) handle);
}

void
gab_loop_watch_set_add (GabLoopWatchSet *set,
                        GabLoopWatch    *watch)
{
  g_return_if_fail (watch->list == NULL);

  if (set->loop == NULL)
    {
      watch->kind->closed (watch);
      return;
    }
  watch_link (watch, &set->head);
  if (watch->kind->candidate != NULL)
    sweep_arm (set);
}

/* GIL, loop thread, from the timer. Two passes: the first only reads
 * (no Python runs, so the list cannot change under it) and moves the
 * candidates aside; the second asks each of them, and what they run may
 * add or remove watches freely. */
static void
watch_set_sweep (GabLoopWatchSet *set)
{
  GabLoopWatch *candidates = NULL, *watch, *next;
  gboolean any = FALSE;

  set->sweep_armed = FALSE;
  for (watch = set->head; watch != NULL; watch = next)
    {
      next = watch->next;
      if (watch->kind->candidate == NULL)
        continue;
      any = TRUE;
      if (watch->kind->candidate (watch))
        {
          gab_loop_watch_remove (watch);
          watch_link (watch, &candidates);
        }
    }
  while ((watch = candidates) != NULL)
    {
      gab_loop_watch_remove (watch);
      if (!watch->kind->sweep (watch) && set->loop != NULL)
        watch_link (watch, &set->head);
    }
  if (any && set->loop != NULL)
    sweep_arm (set);
}

void
gab_loop_watch_set_close (GabLoopWatchSet *set)
{
  GabLoopWatch *closing, *watch;

  set->loop = NULL;
  /* Move the watches to a list of our own first: each closed() may run
   * Python, which may finish (and remove) any of the others. */
  closing = set->head;
  set->head = NULL;
  for (watch = closing; watch != NULL; watch = watch->next)
    watch->list = &closing;
  while ((watch = closing) != NULL)
    {
      gab_loop_watch_remove (watch);
      watch->kind->closed (watch);
    }
}

void
gab_loop_watch_set_forget (GabLoopWatchSet *set)
{
  set->loop = NULL;
  while (set->head != NULL)
    gab_loop_watch_remove (set->head);
}

gboolean
gab_loop_watch_types_ready (void)
{
  return PyType_Ready (&SweepHandle_Type) == 0;
}
