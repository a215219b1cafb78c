# Type stubs for `gasyncbridge.gio`: GIO operations as asyncio awaitables.
#
# SPDX-License-Identifier: LGPL-2.1-or-later
import asyncio
import os
from typing import (Any, Callable, Dict, Generic, Iterable, List, Mapping, Optional,
                    Sequence, Tuple, TypeVar, Union, overload)

from . import StreamReader, StreamWriter

_T = TypeVar("_T")

# What os functions accept as a path.
_Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
# Any object with the buffer protocol: bytes, bytearray, memoryview, ...
_Buffer = Union[bytes, bytearray, memoryview]

class Operation(asyncio.Future[_T]):
    """An asyncio.Future for a GIO operation; cancel() waits for GIO to stop.

    cancel() returns True (False once done) and the future completes,
    cancelled, when GIO has stopped and cleaned up, as a Task does.
    """

    def cancel(self, msg: Optional[Any] = None) -> bool: ...

def load_contents(path: _Path) -> Operation[bytes]: ...
def replace_contents(path: _Path, data: _Buffer, *, etag: Optional[str] = None,
                     make_backup: bool = False) -> Operation[None]: ...
def query_info(path: _Path, attributes: Union[str, Iterable[str], None] = None, *,
               follow_symlinks: bool = True) -> Operation[Dict[str, Any]]: ...
@overload
def list_dir(path: Union[str, "os.PathLike[str]"]) -> Operation[List[str]]: ...
@overload
def list_dir(path: Union[bytes, "os.PathLike[bytes]"]) -> Operation[List[bytes]]: ...
def copy(src: _Path, dst: _Path, *, overwrite: bool = False,
         progress: Optional[Callable[[int, int], object]] = None) -> Operation[None]: ...
def communicate(argv: Sequence[_Path], input: Optional[_Buffer] = None, *,
                cwd: Optional[_Path] = None,
                env: Optional[Mapping[Any, _Path]] = None,
                close_fds: bool = False) -> Operation[Tuple[int, bytes, bytes]]: ...
def resolve(host: str, *, family: int = 0) -> Operation[List[str]]: ...
def dbus_call(connection: Any, bus_name: Optional[str], object_path: str, interface_name: str,
              method_name: str, args: Union[Tuple[Any, ...], List[Any]] = ..., *,
              signature: Optional[str] = None, reply_type: Optional[str] = None,
              timeout: int = -1) -> asyncio.Future[Tuple[Any, ...]]: ...
def open_read(path: _Path, *, limit: int = 65536) -> asyncio.Future[StreamReader]: ...
def open_write(path: _Path) -> asyncio.Future[StreamWriter]: ...

class Process:
    """A child process, as asyncio.subprocess.Process, over a GSubprocess."""

    stdin: Optional[StreamWriter]
    stdout: Optional[StreamReader]
    stderr: Optional[StreamReader]
    returncode: Optional[int]
    def __init__(self, handle: Any, stdin: Optional[StreamWriter], stdout: Optional[StreamReader],
                 stderr: Optional[StreamReader]) -> None: ...
    @property
    def pid(self) -> int: ...
    async def wait(self) -> int: ...
    async def communicate(self, input: Optional[bytes] = None) -> Tuple[Optional[bytes], Optional[bytes]]: ...
    def send_signal(self, sig: int) -> None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...

async def create_subprocess_exec(program: _Path, *args: _Path, stdin: Optional[int] = None,
                                 stdout: Optional[int] = None, stderr: Optional[int] = None,
                                 cwd: Optional[_Path] = None, env: Optional[Mapping[Any, _Path]] = None,
                                 limit: int = 65536, close_fds: bool = False) -> Process: ...
