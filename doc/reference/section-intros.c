/* section-intros.c: the introduction of each page of the API reference.
 *
 * Not compiled: gtk-doc reads the SECTION comments below (one page per
 * public header) while the symbols' own comments stay next to their code
 * in include/gasyncbridge/ and gasyncbridge/. The guide (doc/guide/) is
 * where the concepts are explained; these pages say where to look.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

/**
 * SECTION:gab-runtime
 * @title: Runtime
 * @short_description: the GLib thread that runs GIO work
 * @include: gasyncbridge/gasyncbridge.h
 *
 * The runtime is a #GMainContext run by a #GMainLoop on a background thread
 * named "gab-runtime" (or, after gab_init_with_context(), the application's
 * own context). GIO operations that the bridge starts begin there, so their
 * callbacks come back there. Every bridge call starts it on first use;
 * gab_shutdown() stops it, and runs by itself at Python interpreter exit.
 *
 * This layer includes no Python.h and needs no GIL.
 */

/**
 * SECTION:gab-future
 * @title: C futures in Python
 * @short_description: a GIO-style operation as an asyncio.Future
 * @include: gasyncbridge/gasyncbridge.h
 *
 * gab_future_into_py() is how a binding makes a C asynchronous operation
 * awaitable: a #GabStartFunc starts it on the runtime thread, a
 * #GabFinishFunc turns its result into a Python value on the loop thread.
 * Cancelling the future cancels the operation's #GCancellable; with
 * %GAB_FUTURE_CANCEL_WAITS (gab_future_into_py_full()) the future completes
 * only once the operation has reported back. The guide's
 * chapter "Awaiting GIO in Python" walks through a whole binding.
 */

/**
 * SECTION:gab-into-future
 * @title: Python awaitables in C
 * @short_description: await any Python awaitable as a GIO-style operation
 * @include: gasyncbridge/gasyncbridge.h
 *
 * gab_into_future_async() runs a coroutine, future or any object with
 * `__await__` as a task of the caller's event loop and completes a #GTask
 * with its outcome; gab_into_future_finish() returns it. Both need the GIL.
 * For C code that holds no Python objects, see gab_call_async().
 */

/**
 * SECTION:gab-call
 * @title: Calling Python with GVariants
 * @short_description: call `module.function(*args)` from C without the GIL
 * @include: gasyncbridge/gasyncbridge.h
 *
 * gab_call_async() imports a module, calls a function with #GVariant
 * arguments, awaits the result if it is awaitable and converts it back to
 * a #GVariant. It works from any thread and never needs the GIL: the
 * Python part runs on the event loop of the current task locals.
 */

/**
 * SECTION:gab-loop
 * @title: Running event loops
 * @short_description: asyncio loops driven from C, in either thread topology
 * @include: gasyncbridge/gasyncbridge.h
 *
 * gab_run(), gab_run_until_complete() and gab_run_forever() run an asyncio
 * loop on the calling thread (Python keeps the main thread, the default);
 * gab_start_asyncio_thread() runs one on a background thread for programs
 * whose main thread runs a GLib main loop. While a loop runs through these
 * functions it is the default task locals, so C code that knows no loop
 * sends its Python work there.
 */

/**
 * SECTION:gab-task-locals
 * @title: Task locals
 * @short_description: which event loop and contextvars.Context Python work uses
 * @include: gasyncbridge/gasyncbridge.h
 *
 * A #GabTaskLocals pairs an asyncio loop with a `contextvars.Context`. The
 * bridge captures the caller's when Python calls into C and makes them
 * current while C works on its behalf; gab_task_locals_push() and
 * gab_task_locals_pop() carry them into callbacks of your own.
 */

/**
 * SECTION:gab-main
 * @title: Async main
 * @short_description: the main function of a C program that embeds Python
 * @include: gasyncbridge/gasyncbridge.h
 *
 * GAB_MAIN() defines main() for a program whose main is asynchronous: it
 * embeds Python, keeps the main thread for asyncio, runs the #GabMainFunc on
 * the runtime thread, turns SIGINT and SIGTERM into cancellation and the
 * outcome into the exit status.
 */

/**
 * SECTION:gab-testing
 * @title: Test harness
 * @short_description: GAB_TEST(), GAB_ASYNC_TEST() and GAB_TEST_MAIN() for meson test
 * @include: gasyncbridge/gab-testing.h
 *
 * Tests that await Python and GIO, registered by the macros themselves,
 * each run in a child process with a timeout, with TAP output for
 * `meson test`. A blocking test runs on a worker thread, an asynchronous
 * one on the runtime thread; the main thread runs the asyncio loop.
 */

/**
 * SECTION:gab-error
 * @title: Errors
 * @short_description: GError and Python exceptions, both ways
 * @include: gasyncbridge/gasyncbridge.h
 *
 * The mapping, both ways (the guide's chapter "Errors" has the details):
 *
 * - %G_IO_ERROR_CANCELLED: asyncio.CancelledError
 * - %G_IO_ERROR_TIMED_OUT: TimeoutError
 * - errno-like codes of %G_IO_ERROR, %G_FILE_ERROR and %G_SPAWN_ERROR
 *   (%G_IO_ERROR_NOT_FOUND, %G_IO_ERROR_EXISTS, ...): the OSError subclass
 *   of that errno (FileNotFoundError, FileExistsError, ...)
 * - %GAB_PYTHON_ERROR: the very exception object it keeps, traceback and all
 * - any other #GError: gasyncbridge.GLibError
 *
 * Each exception made from a #GError carries its `.domain` (str) and
 * `.code` (int).
 */

/**
 * SECTION:gab-variant
 * @title: GVariant and Python values
 * @short_description: the conversions gab_call_async() and the channels use
 * @include: gasyncbridge/gasyncbridge.h
 *
 * gab_variant_to_python() and gab_variant_from_python() convert between
 * #GVariant and Python values: numbers, strings, bytes, tuples, lists,
 * dicts, maybes and variants.
 */

/**
 * SECTION:gab-version
 * @title: Version and visibility
 * @short_description: version numbers, version checks and GAB_EXTERN
 * @include: gasyncbridge/gasyncbridge.h
 *
 * The version is defined once, in the project() of the top-level
 * meson.build, and generated into this header (gab-version.h), the
 * pkg-config files, the Python package metadata and
 * `gasyncbridge.__version__`.
 *
 * %GAB_CHECK_VERSION checks the headers a program is compiled with,
 * gab_check_version() the library it runs with, which can be newer: every
 * 0.x release keeps the soname libgasyncbridge-1-python3.X.so.0.
 *
 * %GAB_EXTERN is the macro that exports a symbol.
 */

/**
 * SECTION:gab-async-iterator
 * @title: GabAsyncIterator
 * @short_description: a Python async iterable consumed from C
 * @include: gasyncbridge/gasyncbridge.h
 *
 * A #GabAsyncIterator hands the items of an async generator (or any async
 * iterable) to C one request at a time, with a bounded read-ahead, in the
 * iterable's own event loop and context. Cancelling a request closes the
 * iterable, whose `finally` blocks run.
 */

/**
 * SECTION:gab-input-stream
 * @title: GabInputStream
 * @short_description: a GInputStream fed by a Python async iterable of bytes
 * @include: gasyncbridge/gasyncbridge.h
 *
 * gab_input_stream_new() makes a #GInputStream whose bytes are the chunks
 * of a Python async iterable: splice it into a file, a socket or a
 * subprocess with the usual GIO calls.
 */

/**
 * SECTION:gab-stream
 * @title: Stream readers and writers
 * @short_description: any GIO stream as asyncio.StreamReader / StreamWriter
 * @include: gasyncbridge/gasyncbridge.h
 *
 * gab_stream_reader_new() and gab_stream_writer_new() give Python code
 * asyncio's stream API over any #GInputStream and #GOutputStream: the
 * bindings `gasyncbridge.gio.open_read()` and `open_write()` use them.
 */

/**
 * SECTION:gab-channel
 * @title: GabChannel
 * @short_description: a bounded channel from C threads to Python `async for`
 * @include: gasyncbridge/gasyncbridge.h
 *
 * C code on any thread sends #GVariant items with gab_channel_send_async(),
 * which waits while the channel is full; one Python consumer iterates over
 * gab_channel_to_python() with `async for`.
 */

/**
 * SECTION:gab-event-channel
 * @title: GabEventChannel
 * @short_description: events from any thread to Python, batched, never blocking
 * @include: gasyncbridge/gasyncbridge.h
 *
 * C code on any thread — a signal handler, a D-Bus callback, a monitor —
 * pushes events with gab_event_channel_push(), which never waits: a full
 * channel drops or closes by its #GabEventOverflow policy and counts the
 * drops. One Python consumer takes them on its asyncio loop, with `async
 * for` or a callback (gab_event_channel_to_python()); a burst of events
 * costs one wakeup of the loop, each event is made a Python object by the
 * channel's #GabEventConvertFunc only when it is taken, and the consumer
 * yields to the loop every 256 events or 1 ms. `gasyncbridge.signals()`
 * and `gasyncbridge.dbus` are built on it.
 */
