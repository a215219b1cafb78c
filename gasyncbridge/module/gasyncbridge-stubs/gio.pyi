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

    def cancel(self, /, msg: Optional[Any] = None) -> bool: ...

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
                env: Optional[Mapping[Any, _Path]] = None) -> Operation[Tuple[int, bytes, bytes]]: ...
def resolve(host: str, *, family: int = 0) -> Operation[List[str]]: ...
def open_read(path: _Path, *, limit: int = 65536) -> asyncio.Future[StreamReader]: ...
def open_write(path: _Path) -> asyncio.Future[StreamWriter]: ...
