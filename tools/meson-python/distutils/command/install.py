# SPDX-License-Identifier: LGPL-2.1-or-later
"""Meson checks for Debian's patched distutils scheme here; there is none:
it then takes the paths from sysconfig."""
INSTALL_SCHEMES = {}
