"""How many commands are inside a pymongo call right now, so the waiting bound can count them.

Why: while no primary is known, a command already inside pymongo waits in pymongo's own server selection
(a retryable write's retry does, for the whole election) instead of in the engine's queue.  Those commands
are waiting too; the queue's bound counts them (``PrimaryWaitQueue.wait(..., busy=count)``), so a full
engine refuses newcomers however its waiters are split between the queue and pymongo.
"""

from __future__ import annotations

import collections
import functools


class InFlight:
    """A counter of attempts in progress, owned by one engine: ``enter()`` before a pymongo call, ``leave()``
    after it (in a ``finally``).

    It counts with a deque's ``append``/``pop``, each one atomic C call: no lock and no Python frame on the
    hot path, and no lost update between threads.
    """

    __slots__ = ("_marks", "enter", "leave")

    def __init__(self) -> None:
        self._marks: collections.deque[None] = collections.deque()
        self.enter = functools.partial(self._marks.append, None)
        self.leave = self._marks.pop

    @property
    def count(self) -> int:
        """Attempts in progress now (a snapshot)."""
        return len(self._marks)
