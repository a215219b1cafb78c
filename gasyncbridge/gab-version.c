/* gab-version.c: the version of the library a program runs with.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gasyncbridge/gab-version.h>

/**
 * gab_check_version:
 * @required_major: the required major version
 * @required_minor: the required minor version
 * @required_micro: the required micro version
 *
 * Checks that the gasyncbridge library a program runs with is compatible
 * with the version @required_major.@required_minor.@required_micro: of
 * that major version, and that version or newer. Pass the version of the
 * headers a program was compiled with to check that the library is not
 * older than they are:
 *
 * |[<!-- language="C" -->
 * const gchar *mismatch = gab_check_version (GAB_MAJOR_VERSION,
 *                                            GAB_MINOR_VERSION,
 *                                            GAB_MICRO_VERSION);
 * if (mismatch != NULL)
 *   g_error ("gasyncbridge: %s", mismatch);
 * ]|
 *
 * Any thread; needs no GIL, and works before gab_init().
 *
 * Returns: (transfer none) (nullable): %NULL if the library is compatible,
 *   else a static string saying how it is not, owned by the library
 *
 * Since: 0.1
 */
const gchar *
gab_check_version (guint required_major,
                   guint required_minor,
                   guint required_micro)
{
  if (required_major != GAB_MAJOR_VERSION)
    return required_major > GAB_MAJOR_VERSION
           ? "gasyncbridge version too old (major mismatch)"
           : "gasyncbridge version too new (major mismatch)";
  if (required_minor > GAB_MINOR_VERSION)
    return "gasyncbridge version too old (minor mismatch)";
  if (required_minor == GAB_MINOR_VERSION && required_micro > GAB_MICRO_VERSION)
    return "gasyncbridge version too old (micro mismatch)";
  return NULL;
}
