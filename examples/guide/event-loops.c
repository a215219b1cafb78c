/* event-loops.c: a main() of your own that embeds Python and runs asyncio
 * loops on the main thread with gab_run(), gab_run_until_complete() and
 * gab_run_forever() (doc/guide/03-event-loops.md). jobs.py is found through
 * PYTHONPATH: unlike gab_main(), Py_Initialize() does not add the
 * program's directory.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gasyncbridge.h>

/* [guide:run-forever-stop] */
static void
stop_loop (gpointer user_data)                /* on the loop's thread, with the GIL */
{
  PyObject *loop = gab_task_locals_get_loop (user_data);
  PyObject *ret = loop != NULL ? PyObject_CallMethod (loop, "stop", NULL) : NULL;

  Py_XDECREF (ret);
}

static void
greeted (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)             /* runtime thread */
{
  GabTaskLocals *locals = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) greeting = gab_call_finish (result, &error);

  g_print ("gab_run_forever: %s\n",
           greeting != NULL ? g_variant_get_string (greeting, NULL) : error->message);
  /* loop.stop () must run on the loop's thread: send it there (no GIL needed
   * here); the notify drops our reference to the locals afterwards. */
  gab_task_locals_invoke (locals, stop_loop, locals, (GDestroyNotify) gab_task_locals_unref);
}

static gboolean
greet (gpointer user_data)                    /* runtime thread, from gab_invoke () */
{
  GabTaskLocals *locals = user_data;

  gab_task_locals_push (locals);              /* Python work started here goes there */
  gab_call_async ("jobs", "greet", g_variant_new ("(s)", "run_forever"),
                  NULL, greeted, locals);
  gab_task_locals_pop (locals);
  return G_SOURCE_REMOVE;
}
/* [/guide:run-forever-stop] */

static int
fail (void)
{
  PyErr_Print ();
  return 1;
}

int
main (int    argc,
      char **argv)
{
  PyObject *jobs, *asyncio, *loop, *coro, *result, *closed;

  /* [guide:gab-run] */
  Py_Initialize ();                 /* Python on the main thread, which it keeps */
  jobs = PyImport_ImportModule ("jobs");
  if (jobs == NULL)
    return fail ();

  coro = PyObject_CallMethod (jobs, "count_to", "i", 3);
  result = coro != NULL ? gab_run (coro) : NULL;       /* asyncio.run () and the runtime */
  Py_XDECREF (coro);
  if (result == NULL)
    return fail ();
  g_print ("gab_run: counted to %ld\n", PyLong_AsLong (result));
  Py_DECREF (result);
  /* [/guide:gab-run] */

  /* [guide:gab-run-until-complete] */
  asyncio = PyImport_ImportModule ("uvloop");          /* any loop: uvloop, if there */
  if (asyncio == NULL)
    {
      PyErr_Clear ();
      asyncio = PyImport_ImportModule ("asyncio");
    }
  loop = asyncio != NULL ? PyObject_CallMethod (asyncio, "new_event_loop", NULL) : NULL;
  if (loop == NULL)
    return fail ();
  coro = PyObject_CallMethod (jobs, "count_to", "i", 2);
  result = coro != NULL ? gab_run_until_complete (loop, coro) : NULL;
  Py_XDECREF (coro);
  if (result == NULL)
    return fail ();
  g_print ("gab_run_until_complete: counted to %ld\n", PyLong_AsLong (result));
  Py_DECREF (result);
  /* [/guide:gab-run-until-complete] */

  /* [guide:gab-run-forever] */
  /* The same loop again, until C code on the runtime thread stops it. */
  gab_invoke (greet, gab_task_locals_new (loop, NULL), NULL);
  result = gab_run_forever (loop);
  if (result == NULL)
    return fail ();
  Py_DECREF (result);

  closed = PyObject_CallMethod (loop, "close", NULL);  /* the loop is yours to close */
  Py_XDECREF (closed);
  Py_DECREF (loop);
  Py_DECREF (asyncio);
  Py_DECREF (jobs);
  return Py_FinalizeEx () < 0 ? 120 : 0;   /* gab_shutdown () runs at Python's exit */
  /* [/guide:gab-run-forever] */
}
