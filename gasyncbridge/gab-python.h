/* gab-python.h: the interpreter glue that every unit
 * with Python in it uses (gab-python.c): the GIL precondition, objects
 * looked up once, references dropped from any thread, the bridge's
 * Python files run as modules.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "gab-python-compat.h"
#include <glib.h>

G_BEGIN_DECLS

/* A function as a GTask source tag, a gpointer: GCC and clang convert
 * function to data pointers, which ISO C leaves undefined (-Wpedantic). */
#define GAB_TAG(func) (G_GNUC_EXTENSION ((gpointer) (func)))

/* Python is finalizing (Py_IsInitialized() is already FALSE then, but
 * finalizers and atexit handlers still run Python code that may call us). */
gboolean gab_py_finalizing (void);

/* Precondition of functions documented to need the GIL. During
 * finalization too: a finalizer calling the bridge gets a Python exception
 * (the runtime is shut down by then), never a critical. */
#define GAB_GIL_HELD() ((Py_IsInitialized () || gab_py_finalizing ()) && PyGILState_Check ())

/* Objects looked up once and kept for the life of the interpreter. */
typedef struct
{
  PyObject *asyncio;
  PyObject *get_running_loop;   /* asyncio._get_running_loop: None if none */
  PyObject *cancelled_error;    /* asyncio.CancelledError */
  PyObject *ensure_future;
  /* interned method and keyword names */
  PyObject *s_create_future;
  PyObject *s_add_done_callback;
  PyObject *s_set_result;
  PyObject *s_set_exception;
  PyObject *s_cancel;
  PyObject *s_cancelled;
  PyObject *s_done;
  PyObject *s_result;
  PyObject *s_exception;
  PyObject *s_context;
  PyObject *s_add_reader;
  PyObject *s_create_task;
  PyObject *s_is_running;
  PyObject *s_run;
  PyObject *s_domain;
  PyObject *s_code;
  PyObject *s_message;
  PyObject *s_close;
  PyObject *s_loop;
  PyObject *s_remove_done_callback;
  PyObject *s_call_soon_threadsafe;
  PyObject *s_call_later;
  PyObject *s_call_soon;
  PyObject *s_callbacks;        /* "_callbacks": gab-asyncio-private.c only */
  PyObject *kw_context;         /* ("context",) */
  PyObject *kw_loop;            /* ("loop",) */
} GabPy;

extern GabPy gab_py;

/* GIL held. Looks up gab_py, the first time; refuses a sub-interpreter.
 * FALSE with a Python exception set on failure. The units call
 * gab_lifecycle_start() instead, which calls this. */
gboolean  gab_python_ensure        (void);
/* Initialized and not finalizing. */
gboolean  gab_python_usable        (void);
/* The runtime's hooks (gab-lifecycle.c): the runtime thread ending drops
 * its pinned PyThreadState; a thread about to wait for the runtime thread
 * releases the GIL (block_begin returns what block_end takes). */
void      gab_python_runtime_thread_exit (void);
gpointer  gab_python_block_begin   (void);
void      gab_python_block_end     (gpointer token);
/* Any thread. Drops a reference now if this thread holds the GIL, else
 * queues it for the next time the bridge runs with the GIL. */
void      gab_py_decref            (PyObject *object);
/* Any thread. Takes the GIL; on the runtime thread it reuses one pinned
 * PyThreadState instead of creating one per call. */
PyGILState_STATE gab_gil_acquire   (void);
void      gab_gil_release          (PyGILState_STATE state);
/* Runtime thread: create its persistent PyThreadState, once, so that
 * PyGILState_Ensure() there never creates and destroys one per call. */
void      gab_python_pin_runtime_thread (void);
/* GIL held: runs one of the bridge's Python files (gasyncbridge/python/,
 * turned into C at build time, compiled under its own file name) as the
 * body of a module called @module_name, with the global @name (nullable)
 * bound to @value first, and returns its globals (new ref), or NULL with
 * an exception set. How the bridge defines its Python helpers. */
typedef struct _GabPySource GabPySource;
PyObject *gab_py_run_file          (const GabPySource *source,
                                    const char        *module_name,
                                    const char        *name,
                                    PyObject          *value);
/* GIL held: gab_py_run_file() with no global bound first, for the one @name it
 * defines (new ref), or NULL with an exception set (SystemError if the
 * file has no @name). */
PyObject *gab_py_run_file_get      (const GabPySource *source,
                                    const char        *module_name,
                                    const char        *name);
/* GIL held: a coroutine that returns `await factory()`, where factory is
 * made from @factory_def (called with no arguments). New ref or NULL. */
PyObject *gab_py_coroutine_from_factory (PyMethodDef *factory_def);
/* GIL held: the running loop of this thread, new ref, or NULL (no error). */
PyObject *gab_py_running_loop      (void);
/* GIL held: future.done(). -1 on error. */
int       gab_py_future_done       (PyObject *future);

/* GIL: future.set_result (None); FALSE with an exception set. */
gboolean  gab_py_future_set_none   (PyObject   *future);
/* GIL: takes @waiter (nullable) and drops it, after setting its result to
 * None if @wake and it is not done yet. Clears any error. */
void      gab_py_waiter_wake       (PyObject   *waiter,
                                    gboolean    wake);
/* GIL: a future of the running loop, already done with None (what an
 * aclose () that has nothing to wait for returns). NULL with RuntimeError
 * when no loop runs. */
PyObject *gab_py_done_future       (void);

/* GIL: what `await` accepts: an object with __await__, or a generator-
 * based coroutine (types.coroutine). No exception set. */
gboolean  gab_py_is_awaitable      (PyObject   *object);
/* GIL: a generator made by a types.coroutine function. */
gboolean  gab_py_is_generator_coroutine (PyObject *object);

/* A reference-counted box around one Python reference, so that the
 * reference can be shared and dropped from threads without the GIL. */
typedef struct _GabPyRef GabPyRef;
GabPyRef *gab_py_ref_new   (PyObject *object);   /* GIL held; takes a new ref */
GabPyRef *gab_py_ref_ref   (GabPyRef *ref);      /* any thread */
void      gab_py_ref_unref (GabPyRef *ref);      /* any thread */
PyObject *gab_py_ref_get   (GabPyRef *ref);      /* GIL held; borrowed */

G_END_DECLS
