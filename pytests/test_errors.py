# SPDX-License-Identifier: LGPL-2.1-or-later
"""GError <-> Python exception mapping, both ways."""
import asyncio
import errno
import os
import subprocess
import sys
import textwrap

import pytest

import gasyncbridge
import _gab_testmod as tm

_TOOLS = os.path.join(os.environ.get("GAB_SOURCE_DIR")
                      or os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")
if _TOOLS not in sys.path:
    sys.path.insert(0, _TOOLS)
import watchdog  # noqa: E402  (every child: a time limit and a stack dump)

IO = "g-io-error-quark"

# (G_IO_ERROR code, Python class, errno)
IO_MAPPED = [
    (1, FileNotFoundError, errno.ENOENT),       # NOT_FOUND
    (2, FileExistsError, errno.EEXIST),         # EXISTS
    (3, IsADirectoryError, errno.EISDIR),       # IS_DIRECTORY
    (4, NotADirectoryError, errno.ENOTDIR),     # NOT_DIRECTORY
    (14, PermissionError, errno.EACCES),        # PERMISSION_DENIED
    (39, ConnectionRefusedError, errno.ECONNREFUSED),
    (44, BrokenPipeError, errno.EPIPE),
    (12, OSError, errno.ENOSPC),                # NO_SPACE
    (5, OSError, errno.ENOTEMPTY),              # NOT_EMPTY
    (27, BlockingIOError, errno.EAGAIN),        # WOULD_BLOCK
]


@pytest.mark.parametrize("code,cls,err", IO_MAPPED)
def test_gio_errors_become_oserror_subclasses(code, cls, err):
    exc = tm.error_from_gerror(IO, code, "message text")
    assert type(exc) is cls
    assert exc.errno == err
    assert exc.strerror == "message text"
    assert (exc.domain, exc.code) == (IO, code)


def test_cancelled_and_timed_out():
    exc = tm.error_from_gerror(IO, 19, "stop")  # CANCELLED
    assert isinstance(exc, asyncio.CancelledError)
    assert (exc.domain, exc.code) == (IO, 19)
    exc = tm.error_from_gerror(IO, 24, "slow")  # TIMED_OUT
    assert isinstance(exc, TimeoutError)
    assert exc.code == 24


def test_file_error_domain_maps_by_errno():
    exc = tm.error_from_gerror("g-file-error-quark", 4, "gone")  # G_FILE_ERROR_NOENT
    assert type(exc) is FileNotFoundError
    assert exc.domain == "g-file-error-quark"


FILE = "g-file-error-quark"
SPAWN = "g-exec-error-quark"


@pytest.mark.parametrize("domain,code,cls", [
    (FILE, 4, FileNotFoundError),      # G_FILE_ERROR_NOENT, G_IO_ERROR_NOT_FOUND's errno
    (FILE, 2, PermissionError),        # G_FILE_ERROR_ACCES
    (FILE, 12, OSError),               # G_FILE_ERROR_NOSPC
    (FILE, 6, OSError),                # G_FILE_ERROR_NXIO: no G_IO_ERROR code for ENXIO
    (SPAWN, 8, FileNotFoundError),     # G_SPAWN_ERROR_NOENT
    (SPAWN, 6, OSError),               # G_SPAWN_ERROR_NOEXEC
    (IO, 1, FileNotFoundError),
])
def test_errno_errors_round_trip_with_their_domain(domain, code, cls):
    """An OSError made from a GError becomes that GError again, not the
    G_IO_ERROR code of its errno, and stays that way."""
    exc = tm.error_from_gerror(domain, code, "message text")
    assert isinstance(exc, cls)
    d, c, back = tm.error_roundtrip(exc)
    assert (d, c) == (domain, code)
    assert type(back) is type(exc)
    assert (back.domain, back.code, back.errno) == (domain, code, exc.errno)
    # the GError's own message, not the OSError's str()
    assert exc.strerror == back.strerror == "message text"
    again = tm.error_roundtrip(back)
    assert again[:2] == (domain, code) and again[2].strerror == "message text"


def test_errno_wins_over_domain_and_code_that_disagree():
    exc = tm.error_from_gerror(FILE, 4, "gone")   # G_FILE_ERROR_NOENT
    exc.errno = errno.EACCES                     # changed by the program
    assert tm.error_roundtrip(exc)[:2] == (IO, 14)

    # Attributes an OSError of the program's own happens to have.
    exc = FileNotFoundError(errno.ENOENT, "x")
    exc.domain, exc.code = FILE, 2                # G_FILE_ERROR_ACCES: EACCES
    assert tm.error_roundtrip(exc)[:2] == (IO, 1)
    exc.domain, exc.code = "no-such-domain-ever-quark", 4
    assert tm.error_roundtrip(exc)[:2] == (IO, 1)
    exc.domain, exc.code = FILE, 2 ** 40
    assert tm.error_roundtrip(exc)[:2] == (IO, 1)
    exc.domain, exc.code = b"g-file-error-quark", 4
    assert tm.error_roundtrip(exc)[:2] == (IO, 1)

    class DomainRaises(FileNotFoundError):
        @property
        def domain(self):
            raise RuntimeError("no domain")

    d, c, back = tm.error_roundtrip(DomainRaises(errno.ENOENT, "x"))
    assert (d, c) == (IO, 1)
    assert type(back) is FileNotFoundError
    # Nothing left behind: the mapping still works.
    assert tm.error_roundtrip(tm.error_from_gerror(FILE, 4, "gone"))[:2] == (FILE, 4)


def test_file_error_through_c_and_python_and_back(run):
    """G_FILE_ERROR from a C operation, raised in a coroutine that C awaits,
    given back to Python: still G_FILE_ERROR."""
    async def inner():
        await tm.fail(FILE, 4, "gone")            # G_FILE_ERROR_NOENT

    async def main():
        with pytest.raises(FileNotFoundError) as info:
            await tm.await_py(inner())
        assert (info.value.domain, info.value.code) == (FILE, 4)
        assert await tm.ready(5) == 5

    run(main)


def test_other_errors_become_glib_error():
    exc = tm.error_from_gerror("some-domain", 3, "boom")
    assert type(exc) is gasyncbridge.GLibError
    assert (exc.domain, exc.code, exc.message, str(exc)) == ("some-domain", 3, "boom", "boom")
    exc = tm.error_from_gerror(IO, 0, "failed")  # G_IO_ERROR_FAILED
    assert type(exc) is gasyncbridge.GLibError


@pytest.mark.parametrize("exc,domain,code", [
    (FileNotFoundError(errno.ENOENT, "x"), IO, 1),
    (FileNotFoundError(), IO, 1),                      # no errno: by class
    (PermissionError(errno.EACCES, "x"), IO, 14),
    (ConnectionRefusedError(), IO, 39),
    (TimeoutError(), IO, 24),
    (asyncio.CancelledError(), IO, 19),
    (OSError(errno.ENOSPC, "full"), IO, 12),
    (gasyncbridge.GLibError("m", "my-domain", 9), "my-domain", 9),
])
def test_python_exceptions_map_to_gerror(exc, domain, code):
    d, c, back = tm.error_roundtrip(exc)
    assert (d, c) == (domain, code)
    assert isinstance(back, type(exc).__mro__[0] if not isinstance(exc, OSError) else OSError)


def test_unmapped_exception_round_trips_as_the_same_object():
    class Custom(Exception):
        pass

    for exc in (ValueError("v"), Custom("c"), KeyError("k"), gasyncbridge.GLibError("no domain")):
        try:
            raise exc
        except Exception as caught:
            domain, code, back = tm.error_roundtrip(caught)
        assert domain == "gab-python-error-quark"
        assert code == 0
        assert back is exc
        assert back.__traceback__ is not None


def test_glib_error_with_a_code_gerror_cannot_hold_is_kept_not_truncated():
    """A GLibError whose .code does not fit a GError's (or is no int) would
    map to a wrong code: it is kept as the same object instead, and the
    bridge maps the next good one as usual."""
    for code in (2**40, -2**31 - 1, 2**31, "7", 1.5, None):
        exc = gasyncbridge.GLibError("m", "my-domain", code)
        domain, c, back = tm.error_roundtrip(exc)
        assert (domain, c) == ("gab-python-error-quark", 0), code
        assert back is exc and back.code == code
    for code in (2**31 - 1, -2**31, 0):
        d, c, back = tm.error_roundtrip(gasyncbridge.GLibError("m", "my-domain", code))
        assert (d, c) == ("my-domain", code)


# In a process of its own: the limit is on the quarks of the whole process.
DOMAIN_FLOOD_SCRIPT = """
import asyncio, gasyncbridge, _gab_testmod as tm
try:
    from gi.repository import GLib
except ImportError:
    GLib = None
PYTHON = "gab-python-error-quark"

def kept(exc):
    domain, code, back = tm.error_roundtrip(exc)
    assert (domain, code) == (PYTHON, 0), (exc.domain, domain, code)
    assert back is exc and back.domain == exc.domain
    return True

def mapped(exc):
    domain, code, back = tm.error_roundtrip(exc)
    if (domain, code) == (PYTHON, 0):
        return not kept(exc)
    assert (domain, code) == (exc.domain, exc.code)
    assert type(back) is gasyncbridge.GLibError and back.domain == exc.domain
    return True

# Too long, or with a NUL: never a new quark, each kept as it is.
assert kept(gasyncbridge.GLibError("m", "x" * 129 + "-quark", 1))
assert kept(gasyncbridge.GLibError("m", "a\\0b-quark", 1))
assert mapped(gasyncbridge.GLibError("m", "y" * 128, 1))         # 1 new quark

# New domains map while there is room (255 more), then are kept.
results = [mapped(gasyncbridge.GLibError("m", f"flood-{i}-quark", i)) for i in range(400)]
assert results == [True] * 255 + [False] * 145, results.count(True)
if GLib is not None:
    assert GLib.quark_try_string("flood-254-quark") != 0
    assert GLib.quark_try_string("flood-255-quark") == 0
    assert GLib.quark_try_string("flood-399-quark") == 0

# Domains that are quarks already still map: earlier ones, GLib's, and one
# the C side used after the limit was reached.
assert mapped(gasyncbridge.GLibError("m", "flood-7-quark", 3))
assert mapped(gasyncbridge.GLibError("m", "g-io-error-quark", 0))
tm.error_from_gerror("shop-error-quark", 3, "from C")
assert mapped(gasyncbridge.GLibError("the shelf is empty", "shop-error-quark", 3))

# And through C awaiting Python: the very exception comes back.
problem = gasyncbridge.GLibError("m", "flood-late-quark", 9)
async def raiser():
    raise problem
async def main():
    try:
        await tm.await_py(raiser())
    except gasyncbridge.GLibError as e:
        assert e is problem
    else:
        raise AssertionError("no exception")
    assert await tm.ready("still works") == "still works"
asyncio.run(main())
print("ok")
"""


def test_glib_error_domains_make_a_bounded_number_of_quarks():
    """GLib keeps every quark forever: a program raising GLibErrors of ever
    new domains must not grow memory without bound. Past 256 new domains
    (or for one longer than 128 bytes) the GLibError is a GAB_PYTHON_ERROR
    that keeps it; known domains map as before, and the bridge works."""
    proc = watchdog.run([sys.executable, "-c", textwrap.dedent(DOMAIN_FLOOD_SCRIPT)], 120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == "ok\n", proc.stdout + proc.stderr


BRIDGE_DOMAIN_FIRST_SCRIPT = """
import gasyncbridge, _gab_testmod as tm
exc = gasyncbridge.GLibError("m", "gab-python-error-quark", 5)
domain, code, back = tm.error_roundtrip(exc)
assert (domain, code) == ("gab-python-error-quark", 5), (domain, code)
assert type(back) is gasyncbridge.GLibError
assert (back.domain, back.code, back.message) == (domain, code, "m")
assert tm.error_roundtrip(ValueError("v"))[2].args == ("v",)
print("ok")
"""


def test_glib_error_in_the_bridge_domain_before_any_other_error():
    """The first error of a process a GLibError naming GAB_PYTHON_ERROR's
    domain: the extended domain must be registered by then, or the GError
    has no private part for the bridge to read (it crashed)."""
    proc = watchdog.run([sys.executable, "-c", textwrap.dedent(BRIDGE_DOMAIN_FIRST_SCRIPT)], 60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == "ok\n"


def test_glib_error_pickles_and_has_defaults():
    import pickle
    e = pickle.loads(pickle.dumps(gasyncbridge.GLibError("m", "d", 2)))
    assert (e.message, e.domain, e.code) == ("m", "d", 2)
    e = gasyncbridge.GLibError("only a message")
    assert (e.domain, e.code) == (None, 0)


def test_spawn_errors_map_like_asyncio_subprocess():
    exc = tm.error_from_gerror("g-exec-error-quark", 8, "no such program")  # G_SPAWN_ERROR_NOENT
    assert type(exc) is FileNotFoundError
    exc = tm.error_from_gerror("g-exec-error-quark", 3, "not executable")  # G_SPAWN_ERROR_ACCES
    assert type(exc) is PermissionError
    exc = tm.error_from_gerror("g-exec-error-quark", 0, "fork failed")  # G_SPAWN_ERROR_FORK
    assert type(exc) is gasyncbridge.GLibError
