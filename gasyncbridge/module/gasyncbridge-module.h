/* gasyncbridge-module.h: what the files of the Python module share.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "../gab-python-compat.h"
#include <gasyncbridge/gasyncbridge.h>

G_BEGIN_DECLS

/* The `gasyncbridge.gio` submodule. */
PyObject *gab_module_gio_new (void);
/* `call_gio (async_method, *args)`. */
PyObject *gab_module_call_gio (PyObject        *self,
                               PyObject *const *args,
                               Py_ssize_t       nargs);
/* The docstring of call_gio, with examples (gasyncbridge-call-gio.c), for
 * the method table of gasyncbridge-module.c. */
extern const char gab_module_call_gio_doc[];

/* ---- gasyncbridge-args.c: arguments as plain C data. @what names the
 * argument in messages ("communicate: argv"). GIL; NULL with TypeError or
 * ValueError set. */

/* str, bytes or os.PathLike to a new bytes object (no NUL inside). */
PyObject *gab_module_fs_bytes        (PyObject    *path,
                                      const char  *what);
/* A non-empty path as a GFile. */
GFile    *gab_module_file_from_path  (PyObject    *path,
                                      const char  *what);
/* A GIO filename as os.listdir gives it: bytes if @as_bytes, else str. */
PyObject *gab_module_filename_to_python (const char *name,
                                         gboolean    as_bytes);
/* A bytes-like object (not str) as a GBytes for GIO to read without the
 * GIL, its data never NULL, even when empty. A bytes object is not
 * copied: *@owner then holds it, for the caller to drop with the GIL once
 * GIO is done (else NULL). @none_ok: the caller takes None too (for the
 * message). */
GBytes   *gab_module_data_bytes      (PyObject    *data,
                                      const char  *what,
                                      gboolean     none_ok,
                                      PyObject   **owner);
/* A mapping of non-empty keys without '=' as a NULL-terminated
 * "KEY=VALUE" array (transfer full). */
gchar   **gab_module_parse_env       (PyObject    *env,
                                      const char  *what);
/* A non-empty list or tuple with a non-empty argv[0] as a NULL-terminated
 * array (transfer full). */
gchar   **gab_module_parse_argv      (PyObject    *argv,
                                      const char  *what);

/* ---- gasyncbridge-operation.c, -files.c, -subprocess.c, -resolve.c:
 * the functions of `gio` and what gasyncbridge-gio.c needs of them. */
/* GIL: gab_future_into_py_full() for GIO work: in a child of fork() whose
 * GIO would never complete (gab_check_fork_child()), frees @user_data and
 * raises instead. Every gio function starts its work through it. */
PyObject *gab_module_gio_future      (GabStartFunc    start,
                                      GabFinishFunc   finish,
                                      gpointer        user_data,
                                      GDestroyNotify  user_data_free,
                                      GabFutureFlags  flags);
/* GIL: the same check alone, for GIO work started otherwise; FALSE with
 * the exception set. */
gboolean  gab_module_check_fork_child (void);
/* Runtime thread: complete *@task_slot with the error kept in *@error_slot,
 * or with success; both slots are emptied. For operations of several
 * steps, which keep their first error until the last step. */
void      gab_module_task_return_outcome (GTask  **task_slot,
                                          GError **error_slot);
/* Keep @error (transfer full) in *@error_slot, unless an earlier one is
 * kept there already: the first error is the operation's outcome. */
void      gab_module_keep_first_error (GError **error_slot,
                                       GError  *error);
/* Remove *@source_slot, if set, from its context and drop it; the slot
 * is emptied. */
void      gab_module_source_clear (GSource **source_slot);
gboolean  gab_module_files_init      (void);   /* FALSE + exception */
PyObject *gab_module_replace_contents (PyObject *self, PyObject *args, PyObject *kwargs);
PyObject *gab_module_query_info      (PyObject *self, PyObject *args, PyObject *kwargs);
PyObject *gab_module_list_dir        (PyObject *self, PyObject *path);
PyObject *gab_module_copy            (PyObject *self, PyObject *args, PyObject *kwargs);
PyObject *gab_module_copy_progress   (PyObject *self, PyObject *args);
PyObject *gab_module_communicate     (PyObject *self, PyObject *args, PyObject *kwargs);
PyObject *gab_module_resolve         (PyObject *self, PyObject *args, PyObject *kwargs);
extern const char gab_module_replace_contents_doc[];
extern const char gab_module_query_info_doc[];
extern const char gab_module_list_dir_doc[];
extern const char gab_module_copy_doc[];
extern const char gab_module_communicate_doc[];
extern const char gab_module_resolve_doc[];
/* gasyncbridge-dbus-call.c */
PyObject *gab_module_dbus_call       (PyObject *self, PyObject *args, PyObject *kwargs);
extern const char gab_module_dbus_call_doc[];

/* `gio.load_contents (path)` (gasyncbridge-file-read.c). */
PyObject *gab_module_load_contents (PyObject *self,
                                    PyObject *path);
extern const char gab_module_load_contents_doc[];

/* From this size on, payloads become bytes objects off the loop thread
 * (gab_module_bytes_alloc()); below it, a copy on the loop thread is
 * cheaper than taking the GIL. */
#define GAB_MODULE_DIRECT_MIN (64 * 1024)

/* A worker thread (never the loop or runtime thread), no GIL: a new bytes
 * object of @size bytes, not yet filled, for the worker to fill without
 * the GIL before handing it to the loop thread; the GIL is taken only for
 * the allocation. NULL when @size is below GAB_MODULE_DIRECT_MIN, on no
 * memory, or while the interpreter finalizes: then do it the plain way.
 * The reference must be dropped with the GIL. */
PyObject *gab_module_bytes_alloc (gsize size);

/* Any thread: runs @func for @task (as g_task_run_in_thread() would) in
 * the module's bulk-copy workers (gasyncbridge-workers.c): at most one per
 * processor, a little below the loop's priority. */
void gab_module_run_in_worker (GTask          *task,
                               GTaskThreadFunc func);

/* Runtime or loop thread: start @argv with @flags; the child inherits the
 * descriptors without close-on-exec unless @close_fds (see
 * gasyncbridge-subprocess.c). GSpawnError on failure, as precise as
 * GLib's fork path gives it. */
GSubprocess *gab_module_spawn (GSubprocessLauncher  *launcher,
                               GSubprocessFlags      flags,
                               gboolean              close_fds,
                               gchar               **argv,
                               GError              **error);

/* Any thread: asyncio's returncode of a reaped @process, its exit status
 * or minus the signal that ended it. */
gint      gab_module_returncode (GSubprocess *process);

/* The parent's end of a pipe (a GUnixInputStream or GUnixOutputStream),
 * made non-blocking (GSubprocess leaves them blocking): GIO polls it either
 * way, and then no read() or write() on it can ever hold up the runtime
 * thread, whatever the child does. Only our end: the child's is another
 * file description. */
void      gab_module_set_nonblocking (GObject *pipe);

/* Streams: adds their types to the module and open_read/open_write to
 * `gio`. 0 on success, -1 with an exception set. */
int       gab_module_streams_init (PyObject *module,
                                   PyObject *gio);
/* Subprocesses: adds Process and create_subprocess_exec to `gio`.
 * 0 on success, -1 with an exception set. */
int       gab_module_subprocess_init (PyObject *gio);

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
