# SPDX-License-Identifier: LGPL-2.1-or-later
"""StreamReader and StreamWriter over GIO streams (asyncio's semantics).

Compiled once by gab-stream.c as the module "gasyncbridge", with `_GioStream`
(the C type that turns one GIO read, write_all or close into an asyncio
future) defined first. The reader reads only when a caller needs more data,
so a slow consumer holds back a fast producer; the writer keeps one write
in flight and lets drain() wait on a high-water mark.
"""
import asyncio
import collections

_GioStream = globals()["_GioStream"]   # the C type, defined by gab-stream.c first

_DEFAULT_LIMIT = 2 ** 16
_READ_SIZE = 2 ** 16      # one GIO read when the buffer needs more
_MAX_READ = 2 ** 20       # the largest single GIO read


# Writers' pump tasks, referenced until done: a writer that Python drops
# while data is in flight must still finish writing it (asyncio's loop
# holds tasks only weakly, and between two writes a pump waits for an
# asyncio event that nothing else would keep alive).
_pumps = set()


def _keep(task):
    _pumps.add(task)
    task.add_done_callback(_pumps.discard)
    return task


def _retrieve(future):
    # Nobody may await a read left behind by a cancelled caller: mark its
    # outcome retrieved, so asyncio never logs it.
    if not future.cancelled():
        future.exception()


def _as_stream(stream, kind, who):
    if isinstance(stream, _GioStream):
        gio = stream
    elif hasattr(stream, '__gpointer__'):
        gio = _GioStream.wrap(stream)
    else:
        raise TypeError(f'{who} needs a Gio.{kind.capitalize()}Stream (PyGObject), '
                        f'not {type(stream).__name__!r}')
    if gio.kind != kind:
        raise TypeError(f'{who} needs a Gio.{kind.capitalize()}Stream, not an '
                        f'{gio.kind} stream')
    return gio


class StreamReader:
    """An asyncio.StreamReader over a GIO input stream.

    read(), readexactly(), readline(), readuntil(), at_eof() and `async for`
    (lines) behave as asyncio's; iter_chunks(size) iterates over chunks.
    The stream is read on the gasyncbridge runtime thread, one read at a
    time, only when a caller needs more data: a slow consumer slows the
    producer down. A caller cancelled while waiting does not lose data: the
    read goes on and its bytes are kept for the next caller.
    """

    def __init__(self, stream, limit=_DEFAULT_LIMIT):
        if limit <= 0:
            raise ValueError('Limit cannot be <= 0')
        self._stream = _as_stream(stream, 'input', 'StreamReader')
        self._limit = limit
        self._buffer = bytearray()
        self._eof = False
        self._exception = None
        self._pending = None     # the GIO read in flight
        self._waiting = False
        self._closed = None

    def __repr__(self):
        info = ['StreamReader']
        if self._buffer:
            info.append(f'{len(self._buffer)} bytes')
        if self._eof:
            info.append('eof')
        if self._limit != _DEFAULT_LIMIT:
            info.append(f'limit={self._limit}')
        if self._exception is not None:
            info.append(f'exception={self._exception!r}')
        return '<{}>'.format(' '.join(info))

    def exception(self):
        """The exception that ended the stream, or None."""
        return self._exception

    def at_eof(self):
        """True if the buffer is empty and the stream has ended."""
        return self._eof and not self._buffer

    async def _read_some(self, func_name, size):
        # One GIO read: its bytes, b'' at the end of the stream.
        if self._exception is not None:
            raise self._exception
        if self._eof:
            return b''
        if self._waiting:
            raise RuntimeError(f'{func_name}() called while another coroutine is '
                               f'already waiting for incoming data')
        pending = self._pending
        if pending is None:
            pending = self._pending = self._stream.read(size)
            pending.add_done_callback(_retrieve)
        self._waiting = True
        try:
            data = await asyncio.shield(pending)
        except asyncio.CancelledError:
            if pending.cancelled():
                self._pending = None
            raise
        except Exception as exc:
            self._pending = None
            self._exception = exc
            raise
        finally:
            self._waiting = False
        self._pending = None
        if not data:
            self._eof = True
        return data

    async def _fill(self, func_name, size=_READ_SIZE):
        data = await self._read_some(func_name, size)
        if data:
            self._buffer += data

    async def read(self, n=-1):
        """Up to n bytes (all until the end if n < 0); b'' at the end."""
        if n == 0:
            return b''
        if n < 0:
            blocks = []
            if self._buffer:
                blocks.append(bytes(self._buffer))
                self._buffer.clear()
            while True:
                block = await self._read_some('read', _MAX_READ)
                if not block:
                    break
                blocks.append(block)
            return b''.join(blocks)
        if not self._buffer:
            data = await self._read_some('read', max(min(n, _MAX_READ), _READ_SIZE))
            if len(data) <= n:
                return data
            self._buffer += memoryview(data)[n:]
            return data[:n]
        data = bytes(memoryview(self._buffer)[:n])
        del self._buffer[:n]
        return data

    async def readexactly(self, n):
        """Exactly n bytes, or asyncio.IncompleteReadError at the end."""
        if n < 0:
            raise ValueError('readexactly size can not be less than zero')
        if n == 0:
            return b''
        while len(self._buffer) < n:
            if self._eof:
                incomplete = bytes(self._buffer)
                self._buffer.clear()
                raise asyncio.IncompleteReadError(incomplete, n)
            await self._fill('readexactly',
                             min(max(n - len(self._buffer), _READ_SIZE), _MAX_READ))
        data = bytes(memoryview(self._buffer)[:n])
        del self._buffer[:n]
        return data

    async def readline(self):
        """A line ending with b'\\n'; at the end, what is left (maybe b'')."""
        sep = b'\n'
        seplen = len(sep)
        try:
            line = await self.readuntil(sep)
        except asyncio.IncompleteReadError as e:
            return e.partial
        except asyncio.LimitOverrunError as e:
            if self._buffer.startswith(sep, e.consumed):
                del self._buffer[:e.consumed + seplen]
            else:
                self._buffer.clear()
            raise ValueError(e.args[0])
        return line

    async def readuntil(self, separator=b'\n'):
        """Data up to and including separator.

        asyncio.IncompleteReadError at the end without it (.partial holds
        what was read); asyncio.LimitOverrunError if it is not within the
        limit (the data stays in the buffer)."""
        seplen = len(separator)
        if seplen == 0:
            raise ValueError('Separator should be at least one-byte string')
        offset = 0
        while True:
            buflen = len(self._buffer)
            if buflen - offset >= seplen:
                isep = self._buffer.find(separator, offset)
                if isep != -1:
                    break
                offset = buflen + 1 - seplen
                if offset > self._limit:
                    raise asyncio.LimitOverrunError(
                        'Separator is not found, and chunk exceed the limit', offset)
            if self._eof:
                chunk = bytes(self._buffer)
                self._buffer.clear()
                raise asyncio.IncompleteReadError(chunk, None)
            await self._fill('readuntil')
        if isep > self._limit:
            raise asyncio.LimitOverrunError(
                'Separator is found, but chunk is longer than limit', isep)
        chunk = bytes(memoryview(self._buffer)[:isep + seplen])
        del self._buffer[:isep + seplen]
        return chunk

    async def iter_chunks(self, size=_READ_SIZE):
        """Iterate over the data in chunks of at most size bytes."""
        if size <= 0:
            raise ValueError('chunk size must be > 0')
        while True:
            chunk = await self.read(size)
            if not chunk:
                return
            yield chunk

    def __aiter__(self):
        return self

    async def __anext__(self):
        line = await self.readline()
        if line == b'':
            raise StopAsyncIteration
        return line

    def close(self):
        """Close the GIO stream (a read in flight is cancelled first).
        Buffered data can still be read; then the reader is at its end."""
        if self._closed is not None:
            return
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()
        self._pending = None
        self._eof = True
        self._closed = self._stream.close()
        self._closed.add_done_callback(_retrieve)

    def is_closing(self):
        """True once close() was called."""
        return self._closed is not None

    async def wait_closed(self):
        """Wait until the stream is closed (closing it if need be)."""
        self.close()
        await asyncio.shield(self._closed)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        await self.wait_closed()


class StreamWriter:
    """An asyncio.StreamWriter over a GIO output stream.

    write() and writelines() buffer and return at once; the data is written
    on the gasyncbridge runtime thread, one GIO write at a time, in order.
    drain() waits while more than the high-water mark is buffered (until it
    falls to the low-water mark) and raises a write error. close() writes
    what is buffered, then closes the stream; wait_closed() waits for that.
    """

    def __init__(self, stream, *, high=None, low=None):
        self._stream = _as_stream(stream, 'output', 'StreamWriter')
        self._buffer = bytearray()
        self._inflight = 0
        self._pump_task = None
        self._exception = None
        self._closing = False
        self._closed = None
        self._close_error = None
        self._drain_waiters = collections.deque()
        self.set_write_buffer_limits(high, low)

    def __repr__(self):
        info = ['StreamWriter', f'buffered={self.get_write_buffer_size()}']
        if self._closing:
            info.append('closing')
        if self._exception is not None:
            info.append(f'exception={self._exception!r}')
        return '<{}>'.format(' '.join(info))

    @property
    def transport(self):
        """asyncio compatibility: there is no transport; None."""
        return None

    def get_extra_info(self, name, default=None):
        """asyncio compatibility: a GIO stream has no transport extras; returns default."""
        return default

    def set_write_buffer_limits(self, high=None, low=None):
        """Set the high and low water marks that drain() waits between."""
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f'high ({high!r}) must be >= low ({low!r}) must be >= 0')
        self._high = high
        self._low = low

    def get_write_buffer_limits(self):
        """The (low, high) water marks."""
        return (self._low, self._high)

    def get_write_buffer_size(self):
        """Bytes buffered or being written."""
        return len(self._buffer) + self._inflight

    def can_write_eof(self):
        """False: a GIO output stream has no half-close."""
        return False

    def write_eof(self):
        """Not supported: raises NotImplementedError (use close())."""
        raise NotImplementedError('a GIO output stream has no half-close: use close()')

    def write(self, data):
        """Buffer data for writing; call drain() to wait for room."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f'data argument must be a bytes-like object, '
                            f'not {type(data).__name__!r}')
        if self._closing:
            raise RuntimeError('write() called after close()')
        if self._exception is not None or not data:
            # as asyncio after a lost connection: dropped; drain() raises
            return
        self._buffer += data
        if self._pump_task is None:
            self._pump_task = _keep(asyncio.get_running_loop().create_task(self._pump()))

    def writelines(self, data):
        """Buffer each chunk of an iterable of bytes-like objects."""
        for chunk in data:
            self.write(chunk)

    async def _pump(self):
        try:
            while self._buffer and self._exception is None:
                data = self._buffer
                self._buffer = bytearray()
                self._inflight = len(data)
                try:
                    await self._stream.write(data)
                except Exception as exc:
                    self._exception = exc
                    self._buffer = bytearray()
                finally:
                    self._inflight = 0
                    data = None
                self._wake_drainers()
            if self._closing:
                try:
                    await self._stream.close()
                except Exception as exc:
                    self._close_error = exc
                self._closed.set_result(None)
        finally:
            self._pump_task = None
            self._wake_drainers(force=True)

    def _wake_drainers(self, force=False):
        if force or self._exception is not None or self.get_write_buffer_size() <= self._low:
            while self._drain_waiters:
                waiter = self._drain_waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)

    async def drain(self):
        """Wait until the buffer is small enough; raise a write error."""
        if self._exception is not None:
            raise self._exception
        while self.get_write_buffer_size() > self._high and self._pump_task is not None:
            waiter = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(waiter)
            try:
                await waiter
            finally:
                try:
                    self._drain_waiters.remove(waiter)
                except ValueError:
                    pass
            if self._exception is not None:
                raise self._exception

    def close(self):
        """Write what is buffered, then close the stream (see wait_closed)."""
        if self._closing:
            return
        self._closing = True
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        if self._pump_task is None:
            self._pump_task = _keep(loop.create_task(self._pump()))

    def is_closing(self):
        """True once close() was called."""
        return self._closing

    async def wait_closed(self):
        """Wait until closed (closing if need be); raise a write or close error."""
        self.close()
        await asyncio.shield(self._closed)
        if self._close_error is not None:
            raise self._close_error
        if self._exception is not None:
            raise self._exception

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        await self.wait_closed()


StreamReader.__module__ = StreamWriter.__module__ = 'gasyncbridge'
