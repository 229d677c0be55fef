"""Ctrl-C and SIGTERM end every command within seconds, compiling included.

XLA compiles in C++ for minutes. It releases the GIL and polls Python's signal handlers; once a
handler has raised KeyboardInterrupt it holds the GIL until the compilation is done, so neither the
exception nor any other thread gets to run. Hence:

- the handlers (`install`) raise KeyboardInterrupt (or `Terminated`) as Python's own does, except
  while XLA compiles (the main thread's frame is in JAX's compiler module) or JAX's garbage-collector
  callback runs (which would swallow it): there the watchdog sets the exception for the main
  thread's next Python bytecode elsewhere (`PyThreadState_SetAsyncExc`), and the compilation goes
  on with the GIL released;
- the C-level handler writes the signal number to the pipe given to `signal.set_wakeup_fd` at
  once, and a watchdog thread waiting on it gives the main thread `FORCE_AFTER_S` seconds to stop
  the ordinary way (checkpoints, statuses and one-line messages as the command writes them). If the
  process is still there, it runs the callbacks registered with `on_interrupt` (each marks what it
  owns as interrupted, and may return a note on what was kept), prints one line with those notes and
  ends the process with `os._exit(128 + signal)`. A second Ctrl-C does that at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable

#: seconds the main thread gets to stop by itself after the first signal, before the process is ended
FORCE_AFTER_S = 7.0
_WATCHED = (signal.SIGINT, signal.SIGTERM)
#: where a handler must not raise: JAX's compiler module (XLA compiling, see the module's docstring) and
#: its library module, whose garbage-collector callback would swallow the exception ("Exception ignored")
_DEFER_IN = tuple(os.sep + os.path.join("jax", "_src", *name) for name in (("compiler.py",), ("lib", "__init__.py")))


class Terminated(KeyboardInterrupt):
    """SIGTERM (a SLURM time limit or preemption, `kill`): stopped like Ctrl-C."""


_callbacks: list[Callable[[], object]] = []
_lock = threading.Lock()
_installed: dict = {}
_deferred: list[type[BaseException]] = []  # exceptions a handler left for the watchdog to raise in the main thread
#: how often the watchdog looks for an exception to raise in the main thread, while a signal is pending
_POLL_S = 0.05


def on_interrupt(callback: Callable[[], object]) -> Callable[[], None]:
    """Run `callback` (quick, thread-safe: e.g. write a status file) if the process has to be ended
    from the watchdog; a string it returns is added to the last line (what was kept, how to continue).
    Returns the function that unregisters it again."""
    with _lock:
        _callbacks.append(callback)

    def remove() -> None:
        with _lock:
            if callback in _callbacks:
                _callbacks.remove(callback)

    return remove


def installed() -> bool:
    """Whether `install` has set this process's handlers (a `siqml` command, not a worker process of a sweep)."""
    return "thread" in _installed


def received() -> bool:
    """Whether SIGINT or SIGTERM has arrived (an exception raised since may be the interruption in disguise)."""
    return bool(_installed.get("signalled"))


def signal_handler(exception: type[BaseException]):
    """A handler that raises `exception` in the main thread: at once, or, while XLA compiles or JAX's
    garbage-collector callback runs, at the main thread's next Python bytecode (the watchdog sets it
    there once this handler has returned)."""

    def handle(signum, frame) -> None:
        _installed["signalled"] = True
        if frame is not None and frame.f_code.co_filename.endswith(_DEFER_IN) and "thread" in _installed:
            _deferred.append(exception)
            return
        raise exception()

    return handle


_HANDLER_CODE = signal_handler(KeyboardInterrupt).__code__


def install(command: str) -> None:
    """Handle SIGINT and SIGTERM in `siqml <command>` and start the watchdog; from the main thread, once
    (later calls do nothing). A signal the parent process ignores (nohup, a background job) stays ignored."""
    if "thread" in _installed or threading.current_thread() is not threading.main_thread():
        return
    for signum, exception in ((signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, signal_handler(exception))
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    thread = threading.Thread(target=_watch, args=(read_end, command), name="siqml-interrupt-watchdog", daemon=True)
    _installed.update(command=command, thread=thread)
    thread.start()


def _watch(read_end: int, command: str) -> None:
    first: float | None = None
    signum = signal.SIGINT
    while True:
        timeout = None if first is None else min(_POLL_S, max(0.0, first + FORCE_AFTER_S - time.monotonic()))
        if _readable(read_end, timeout):
            watched = [s for s in os.read(read_end, 64) if s in _WATCHED]
            if watched and first is not None:  # a second Ctrl-C: the user insists
                _end(command, watched[-1])
            if watched:
                first, signum = time.monotonic(), watched[0]
        if _deferred and not _main_thread_where_raising_fails():
            _raise_in_main(_deferred.pop(0))
        if first is not None and time.monotonic() >= first + FORCE_AFTER_S:  # the main thread has not stopped
            _end(command, signum)


def _main_thread_where_raising_fails() -> bool:
    """The main thread is in a signal handler, XLA's compilation or JAX's garbage-collector callback:
    an exception set now would be raised there and held up or swallowed."""
    frame = sys._current_frames().get(threading.main_thread().ident)
    return frame is not None and (frame.f_code is _HANDLER_CODE or frame.f_code.co_filename.endswith(_DEFER_IN))


def _raise_in_main(exception: type[BaseException]) -> None:
    """`exception` in the main thread at its next Python bytecode (none runs while XLA compiles)."""
    import ctypes

    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(threading.main_thread().ident),
                                               ctypes.py_object(exception))


def _readable(fd: int, timeout: float | None) -> bool:
    import select

    ready, _, _ = select.select([fd], [], [], timeout)
    return bool(ready)


def stopped_message(command: str, exc: KeyboardInterrupt) -> tuple[str, int]:
    """The one line and the exit code for a command stopped by `exc` (its text, if any, says what was kept)."""
    terminated = isinstance(exc, Terminated)
    how = "terminated (SIGTERM)" if terminated else "interrupted"
    note = str(exc)
    code = 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    return f"siqml {command}: {how}" + (f"; {note}" if note else ""), code


def _end(command: str, signum: int) -> None:
    with _lock:
        callbacks = list(_callbacks)
    notes = []
    for callback in reversed(callbacks):
        try:
            note = callback()
        except Exception as exc:  # the process ends anyway; say what could not be recorded
            print(f"siqml {command}: while stopping: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            continue
        if isinstance(note, str) and note:
            notes.append(note)
    how = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"
    print(f"\nsiqml {command}: {how}" + "".join(f"; {note}" for note in notes), file=sys.stderr, flush=True)
    try:
        sys.stdout.flush()
    except (OSError, ValueError):  # a closed or broken stdout must not stop the exit
        pass
    os._exit(128 + signum)
