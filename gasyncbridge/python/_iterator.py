# SPDX-License-Identifier: LGPL-2.1-or-later
"""The driver of a GabAsyncIterator: run by gab-async-iterator.c as
"gasyncbridge._iterator", in Python because it awaits the iterable's
`__anext__` and `aclose()` inside one task, as an `async for` would.

`drive(ait, sink)` advances the iterator; `sink.want()` answers True (fetch
one), False (stop) or a future to wait for; the sink's other methods take
what happened. Exceptions of the iterator are caught and kept,
BaseExceptions too: the C side gets them as errors, and none is left in the
task for asyncio to log as never retrieved. KeyboardInterrupt and SystemExit
also stop the loop, as they do from any task: raised again from a callback
of the loop, they leave its run_until_complete() / run_forever().
GeneratorExit goes on (the driver itself is being closed).
"""
import asyncio


def reraise(exc):
    raise exc


async def drive(ait, sink):
    anext = type(ait).__anext__
    try:
        while True:
            w = sink.want()
            if w is True:
                try:
                    item = await anext(ait)
                except StopAsyncIteration:
                    sink.end(None)
                    return
                except (Exception, asyncio.CancelledError) as exc:
                    sink.end(exc)
                    return
                except BaseException as exc:
                    sink.end(exc)
                    if isinstance(exc, GeneratorExit):
                        raise
                    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                        asyncio.get_running_loop().call_soon(reraise, exc)
                    return
                sink.item(item)
                item = None
            elif w is False:
                return
            else:
                await w
    finally:
        try:
            aclose = getattr(ait, 'aclose', None)
            if aclose is not None:
                await aclose()
        except (Exception, asyncio.CancelledError) as exc:
            sink.closed(exc)
        else:
            sink.closed(None)
