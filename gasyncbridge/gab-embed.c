/* gab-embed.c: Python embedded in a C program, as gab_main(),
 * gab_test_main() and gab_start_asyncio_thread() need it.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gasyncbridge.h>
#include "gab-python.h"
#include "gab-embed.h"

gboolean
gab_python_embed (int        argc,
                  char     **argv,
                  gboolean   unbuffered,
                  GError   **error)
{
  PyConfig config;
  PyStatus status;
  g_autofree gchar *exe = NULL, *dir = NULL;
  PyObject *sys_path, *path, *threading;

  PyConfig_InitPythonConfig (&config);
  /* argv is the program's, not Python's options. */
  config.parse_argv = 0;
  /* A Python SIGINT handler only sets a flag for the main thread's next
   * Python code, which may never come (a GLib main thread) or come
   * anywhere (KeyboardInterrupt in random code): the loops of the bridge
   * catch SIGINT and SIGTERM themselves. */
  config.install_signal_handlers = 0;
  if (unbuffered)
    config.buffered_stdio = 0;
  status = argc > 0 ? PyConfig_SetBytesArgv (&config, argc, argv) : PyStatus_Ok ();
  if (!PyStatus_Exception (status))
    status = Py_InitializeFromConfig (&config);
  PyConfig_Clear (&config);
  if (PyStatus_Exception (status))
    {
      g_set_error (error, GAB_ERROR, GAB_ERROR_PYTHON_NOT_INITIALIZED,
                   "Cannot initialize Python: %s",
                   status.err_msg != NULL ? status.err_msg : "unknown error");
      return FALSE;
    }

  /* threading takes the thread that imports it first for the main thread:
   * let that be this one, so that threading.main_thread() is what Python
   * code expects even when asyncio first runs on another thread. */
  threading = PyImport_ImportModule ("threading");
  Py_XDECREF (threading);
  PyErr_Clear ();

  /* The program's own directory is importable, as a script's is: Python
   * helpers ship beside the program. */
  exe = g_file_read_link ("/proc/self/exe", NULL);
  dir = g_path_get_dirname (exe != NULL ? exe : argc > 0 ? argv[0] : ".");
  sys_path = PySys_GetObject ("path");
  path = PyUnicode_DecodeFSDefault (dir);
  if (sys_path != NULL && path != NULL)
    PyList_Insert (sys_path, 0, path);
  Py_XDECREF (path);
  PyErr_Clear ();
  return TRUE;
}
