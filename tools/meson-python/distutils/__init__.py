# SPDX-License-Identifier: LGPL-2.1-or-later
"""Stand-in for the distutils of Python < 3.12, for meson < 1.2's
introspection script only (see ../README.md)."""
