"""Counters the engine keeps, and the immutable snapshot ``engine.stats()`` returns."""

from __future__ import annotations

import collections
import threading
import weakref
from collections.abc import Mapping
from types import MappingProxyType

import attrs

from mongomancy._forking import renew_after_fork


@attrs.frozen
class EngineStats:
    """A consistent snapshot of what an engine has done so far (all counts since it was created)."""

    operations: int
    succeeded: int
    failed: int
    retries: int
    #: Retries by cause: ``"<error class>:<kind>"``, e.g. ``"NotPrimaryError:not_applied"``.
    retries_by_cause: Mapping[str, int]
    outcome_unknown: int
    budget_exhausted: int
    failovers: int
    client_replacements: int
    hook_runs: int
    hook_failures: int
    heartbeat_failures: int
    supervisor_restarts: int
    #: Configuration errors no wait can cure (authentication, TLS, replica-set name, wire version) declared.
    fatal_errors: int
    current_primary: str | None
    writable: bool
    topology_type: str
    queue_length: int
    queue_high_water: int
    queue_capacity: int


class _ThreadEnd:
    """Lives in one thread's local storage; when the thread ends it is freed and retires the thread's cell."""

    __slots__ = ("__weakref__",)


class PerThreadCount:
    """A counter the hot path bumps without any lock: each thread counts in a cell of its own.

    Only the owning thread ever writes its cell, so the increment needs no lock; a reader sums the cells
    (reading an int is atomic).  The lock guards the list of cells, taken once per thread, not per call.

    Cells do not outlive their threads: a marker in the thread's local storage is freed when the thread ends,
    and its finaliser queues the cell for retirement (a lock-free append, since a finaliser may run on any
    thread at any moment, even one holding the lock); the next reader or new thread folds retired cells
    into one total.  So 5,000 short-lived threads leave a handful of cells, not 5,000.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock")
        self._cells: list[list[int]] = []
        self._retiring: collections.deque[list[int]] = collections.deque()
        self._retired_total = 0

    def add(self) -> None:
        try:
            cell: list[int] = self._local.cell
        except AttributeError:
            cell = self._new_cell()
        cell[0] += 1

    def _new_cell(self) -> list[int]:
        cell = [0]
        end = _ThreadEnd()
        weakref.finalize(end, self._retiring.append, cell)
        with self._lock:
            self._fold_retired()
            self._cells.append(cell)
        self._local.cell = cell
        self._local.end = end
        return cell

    def _fold_retired(self) -> None:
        """Move the cells of ended threads into the running total (call with the lock held)."""
        while self._retiring:
            cell = self._retiring.popleft()
            self._retired_total += cell[0]
            self._cells.remove(cell)

    def value(self) -> int:
        with self._lock:
            self._fold_retired()
            return self._retired_total + sum(cell[0] for cell in self._cells)

    @property
    def live_cells(self) -> int:
        """Cells of threads still running (or ended but not yet folded): bounded by the live threads."""
        with self._lock:
            self._fold_retired()
            return len(self._cells)


class Counters:
    """Thread-safe counters.  Successes (the hot path) are counted per thread without a lock; the rest,
    which only the slow path and the supervisor bump, share one short lock."""

    _FIELDS = (
        "failed",
        "retries",
        "outcome_unknown",
        "budget_exhausted",
        "failovers",
        "client_replacements",
        "hook_runs",
        "hook_failures",
        "heartbeat_failures",
        "supervisor_restarts",
        "fatal_errors",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock")
        self._succeeded = PerThreadCount()
        self._counts = dict.fromkeys(self._FIELDS, 0)
        self._retries_by_cause: collections.Counter[str] = collections.Counter()

    @property
    def live_success_cells(self) -> int:
        """Per-thread success cells currently kept (bounded by the threads alive, not by all that ran)."""
        return self._succeeded.live_cells

    def bump(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def succeeded(self) -> None:
        """One command finished: the hot path, no lock taken."""
        self._succeeded.add()

    def failed(self) -> None:
        self.bump("failed")

    def retried(self, cause: str) -> None:
        with self._lock:
            self._counts["retries"] += 1
            self._retries_by_cause[cause] += 1

    def snapshot(self) -> tuple[dict[str, int], Mapping[str, int]]:
        succeeded = self._succeeded.value()
        with self._lock:
            counts = dict(self._counts)
            by_cause = MappingProxyType(dict(self._retries_by_cause))
        counts["succeeded"] = succeeded
        counts["operations"] = succeeded + counts["failed"]
        return counts, by_cause
