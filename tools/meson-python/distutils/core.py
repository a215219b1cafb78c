# SPDX-License-Identifier: LGPL-2.1-or-later
"""Just enough of Distribution and Extension for meson's question: do
extension modules link libpython?"""
import sys
import sysconfig


class Extension:
    def __init__(self, name, sources):
        self.name = name
        self.sources = sources
        self.libraries = []


class _BuildExt:
    def ensure_finalized(self):
        pass

    def get_libraries(self, ext):
        # CPython's distutils: only Android and Cygwin shared builds link
        # extension modules to libpython.
        shared = sysconfig.get_config_var("Py_ENABLE_SHARED")
        if shared and (sys.platform == "cygwin" or hasattr(sys, "getandroidapilevel")):
            return ext.libraries + ["python" + sysconfig.get_config_var("LDVERSION")]
        return ext.libraries


class Distribution:
    def get_command_obj(self, command):
        if command != "build_ext":
            raise NotImplementedError(f"distutils stand-in: no command {command!r}")
        return _BuildExt()
