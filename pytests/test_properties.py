# SPDX-License-Identifier: LGPL-2.1-or-later
"""Property tests (hypothesis) of the round trips the fuzz targets check
from C (fuzz/): GVariant <-> Python values and GError <-> Python exceptions,
from the Python side, through the test module:

    variant_roundtrip(value, type=None) -> (type_string, value)
        gab_variant_from_python() then gab_variant_to_python()
    error_roundtrip(exc) -> (domain, code, exception)
        gab_error_set_from_python() then gab_error_new_python_exception()
    error_from_gerror(domain, code, message) -> exception
        gab_error_new_python_exception() of a new GError

The expected results are computed here from the documented semantics (the
comment at the top of gasyncbridge/gab-variant.c, the "Errors" section of
the design): a model, not a copy of the C code. GAB_HYPOTHESIS_EXAMPLES
sets the number of examples per test (default 200).
"""
import asyncio
import errno
import math
import os
import string

import pytest

pytest.importorskip("hypothesis", reason=(
    "needs hypothesis (python3-hypothesis), which this interpreter lacks"))
from hypothesis import HealthCheck, given, note, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import gasyncbridge  # noqa: E402
import _gab_testmod as tm  # noqa: E402

try:
    import gi
    gi.require_version("Gio", "2.0")
    from gi.repository import Gio, GLib
except (ImportError, ValueError):  # pragma: no cover - python3-gi is a test dependency
    Gio = GLib = None

IO = "g-io-error-quark"
FILE = "g-file-error-quark"
PYTHON = "gab-python-error-quark"
CONVERSION = ("gab-error-quark", 1)      # GAB_ERROR_CONVERSION
IO_CANCELLED, IO_TIMED_OUT, IO_FAILED = 19, 24, 0

settings.register_profile(
    "gasyncbridge",
    max_examples=int(os.environ.get("GAB_HYPOTHESIS_EXAMPLES", "200")),
    deadline=None,                 # sanitizers and valgrind are slow
    database=None,                 # nothing written next to the build
    print_blob=True,               # a failure prints how to reproduce it
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)
settings.load_profile("gasyncbridge")


# ---- comparing values ------------------------------------------------------

def same(a, b):
    """Equal, types included, all the way down; NaN equals NaN and -0.0 is
    not 0.0 (a float must come back bit for bit); dicts in the same order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return len(a) == len(b) and all(same(ka, kb) and same(va, vb)
                                        for (ka, va), (kb, vb) in zip(a.items(), b.items()))
    return a == b


def assert_same(got, want):
    assert same(got, want), f"got {got!r}, expected {want!r}"


# ---- GVariant types --------------------------------------------------------

BASIC = "bynqiuxtdsogh"
INT_RANGES = {
    "y": (0, 2**8 - 1), "n": (-2**15, 2**15 - 1), "q": (0, 2**16 - 1),
    "i": (-2**31, 2**31 - 1), "h": (-2**31, 2**31 - 1), "u": (0, 2**32 - 1),
    "x": (-2**63, 2**63 - 1), "t": (0, 2**64 - 1),
}

# A type is a tree: ("basic", c) | ("v",) | ("m", T) | ("a", T) |
# ("dict", K, V) for a{KV} | ("tuple", [T...]) | ("entry", K, V) for {KV}.
basic_types = st.sampled_from(BASIC).map(lambda c: ("basic", c))
leaf_types = st.one_of(basic_types, st.just(("v",)))


def _containers(children):
    return st.one_of(
        children.map(lambda t: ("m", t)),
        children.map(lambda t: ("a", t)),
        st.tuples(st.sampled_from(BASIC), children).map(lambda kv: ("dict", kv[0], kv[1])),
        st.lists(children, max_size=4).map(lambda ts: ("tuple", ts)),
        st.tuples(st.sampled_from(BASIC), children).map(lambda kv: ("entry", kv[0], kv[1])),
    )


variant_types = st.recursive(leaf_types, _containers, max_leaves=8)


def type_string(t):
    kind = t[0]
    if kind == "basic":
        return t[1]
    if kind == "v":
        return "v"
    if kind in ("m", "a"):
        return kind + type_string(t[1])
    if kind == "dict":
        return "a{" + t[1] + type_string(t[2]) + "}"
    if kind == "entry":
        return "{" + t[1] + type_string(t[2]) + "}"
    return "(" + "".join(type_string(m) for m in t[1]) + ")"


def has_variant(t):
    return "v" in type_string(t)


# ---- values ----------------------------------------------------------------

# str that GVariant can carry: UTF-8 (no lone surrogates), no NUL.
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=12)
_path_element = st.text(string.ascii_letters + string.digits + "_", min_size=1, max_size=6)
object_paths = st.one_of(st.just("/"), st.lists(_path_element, min_size=1, max_size=3)
                         .map(lambda parts: "/" + "/".join(parts)))
# D-Bus signatures: GVariant type strings without maybes.
signatures = st.lists(variant_types.map(type_string), max_size=3).map("".join) \
    .filter(lambda s: "m" not in s and len(s) <= 255)


class Index:
    """Not an int, but has __index__: accepted by every integer type."""

    def __init__(self, value):
        self.value = value

    def __index__(self):
        return self.value

    def __repr__(self):
        return f"Index({self.value})"


def int_values(code):
    lo, hi = INT_RANGES[code]
    ints = st.integers(lo, hi)
    return st.one_of(ints.map(lambda i: (i, i)),
                     ints.map(lambda i: (Index(i), i)))


def basic_values(code, key=False):
    """(input, expected output) pairs for a basic type. As dict keys: only
    hashable inputs, and no NaN (a NaN key never equals itself)."""
    if code == "b":
        return st.booleans().map(lambda b: (b, b))
    if code in INT_RANGES:
        if key:
            lo, hi = INT_RANGES[code]
            return st.integers(lo, hi).map(lambda i: (i, i))
        return int_values(code)
    if code == "d":
        floats = st.floats(allow_nan=not key, allow_infinity=True)
        return st.one_of(floats.map(lambda f: (f, f)),
                         st.integers(-2**60, 2**60).map(lambda i: (i, float(i))))
    if code == "s":
        return texts.map(lambda s: (s, s))
    if code == "o":
        return object_paths.map(lambda s: (s, s))
    if code == "g":
        return signatures.map(lambda s: (s, s))
    raise AssertionError(code)


# Values whose type gab_variant_from_python() infers, and what comes back:
# the same value (the strategy makes only the canonical forms: bytes, not
# bytearray; tuples stay tuples). Dict keys are all str or all int.
inferable_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1),
    st.floats(), texts, st.binary(max_size=8),
)


def _inferable_containers(children):
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(texts, children, max_size=3),
        st.dictionaries(st.integers(-2**63, 2**63 - 1), children, max_size=3),
    )


inferable = st.recursive(inferable_leaves, _inferable_containers, max_leaves=10)


def infer_type(value):
    """The type the documented inference gives a Python value."""
    if value is None:
        return "mv"
    if isinstance(value, bool):
        return "b"
    if isinstance(value, int):
        return "x" if -2**63 <= value < 2**63 else "t"
    if isinstance(value, float):
        return "d"
    if isinstance(value, str):
        return "s"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "ay"
    if isinstance(value, tuple):
        return "(" + "".join(infer_type(v) for v in value) + ")"
    if isinstance(value, list):
        kinds = {infer_type(v) for v in value if v is not None}
        has_none = any(v is None for v in value)
        if not value or len(kinds) > 1:
            return "av"
        common = kinds.pop() if kinds else "v"
        return ("am" if has_none else "a") + common
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return "a{sv}"
        return "a{xv}"
    raise AssertionError(type(value))


@st.composite
def values_for(draw, t):
    """(input, expected output) for a value of type tree t: the input is any
    form the documented conversion takes, the output what must come back."""
    kind = t[0]
    if kind == "basic":
        return draw(basic_values(t[1]))
    if kind == "v":
        value = draw(inferable)
        return value, value
    if kind == "m":
        if draw(st.booleans()):
            return None, None
        return draw(values_for(t[1]))
    if kind == "a" and t[1][0] == "entry":
        # An array of dict entries is a dict, however the tree was drawn.
        return draw(values_for(("dict", t[1][1], t[1][2])))
    if kind == "a":
        element = t[1]
        if element == ("basic", "y"):
            data = draw(st.binary(max_size=16))
            form = draw(st.sampled_from(["bytes", "bytearray", "memoryview", "ints", "strided"]))
            if form == "strided":
                # A non-contiguous buffer: every other byte of a bigger one.
                doubled = bytes(b for pair in zip(data, data) for b in pair)
                return memoryview(doubled)[::2], data
            converted = {"bytes": bytes, "bytearray": bytearray, "memoryview": memoryview,
                         "ints": list}[form](data)
            return converted, data
        pairs = draw(st.lists(values_for(element), max_size=4))
        inputs = [p[0] for p in pairs]
        if draw(st.booleans()):
            inputs = tuple(inputs)
        return inputs, [p[1] for p in pairs]
    if kind == "dict":
        keys = draw(st.lists(basic_values(t[1], key=True), max_size=4))
        values = draw(st.lists(values_for(t[2]), min_size=len(keys), max_size=len(keys)))
        pairs_in = [(k[0], v[0]) for k, v in zip(keys, values)]
        expected = dict((k[1], v[1]) for k, v in zip(keys, values))
        if draw(st.booleans()):
            return dict(pairs_in), expected
        # A sequence of pairs: converted in order, duplicates and all; the
        # dict that comes back keeps the first position and the last value.
        return pairs_in, expected
    if kind == "entry":
        key = draw(basic_values(t[1], key=True))
        value = draw(values_for(t[2]))
        pair = (key[0], value[0])
        return (list(pair) if draw(st.booleans()) else pair), (key[1], value[1])
    members = [draw(values_for(m)) for m in t[1]]
    inputs = tuple(m[0] for m in members)
    if draw(st.booleans()):
        inputs = list(inputs)
    return inputs, tuple(m[1] for m in members)


@st.composite
def typed_values(draw):
    t = draw(variant_types)
    value, expected = draw(values_for(t))
    return type_string(t), value, expected


# ---- GVariant properties ---------------------------------------------------

@given(typed_values())
def test_variant_round_trip_with_a_type(case):
    """Python -> GVariant of a given type -> Python gives the value back, in
    its canonical form (bytes for ay, float for d, tuples for tuples, the
    inferred value for v), and converting that again is a fixed point."""
    type_string_, value, expected = case
    note(f"type {type_string_!r}")
    got_type, got = tm.variant_roundtrip(value, type_string_)
    assert got_type == type_string_
    assert_same(got, expected)
    again_type, again = tm.variant_roundtrip(got, type_string_)
    assert again_type == type_string_
    assert_same(again, got)


@given(inferable)
def test_variant_round_trip_inferred(value):
    """Without a type, the documented inference picks it, and the value comes
    back the same: None, bools, ints (int64 else uint64), floats bit for
    bit, str, bytes, tuples, lists (aT, amT with None, av when mixed),
    dicts with str or int keys (a{sv}, a{xv})."""
    got_type, got = tm.variant_roundtrip(value)
    assert got_type == infer_type(value)
    assert_same(got, value)


@given(variant_types.map(type_string), inferable)
def test_variant_any_value_with_any_type_converts_or_fails_cleanly(type_string_, value):
    """Any value with any type: either it converts (and then it is a fixed
    point) or it fails with GLibError GAB_ERROR_CONVERSION and a message
    that names the GVariant type; nothing else is raised, nothing crashes."""
    try:
        got_type, got = tm.variant_roundtrip(value, type_string_)
    except gasyncbridge.GLibError as e:
        assert (e.domain, e.code) == CONVERSION, e
        assert e.message
        return
    assert got_type == type_string_
    again_type, again = tm.variant_roundtrip(got, type_string_)
    assert again_type == type_string_
    assert_same(again, got)


@pytest.mark.parametrize("type_string_,value", [
    ("y", 256), ("y", -1), ("n", 2**15), ("q", -1), ("i", 2**31), ("u", 2**32),
    ("x", 2**63), ("t", -1), ("t", 2**64), ("h", 2**31), ("d", 10**400),
    ("s", "a\0b"), ("o", "no/path"), ("g", "(("), ("b", 1), ("s", b"x"),
    ("(ii)", (1,)), ("a{sv}", {1: 2}), ("ay", "text"), ("ai", "text"),
])
def test_variant_out_of_range_and_wrong_types(type_string_, value):
    """The edges the strategies stay inside: each is a clean conversion error."""
    with pytest.raises(gasyncbridge.GLibError) as info:
        tm.variant_roundtrip(value, type_string_)
    assert (info.value.domain, info.value.code) == CONVERSION


def nested_in(wrap, n, leaf=7):
    for _ in range(n):
        leaf = wrap(leaf)
    return leaf


@pytest.mark.parametrize("wrap,typed", [
    (lambda x: [x], lambda n: "a" * n + "x"),
    (lambda x: (x,), lambda n: "(" * n + "x" + ")" * n),
    (lambda x: {"k": x}, lambda n: "a{sv}"),
], ids=["list", "tuple", "dict"])
def test_variant_depth_limit_is_64_levels_of_containers(wrap, typed):
    """The documented limit: 64 nested containers around a value convert and
    come back whole, inferred or with a type; 65 are a clean conversion
    error that says so, and conversion works afterwards."""
    value = nested_in(wrap, 64)
    for type_string_ in (None, typed(64)):
        _, got = tm.variant_roundtrip(value, type_string_)
        assert_same(got, value)

    deeper = wrap(value)
    for type_string_ in (None, typed(65)):
        with pytest.raises(gasyncbridge.GLibError) as info:
            tm.variant_roundtrip(deeper, type_string_)
        assert (info.value.domain, info.value.code) == CONVERSION
        assert "nested deeper than 64 levels" in info.value.message

    assert tm.variant_roundtrip([1, 2]) == ("ax", [1, 2])


# ---- GError -> Python ------------------------------------------------------

# G_IO_ERROR codes the contract maps to a class of their own.
IO_CLASSES = {
    IO_CANCELLED: asyncio.CancelledError, IO_TIMED_OUT: TimeoutError,
    1: FileNotFoundError, 2: FileExistsError, 14: PermissionError,
    3: IsADirectoryError, 4: NotADirectoryError, 39: ConnectionRefusedError,
    44: BrokenPipeError,
}

domains = st.one_of(
    st.sampled_from([IO, FILE, PYTHON, "gab-error-quark", "g-key-file-error-quark",
                     "g-dbus-error-quark", "g-resolver-error-quark"]),
    # Other names, from a small set: GLib keeps every quark forever, and
    # the bridge makes at most 256 new ones from GLibError domains.
    st.text("abc-", min_size=1, max_size=3).map(lambda s: "prop-" + s),
)
codes = st.one_of(st.integers(0, 50), st.integers(-2**31, 2**31 - 1))


@pytest.mark.skipif(Gio is None, reason="python3-gi is needed to check errnos")
@given(domains, codes, texts)
def test_gerror_to_python(domain, code, message):
    """Every GError becomes an exception instance that carries .domain and
    .code; the G_IO_ERROR codes of the contract become their class; an
    OSError's errno maps back to the code in GIO's own table; every other
    GError is a gasyncbridge.GLibError with the message."""
    exc = tm.error_from_gerror(domain, code, message)
    assert isinstance(exc, BaseException)
    assert (exc.domain, exc.code) == (domain, code)
    if domain == IO and code in IO_CLASSES:
        assert isinstance(exc, IO_CLASSES[code])
    if isinstance(exc, gasyncbridge.GLibError):
        assert not (domain == IO and code in IO_CLASSES)
        assert exc.message == message and str(exc) == message
    elif isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
        assert domain in (IO, FILE)
        assert exc.errno > 0 and exc.strerror == message
        if domain == IO:
            assert int(Gio.io_error_from_errno(exc.errno)) == code
        else:
            assert int(GLib.file_error_from_errno(exc.errno)) == code
    else:
        assert isinstance(exc, (asyncio.CancelledError, TimeoutError))


# ---- Python -> GError -> Python -------------------------------------------

class StrRaises(Exception):
    def __str__(self):
        raise RuntimeError("no str")


class OSErrorErrnoRaises(OSError):
    @property
    def errno(self):
        raise RuntimeError("no errno")


class ClassRaises(Exception):
    @property
    def __class__(self):
        raise RuntimeError("no class")


class DomainRaises(gasyncbridge.GLibError):
    @property
    def domain(self):
        raise RuntimeError("no domain")

    @domain.setter
    def domain(self, value):
        pass


PLAIN = [ValueError, KeyError, RuntimeError, Exception, BaseException, KeyboardInterrupt,
         SystemExit, StopIteration, MemoryError, StrRaises, ClassRaises, UnicodeError]
OSERRORS = [OSError, FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError,
            NotADirectoryError, ConnectionRefusedError, BrokenPipeError, ConnectionResetError,
            BlockingIOError, InterruptedError, ChildProcessError, ProcessLookupError,
            OSErrorErrnoRaises]


@st.composite
def exceptions(draw):
    message = draw(texts)
    kind = draw(st.sampled_from(["plain", "oserror", "errno", "timeout", "cancelled", "glib"]))
    if kind == "plain":
        return draw(st.sampled_from(PLAIN))(message)
    if kind == "oserror":
        return draw(st.sampled_from(OSERRORS))(message)
    if kind == "errno":
        number = draw(st.one_of(st.integers(1, 140), st.integers(-2**31, 2**31 - 1)))
        return draw(st.sampled_from(OSERRORS))(number, message)
    if kind == "timeout":
        return TimeoutError(message)
    if kind == "cancelled":
        return asyncio.CancelledError(message)
    domain = draw(st.one_of(domains, st.none(), st.integers()))
    cls = draw(st.sampled_from([gasyncbridge.GLibError, DomainRaises]))
    return cls(message, domain, draw(codes))


# OSError subclasses mapped by class when GIO has no code for the errno
# (or there is none): Python gives several errnos one class (EINPROGRESS
# and EALREADY are BlockingIOError, ESHUTDOWN is BrokenPipeError).
CLASS_CODES = [
    (FileNotFoundError, 1), (FileExistsError, 2), (PermissionError, 14),
    (IsADirectoryError, 3), (NotADirectoryError, 4), (ConnectionRefusedError, 39),
    (BrokenPipeError, 44), (ConnectionResetError, 44),   # CONNECTION_CLOSED is BROKEN_PIPE
    (BlockingIOError, 27),
]


def expected_oserror(cls, number):
    """(domain, code) of an OSError of class cls with errno number (or None)."""
    if isinstance(number, int) and number > 0 and Gio is not None:
        known = int(Gio.io_error_from_errno(number))
        if known != IO_FAILED:
            return IO, known
    for base, code in CLASS_CODES:
        if issubclass(cls, base):
            return IO, code
    return PYTHON, 0


def error_roundtrip(exc):
    domain, code, back = tm.error_roundtrip(exc)
    assert isinstance(back, BaseException)
    return domain, code, back


@given(exceptions())
def test_exception_round_trip(exc):
    """CancelledError is G_IO_ERROR_CANCELLED, TimeoutError TIMED_OUT, a
    GLibError with a str domain its own domain and code, an OSError with an
    errno GIO knows that G_IO_ERROR code; anything else is GAB_PYTHON_ERROR
    and comes back as the very same object. What comes back maps to the same
    GError again, G_FILE_ERROR included (its OSErrors carry .domain)."""
    real = type(exc)                      # ClassRaises lies about __class__
    glib_mapped = (issubclass(real, gasyncbridge.GLibError) and real is not DomainRaises
                   and isinstance(exc.domain, str))
    domain, code, back = error_roundtrip(exc)
    note(f"{real.__name__} -> ({domain!r}, {code}) -> {type(back).__name__}")
    if issubclass(real, asyncio.CancelledError):
        assert (domain, code) == (IO, IO_CANCELLED)
        assert isinstance(back, asyncio.CancelledError)
    elif glib_mapped:
        assert (domain, code) == (exc.domain, exc.code)
    elif issubclass(real, TimeoutError):
        assert (domain, code) == (IO, IO_TIMED_OUT)
    elif issubclass(real, OSError):
        number = None if real is OSErrorErrnoRaises else exc.errno
        if Gio is not None:
            assert (domain, code) == expected_oserror(real, number)
        else:
            assert domain in (IO, PYTHON) and code != IO_FAILED
    else:
        assert (domain, code) == (PYTHON, 0)
    if domain == PYTHON and not glib_mapped:
        assert back is exc
    if back is not exc and domain != PYTHON:
        assert (back.domain, back.code) == (domain, code)

    assert error_roundtrip(back)[:2] == (domain, code)


@pytest.mark.skipif(Gio is None, reason="python3-gi is needed to check errnos")
@pytest.mark.parametrize("number", sorted(errno.errorcode))
def test_every_errno(number):
    """OSError(errno) for every errno Python knows: a G_IO_ERROR with GIO's
    own code for it; for an errno GIO has no code for, the code of its
    class if the mapping names the class, else GAB_PYTHON_ERROR keeping the
    object. The exception that comes back maps to the same GError again."""
    exc = OSError(number, os.strerror(number))      # the subclass for that errno
    domain, code, back = error_roundtrip(exc)
    assert (domain, code) == expected_oserror(type(exc), number)
    if domain == PYTHON:
        assert back is exc
        return
    assert (back.domain, back.code) == (domain, code)
    assert error_roundtrip(back)[:2] == (domain, code)
