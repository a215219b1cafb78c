# SPDX-License-Identifier: LGPL-2.1-or-later
"""The loop of gab_main(): run by gab-main.c as "gasyncbridge._gab_main", in
Python because it is asyncio.run() with a shutdown that always ends, and
that is asyncio code.

- SIGINT or SIGTERM cancels the program's task (on_signal). If it has not
  finished `grace` seconds later, the program exits anyway, saying so. A
  second signal exits at once, as asyncio.run() does on a second Ctrl-C.
- When the program's task is over, the tasks still running are cancelled
  and waited for, for at most `grace` seconds; so are the async
  generators and the default executor. What is still running then is
  named, and the program exits without waiting for it.

run() returns (forced, exception): forced is True when gab_main() must exit
without finalizing (something still runs); exception is how the program's
task ended (None, or the exception: CancelledError, KeyboardInterrupt,
SystemExit, or the program's error).
"""
import asyncio
import signal
import sys

# Defined by gab-main.c before this runs: gab_asyncio_task_forget_quietly(),
# the one place that tells a task not to log that it was dropped pending.
_forget_quietly = globals()["_forget_quietly"]


def _name(signum):
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f'signal {signum}'


def _say(prog, text):
    try:
        sys.stdout.flush()
    except Exception:
        pass
    sys.stderr.write(f'{prog}: {text}\n')
    sys.stderr.flush()


def _describe(task):
    coro = task.get_coro()
    frame = getattr(coro, 'cr_frame', None)
    inner = frame.f_locals.get('coro') if frame is not None else None
    return repr(inner if inner is not None else coro)


def _bounded(loop, aws, grace):
    aws = [asyncio.ensure_future(a, loop=loop) for a in aws]
    if not aws:
        return [], []
    done, pending = loop.run_until_complete(asyncio.wait(aws, timeout=grace))
    return done, pending


def run(main, grace, on_signal, prog):
    loop = asyncio.new_event_loop()
    state = {'signum': 0, 'why': None}
    def give_up(signum):
        state['why'] = (f'still running {grace:g} s after {_name(signum)} '
                        'cancelled it; exiting anyway')
        loop.stop()
    def signalled(signum):
        if state['signum'] == 0:
            state['signum'] = signum
            on_signal(signum)
            state['timer'] = loop.call_later(grace, give_up, signum)
        elif state['why'] is None:
            state['why'] = f'{_name(signum)} again: exiting at once'
            loop.stop()
    outcome = None
    stuck = []
    try:
        asyncio.set_event_loop(loop)
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, signalled, signum)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        task = loop.create_task(main)
        try:
            loop.run_until_complete(task)
        except BaseException as exc:
            if state['why'] is None or task.done():
                outcome = exc
        if state.get('timer') is not None:
            state['timer'].cancel()   # the task is over: the end has its own limit
        if state['why'] is None:
            others = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in others:
                t.cancel()
            try:
                done, pending = _bounded(loop, others, grace)
                for t in done:
                    if not t.cancelled() and t.exception() is not None:
                        loop.call_exception_handler({
                            'message': 'unhandled exception during gab_main() shutdown',
                            'exception': t.exception(), 'task': t})
                stuck = list(pending)
                if stuck:
                    names = ', '.join(_describe(t) for t in stuck[:5])
                    more = f' and {len(stuck) - 5} more' if len(stuck) > 5 else ''
                    state['why'] = (f'{len(stuck)} task(s) still running {grace:g} s '
                                    f'after being cancelled at exit: {names}{more}; '
                                    'exiting anyway')
                else:
                    _, pending = _bounded(loop, [loop.shutdown_asyncgens()], grace)
                    if pending:
                        stuck = list(pending)
                        state['why'] = (f'async generators still closing {grace:g} s '
                                        'after exit; exiting anyway')
                    elif hasattr(loop, 'shutdown_default_executor'):
                        _, pending = _bounded(loop, [loop.shutdown_default_executor()], grace)
                        if pending:
                            stuck = list(pending)
                            state['why'] = ('threads of the default executor still '
                                            f'running {grace:g} s after exit; exiting anyway')
            except BaseException as exc:
                if state['why'] is None:
                    if not isinstance(exc, (KeyboardInterrupt, SystemExit)):
                        raise
                    if outcome is None:
                        outcome = exc
    finally:
        for t in asyncio.all_tasks(loop):
            _forget_quietly(t)
        try:
            asyncio.set_event_loop(None)
        finally:
            loop.close()
    if state['why'] is not None:
        _say(prog, state['why'])
    return state['why'] is not None, outcome
