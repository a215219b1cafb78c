/* gab-embed.h: Python embedded in a C program.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "gab-python-compat.h"
#include <glib.h>

G_BEGIN_DECLS

/* Embeds Python in a C program, for gab_main(), gab_test_main() and the
 * asyncio thread: @argc/@argv become sys.argv (none if @argc is 0), no
 * Python signal handlers, the program's directory first on sys.path,
 * unbuffered stdio if asked. Leaves the GIL held by the caller. */
gboolean gab_python_embed (int        argc,
                           char     **argv,
                           gboolean   unbuffered,
                           GError   **error);

G_END_DECLS
