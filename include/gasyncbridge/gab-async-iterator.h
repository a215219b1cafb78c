/* gab-async-iterator.h: streams (see the streams issue). Being written. */
#pragma once

#if !defined(GAB_INSIDE) && !defined(GAB_COMPILATION)
# error "Only <gasyncbridge/gasyncbridge.h> can be included directly."
#endif

#include <Python.h>
#include <gio/gio.h>
#include <gasyncbridge/gab-version.h>

G_BEGIN_DECLS

G_END_DECLS
