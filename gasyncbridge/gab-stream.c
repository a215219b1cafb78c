/* gab-stream.c: GIO streams for asyncio — any GInputStream as a
 * StreamReader, any GOutputStream as a StreamWriter, with asyncio's
 * semantics.
 *
 * Two layers. Underneath, `_GioStream` (C) turns one GIO call — read,
 * write_all, close — into an asyncio future with gab_future_into_py(); the
 * calls of one stream run on the runtime thread one after another, in the
 * order they were made, because GIO allows one pending operation per
 * stream. On top, StreamReader and StreamWriter (Python, in stream_source
 * below, compiled once) do the buffering: the reader reads only when a
 * caller needs more data, so a slow consumer holds back a fast producer;
 * the writer keeps one write in flight and lets drain() wait on a
 * high-water mark.
 *
 * Reads go straight into a bytes object made for them (with the GIL, before
 * the runtime thread starts the read) and writes send the caller's buffer
 * as it is (a buffer export pins it): no copy on either side.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gab-streams-private.h"

static const char stream_source[] =
  "import asyncio\n"
  "import collections\n"
  "\n"
  "_DEFAULT_LIMIT = 2 ** 16\n"
  "_READ_SIZE = 2 ** 16      # one GIO read when the buffer needs more\n"
  "_MAX_READ = 2 ** 20       # the largest single GIO read\n"
  "\n"
  "\n"
  "# Writers' pump tasks, referenced until done: a writer that Python drops\n"
  "# while data is in flight must still finish writing it (asyncio's loop\n"
  "# holds tasks only weakly, and between two writes a pump waits for an\n"
  "# asyncio event that nothing else would keep alive).\n"
  "_pumps = set()\n"
  "\n"
  "\n"
  "def _keep(task):\n"
  "    _pumps.add(task)\n"
  "    task.add_done_callback(_pumps.discard)\n"
  "    return task\n"
  "\n"
  "\n"
  "def _retrieve(future):\n"
  "    # Nobody may await a read left behind by a cancelled caller: mark its\n"
  "    # outcome retrieved, so asyncio never logs it.\n"
  "    if not future.cancelled():\n"
  "        future.exception()\n"
  "\n"
  "\n"
  "def _as_stream(stream, kind, who):\n"
  "    if isinstance(stream, _GioStream):\n"
  "        gio = stream\n"
  "    elif hasattr(stream, '__gpointer__'):\n"
  "        gio = _GioStream.wrap(stream)\n"
  "    else:\n"
  "        raise TypeError(f'{who} needs a Gio.{kind.capitalize()}Stream (PyGObject), '\n"
  "                        f'not {type(stream).__name__!r}')\n"
  "    if gio.kind != kind:\n"
  "        raise TypeError(f'{who} needs a Gio.{kind.capitalize()}Stream, not an '\n"
  "                        f'{gio.kind} stream')\n"
  "    return gio\n"
  "\n"
  "\n"
  "class StreamReader:\n"
  "    \"\"\"An asyncio.StreamReader over a GIO input stream.\n"
  "\n"
  "    read(), readexactly(), readline(), readuntil(), at_eof() and `async for`\n"
  "    (lines) behave as asyncio's; iter_chunks(size) iterates over chunks.\n"
  "    The stream is read on the gasyncbridge runtime thread, one read at a\n"
  "    time, only when a caller needs more data: a slow consumer slows the\n"
  "    producer down. A caller cancelled while waiting does not lose data: the\n"
  "    read goes on and its bytes are kept for the next caller.\n"
  "    \"\"\"\n"
  "\n"
  "    def __init__(self, stream, limit=_DEFAULT_LIMIT):\n"
  "        if limit <= 0:\n"
  "            raise ValueError('Limit cannot be <= 0')\n"
  "        self._stream = _as_stream(stream, 'input', 'StreamReader')\n"
  "        self._limit = limit\n"
  "        self._buffer = bytearray()\n"
  "        self._eof = False\n"
  "        self._exception = None\n"
  "        self._pending = None     # the GIO read in flight\n"
  "        self._waiting = False\n"
  "        self._closed = None\n"
  "\n"
  "    def __repr__(self):\n"
  "        info = ['StreamReader']\n"
  "        if self._buffer:\n"
  "            info.append(f'{len(self._buffer)} bytes')\n"
  "        if self._eof:\n"
  "            info.append('eof')\n"
  "        if self._limit != _DEFAULT_LIMIT:\n"
  "            info.append(f'limit={self._limit}')\n"
  "        if self._exception is not None:\n"
  "            info.append(f'exception={self._exception!r}')\n"
  "        return '<{}>'.format(' '.join(info))\n"
  "\n"
  "    def exception(self):\n"
  "        \"\"\"The exception that ended the stream, or None.\"\"\"\n"
  "        return self._exception\n"
  "\n"
  "    def at_eof(self):\n"
  "        \"\"\"True if the buffer is empty and the stream has ended.\"\"\"\n"
  "        return self._eof and not self._buffer\n"
  "\n"
  "    async def _read_some(self, func_name, size):\n"
  "        # One GIO read: its bytes, b'' at the end of the stream.\n"
  "        if self._exception is not None:\n"
  "            raise self._exception\n"
  "        if self._eof:\n"
  "            return b''\n"
  "        if self._waiting:\n"
  "            raise RuntimeError(f'{func_name}() called while another coroutine is '\n"
  "                               f'already waiting for incoming data')\n"
  "        pending = self._pending\n"
  "        if pending is None:\n"
  "            pending = self._pending = self._stream.read(size)\n"
  "            pending.add_done_callback(_retrieve)\n"
  "        self._waiting = True\n"
  "        try:\n"
  "            data = await asyncio.shield(pending)\n"
  "        except asyncio.CancelledError:\n"
  "            if pending.cancelled():\n"
  "                self._pending = None\n"
  "            raise\n"
  "        except Exception as exc:\n"
  "            self._pending = None\n"
  "            self._exception = exc\n"
  "            raise\n"
  "        finally:\n"
  "            self._waiting = False\n"
  "        self._pending = None\n"
  "        if not data:\n"
  "            self._eof = True\n"
  "        return data\n"
  "\n"
  "    async def _fill(self, func_name, size=_READ_SIZE):\n"
  "        data = await self._read_some(func_name, size)\n"
  "        if data:\n"
  "            self._buffer += data\n"
  "\n"
  "    async def read(self, n=-1):\n"
  "        \"\"\"Up to n bytes (all until the end if n < 0); b'' at the end.\"\"\"\n"
  "        if n == 0:\n"
  "            return b''\n"
  "        if n < 0:\n"
  "            blocks = []\n"
  "            if self._buffer:\n"
  "                blocks.append(bytes(self._buffer))\n"
  "                self._buffer.clear()\n"
  "            while True:\n"
  "                block = await self._read_some('read', _MAX_READ)\n"
  "                if not block:\n"
  "                    break\n"
  "                blocks.append(block)\n"
  "            return b''.join(blocks)\n"
  "        if not self._buffer:\n"
  "            data = await self._read_some('read', max(min(n, _MAX_READ), _READ_SIZE))\n"
  "            if len(data) <= n:\n"
  "                return data\n"
  "            self._buffer += memoryview(data)[n:]\n"
  "            return data[:n]\n"
  "        data = bytes(memoryview(self._buffer)[:n])\n"
  "        del self._buffer[:n]\n"
  "        return data\n"
  "\n"
  "    async def readexactly(self, n):\n"
  "        \"\"\"Exactly n bytes, or asyncio.IncompleteReadError at the end.\"\"\"\n"
  "        if n < 0:\n"
  "            raise ValueError('readexactly size can not be less than zero')\n"
  "        if n == 0:\n"
  "            return b''\n"
  "        while len(self._buffer) < n:\n"
  "            if self._eof:\n"
  "                incomplete = bytes(self._buffer)\n"
  "                self._buffer.clear()\n"
  "                raise asyncio.IncompleteReadError(incomplete, n)\n"
  "            await self._fill('readexactly',\n"
  "                             min(max(n - len(self._buffer), _READ_SIZE), _MAX_READ))\n"
  "        data = bytes(memoryview(self._buffer)[:n])\n"
  "        del self._buffer[:n]\n"
  "        return data\n"
  "\n"
  "    async def readline(self):\n"
  "        \"\"\"A line ending with b'\\\\n'; at the end, what is left (maybe b'').\"\"\"\n"
  "        sep = b'\\n'\n"
  "        seplen = len(sep)\n"
  "        try:\n"
  "            line = await self.readuntil(sep)\n"
  "        except asyncio.IncompleteReadError as e:\n"
  "            return e.partial\n"
  "        except asyncio.LimitOverrunError as e:\n"
  "            if self._buffer.startswith(sep, e.consumed):\n"
  "                del self._buffer[:e.consumed + seplen]\n"
  "            else:\n"
  "                self._buffer.clear()\n"
  "            raise ValueError(e.args[0])\n"
  "        return line\n"
  "\n"
  "    async def readuntil(self, separator=b'\\n'):\n"
  "        \"\"\"Data up to and including separator.\n"
  "\n"
  "        asyncio.IncompleteReadError at the end without it (.partial holds\n"
  "        what was read); asyncio.LimitOverrunError if it is not within the\n"
  "        limit (the data stays in the buffer).\"\"\"\n"
  "        seplen = len(separator)\n"
  "        if seplen == 0:\n"
  "            raise ValueError('Separator should be at least one-byte string')\n"
  "        offset = 0\n"
  "        while True:\n"
  "            buflen = len(self._buffer)\n"
  "            if buflen - offset >= seplen:\n"
  "                isep = self._buffer.find(separator, offset)\n"
  "                if isep != -1:\n"
  "                    break\n"
  "                offset = buflen + 1 - seplen\n"
  "                if offset > self._limit:\n"
  "                    raise asyncio.LimitOverrunError(\n"
  "                        'Separator is not found, and chunk exceed the limit', offset)\n"
  "            if self._eof:\n"
  "                chunk = bytes(self._buffer)\n"
  "                self._buffer.clear()\n"
  "                raise asyncio.IncompleteReadError(chunk, None)\n"
  "            await self._fill('readuntil')\n"
  "        if isep > self._limit:\n"
  "            raise asyncio.LimitOverrunError(\n"
  "                'Separator is found, but chunk is longer than limit', isep)\n"
  "        chunk = bytes(memoryview(self._buffer)[:isep + seplen])\n"
  "        del self._buffer[:isep + seplen]\n"
  "        return chunk\n"
  "\n"
  "    async def iter_chunks(self, size=_READ_SIZE):\n"
  "        \"\"\"Iterate over the data in chunks of at most size bytes.\"\"\"\n"
  "        if size <= 0:\n"
  "            raise ValueError('chunk size must be > 0')\n"
  "        while True:\n"
  "            chunk = await self.read(size)\n"
  "            if not chunk:\n"
  "                return\n"
  "            yield chunk\n"
  "\n"
  "    def __aiter__(self):\n"
  "        return self\n"
  "\n"
  "    async def __anext__(self):\n"
  "        line = await self.readline()\n"
  "        if line == b'':\n"
  "            raise StopAsyncIteration\n"
  "        return line\n"
  "\n"
  "    def close(self):\n"
  "        \"\"\"Close the GIO stream (a read in flight is cancelled first).\n"
  "        Buffered data can still be read; then the reader is at its end.\"\"\"\n"
  "        if self._closed is not None:\n"
  "            return\n"
  "        if self._pending is not None and not self._pending.done():\n"
  "            self._pending.cancel()\n"
  "        self._pending = None\n"
  "        self._eof = True\n"
  "        self._closed = self._stream.close()\n"
  "        self._closed.add_done_callback(_retrieve)\n"
  "\n"
  "    def is_closing(self):\n"
  "        \"\"\"True once close() was called.\"\"\"\n"
  "        return self._closed is not None\n"
  "\n"
  "    async def wait_closed(self):\n"
  "        \"\"\"Wait until the stream is closed (closing it if need be).\"\"\"\n"
  "        self.close()\n"
  "        await asyncio.shield(self._closed)\n"
  "\n"
  "    async def __aenter__(self):\n"
  "        return self\n"
  "\n"
  "    async def __aexit__(self, *exc_info):\n"
  "        await self.wait_closed()\n"
  "\n"
  "\n"
  "class StreamWriter:\n"
  "    \"\"\"An asyncio.StreamWriter over a GIO output stream.\n"
  "\n"
  "    write() and writelines() buffer and return at once; the data is written\n"
  "    on the gasyncbridge runtime thread, one GIO write at a time, in order.\n"
  "    drain() waits while more than the high-water mark is buffered (until it\n"
  "    falls to the low-water mark) and raises a write error. close() writes\n"
  "    what is buffered, then closes the stream; wait_closed() waits for that.\n"
  "    \"\"\"\n"
  "\n"
  "    def __init__(self, stream, *, high=None, low=None):\n"
  "        self._stream = _as_stream(stream, 'output', 'StreamWriter')\n"
  "        self._buffer = bytearray()\n"
  "        self._inflight = 0\n"
  "        self._pump_task = None\n"
  "        self._exception = None\n"
  "        self._closing = False\n"
  "        self._closed = None\n"
  "        self._close_error = None\n"
  "        self._drain_waiters = collections.deque()\n"
  "        self.set_write_buffer_limits(high, low)\n"
  "\n"
  "    def __repr__(self):\n"
  "        info = ['StreamWriter', f'buffered={self.get_write_buffer_size()}']\n"
  "        if self._closing:\n"
  "            info.append('closing')\n"
  "        if self._exception is not None:\n"
  "            info.append(f'exception={self._exception!r}')\n"
  "        return '<{}>'.format(' '.join(info))\n"
  "\n"
  "    @property\n"
  "    def transport(self):\n"
  "        \"\"\"asyncio compatibility: there is no transport; None.\"\"\"\n"
  "        return None\n"
  "\n"
  "    def get_extra_info(self, name, default=None):\n"
  "        \"\"\"asyncio compatibility: a GIO stream has no transport extras; returns default.\"\"\"\n"
  "        return default\n"
  "\n"
  "    def set_write_buffer_limits(self, high=None, low=None):\n"
  "        \"\"\"Set the high and low water marks that drain() waits between.\"\"\"\n"
  "        if high is None:\n"
  "            high = 64 * 1024 if low is None else 4 * low\n"
  "        if low is None:\n"
  "            low = high // 4\n"
  "        if not high >= low >= 0:\n"
  "            raise ValueError(f'high ({high!r}) must be >= low ({low!r}) must be >= 0')\n"
  "        self._high = high\n"
  "        self._low = low\n"
  "\n"
  "    def get_write_buffer_limits(self):\n"
  "        \"\"\"The (low, high) water marks.\"\"\"\n"
  "        return (self._low, self._high)\n"
  "\n"
  "    def get_write_buffer_size(self):\n"
  "        \"\"\"Bytes buffered or being written.\"\"\"\n"
  "        return len(self._buffer) + self._inflight\n"
  "\n"
  "    def can_write_eof(self):\n"
  "        \"\"\"False: a GIO output stream has no half-close.\"\"\"\n"
  "        return False\n"
  "\n"
  "    def write_eof(self):\n"
  "        \"\"\"Not supported: raises NotImplementedError (use close()).\"\"\"\n"
  "        raise NotImplementedError('a GIO output stream has no half-close: use close()')\n"
  "\n"
  "    def write(self, data):\n"
  "        \"\"\"Buffer data for writing; call drain() to wait for room.\"\"\"\n"
  "        if not isinstance(data, (bytes, bytearray, memoryview)):\n"
  "            raise TypeError(f'data argument must be a bytes-like object, '\n"
  "                            f'not {type(data).__name__!r}')\n"
  "        if self._closing:\n"
  "            raise RuntimeError('write() called after close()')\n"
  "        if self._exception is not None or not data:\n"
  "            # as asyncio after a lost connection: dropped; drain() raises\n"
  "            return\n"
  "        self._buffer += data\n"
  "        if self._pump_task is None:\n"
  "            self._pump_task = _keep(asyncio.get_running_loop().create_task(self._pump()))\n"
  "\n"
  "    def writelines(self, data):\n"
  "        \"\"\"Buffer each chunk of an iterable of bytes-like objects.\"\"\"\n"
  "        for chunk in data:\n"
  "            self.write(chunk)\n"
  "\n"
  "    async def _pump(self):\n"
  "        try:\n"
  "            while self._buffer and self._exception is None:\n"
  "                data = self._buffer\n"
  "                self._buffer = bytearray()\n"
  "                self._inflight = len(data)\n"
  "                try:\n"
  "                    await self._stream.write(data)\n"
  "                except Exception as exc:\n"
  "                    self._exception = exc\n"
  "                    self._buffer = bytearray()\n"
  "                finally:\n"
  "                    self._inflight = 0\n"
  "                    data = None\n"
  "                self._wake_drainers()\n"
  "            if self._closing:\n"
  "                try:\n"
  "                    await self._stream.close()\n"
  "                except Exception as exc:\n"
  "                    self._close_error = exc\n"
  "                self._closed.set_result(None)\n"
  "        finally:\n"
  "            self._pump_task = None\n"
  "            self._wake_drainers(force=True)\n"
  "\n"
  "    def _wake_drainers(self, force=False):\n"
  "        if force or self._exception is not None or self.get_write_buffer_size() <= self._low:\n"
  "            while self._drain_waiters:\n"
  "                waiter = self._drain_waiters.popleft()\n"
  "                if not waiter.done():\n"
  "                    waiter.set_result(None)\n"
  "\n"
  "    async def drain(self):\n"
  "        \"\"\"Wait until the buffer is small enough; raise a write error.\"\"\"\n"
  "        if self._exception is not None:\n"
  "            raise self._exception\n"
  "        while self.get_write_buffer_size() > self._high and self._pump_task is not None:\n"
  "            waiter = asyncio.get_running_loop().create_future()\n"
  "            self._drain_waiters.append(waiter)\n"
  "            try:\n"
  "                await waiter\n"
  "            finally:\n"
  "                try:\n"
  "                    self._drain_waiters.remove(waiter)\n"
  "                except ValueError:\n"
  "                    pass\n"
  "            if self._exception is not None:\n"
  "                raise self._exception\n"
  "\n"
  "    def close(self):\n"
  "        \"\"\"Write what is buffered, then close the stream (see wait_closed).\"\"\"\n"
  "        if self._closing:\n"
  "            return\n"
  "        self._closing = True\n"
  "        loop = asyncio.get_running_loop()\n"
  "        self._closed = loop.create_future()\n"
  "        if self._pump_task is None:\n"
  "            self._pump_task = _keep(loop.create_task(self._pump()))\n"
  "\n"
  "    def is_closing(self):\n"
  "        \"\"\"True once close() was called.\"\"\"\n"
  "        return self._closing\n"
  "\n"
  "    async def wait_closed(self):\n"
  "        \"\"\"Wait until closed (closing if need be); raise a write or close error.\"\"\"\n"
  "        self.close()\n"
  "        await asyncio.shield(self._closed)\n"
  "        if self._close_error is not None:\n"
  "            raise self._close_error\n"
  "        if self._exception is not None:\n"
  "            raise self._exception\n"
  "\n"
  "    async def __aenter__(self):\n"
  "        return self\n"
  "\n"
  "    async def __aexit__(self, *exc_info):\n"
  "        await self.wait_closed()\n"
  "\n"
  "\n"
  "StreamReader.__module__ = StreamWriter.__module__ = 'gasyncbridge'\n";

static PyObject *reader_class;   /* GIL; strong, for the interpreter's life */
static PyObject *writer_class;

/* ---- one stream's queue of GIO calls (runtime thread) ----------------- */

typedef struct
{
  gint     ref_count;
  GObject *stream;    /* a GInputStream or a GOutputStream */
  /* runtime thread */
  GQueue   waiting;   /* StreamOp *, not started */
  gboolean busy;      /* a GIO call is pending */
} StreamCore;

typedef enum
{
  OP_READ,
  OP_WRITE,
  OP_CLOSE,
} OpKind;

typedef struct
{
  OpKind      kind;
  StreamCore *core;
  GTask      *task;     /* runtime thread: reports to the bridge */
  PyObject   *bytes;    /* OP_READ: the bytes object read into (GIL) */
  gsize       size;     /* OP_READ: its size */
  Py_buffer   view;     /* OP_WRITE: the data, pinned */
  gboolean    has_view;
} StreamOp;

static StreamCore *
stream_core_ref (StreamCore *core)
{
  g_atomic_int_inc (&core->ref_count);
  return core;
}

static void
stream_core_unref (StreamCore *core)
{
  if (!g_atomic_int_dec_and_test (&core->ref_count))
    return;
  g_assert (core->waiting.length == 0);
  g_object_unref (core->stream);
  g_free (core);
}

static void stream_run_next (StreamCore *core);

/* Runtime thread: the GIO call of the current op returned. */
static void
stream_op_ready (GObject      *source,
                 GAsyncResult *result,
                 gpointer      data)
{
  StreamOp *op = data;
  /* Returning the task may complete the Python future at once, and the op
   * (and the last other reference to the core) may be freed meanwhile on
   * the loop thread: neither is touched after, but for our own ref. */
  StreamCore *core = stream_core_ref (op->core);
  GTask *task = g_steal_pointer (&op->task);
  GError *error = NULL;

  switch (op->kind)
    {
    case OP_READ:
      {
        gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);

        if (n >= 0)
          g_task_return_int (task, n);
      }
      break;
    case OP_WRITE:
      if (g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error))
        g_task_return_boolean (task, TRUE);
      break;
    case OP_CLOSE:
      if (G_IS_INPUT_STREAM (source)
          ? g_input_stream_close_finish (G_INPUT_STREAM (source), result, &error)
          : g_output_stream_close_finish (G_OUTPUT_STREAM (source), result, &error))
        g_task_return_boolean (task, TRUE);
      break;
    }
  if (error != NULL)
    g_task_return_error (task, error);
  g_object_unref (task);
  core->busy = FALSE;
  stream_run_next (core);
  stream_core_unref (core);
}

static void
stream_run_next (StreamCore *core)
{
  StreamOp *op;

  /* Completing a task may free its op, and with it a reference to us. */
  stream_core_ref (core);
  while (!core->busy && (op = g_queue_pop_head (&core->waiting)) != NULL)
    {
      GCancellable *cancellable = g_task_get_cancellable (op->task);

      if (g_cancellable_is_cancelled (cancellable))
        {
          /* Given up before its turn came. */
          GTask *task = g_steal_pointer (&op->task);

          g_task_return_error_if_cancelled (task);
          g_object_unref (task);
          continue;
        }
      core->busy = TRUE;
      switch (op->kind)
        {
        case OP_READ:
          g_input_stream_read_async (G_INPUT_STREAM (core->stream),
                                     PyBytes_AS_STRING (op->bytes), op->size,
                                     G_PRIORITY_DEFAULT, cancellable,
                                     stream_op_ready, op);
          break;
        case OP_WRITE:
          g_output_stream_write_all_async (G_OUTPUT_STREAM (core->stream),
                                           op->view.buf, (gsize) op->view.len,
                                           G_PRIORITY_DEFAULT, cancellable,
                                           stream_op_ready, op);
          break;
        case OP_CLOSE:
          if (G_IS_INPUT_STREAM (core->stream))
            g_input_stream_close_async (G_INPUT_STREAM (core->stream), G_PRIORITY_DEFAULT,
                                        cancellable, stream_op_ready, op);
          else
            g_output_stream_close_async (G_OUTPUT_STREAM (core->stream), G_PRIORITY_DEFAULT,
                                         cancellable, stream_op_ready, op);
          break;
        }
    }
  stream_core_unref (core);
}

/* GabStartFunc, runtime thread. */
static void
stream_op_start (GCancellable        *cancellable,
                 GAsyncReadyCallback  callback,
                 gpointer             callback_data,
                 gpointer             user_data)
{
  StreamOp *op = user_data;

  op->task = g_task_new (op->core->stream, cancellable, callback, callback_data);
  g_task_set_source_tag (op->task, stream_op_start);
  g_queue_push_tail (&op->core->waiting, op);
  stream_run_next (op->core);
}

/* GabFinishFunc, loop thread with the GIL. */
static PyObject *
stream_op_finish (GObject       *source,
                  GAsyncResult  *result,
                  gpointer       user_data,
                  GError       **error)
{
  StreamOp *op = user_data;

  if (op->kind == OP_READ)
    {
      gssize n = g_task_propagate_int (G_TASK (result), error);
      PyObject *bytes;

      if (n < 0)
        return NULL;
      bytes = g_steal_pointer (&op->bytes);
      if ((gsize) n < op->size && _PyBytes_Resize (&bytes, n) < 0)
        return NULL;
      return bytes;
    }
  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  Py_RETURN_NONE;
}

/* GIL (user_data_free). */
static void
stream_op_free (gpointer data)
{
  StreamOp *op = data;

  g_assert (op->task == NULL);
  Py_XDECREF (op->bytes);
  if (op->has_view)
    PyBuffer_Release (&op->view);
  stream_core_unref (op->core);
  g_free (op);
}

/* ---- _GioStream ------------------------------------------------------- */

typedef struct
{
  PyObject_HEAD
  StreamCore *core;
} GioStream;

static PyTypeObject GioStream_Type;

static PyObject *
gio_stream_new (GObject *stream)
{
  GioStream *self = PyObject_New (GioStream, &GioStream_Type);

  if (self == NULL)
    return NULL;
  self->core = g_new0 (StreamCore, 1);
  self->core->ref_count = 1;
  self->core->stream = g_object_ref (stream);
  return (PyObject *) self;
}

static StreamOp *
stream_op_new (GioStream *self,
               OpKind     kind)
{
  StreamOp *op = g_new0 (StreamOp, 1);

  op->kind = kind;
  op->core = stream_core_ref (self->core);
  return op;
}

static PyObject *
gio_stream_read (PyObject *object,
                 PyObject *arg)
{
  GioStream *self = (GioStream *) object;
  Py_ssize_t size = PyLong_AsSsize_t (arg);
  StreamOp *op;

  if (size == -1 && PyErr_Occurred ())
    return NULL;
  if (!G_IS_INPUT_STREAM (self->core->stream))
    return PyErr_Format (PyExc_TypeError, "read() needs an input stream");
  if (size <= 0)
    return PyErr_Format (PyExc_ValueError, "read() needs a size > 0, not %zd", size);
  op = stream_op_new (self, OP_READ);
  op->size = (gsize) size;
  op->bytes = PyBytes_FromStringAndSize (NULL, size);
  if (op->bytes == NULL)
    {
      stream_op_free (op);
      return NULL;
    }
  return gab_future_into_py (stream_op_start, stream_op_finish, op, stream_op_free);
}

static PyObject *
gio_stream_write (PyObject *object,
                  PyObject *data)
{
  GioStream *self = (GioStream *) object;
  StreamOp *op;

  if (!G_IS_OUTPUT_STREAM (self->core->stream))
    return PyErr_Format (PyExc_TypeError, "write() needs an output stream");
  op = stream_op_new (self, OP_WRITE);
  /* The export pins the memory (a bytearray cannot resize meanwhile): the
   * runtime thread writes from it without the GIL. */
  if (PyObject_GetBuffer (data, &op->view, PyBUF_SIMPLE) < 0)
    {
      stream_op_free (op);
      return NULL;
    }
  op->has_view = TRUE;
  return gab_future_into_py (stream_op_start, stream_op_finish, op, stream_op_free);
}

static PyObject *
gio_stream_close (PyObject *object,
                  PyObject *unused)
{
  return gab_future_into_py (stream_op_start, stream_op_finish,
                             stream_op_new ((GioStream *) object, OP_CLOSE),
                             stream_op_free);
}

static PyObject *
gio_stream_wrap (PyObject *cls,
                 PyObject *object)
{
  PyObject *capsule = PyObject_GetAttrString (object, "__gpointer__");
  GObject *gobject;
  PyObject *ret;

  if (capsule == NULL)
    return NULL;
  gobject = PyCapsule_CheckExact (capsule) ? PyCapsule_GetPointer (capsule, NULL) : NULL;
  Py_DECREF (capsule);
  if (gobject == NULL || !G_IS_OBJECT (gobject)
      || !(G_IS_INPUT_STREAM (gobject) || G_IS_OUTPUT_STREAM (gobject)))
    {
      PyErr_Clear ();
      return PyErr_Format (PyExc_TypeError,
                           "a Gio.InputStream or Gio.OutputStream is needed, not '%s'",
                           Py_TYPE (object)->tp_name);
    }
  ret = gio_stream_new (gobject);
  return ret;
}

static PyObject *
gio_stream_get_kind (PyObject *object,
                     void     *closure)
{
  GioStream *self = (GioStream *) object;

  return PyUnicode_FromString (G_IS_INPUT_STREAM (self->core->stream) ? "input" : "output");
}

static PyObject *
gio_stream_repr (PyObject *object)
{
  GioStream *self = (GioStream *) object;

  return PyUnicode_FromFormat ("<gasyncbridge._GioStream %s at %p>",
                               G_OBJECT_TYPE_NAME (self->core->stream), self->core->stream);
}

static void
gio_stream_dealloc (PyObject *object)
{
  GioStream *self = (GioStream *) object;

  /* Ops in flight hold their own references to the core. */
  stream_core_unref (self->core);
  Py_TYPE (object)->tp_free (object);
}

static PyMethodDef gio_stream_methods[] = {
  { "read", gio_stream_read, METH_O,
    "read(size)\n--\n\nA future of up to size bytes (b'' at the end)." },
  { "write", gio_stream_write, METH_O,
    "write(data)\n--\n\nA future done when all of data is written." },
  { "close", gio_stream_close, METH_NOARGS,
    "close()\n--\n\nA future done when the stream is closed." },
  { "wrap", gio_stream_wrap, METH_O | METH_CLASS,
    "wrap(stream)\n--\n\nWrap a PyGObject Gio.InputStream or Gio.OutputStream." },
  { NULL }
};

static PyGetSetDef gio_stream_getset[] = {
  { "kind", gio_stream_get_kind, NULL, "'input' or 'output'", NULL },
  { NULL }
};

static PyTypeObject GioStream_Type = {
  PyVarObject_HEAD_INIT (NULL, 0)
  .tp_name = "gasyncbridge._GioStream",
  .tp_basicsize = sizeof (GioStream),
  .tp_flags = Py_TPFLAGS_DEFAULT,
  .tp_dealloc = gio_stream_dealloc,
  .tp_repr = gio_stream_repr,
  .tp_methods = gio_stream_methods,
  .tp_getset = gio_stream_getset,
  .tp_doc = "One GIO stream's calls as asyncio futures, run one at a time in order.",
};

/* GIL: compile the reader and writer classes, once. */
static gboolean
stream_classes_init (void)
{
  PyObject *globals, *names;

  if (reader_class != NULL)
    return TRUE;
  if (!gab_python_ensure () || PyType_Ready (&GioStream_Type) < 0)
    return FALSE;
  names = Py_BuildValue ("{s:O}", "_GioStream", (PyObject *) &GioStream_Type);
  if (names == NULL)
    return FALSE;
  /* The classes' __module__: where users meet them. */
  globals = gab_py_run_source (stream_source, "gasyncbridge", names);
  Py_DECREF (names);
  if (globals == NULL)
    return FALSE;
  reader_class = Py_XNewRef (PyDict_GetItemString (globals, "StreamReader"));
  writer_class = Py_XNewRef (PyDict_GetItemString (globals, "StreamWriter"));
  Py_DECREF (globals);
  return reader_class != NULL && writer_class != NULL;
}

/**
 * gab_stream_reader_get_class:
 *
 * The `gasyncbridge.StreamReader` class (see gab_stream_reader_new()), for
 * a module to export or for isinstance() checks. Needs the GIL.
 *
 * Returns: (transfer none) (nullable): the class, or %NULL with an
 *   exception set
 */
PyObject *
gab_stream_reader_get_class (void)
{
  g_return_val_if_fail (GAB_GIL_HELD (), NULL);
  if (!stream_classes_init ())
    return NULL;
  return reader_class;
}

/**
 * gab_stream_writer_get_class:
 *
 * The `gasyncbridge.StreamWriter` class (see gab_stream_writer_new()).
 * Needs the GIL.
 *
 * Returns: (transfer none) (nullable): the class, or %NULL with an
 *   exception set
 */
PyObject *
gab_stream_writer_get_class (void)
{
  g_return_val_if_fail (GAB_GIL_HELD (), NULL);
  if (!stream_classes_init ())
    return NULL;
  return writer_class;
}

/**
 * gab_stream_reader_new:
 * @stream: any #GInputStream
 * @limit: the buffer limit in bytes (the longest line readline() and
 *   readuntil() accept), or 0 or less for %GAB_STREAM_DEFAULT_LIMIT
 *
 * Makes a `gasyncbridge.StreamReader` over @stream: `read(n=-1)`,
 * `readexactly(n)`, `readline()`, `readuntil(separator=b'\n')`, `at_eof()`
 * and `async for` over lines behave as asyncio.StreamReader's (with
 * asyncio.IncompleteReadError and asyncio.LimitOverrunError);
 * `iter_chunks(size)` iterates over chunks; `close()`, `wait_closed()` and
 * `async with` close @stream. The GIO reads run on the runtime thread, one
 * at a time and only when a caller needs data; GIO errors raise the mapped
 * exceptions (see gab-error.h). Use it from coroutines of one event loop.
 * The reader keeps a reference to @stream. Needs the GIL.
 *
 * Returns: (transfer full) (nullable): the reader, or %NULL with an
 *   exception set
 */
PyObject *
gab_stream_reader_new (GInputStream *stream,
                       gssize        limit)
{
  PyObject *gio, *reader;

  g_return_val_if_fail (G_IS_INPUT_STREAM (stream), NULL);
  g_return_val_if_fail (GAB_GIL_HELD (), NULL);

  if (!stream_classes_init ())
    return NULL;
  gio = gio_stream_new (G_OBJECT (stream));
  if (gio == NULL)
    return NULL;
  reader = PyObject_CallFunction (reader_class, "On", gio,
                                  limit > 0 ? (Py_ssize_t) limit
                                            : (Py_ssize_t) GAB_STREAM_DEFAULT_LIMIT);
  Py_DECREF (gio);
  return reader;
}

/**
 * gab_stream_writer_new:
 * @stream: any #GOutputStream
 *
 * Makes a `gasyncbridge.StreamWriter` over @stream, with
 * asyncio.StreamWriter's `write()`, `writelines()`, `drain()`, `close()`,
 * `is_closing()` and `wait_closed()`, and the transports'
 * `set_write_buffer_limits()` and `get_write_buffer_size()`. Writes buffer
 * at once; the GIO writes run on the runtime thread, one at a time, in
 * order; `drain()` waits while more than the high-water mark (64 KiB by
 * default) is buffered or being written, and raises a write error. Needs
 * the GIL.
 *
 * Returns: (transfer full) (nullable): the writer, or %NULL with an
 *   exception set
 */
PyObject *
gab_stream_writer_new (GOutputStream *stream)
{
  PyObject *gio, *writer;

  g_return_val_if_fail (G_IS_OUTPUT_STREAM (stream), NULL);
  g_return_val_if_fail (GAB_GIL_HELD (), NULL);

  if (!stream_classes_init ())
    return NULL;
  gio = gio_stream_new (G_OBJECT (stream));
  if (gio == NULL)
    return NULL;
  writer = PyObject_CallOneArg (writer_class, gio);
  Py_DECREF (gio);
  return writer;
}
