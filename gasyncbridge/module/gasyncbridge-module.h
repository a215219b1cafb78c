/* gasyncbridge-module.h: what the files of the Python module share. */
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <gasyncbridge/gasyncbridge.h>

G_BEGIN_DECLS

/* The `gasyncbridge.gio` submodule. */
PyObject *gab_module_gio_new (void);
/* `call_gio (async_method, *args)`. */
PyObject *gab_module_call_gio (PyObject        *self,
                               PyObject *const *args,
                               Py_ssize_t       nargs);

G_END_DECLS
