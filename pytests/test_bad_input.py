# SPDX-License-Identifier: LGPL-2.1-or-later
"""Bad input everywhere: every Python entry point of gasyncbridge given
wrong types, None, negative and huge values, objects whose dunders raise,
from threads with no loop, from the runtime thread, on closed and odd
loops. Each must give a clear exception (raised by the call or by the
await, never SystemError, never a leaked KeyError or AttributeError, never
a hang or a crash), and the bridge must work afterwards.

The C functions' preconditions are tested in tests/test-faults.c.
"""
import asyncio
import contextvars
import gc
import os
import subprocess
import sys
import textwrap
import threading

import pytest

import gasyncbridge
import gasyncbridge.gio as gio
import _gab_faultmod as fm
import _gab_testmod as tm
from conftest import GI_MISSING, NO_GI

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("GAB_SOURCE_DIR") or os.path.dirname(HERE)
TOOLS = os.path.join(SOURCE_DIR, "tools")
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)
import watchdog  # noqa: E402

G_IO_ERROR_CLOSED = 18
MODULE = __name__


@pytest.fixture(autouse=True)
def _watchdog(request):
    with watchdog.for_pytest(request, 120):
        yield


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Relative paths land in a scratch directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_bytes(b"contents\n")
    (tmp_path / "dir").mkdir()
    return tmp_path


async def bounded(awaitable, seconds=10):
    fut = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({fut}, timeout=seconds)
    if not done:
        fut.cancel()
        raise AssertionError(f"not done after {seconds} s: it hangs")
    return fut.result()


async def echo(value):
    await asyncio.sleep(0)
    return value


async def bridge_works(tag="ok"):
    assert await tm.ready(tag) == tag
    assert await gasyncbridge.sleep(0, tag) == tag
    assert await gasyncbridge.run_in_runtime(lambda: tag) == tag
    assert await tm.await_py(echo(tag)) == tag
    assert await fm.call_in_thread(MODULE, "echo", (tag,)) == tag


# ---- hostile values --------------------------------------------------------

class FromBadObject(Exception):
    """Raised by the hostile objects below: passing it on is a clear error."""


class BadStr:
    def __str__(self):
        raise FromBadObject("__str__")

    __repr__ = __str__


class BadPath:
    def __fspath__(self):
        raise FromBadObject("__fspath__")


class WrongPath:
    def __fspath__(self):
        return 42


class BadIndex:
    def __index__(self):
        raise FromBadObject("__index__")

    def __float__(self):
        raise FromBadObject("__float__")


class BadIter:
    def __iter__(self):
        raise FromBadObject("__iter__")

    def __len__(self):
        raise FromBadObject("__len__")


class BadBool:
    def __bool__(self):
        raise FromBadObject("__bool__")


class BadCall:
    def __call__(self, *args):
        raise FromBadObject("__call__")


class StrSub(str):
    pass


class BadEq(str):
    def __hash__(self):
        raise FromBadObject("__hash__")

    def __eq__(self, other):
        raise FromBadObject("__eq__")


class BadMapping(dict):
    def items(self):
        raise FromBadObject("items")

    def keys(self):
        raise FromBadObject("keys")

    def __iter__(self):
        raise FromBadObject("__iter__")


NOT_UTF8 = "\udcff"


def bad_values():
    return [
        None, 0, -1, 1, True, 2 ** 31, 2 ** 63, 2 ** 64, -2 ** 63 - 1, 10 ** 400,
        0.5, -0.0, float("nan"), float("inf"), float("-inf"), 1e308,
        "", "x", "\0", "a\0b", "x" * 65536, NOT_UTF8, StrSub("file.txt"),
        b"", b"\0", b"x" * 65536, bytearray(b"ab"), memoryview(b"ab"),
        [], [None], ["x"] * 1000, (), (None,), {}, {"k": None}, {1: 2}, set(),
        object(), BadStr(), BadPath(), WrongPath(), BadIndex(), BadIter(), BadBool(),
        BadCall(), BadEq("x"), BadMapping(), lambda *a: None, len, type, Ellipsis,
    ]


# Exceptions that are a clear answer to bad input. SystemError (a C
# function returned NULL without an exception), and internals leaking out
# (KeyError, AttributeError, IndexError, AssertionError, ...) are not.
CLEAR = (TypeError, ValueError, OverflowError, OSError, gasyncbridge.GLibError,
         RuntimeError, NotImplementedError, FromBadObject, asyncio.CancelledError)
# A RuntimeError must say something: not one of Python's internal ones.
UNCLEAR_RUNTIME = ("coroutine raised StopIteration", "Task got bad yield")


def check_clear(exc, what):
    assert isinstance(exc, CLEAR), f"{what}: unclear exception {type(exc).__name__}: {exc!r}"
    assert not isinstance(exc, SystemError), f"{what}: SystemError {exc!r}"
    if isinstance(exc, RuntimeError):
        assert not any(s in str(exc) for s in UNCLEAR_RUNTIME), f"{what}: {exc!r}"


async def try_call(what, func, *args, seconds=10, **kwargs):
    """Calls, then awaits what it returned: ('ok', value) or ('raised', exc)."""
    try:
        ret = func(*args, **kwargs)
        if asyncio.isfuture(ret) or asyncio.iscoroutine(ret):
            try:
                ret = await bounded(ret, seconds)
            except AssertionError as e:
                raise AssertionError(f"{what}: {e}") from None
    except AssertionError:
        raise
    except BaseException as e:  # noqa: B036
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        check_clear(e, what)
        return "raised", e
    return "ok", ret


def closing(ret):
    """Things that a successful bad call may return and that must be
    released: readers, writers, processes."""
    for name in ("close",):
        meth = getattr(ret, name, None)
        if callable(meth):
            try:
                meth()
            except Exception:
                pass


# ---- every entry point, every hostile value, every argument position ---------

def entry_points(tmp):
    """(name, function, good positional args, good keyword args)."""
    f = str(tmp / "file.txt")
    eps = [
        ("sleep", gasyncbridge.sleep, [0], {"result": None}),
        ("run_in_runtime", gasyncbridge.run_in_runtime, [int], {}),
        ("gio.load_contents", gio.load_contents, [f], {}),
        ("gio.replace_contents", gio.replace_contents, [str(tmp / "out.txt"), b"data"],
         {"etag": None, "make_backup": False}),
        ("gio.query_info", gio.query_info, [f, None], {"follow_symlinks": True}),
        ("gio.list_dir", gio.list_dir, [str(tmp)], {}),
        ("gio.copy", gio.copy, [f, str(tmp / "copy.txt")], {"overwrite": True, "progress": None}),
        ("gio.communicate", gio.communicate, [["true"], None], {"cwd": None, "env": None}),
        ("gio.resolve", gio.resolve, ["localhost"], {"family": 0}),
        ("gio.open_read", gio.open_read, [f], {}),
        ("gio.open_write", gio.open_write, [str(tmp / "w.txt")], {}),
    ]
    if not NO_GI:   # call_gio needs a PyGObject method; the rest do not
        from gi.repository import Gio
        gfile = Gio.File.new_for_path(f)
        eps.append(("call_gio", gasyncbridge.call_gio, [gfile.load_contents_async], {}))
    return [e for e in eps if e[1] is not None]


def substitutions(values, args, kwargs, name):
    """Every hostile value in every position, one at a time."""
    for i in range(len(args)):
        for v in values:
            if name == "gio.resolve" and isinstance(v, str) and len(v) > 1:
                continue      # a real look-up of a junk name can wait on DNS
            if name == "sleep" and i == 0 and isinstance(v, (int, float)) and v > 0.5:
                continue      # a long sleep is no bad input (see test_sleep_bad_values)
            if name == "gio.communicate" and i == 0 and v is NOT_UTF8:
                continue      # a known hang: test_gio_error_message_not_utf8
            if name in ("gio.communicate",) and i == 0 and isinstance(v, list) and v \
                    and all(isinstance(x, str) for x in v):
                continue      # ["x", ...] is a real command line
            yield f"arg {i} = {short(v)}", args[:i] + [v] + args[i + 1:], kwargs
    for k in kwargs:
        for v in values:
            if name == "gio.communicate" and k == "cwd" and v is NOT_UTF8:
                continue      # a known hang: test_gio_error_message_not_utf8
            yield f"{k}= {short(v)}", args, dict(kwargs, **{k: v})
    yield "no arguments", [], {}
    yield "one argument too many", args + [None] * 5, kwargs
    yield "unknown keyword", args, dict(kwargs, no_such_keyword=1)


def short(v):
    try:
        r = repr(v)
    except Exception:
        r = type(v).__name__
    return r if len(r) < 40 else r[:37] + "..."


# Known bugs, each with its own xfail test below: skipped here so that this
# test still checks everything else.
KNOWN_UNCLEAR = {}


def test_every_entry_point_with_every_hostile_value(run, in_tmp):
    tried = []
    unclear = []

    async def main():
        for name, func, args, kwargs in entry_points(in_tmp):
            for what, a, kw in substitutions(bad_values(), list(args), dict(kwargs), name):
                known = [k for (n, k), pred in KNOWN_UNCLEAR.items()
                         if n == name and k in kw and kw[k] is not kwargs.get(k)
                         and pred(kw[k])]
                if known:
                    continue
                try:
                    outcome, value = await try_call(f"{name}({what})", func, *a, **kw)
                except AssertionError as e:
                    unclear.append(str(e).splitlines()[0])
                    continue
                if outcome == "ok":
                    closing(value)
                tried.append((name, what, outcome))
            await bridge_works(name)
        gc.collect()
        await bridge_works("end")

    run(main)
    print(f"\n{len(tried)} calls, "
          f"{sum(o == 'raised' for _, _, o in tried)} raised a clear exception")
    assert unclear == []
    assert len(tried) > 1000


# ---- each entry point: what exactly each kind of bad input gives -------------

def test_sleep_bad_values(run):
    async def main():
        for bad in [BadIndex(), "1", b"1", [], object(), 1j, None]:
            with pytest.raises(TypeError):
                gasyncbridge.sleep(bad)
        with pytest.raises(ValueError):
            gasyncbridge.sleep(float("nan"))
        with pytest.raises(OverflowError):
            gasyncbridge.sleep(-10 ** 400)
        with pytest.raises(TypeError):
            gasyncbridge.sleep(0, None, None)
        with pytest.raises(TypeError):
            gasyncbridge.sleep(0, resul=1)
        # negative, -inf, bools and int/float subclasses are numbers
        assert await gasyncbridge.sleep(float("-inf"), "n") == "n"
        assert await gasyncbridge.sleep(-1e308, "n") == "n"
        assert await gasyncbridge.sleep(False, "b") == "b"

        class MyFloat(float):
            pass

        assert await gasyncbridge.sleep(MyFloat(0.0), "f") == "f"
        # forever-ish ones are cancellable
        for huge in (1e308, 2 ** 64, float("inf"), 4294967.296, 4294967296.5):
            fut = gasyncbridge.sleep(huge)
            await tm.ready(None)
            assert not fut.done()
            fut.cancel()
            with pytest.raises(asyncio.CancelledError):
                await fut
        await bridge_works()

    run(main)


def test_run_in_runtime_bad_values(run):
    async def main():
        for bad in [None, 42, "int", b"", [], object()]:
            with pytest.raises(TypeError, match="not callable"):
                gasyncbridge.run_in_runtime(bad)
        with pytest.raises(TypeError):
            gasyncbridge.run_in_runtime()
        with pytest.raises(TypeError):
            gasyncbridge.run_in_runtime(print, end="")       # no keyword arguments
        with pytest.raises(FromBadObject):
            await gasyncbridge.run_in_runtime(BadCall())
        with pytest.raises(TypeError):                        # wrong arity, raised there
            await gasyncbridge.run_in_runtime(lambda: None, 1, 2)
        # huge argument lists and results
        assert await gasyncbridge.run_in_runtime(lambda *a: len(a), *range(10000)) == 10000
        big = await gasyncbridge.run_in_runtime(lambda: 10 ** 100000)
        assert big == 10 ** 100000
        # bridge calls from the runtime thread, where no loop runs: clear errors
        for start in (lambda: gasyncbridge.sleep(0), lambda: tm.ready(1),
                      lambda: gasyncbridge.run_in_runtime(int),
                      lambda: gio.load_contents(__file__)):
            with pytest.raises(RuntimeError, match="no running"):
                await gasyncbridge.run_in_runtime(start)
        # BaseExceptions raised there come back as they are
        for exc in (KeyboardInterrupt(), SystemExit(2), GeneratorExit()):
            def raiser(exc=exc):
                raise exc
            try:
                await gasyncbridge.run_in_runtime(raiser)
            except BaseException as e:  # noqa: B036
                assert e is exc
        await bridge_works()

    run(main)


@pytest.mark.skipif(NO_GI, reason=GI_MISSING)
def test_call_gio_bad_values(run, in_tmp):
    from gi.repository import Gio, GLib

    async def main():
        f = Gio.File.new_for_path(str(in_tmp / "file.txt"))
        missing = Gio.File.new_for_path(str(in_tmp / "missing"))
        for bad in [None, 42, "load_contents_async", object(), print, lambda: None, BadCall()]:
            outcome, exc = await try_call(f"call_gio({short(bad)})", gasyncbridge.call_gio, bad)
            assert outcome == "raised" and isinstance(exc, TypeError), (bad, exc)
        with pytest.raises(TypeError):
            gasyncbridge.call_gio()
        with pytest.raises(TypeError):
            await gasyncbridge.call_gio(f.load_contents)               # not an _async method
        with pytest.raises(TypeError):
            await gasyncbridge.call_gio(f.load_contents_async, "junk")  # wrong arguments
        with pytest.raises(TypeError):
            await gasyncbridge.call_gio(f.query_info_async)            # missing arguments
        with pytest.raises(TypeError):
            await gasyncbridge.call_gio(f.query_info_async, 42, None, None)
        with pytest.raises(FileNotFoundError):
            await gasyncbridge.call_gio(missing.load_contents_async)
        with pytest.raises(TypeError):
            await gasyncbridge.call_gio(f.load_contents_async, cancellable=None)
        ok, data, _ = await gasyncbridge.call_gio(f.load_contents_async)
        assert ok and data == b"contents\n"
        info = await gasyncbridge.call_gio(f.query_info_async, "standard::size",
                                           Gio.FileQueryInfoFlags.NONE, GLib.PRIORITY_DEFAULT)
        assert info.get_size() == len(b"contents\n")
        await bridge_works()

    run(main)


def test_gio_bad_paths(run, in_tmp):
    long_name = "x" * 100000

    async def main():
        for func in (gio.load_contents, gio.list_dir, gio.query_info, gio.open_read):
            for bad, exc in [(None, TypeError), (42, TypeError), ([], TypeError),
                             ("\0", ValueError), ("a\0b", ValueError), (b"a\0b", ValueError),
                             (BadPath(), FromBadObject), (WrongPath(), TypeError),
                             ("missing", FileNotFoundError), (long_name, OSError)]:
                outcome, got = await try_call(f"{func.__name__}({short(bad)})", func, bad)
                assert outcome == "raised" and isinstance(got, exc), (func.__name__, bad, got)
        with pytest.raises(IsADirectoryError):
            await gio.load_contents("dir")
        with pytest.raises(NotADirectoryError):
            await gio.list_dir("file.txt")
        # bytes and PathLike paths work
        assert await gio.load_contents(b"file.txt") == b"contents\n"
        assert await gio.load_contents(in_tmp / "file.txt") == b"contents\n"
        await bridge_works()

    run(main)


def test_gio_replace_contents_and_copy_bad_values(run, in_tmp):
    async def main():
        for data in ["str", None, 42, object(), [b"a"]]:
            with pytest.raises(TypeError):
                await gio.replace_contents("out.txt", data)
        with pytest.raises(IsADirectoryError):
            await gio.replace_contents("dir", b"x")
        with pytest.raises(TypeError):
            await gio.replace_contents("out.txt", b"x", etag=42)
        with pytest.raises(gasyncbridge.GLibError) as info:
            await gio.replace_contents("file.txt", b"x", etag="not-the-etag")
        assert info.value.code == 23                      # G_IO_ERROR_WRONG_ETAG
        assert (in_tmp / "file.txt").read_bytes() == b"contents\n"
        await gio.replace_contents("big.bin", memoryview(b"\0" * (16 << 20)))
        assert (in_tmp / "big.bin").stat().st_size == 16 << 20
        with pytest.raises(FileNotFoundError):
            await gio.copy("missing", "x")
        with pytest.raises(FileExistsError):
            await gio.copy("file.txt", "big.bin")
        for progress in [42, "print", object()]:
            with pytest.raises(TypeError):
                await gio.copy("file.txt", "c.txt", progress=progress)
        with pytest.raises(TypeError):                     # wrong arity, raised by the copy
            await gio.copy("big.bin", "c.txt", progress=lambda: None)
        assert not (in_tmp / "c.txt").exists()
        for attrs in [42, [1], [None], BadIter()]:
            outcome, got = await try_call(f"query_info(attributes={short(attrs)})",
                                          gio.query_info, "file.txt", attrs)
            assert outcome == "raised", (attrs, got)
        info = await gio.query_info("file.txt", ["size", "no::such-attribute"])
        assert info["size"] == len(b"contents\n")
        await bridge_works()

    run(main)


def test_gio_communicate_and_resolve_bad_values(run, in_tmp):
    async def main():
        for argv, exc in [([], ValueError), (None, TypeError), ("true", TypeError),
                          ([None], TypeError), ([42], TypeError), (["a\0b"], ValueError),
                          (["/nonexistent/program"], FileNotFoundError),
                          ([""], (ValueError, OSError)),
                          (BadIter(), (FromBadObject, TypeError))]:
            outcome, got = await try_call(f"communicate({short(argv)})", gio.communicate, argv)
            assert outcome == "raised" and isinstance(got, exc), (argv, got)
        with pytest.raises(TypeError):
            await gio.communicate(["true"], "text input")
        with pytest.raises(FileNotFoundError):
            await gio.communicate(["true"], cwd="missing")
        for env in [{1: 2}, {"A": None}, {"A=B": "c"}, {"A": "\0"}, BadMapping(), 42]:
            outcome, got = await try_call(f"communicate(env={short(env)})",
                                          gio.communicate, ["true"], env=env)
            assert outcome == "raised", (env, got)
        # a child that exits without reading a large input is no error
        code, out, err = await gio.communicate(["true"], b"x" * (1 << 22))
        assert code == 0
        for host, exc in [(None, TypeError), (42, TypeError), (b"localhost", TypeError),
                          ("", ValueError), ("a\0b", ValueError)]:
            outcome, got = await try_call(f"resolve({short(host)})", gio.resolve, host)
            assert outcome == "raised" and isinstance(got, exc), (host, got)
        for family, exc in [(99, ValueError), (-1, ValueError), (2 ** 40, OverflowError),
                            ("inet", TypeError)]:
            outcome, got = await try_call(f"resolve(family={family!r})", gio.resolve,
                                          "localhost", family=family)
            assert outcome == "raised" and isinstance(got, exc), (family, got)
        await bridge_works()

    run(main)


def test_gio_error_message_not_utf8(run, in_tmp):
    if run.kind != "asyncio":
        pytest.skip("waits out a time limit while the bug is there: asyncio only")

    async def main():
        for call in (lambda: gio.communicate(["true"], cwd=NOT_UTF8),
                     lambda: gio.communicate([b"/nonexistent/\xff"])):
            outcome, got = await try_call("communicate with a non-UTF-8 path", call,
                                          seconds=2)
            assert outcome == "raised" and isinstance(got, OSError), got
        await bridge_works()

    run(main)


def test_gio_communicate_env_not_a_mapping(run, in_tmp):
    async def main():
        for env in ([], [("A", "b")], b"A=b", bytearray(b"ab"), 42, "A=b", object()):
            outcome, got = await try_call(f"communicate(env={short(env)})",
                                          gio.communicate, ["true"], env=env)
            assert outcome == "raised" and isinstance(got, TypeError), (env, got)

    run(main)


def test_init_and_shutdown_bad_calls(run):
    async def main():
        with pytest.raises(TypeError):
            gasyncbridge.init(1)
        with pytest.raises(TypeError):
            gasyncbridge.shutdown(None)
        gasyncbridge.init()
        gasyncbridge.init()                 # idempotent
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, gasyncbridge.shutdown)
        await loop.run_in_executor(None, gasyncbridge.shutdown)   # idempotent
        with pytest.raises(gasyncbridge.GLibError) as info:
            gasyncbridge.sleep(0)
        assert info.value.code == G_IO_ERROR_CLOSED
        gasyncbridge.init()
        await bridge_works()
        # shutdown from the loop thread itself (it releases the GIL while
        # it waits), with work pending
        futs = [tm.ready(1), gasyncbridge.run_in_runtime(int), tm.await_py(echo(1))]
        gasyncbridge.shutdown()
        for o in await asyncio.gather(*futs, return_exceptions=True):
            assert o in (0, 1) or (isinstance(o, gasyncbridge.GLibError)
                                   and o.code == G_IO_ERROR_CLOSED), repr(o)
        gasyncbridge.init()
        await bridge_works()

    run(main)


def test_glib_error_with_odd_attributes_through_c(run):
    """Python raises GLibErrors (and lookalikes) with broken domain, code or
    message attributes; C maps them into GErrors and back: always a clear
    exception, never a crash or SystemError."""
    def odd_errors():
        yield gasyncbridge.GLibError("m", "my-domain", 2 ** 100)
        yield gasyncbridge.GLibError("m", "my-domain", -1)
        yield gasyncbridge.GLibError("m", "", 0)
        yield gasyncbridge.GLibError("m", "\udcff", 0)
        e = gasyncbridge.GLibError("m", "d", 1)
        e.domain = None
        yield e
        e = gasyncbridge.GLibError("m", "d", 1)
        e.code = "seven"
        yield e
        e = gasyncbridge.GLibError("m", "d", 1)
        e.message = BadStr()
        yield e

        class Prop(gasyncbridge.GLibError):
            @property
            def domain(self):
                raise FromBadObject("domain")

            @domain.setter
            def domain(self, value):
                pass
        yield Prop("m", "d", 1)
        for args in [(), ("only message",), (None, None, None), (1, 2, 3, 4, 5)]:
            try:
                yield gasyncbridge.GLibError(*args)
            except TypeError:
                pass

    async def main():
        n = 0
        for exc in odd_errors():
            async def raiser(exc=exc):
                raise exc
            for start in (lambda: tm.await_py(raiser()), lambda: tm.into_future_here(raiser())):
                outcome, got = await try_call(f"raise {type(exc).__name__}{exc.args}", start)
                assert outcome == "raised"
                n += 1
        assert n >= 20
        await bridge_works()

    run(main)


# ---- wrong threads ------------------------------------------------------------

def test_entry_points_from_threads_without_a_running_loop(in_tmp):
    """From a thread with no loop, and with a loop set but not running:
    RuntimeError at the call, nothing left behind."""
    errors = []

    def body():
        calls = [lambda: gasyncbridge.sleep(0), lambda: gasyncbridge.run_in_runtime(int),
                 lambda: gio.load_contents("file.txt"), lambda: gio.list_dir("."),
                 lambda: gio.open_read("file.txt"), lambda: tm.ready(1)]
        try:
            if not NO_GI:
                from gi.repository import Gio
                f = Gio.File.new_for_path("file.txt")
                calls.append(lambda: gasyncbridge.call_gio(f.load_contents_async))
            for attempt in range(2):
                if attempt == 1:
                    asyncio.set_event_loop(asyncio.new_event_loop())   # set, not running
                for call in calls:
                    try:
                        ret = call()
                    except RuntimeError as e:
                        assert "loop" in str(e)
                    else:
                        errors.append(f"no error: {ret!r}")
            asyncio.get_event_loop().close()
        except BaseException as e:  # noqa: B036
            errors.append(e)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert errors == []

    async def main():
        await bridge_works()

    asyncio.run(main())


def test_future_awaited_from_another_loop(run):
    """A bridge future belongs to the loop that made it: awaiting it from
    another loop is asyncio's clear error, and the operation still completes
    on its own loop."""
    other = asyncio.new_event_loop()
    started = threading.Event()
    stop = threading.Event()

    def other_thread():
        async def hold():
            started.set()
            while not stop.is_set():
                await asyncio.sleep(0.001)
        other.run_until_complete(hold())

    t = threading.Thread(target=other_thread)
    t.start()
    started.wait()

    async def main():
        gate = fm.gate_new()
        fut = fm.gated(gate, "mine")

        async def foreign():
            return await fut

        cf = asyncio.run_coroutine_threadsafe(foreign(), other)
        with pytest.raises(RuntimeError):   # asyncio's: a future of another loop
            await asyncio.wrap_future(cf)
        fm.gate_open(gate)
        # (not `await fut`: asyncio leaves a future that a task of another
        # loop tried to await unusable for `await`)
        await asyncio.wait({fut})
        assert fut.result() == "mine"
        await bridge_works()

    try:
        run(main)
    finally:
        stop.set()
        t.join()
        other.close()


# Cases that would wedge or pollute the test process: a subprocess each.

LOOP_ON_RUNTIME_SCRIPT = """
import asyncio, gasyncbridge, _gab_testmod as tm
async def inner():
    return await tm.ready("inner")
async def main():
    fut = gasyncbridge.run_in_runtime(lambda: asyncio.run(inner()))
    done, _ = await asyncio.wait({fut}, timeout=3)
    if not done:
        print("hang", flush=True)
    else:
        try:
            print("result", fut.result(), flush=True)
        except RuntimeError as e:
            print("RuntimeError", "runtime thread" in str(e), flush=True)
asyncio.run(main())
import os
os._exit(0)     # the runtime thread may be stuck: skip the exit-time shutdown
"""


def test_loop_on_the_runtime_thread_gets_a_clear_error():
    proc = watchdog.run([sys.executable, "-c", textwrap.dedent(LOOP_ON_RUNTIME_SCRIPT)], 60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "RuntimeError True\n", proc.stdout + proc.stderr


SHUTDOWN_ON_RUNTIME_SCRIPT = """
import asyncio, gasyncbridge, _gab_testmod as tm
async def main():
    try:
        await gasyncbridge.run_in_runtime(gasyncbridge.shutdown)
        print("no error", flush=True)
    except RuntimeError as e:
        print("RuntimeError", flush=True)
    print(await tm.ready("still works"), flush=True)
asyncio.run(main())
"""


def test_shutdown_from_the_runtime_thread_raises():
    proc = watchdog.run([sys.executable, "-c", textwrap.dedent(SHUTDOWN_ON_RUNTIME_SCRIPT)], 60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "RuntimeError\nstill works\n"
    assert proc.stderr == ""


# ---- odd and closed loops ------------------------------------------------------

class NoReaderLoop(asyncio.SelectorEventLoop):
    """A loop that cannot watch file descriptors."""

    def add_reader(self, *args):
        raise NotImplementedError("no add_reader here")


def test_loop_without_add_reader_gives_a_clear_error():
    loop = NoReaderLoop()

    async def main():
        for call in (lambda: gasyncbridge.sleep(0), lambda: tm.ready(1),
                     lambda: gasyncbridge.run_in_runtime(int),
                     lambda: gio.load_contents(__file__)):
            with pytest.raises((NotImplementedError, RuntimeError)):
                call()
        coro = echo(1)
        try:
            with pytest.raises((gasyncbridge.GLibError, NotImplementedError, RuntimeError)):
                await bounded(tm.into_future_here(coro))
        finally:
            coro.close()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    asyncio.run(bridge_works())


def test_operations_of_a_closed_loop():
    """Futures made on a loop that is then closed: awaiting them elsewhere
    is asyncio's error; their completions are dropped; nothing is printed."""
    loop = asyncio.new_event_loop()
    errors = []
    loop.set_exception_handler(lambda loop, ctx: errors.append(ctx))

    gate = fm.gate_new()

    async def start():
        return [fm.gated(gate, 0), gasyncbridge.sleep(0, 1), tm.ready(2),
                gasyncbridge.run_in_runtime(int), tm.await_py(echo(3)),
                gio.load_contents(__file__)]

    futs = loop.run_until_complete(start())
    loop.close()
    fm.gate_open(gate)
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="closed"):
        loop.run_until_complete(coro)
    coro.close()

    async def elsewhere():
        for i, f in enumerate(futs):
            if f.done():      # completed before its loop stopped
                continue
            with pytest.raises(RuntimeError):   # asyncio's: a future of another loop
                await f
            assert i != 0 or not f.done()
        await bridge_works()

    asyncio.run(elsewhere())
    del futs
    gc.collect()
    assert errors == []


def test_contextvars_context_misuse(run):
    """Entry points called inside a contextvars.Context.run() that is
    already entered elsewhere, or from a copied context: no interference."""
    var = contextvars.ContextVar("v", default=0)

    async def main():
        var.set(1)
        ctx = contextvars.copy_context()
        fut = ctx.run(gasyncbridge.run_in_runtime, var.get)
        assert await fut == 1
        with pytest.raises(RuntimeError):          # a context cannot be entered twice
            ctx.run(ctx.run, gasyncbridge.sleep, 0)
        assert await gasyncbridge.run_in_runtime(var.get) == 1
        await bridge_works()

    run(main)
