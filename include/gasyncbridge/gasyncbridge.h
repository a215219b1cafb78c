/* gasyncbridge.h: the umbrella header of libgasyncbridge-1.
 *
 * Python.h comes first, as CPython requires of every translation unit.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <gio/gio.h>

#define GAB_INSIDE
#include <gasyncbridge/gab-version.h>
#include <gasyncbridge/gab-runtime.h>
#include <gasyncbridge/gab-error.h>
#include <gasyncbridge/gab-variant.h>
#include <gasyncbridge/gab-task-locals.h>
#include <gasyncbridge/gab-future.h>
#include <gasyncbridge/gab-into-future.h>
#include <gasyncbridge/gab-call.h>
#include <gasyncbridge/gab-loop.h>
#include <gasyncbridge/gab-main.h>
#include <gasyncbridge/gab-async-iterator.h>
#include <gasyncbridge/gab-input-stream.h>
#include <gasyncbridge/gab-stream.h>
#include <gasyncbridge/gab-channel.h>
#include <gasyncbridge/gab-event-channel.h>
#undef GAB_INSIDE
