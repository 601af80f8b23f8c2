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


class Counters:
    """Thread-safe counters; one short lock, never held while anything else happens."""

    _FIELDS = (
        "operations",
        "succeeded",
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
        self._counts = dict.fromkeys(self._FIELDS, 0)
        self._retries_by_cause: collections.Counter[str] = collections.Counter()

    def after_fork(self) -> None:
        """In a forked child: the parent may have held the lock at fork time; a fresh one is free."""
        self._lock = threading.Lock()

    def bump(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def succeeded(self) -> None:
        """One command finished (the hot path: a single locked update)."""
        with self._lock:
            self._counts["operations"] += 1
            self._counts["succeeded"] += 1

    def failed(self) -> None:
        with self._lock:
            self._counts["operations"] += 1
            self._counts["failed"] += 1

    def retried(self, cause: str) -> None:
        with self._lock:
            self._counts["retries"] += 1
            self._retries_by_cause[cause] += 1

    def snapshot(self) -> tuple[dict[str, int], Mapping[str, int]]:
        with self._lock:
            return dict(self._counts), MappingProxyType(dict(self._retries_by_cause))
