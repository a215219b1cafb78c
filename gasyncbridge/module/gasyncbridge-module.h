/* gasyncbridge-module.h: what the files of the Python module share.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <gasyncbridge/gasyncbridge.h>

G_BEGIN_DECLS

#if PY_VERSION_HEX < 0x030A0000
/* Python 3.9 lacks Py_NewRef, which the module uses throughout. */
static inline PyObject *
gab_module_new_ref (PyObject *object)
{
  Py_INCREF (object);
  return object;
}
# define Py_NewRef(o) gab_module_new_ref ((PyObject *) (o))
#endif

/* The `gasyncbridge.gio` submodule. */
PyObject *gab_module_gio_new (void);
/* `call_gio (async_method, *args)`. */
PyObject *gab_module_call_gio (PyObject        *self,
                               PyObject *const *args,
                               Py_ssize_t       nargs);
/* The docstring of call_gio, with examples (gasyncbridge-call-gio.c), for
 * the method table of gasyncbridge-module.c. */
extern const char gab_module_call_gio_doc[];

/* GIL, on a running loop: like gab_future_into_py(), but the result is a
 * `gasyncbridge.gio.Operation`, an asyncio.Future whose cancel() asks GIO
 * to stop and completes (cancelled) only once the operation has reported
 * back, so its cleanup is done when the awaiting task sees CancelledError.
 *
 * @cancellable (transfer full) is the one @start receives and must give to
 * GIO; Operation.cancel() cancels it on the runtime thread, and so does the
 * bridge's own cancellable (future collected, runtime shut down). Pass
 * %NULL when the operation has no cancellable of its own: then cancel()
 * drops the result at once, as a plain bridge future does, and @start
 * gets the bridge's cancellable. */
PyObject *gab_module_operation_new (GabStartFunc    start,
                                    GabFinishFunc   finish,
                                    gpointer        user_data,
                                    GDestroyNotify  user_data_free,
                                    GCancellable   *cancellable);

/* GIL: a path argument (str, bytes or os.PathLike) as a GFile; NULL with
 * TypeError or ValueError set. @what names the argument in messages. */
GFile    *gab_module_file_from_path (PyObject    *path,
                                     const char  *what);

/* Streams: adds their types to the module and open_read/open_write to
 * `gio`. 0 on success, -1 with an exception set. */
int       gab_module_streams_init (PyObject *module,
                                   PyObject *gio);

G_END_DECLS
