"""How the long-running commands (``watch``, ``demo``, ``sim``) stop within a second of SIGINT or SIGTERM.

Why not ``KeyboardInterrupt`` or a handler that sets a ``threading.Event`` the main thread waits on: CPython
runs Python-level signal handlers on the main thread only, between bytecodes or when a blocking call returns
``EINTR``.  A main thread parked in an *untimed* lock wait (``Event.wait()``, ``Thread.join()``) is woken
only if the kernel interrupts that very wait; a signal that lands a moment earlier (before the ``sem_wait``
starts) or on one of pymongo's threads is noted and never acted on, and the process sleeps on (the SIGINT
flake of issue 14: the main thread was found in ``Condition.wait`` with the handler never run).
:class:`StopSignals` uses the self-pipe of :func:`signal.set_wakeup_fd` instead: the C-level handler writes
the signal number into a socket whichever thread it runs on, and the main thread waits in ``select()`` on
that socket, so a signal that arrives before the wait starts is still there when it does.

Why a hard deadline too (:func:`exit_within`): after the signal, closing pymongo clients joins their
threads, a streaming monitor notices its cancellation only every 0.5 s, and at interpreter exit pymongo joins
every executor still running for up to 1 s each.  A member that stopped answering can make that several
seconds, so once a stop is requested a daemon timer ends the process with the intended exit code if the
graceful path overruns.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from types import FrameType, TracebackType
from typing import Any

#: The signals that ask a long-running command to stop.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: From the signal to the end of the process, whatever the cluster does (the promise of ``--help``).
STOP_DEADLINE = 0.8
#: How long the hard exit waits for stdout/stderr to flush (a reader that stopped reading must not block it).
_FLUSH_WAIT = 0.1

_hard_exit_enabled = False


def enable_hard_exit() -> None:
    """Allow :func:`exit_within` to end the process (set by the real entry points, never under a test runner,
    where ``os._exit`` would end pytest)."""
    global _hard_exit_enabled
    _hard_exit_enabled = True


def hard_exit_enabled() -> bool:
    return _hard_exit_enabled


class StopSignals:
    """A context manager routing SIGINT and SIGTERM to :meth:`wait` through a self-pipe (see the module doc).

    Also works in a process started with SIGINT ignored (a background job of a non-interactive shell): the
    handlers are installed explicitly.  Off the main thread no handler can be installed; :meth:`wait` then
    ends only by :meth:`release` or its timeout.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        #: Set by :meth:`release`: the work being waited for ended without a signal.
        self.released = False
        self._reader: socket.socket | None = None
        self._writer: socket.socket | None = None
        self._previous_wakeup_fd = -1
        self._previous_handlers: dict[int, Any] = {}
        #: Off the main thread (no signal can reach :meth:`wait`), :meth:`release` ends the wait through it.
        self._released = threading.Event()

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        # The wakeup fd first: a signal caught from the moment its handler exists also lands in the socket.
        self._previous_wakeup_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        for signum in STOP_SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, self._note)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._reader is None or self._writer is None:
            return
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self._previous_wakeup_fd)
        self._reader.close()
        self._writer.close()
        self._reader = self._writer = None

    def _note(self, signum: int, _frame: FrameType | None) -> None:
        """The Python-level handler (main thread, some time after the signal): remember the first one."""
        if self.received is None:
            self.received = signum

    def release(self) -> None:
        """From any thread: end :meth:`wait` without a signal (the work it waited for is over)."""
        self.released = True
        self._released.set()
        writer = self._writer
        if writer is not None:
            with contextlib.suppress(OSError):
                writer.send(b"\0")

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until SIGINT or SIGTERM arrived (return its number), or ``timeout`` seconds passed or
        :meth:`release` was called (None)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.received is None and not self.released:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            if self._reader is None:  # not the main thread: only release() or the clock end the wait
                self._released.wait(remaining)
                return None
            readable, _, _ = select.select([self._reader], [], [], remaining)
            if readable:
                for signum in self._reader.recv(64):
                    if signum in STOP_SIGNALS and self.received is None:
                        self.received = signum
        return self.received


def exit_within(seconds: float, code: int, children: Callable[[], Iterable[int]] = tuple) -> None:
    """From now on, end the process with ``code`` if it is still running ``seconds`` later.

    Arm it when a stop was requested, before the graceful clean-up: the clean-up then has ``seconds`` to
    finish (the interpreter's own exit included) and the process ends on time even if a pymongo thread, a
    closing client or a full pipe would hold it.  ``children`` names child processes (by PID) that must not
    outlive it: they are killed first.  Does nothing unless :func:`enable_hard_exit` was called.
    """
    if not _hard_exit_enabled:
        return
    timer = threading.Timer(seconds, _hard_exit, (code, children))
    timer.daemon = True
    timer.name = "mongomancy-exit-deadline"
    timer.start()


def exit_now(code: int, children: Iterable[int] = ()) -> None:
    """End the process at once with ``code``: kill ``children``, flush what was printed, skip the clean-up of
    threads that hold nothing worth saving (pymongo's, the simulator's).  Does nothing (returns) unless
    :func:`enable_hard_exit` was called, so the caller's graceful path runs under a test runner."""
    if _hard_exit_enabled:
        pids = tuple(children)
        _hard_exit(code, lambda: pids)


def _hard_exit(code: int, children: Callable[[], Iterable[int]]) -> None:
    kill_children(children())
    flusher = threading.Thread(target=_flush_streams, name="mongomancy-exit-flush", daemon=True)
    flusher.start()
    flusher.join(_FLUSH_WAIT)
    os._exit(code)


def kill_children(pids: Iterable[int]) -> None:
    """SIGKILL and reap each child process still running (a child that is gone already is fine)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _flush_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


@contextlib.contextmanager
def fine_grained_pymongo_waits(step: float = 0.05) -> Iterator[None]:
    """Lower pymongo's ``MIN_HEARTBEAT_INTERVAL`` (0.5 s) to ``step`` while a command runs.

    pymongo sleeps in steps of it: server selection overshoots its timeout by up to a step, a member coming
    back is re-checked that late, and ``MongoClient.close()`` joins its event thread for up to a step.
    Process-global, restored afterwards (pymongo's own tests lower it the same way).
    """
    import pymongo.common  # noqa: PLC0415 - lazy: `mongomancy --help` must not pay for pymongo

    saved = pymongo.common.MIN_HEARTBEAT_INTERVAL
    pymongo.common.MIN_HEARTBEAT_INTERVAL = min(saved, step)
    try:
        yield
    finally:
        pymongo.common.MIN_HEARTBEAT_INTERVAL = saved
