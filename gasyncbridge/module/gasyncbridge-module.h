/* gasyncbridge-module.h: what the files of the Python module share. */
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

/* PyGObject (gasyncbridge-signals.c), imported when first needed. */
gboolean  gab_module_gi_ensure       (void);
/* GIL: the GObject of a PyGObject wrapper, checked to be a @type
 * (borrowed); NULL with TypeError (or ImportError) set. */
GObject  *gab_module_gobject_get     (PyObject    *object,
                                      GType        type,
                                      const char  *what);
/* GIL: a GValue as PyGObject converts it (boxed values copied). */
PyObject *gab_module_value_to_python (const GValue *value);
/* 'raise', 'drop-oldest' or 'drop-newest'; FALSE with ValueError set. */
gboolean  gab_module_overflow_from_python (PyObject         *value,
                                           GabEventOverflow *overflow);

/* GObject signals: `_connect_signals(obj, names, maxsize, overflow,
 * callback, args_only)`. */
PyObject *gab_module_connect_signals (PyObject        *module,
                                      PyObject *const *args,
                                      Py_ssize_t       nargs);
int       gab_module_signals_init    (PyObject        *module);
/* GIL: if @result is a GObject, remember that run_in_runtime() made it
 * (signals() warns about context-bound objects made elsewhere). */
void      gab_module_mark_made_in_runtime (PyObject *result);

/* D-Bus: `_dbus_subscribe(...)` and `_dbus_register(...)`, futures. */
PyObject *gab_module_dbus_subscribe  (PyObject        *module,
                                      PyObject *const *args,
                                      Py_ssize_t       nargs);
PyObject *gab_module_dbus_register   (PyObject        *module,
                                      PyObject *const *args,
                                      Py_ssize_t       nargs);
int       gab_module_dbus_init       (PyObject        *module);

G_END_DECLS
