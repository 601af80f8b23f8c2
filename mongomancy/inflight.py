"""How many commands are inside a pymongo call right now, so the waiting bound can count them.

Why: while no primary is known, a command already inside pymongo waits in pymongo's own server selection
(a retryable write's retry does, for the whole election) instead of in the engine's queue.  Those commands
are waiting too; the queue's bound counts them (``PrimaryWaitQueue.wait(..., busy=count)``), so a full
engine refuses newcomers however its waiters are split between the queue and pymongo.
"""

from __future__ import annotations

import threading
from types import TracebackType


class InFlight:
    """A counter of attempts in progress, used as ``with in_flight: <pymongo call>``; owned by one engine."""

    __slots__ = ("_count", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def __enter__(self) -> None:
        with self._lock:
            self._count += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with self._lock:
            self._count -= 1

    @property
    def count(self) -> int:
        """Attempts in progress now (a snapshot: an int read is atomic)."""
        return self._count
