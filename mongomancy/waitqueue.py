"""The bounded queue where commands wait while the cluster has no primary.

Why a queue of our own rather than pymongo's server selection wait: it is bounded (a full queue is an
immediate, clear error instead of an ever-growing pile of blocked threads), observable (its length is in
``engine.stats()``), releases waiters in arrival order the moment the supervisor announces a primary, and
wakes every waiter with a clear error when the engine is disposed or meets a configuration error no wait
can cure (then newcomers are refused at once until the supervisor sees it clear).

Errors are made by a factory, one fresh exception per waiter: raising one instance again and again would
grow its traceback for ever.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

from mongomancy.errors import MongomancyError, QueueFullError

ErrorFactory = Callable[[], MongomancyError]


class _Waiter:
    __slots__ = ("error", "released")

    def __init__(self) -> None:
        self.released = threading.Event()
        self.error: MongomancyError | None = None


class PrimaryWaitQueue:
    """Waiters for "a writable server is known"; opened and closed by the supervisor only."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._open = False
        self._final_error: ErrorFactory | None = None
        self._fatal_error: ErrorFactory | None = None
        self._high_water = 0
        #: When the queue last went from empty to non-empty (monotonic); None while nobody waits.
        self._waiting_since: float | None = None

    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        return len(self._waiters)

    @property
    def waiting_since(self) -> float | None:
        """Since when commands have been waiting without a break (monotonic), or None if none waits."""
        return self._waiting_since

    @property
    def high_water(self) -> int:
        """The most commands that ever waited at once."""
        return self._high_water

    def wait(self, deadline: float, busy: int = 0) -> bool:
        """Block until a primary is announced (True) or ``deadline`` (monotonic) passes (False).

        ``busy`` counts commands waiting elsewhere (inside pymongo's server selection): they count toward the
        capacity.  Raises ``QueueFullError`` at once when full, the final error once the queue is shut, and
        the fatal error while one holds.
        """
        with self._lock:
            if self._final_error is not None:
                raise self._final_error()
            if self._fatal_error is not None:
                raise self._fatal_error()
            if self._open:
                return True
            if len(self._waiters) + busy >= self._capacity:
                raise QueueFullError(
                    f"no primary is known and {self._capacity} commands are already waiting for one "
                    f"({len(self._waiters)} queued, {busy} inside pymongo's server selection or a reply; "
                    "raise Engine(queue_capacity=...) if this load is expected)",
                    capacity=self._capacity,
                )
            waiter = _Waiter()
            if not self._waiters:
                self._waiting_since = time.monotonic()
            self._waiters.append(waiter)
            self._high_water = max(self._high_water, len(self._waiters))
        released = waiter.released.wait(max(0.0, deadline - time.monotonic()))
        if not released:
            with self._lock:
                try:
                    self._waiters.remove(waiter)
                except ValueError:  # released between the timeout and the lock: take the release
                    released = True
                if not self._waiters:
                    self._waiting_since = None
        if waiter.error is not None:
            raise waiter.error
        return released

    def open(self) -> None:
        """A primary is known: release every waiter, oldest first, and let newcomers through."""
        with self._lock:
            self._open = True
            waiters = self._take_waiters()
        for waiter in waiters:
            waiter.released.set()

    def _take_waiters(self) -> list[_Waiter]:
        """Remove every waiter (call with the lock held)."""
        waiters = list(self._waiters)
        self._waiters.clear()
        self._waiting_since = None
        return waiters

    def close(self) -> None:
        """No primary: from now on, commands that need one wait."""
        with self._lock:
            self._open = False

    def shut(self, make_error: ErrorFactory) -> None:
        """Final: wake every waiter with an error from ``make_error`` and refuse all later ones alike."""
        with self._lock:
            self._final_error = make_error
            waiters = self._take_waiters()
        self._wake_with(waiters, make_error)

    def fail(self, make_error: ErrorFactory) -> None:
        """A condition no wait can cure: wake every waiter with its error and refuse newcomers with it
        until :meth:`clear_failure`."""
        with self._lock:
            self._fatal_error = make_error
            waiters = self._take_waiters()
        self._wake_with(waiters, make_error)

    def clear_failure(self) -> None:
        """The incurable condition cleared: commands may wait for a primary again."""
        with self._lock:
            self._fatal_error = None

    @staticmethod
    def _wake_with(waiters: list[_Waiter], make_error: ErrorFactory) -> None:
        for waiter in waiters:
            waiter.error = make_error()
            waiter.released.set()
