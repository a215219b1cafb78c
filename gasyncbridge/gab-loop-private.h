/* gab-loop-private.h: what gab_main() needs of
 * gab-loop.c.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "gab-python-compat.h"
#include <glib.h>

G_BEGIN_DECLS

/* GIL: a coroutine that runs @awaitable with its running loop as the
 * default task locals (what gab_run() runs). New ref, or NULL + exception. */
PyObject *gab_loop_wrap_main (PyObject *awaitable);

G_END_DECLS
