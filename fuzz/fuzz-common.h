/* fuzz-common.h: what the fuzz targets share.
 *
 * Each target is a libFuzzer target (LLVMFuzzerTestOneInput) built with
 * clang -fsanitize=fuzzer; with another compiler, standalone-main.c drives
 * the same function over the files of a corpus, so that the corpus is a
 * regression test in any build that enables -Dfuzzing=true.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "../gasyncbridge/gab-python-compat.h"  /* Python.h, with the API of newer versions */
#include <gasyncbridge/gasyncbridge.h>

#include <stdint.h>

G_BEGIN_DECLS

int LLVMFuzzerInitialize   (int            *argc,
                            char         ***argv);
int LLVMFuzzerTestOneInput (const uint8_t  *data,
                            size_t          size);

/* What each target defines: one input, checked. fuzz-common.c's
 * LLVMFuzzerTestOneInput() calls it; against a debug interpreter
 * (Py_REF_DEBUG) it calls it twice and fails when the second call changes
 * the interpreter's total of references: a reference leaked (or dropped
 * once too often) by the code under test, which LeakSanitizer cannot see
 * when the object stays linked in the garbage collector's lists. */
void gab_fuzz_one          (const uint8_t  *data,
                            size_t          size);

/* Starts the embedded interpreter once (malloc allocator, so that the
 * sanitizers see every Python object; no site, no signal handlers) and
 * makes GLib criticals and warnings fatal. The calling thread keeps the
 * GIL. */
void  gab_fuzz_init     (void);

/* Aborts with @what and a description of the state when a property does
 * not hold: libFuzzer saves the input that did it. */
G_NORETURN
void  gab_fuzz_fail     (const char *format,
                         ...) G_GNUC_PRINTF (1, 2);

/* repr() of @object as a newly allocated UTF-8 string; the failure of
 * repr() itself is a property violation. */
char *gab_fuzz_repr     (PyObject   *object);

/* Aborts if a Python exception is pending (@where says where). */
void  gab_fuzz_assert_no_exception (const char *where);

G_END_DECLS
