# SPDX-License-Identifier: LGPL-2.1-or-later
"""gasyncbridge.gio.Process and create_subprocess_exec: asyncio's subprocess
API over a GSubprocess (compiled once by gasyncbridge-subprocess.c, which
hands make_create_subprocess_exec() its C spawn function)."""
import asyncio
import signal
from asyncio.subprocess import PIPE, STDOUT, DEVNULL


class Process:
    """A child process, as asyncio.subprocess.Process: stdin is a
    gasyncbridge.StreamWriter, stdout and stderr are StreamReaders (or None),
    over the pipes of a GSubprocess; wait() runs on the gasyncbridge runtime."""

    def __init__(self, handle, stdin, stdout, stderr):
        self._handle = handle
        self._pid = handle.pid
        self._waiter = None
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.returncode = None

    def __repr__(self):
        return f'<Process {self._pid}>'

    @property
    def pid(self):
        """The process id."""
        return self._pid

    async def wait(self):
        """Wait for the process to end: its returncode (-N for signal N)."""
        if self.returncode is None:
            if self._waiter is None:
                self._waiter = self._handle.wait()
            # a cancelled caller does not stop the wait of the others
            self.returncode = await asyncio.shield(self._waiter)
        return self.returncode

    def send_signal(self, sig):
        """Send signal sig to the process."""
        self._handle.send_signal(int(sig))

    def terminate(self):
        """Send SIGTERM."""
        self.send_signal(signal.SIGTERM)

    def kill(self):
        """Send SIGKILL."""
        self.send_signal(signal.SIGKILL)

    async def _feed(self, input):
        if self.stdin is None:
            return
        try:
            if input:
                self.stdin.write(input)
            await self.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.stdin.close()
        try:
            await self.stdin.wait_closed()
        except (BrokenPipeError, ConnectionResetError):
            pass

    @staticmethod
    async def _drain(stream):
        if stream is None:
            return None
        data = await stream.read()
        await stream.wait_closed()
        return data

    async def communicate(self, input=None):
        """Send input, read stdout and stderr to the end, wait for the
        process: (stdout_data, stderr_data)."""
        _, out, err = await asyncio.gather(self._feed(input), self._drain(self.stdout),
                                           self._drain(self.stderr))
        await self.wait()
        return out, err


def make_create_subprocess_exec(spawn):
    async def create_subprocess_exec(program, *args, stdin=None, stdout=None,
                                     stderr=None, cwd=None, env=None, limit=2 ** 16,
                                     close_fds=False):
        """Start program with args on GSubprocess, as
        asyncio.create_subprocess_exec: stdin, stdout and stderr may be None
        (inherit), asyncio.subprocess.PIPE or DEVNULL (and STDOUT for
        stderr). Returns a Process whose pipes are gasyncbridge
        StreamWriter/StreamReader objects. The child inherits only
        descriptors without close-on-exec (so GLib can use posix_spawn);
        close_fds=True closes those too, with a fork."""
        for name, mode in (('stdin', stdin), ('stdout', stdout), ('stderr', stderr)):
            allowed = (None, PIPE, DEVNULL) + ((STDOUT,) if name == 'stderr' else ())
            if mode not in allowed:
                raise ValueError(f'{name} must be None, PIPE or DEVNULL'
                                 + (' or STDOUT' if name == 'stderr' else '')
                                 + f', not {mode!r}')
        if limit <= 0:
            raise ValueError('limit must be > 0')
        handle, w, r, e = spawn((program,) + args, 0 if stdin is None else stdin,
                                0 if stdout is None else stdout,
                                0 if stderr is None else stderr, cwd, env, limit,
                                bool(close_fds))
        return Process(handle, w, r, e)
    create_subprocess_exec.__module__ = 'gasyncbridge.gio'
    return create_subprocess_exec


Process.__module__ = 'gasyncbridge.gio'
