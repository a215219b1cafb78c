/* gab-python-compat.h: every difference between the CPython versions the
 * bridge supports (3.9 to 3.13), in one place. The library, the module,
 * the tests, the test modules and the benchmarks include this instead of
 * Python.h and write to the newest API; older interpreters get the
 * fallbacks below. It also holds the one macro the library and the
 * module share for writing their own Python types.
 *
 * Rules: no private (_Py) symbol is referenced at link time, so a library
 * built for one version does not fail to load on a newer one for want of
 * a symbol it removed (nm -D --undefined-only shows only public API), and
 * version-specific private API is only used behind PY_VERSION_HEX.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#ifndef PY_SSIZE_T_CLEAN
# define PY_SSIZE_T_CLEAN
#endif
#include <Python.h>

#if PY_VERSION_HEX < 0x03090000
# error "gasyncbridge needs CPython 3.9 or newer"
#endif

/* ---- 3.10: Py_NewRef, Py_XNewRef ------------------------------------- */

#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *
gab_compat_new_ref (PyObject *object)
{
  Py_INCREF (object);
  return object;
}

static inline PyObject *
gab_compat_xnew_ref (PyObject *object)
{
  Py_XINCREF (object);
  return object;
}

# define Py_NewRef(o) gab_compat_new_ref ((PyObject *) (o))
# define Py_XNewRef(o) gab_compat_xnew_ref ((PyObject *) (o))
#endif

/* ---- 3.12: the pending exception as one object ----------------------- */

#if PY_VERSION_HEX < 0x030C0000
/* The pending exception, normalized, with its traceback attached; NULL if
 * none. Clears it, as 3.12's PyErr_GetRaisedException() does. */
static inline PyObject *
gab_compat_get_raised_exception (void)
{
  PyObject *type, *value, *traceback;

  PyErr_Fetch (&type, &value, &traceback);
  if (type == NULL)
    return NULL;
  PyErr_NormalizeException (&type, &value, &traceback);
  if (value != NULL && traceback != NULL)
    PyException_SetTraceback (value, traceback);
  Py_XDECREF (type);
  Py_XDECREF (traceback);
  return value;
}

/* Sets @exception (stolen; NULL clears) as the pending exception. */
static inline void
gab_compat_set_raised_exception (PyObject *exception)
{
  if (exception == NULL)
    {
      PyErr_Clear ();
      return;
    }
  PyErr_Restore (Py_NewRef ((PyObject *) Py_TYPE (exception)), exception,
                 PyException_GetTraceback (exception));
}

# define PyErr_GetRaisedException() gab_compat_get_raised_exception ()
# define PyErr_SetRaisedException(e) gab_compat_set_raised_exception (e)
#endif

/* ---- 3.11: asyncio's loop.create_task (coro, context=...) ------------ */

#define GAB_PY_CREATE_TASK_TAKES_CONTEXT (PY_VERSION_HEX >= 0x030B0000)

/* ---- 3.13: PyWeakref_GetRef ------------------------------------------ */

#if PY_VERSION_HEX < 0x030D0000
/* 1 and a new reference in *@object if the referent is alive, 0 and NULL
 * if it is gone, -1 and NULL with an exception if @ref is no weak
 * reference. PyWeakref_GetObject(), deprecated in 3.13, returns a
 * borrowed reference that the next Python code run may invalidate. */
static inline int
gab_compat_weakref_get_ref (PyObject  *ref,
                            PyObject **object)
{
  PyObject *referent = PyWeakref_GetObject (ref);

  *object = NULL;
  if (referent == NULL)
    return -1;
  if (referent == Py_None)
    return 0;
  *object = Py_NewRef (referent);
  return 1;
}

# define PyWeakref_GetRef(ref, object) gab_compat_weakref_get_ref ((ref), (object))
#endif

/* ---- 3.13: Py_IsFinalizing ------------------------------------------- */

/* Whether the interpreter is finalizing; callable without the GIL, as
 * Py_IsFinalizing() is. Before 3.13 the only such call is the private
 * _Py_IsFinalizing() (3.9 to 3.12), which 3.13 removed: it is looked up at
 * the first call, not linked, so that a build for 3.12 or older still
 * loads into 3.13 (and calls the public one there). Only call it once
 * Py_IsInitialized(): the interpreter's symbols are in the process then. */
#if PY_VERSION_HEX >= 0x030D0000
# define gab_compat_is_finalizing() Py_IsFinalizing ()
#else
# include <dlfcn.h>      /* RTLD_DEFAULT: pyconfig.h defines _GNU_SOURCE */

static inline int
gab_compat_is_finalizing (void)
{
  static void *symbol;    /* &symbol: neither was found */
  union                   /* dlsym() gives a data pointer; ISO C has no */
  {                       /* conversion of one to a function pointer */
    void *symbol;
    int (*call) (void);
  } func;

  /* Two first calls may race: both look it up, to the same result. */
  func.symbol = __atomic_load_n (&symbol, __ATOMIC_ACQUIRE);
  if (func.symbol == NULL)
    {
      func.symbol = dlsym (RTLD_DEFAULT, "Py_IsFinalizing");
      if (func.symbol == NULL)
        func.symbol = dlsym (RTLD_DEFAULT, "_Py_IsFinalizing");
      if (func.symbol == NULL)
        func.symbol = &symbol;
      __atomic_store_n (&symbol, func.symbol, __ATOMIC_RELEASE);
    }
  return func.symbol != (void *) &symbol ? func.call () : 0;
}
#endif

/* ---- the bridge's own types ------------------------------------------ */

/* The head of a PyTypeObject table of the bridge's own types: the dotted
 * name, the C struct, the flags and the doc, so that each table lists only
 * what the type does. */
#define GAB_PY_TYPE_HEAD(name, Struct, flags, doc) \
  PyVarObject_HEAD_INIT (NULL, 0)                  \
  .tp_name = (name),                               \
  .tp_basicsize = sizeof (Struct),                 \
  .tp_flags = (flags),                             \
  .tp_doc = (doc)
