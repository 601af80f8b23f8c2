"""Counters the engine keeps, and the immutable snapshot ``engine.stats()`` returns."""

from __future__ import annotations

import collections
import threading
from collections.abc import Mapping
from types import MappingProxyType

import attrs


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
    current_primary: str | None
    writable: bool
    topology_type: str
    queue_length: int
    queue_high_water: int
    queue_capacity: int


class PerThreadCount:
    """A counter the hot path bumps without any lock: each thread counts in a cell of its own.

    Only the owning thread ever writes its cell, so the increment needs no lock; a reader sums the cells
    (reading an int is atomic).  The lock guards the list of cells, taken once per thread, not per call.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._cells: list[list[int]] = []

    def add(self) -> None:
        try:
            cell: list[int] = self._local.cell
        except AttributeError:
            cell = self._new_cell()
        cell[0] += 1

    def _new_cell(self) -> list[int]:
        cell = [0]
        with self._lock:
            self._cells.append(cell)
        self._local.cell = cell
        return cell

    def value(self) -> int:
        with self._lock:
            return sum(cell[0] for cell in self._cells)

    def after_fork(self) -> None:
        self._lock = threading.Lock()


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
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._succeeded = PerThreadCount()
        self._counts = dict.fromkeys(self._FIELDS, 0)
        self._retries_by_cause: collections.Counter[str] = collections.Counter()

    def after_fork(self) -> None:
        """In a forked child: the parent may have held a lock at fork time; fresh ones are free."""
        self._lock = threading.Lock()
        self._succeeded.after_fork()

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
