/* gab-version.h: version numbers and the symbol-visibility macro.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#if !defined(GAB_INSIDE) && !defined(GAB_COMPILATION)
# error "Only <gasyncbridge/gasyncbridge.h> can be included directly."
#endif

/**
 * GAB_MAJOR_VERSION:
 *
 * The major version of the gasyncbridge headers.
 */
#define GAB_MAJOR_VERSION 0

/**
 * GAB_MINOR_VERSION:
 *
 * The minor version of the gasyncbridge headers.
 */
#define GAB_MINOR_VERSION 1

/**
 * GAB_MICRO_VERSION:
 *
 * The micro version of the gasyncbridge headers.
 */
#define GAB_MICRO_VERSION 0

/**
 * GAB_EXTERN:
 *
 * Marks a symbol exported from libgasyncbridge-1. The library is built with
 * hidden visibility, so only symbols carrying this macro are public.
 */
#define GAB_EXTERN __attribute__((visibility ("default"))) extern
