/* gab-main.h: the async main of a C program that embeds Python.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#if !defined(GAB_INSIDE) && !defined(GAB_COMPILATION)
# error "Only <gasyncbridge/gasyncbridge.h> can be included directly."
#endif

#include <Python.h>
#include <gio/gio.h>
#include <gasyncbridge/gab-version.h>

G_BEGIN_DECLS

/**
 * GabMainFunc:
 * @task: (transfer none): complete it (g_task_return_*) to end the program;
 *   its cancellable is cancelled on SIGINT or SIGTERM. gab_main() keeps a
 *   reference until the task completes, so @async_main needs none of its own
 * @argc: the argument count given to gab_main()
 * @argv: the arguments given to gab_main()
 *
 * The asynchronous main function of a program. Runs on the runtime thread.
 *
 * Since: 0.1
 */
typedef void (*GabMainFunc) (GTask *task,
                             int    argc,
                             char **argv);

GAB_EXTERN
int gab_main (int          argc,
              char       **argv,
              GabMainFunc  async_main);

/**
 * GAB_MAIN:
 * @async_main: a #GabMainFunc
 *
 * Defines `main()` as a call of gab_main() with @async_main.
 *
 * Since: 0.1
 */
#define GAB_MAIN(async_main) \
  int main (int argc, char **argv) { return gab_main (argc, argv, (async_main)); }

G_END_DECLS
