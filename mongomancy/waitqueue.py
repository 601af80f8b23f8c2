"""The bounded queue where commands wait while the cluster has no primary.

Why a queue of our own rather than pymongo's server selection wait: it is bounded (a full queue is an
immediate, clear error instead of an ever-growing pile of blocked threads), observable (its length is in
``engine.stats()``), releases waiters in arrival order the moment the supervisor announces a primary, and
wakes every waiter with a clear error when the engine is disposed.
"""

from __future__ import annotations

import collections
import threading
import time

from mongomancy.errors import MongomancyError, QueueFullError


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
        self._final_error: MongomancyError | None = None
        self._high_water = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        return len(self._waiters)

    @property
    def high_water(self) -> int:
        """The most commands that ever waited at once."""
        return self._high_water

    def wait(self, deadline: float) -> bool:
        """Block until a primary is announced (True) or ``deadline`` (monotonic) passes (False).

        Raises ``QueueFullError`` at once when full, and the final error once the queue is shut.
        """
        with self._lock:
            if self._final_error is not None:
                raise self._final_error
            if self._open:
                return True
            if len(self._waiters) >= self._capacity:
                raise QueueFullError(
                    f"no primary is known and {self._capacity} commands are already waiting for one "
                    "(raise Engine(queue_capacity=...) if this load is expected)",
                    capacity=self._capacity,
                )
            waiter = _Waiter()
            self._waiters.append(waiter)
            self._high_water = max(self._high_water, len(self._waiters))
        released = waiter.released.wait(max(0.0, deadline - time.monotonic()))
        if not released:
            with self._lock:
                try:
                    self._waiters.remove(waiter)
                except ValueError:  # released between the timeout and the lock: take the release
                    released = True
        if waiter.error is not None:
            raise waiter.error
        return released

    def open(self) -> None:
        """A primary is known: release every waiter, oldest first, and let newcomers through."""
        with self._lock:
            self._open = True
            waiters = list(self._waiters)
            self._waiters.clear()
        for waiter in waiters:
            waiter.released.set()

    def close(self) -> None:
        """No primary: from now on, commands that need one wait."""
        with self._lock:
            self._open = False

    def shut(self, error: MongomancyError) -> None:
        """Final: wake every waiter with ``error`` and refuse all later ones with it."""
        with self._lock:
            self._final_error = error
            waiters = list(self._waiters)
            self._waiters.clear()
        for waiter in waiters:
            waiter.error = error
            waiter.released.set()
