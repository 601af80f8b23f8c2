"""The slow path of one command: counting attempts, classifying failures, waiting, and the budget.

Shared by ``Engine.execute`` and ``ResumableCursor`` (whose getMore failures are retried the same way).
It is the engine's friend: it reads the engine's published state, queue, counters and policy directly.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

import pymongo
from pymongo import MongoClient
from pymongo.errors import DuplicateKeyError, PyMongoError
from pymongo.results import InsertManyResult, InsertOneResult

from mongomancy.commands import AnyCommand, Command, RetryClass
from mongomancy.errors import OutcomeUnknownError, RetryBudgetExhaustedError
from mongomancy.retry import ErrorKind, classify_error, retryable_writes_unsupported

if TYPE_CHECKING:
    from mongomancy.engine import Engine


class Landed:
    """An insert whose earlier attempt turned out to have landed (the replay met its own ``_id``)."""

    def __init__(self, result: Any) -> None:
        self.result = result


class RetryRun:
    """The slow path of one command: attempts, waits and the budget, per the engine's policy."""

    def __init__(self, engine: Engine, command: AnyCommand, started: float) -> None:
        self.engine = engine
        self.command = command
        self.started = started
        self.deadline = started + engine._policy.budget
        self.attempts = 0
        self.maybe_applied = False
        self.last_error: BaseException | None = None

    def attempt_timeout(self) -> Any:
        command = self.command
        if command.client_timeout and self.engine._policy.use_client_timeout and not command.in_transaction:
            return pymongo.timeout(max(0.001, self.deadline - time.monotonic()))
        return contextlib.nullcontext()

    def next_client(self) -> MongoClient[Any]:
        """Wait until the command can run (a primary, or a server its read preference accepts)."""
        engine = self.engine
        while True:
            engine._ensure_running()
            state = engine._state
            client = state.client
            if client is not None and (state.writable or self.command.runs_without_primary(client)):
                self.attempts += 1
                return client
            if time.monotonic() >= self.deadline:
                self.exhausted("no primary became available")
            engine._queue.wait(self.deadline)

    def failed(self, error: PyMongoError) -> Landed | None:
        """Decide after a failed attempt: raise, report a landed insert, or wait and let the caller retry."""
        engine = self.engine
        self.attempts = max(self.attempts, 1)
        kind = classify_error(error)
        command = self.command
        if command.in_transaction:
            raise error  # pymongo's with_transaction owns retries inside a transaction
        if kind is ErrorKind.FATAL and retryable_writes_unsupported(error):
            # The server refused the transaction number before executing anything: adapt, then retry.
            engine._disable_retryable_writes(error)
            kind = ErrorKind.NOT_APPLIED
        if kind is ErrorKind.FATAL:
            if self.maybe_applied and command.is_insert and isinstance(error, DuplicateKeyError):
                return self._landed_insert(error)
            raise error
        engine._supervisor.nudge()
        if kind is ErrorKind.OUTCOME_UNKNOWN:
            self.maybe_applied = True
            if command.retry_class is RetryClass.NON_IDEMPOTENT_WRITE:
                engine._counters.bump("outcome_unknown")
                raise OutcomeUnknownError(
                    f"{command.describe()} failed after it may have been applied ({type(error).__name__}: "
                    f"{error}); it is not idempotent, so it was not replayed",
                    command=command,
                    cause=error,
                )
        self.last_error = error
        engine._counters.retried(f"{type(error).__name__}:{kind.value}")
        if not engine._policy.attempts_left(self.attempts):
            self.exhausted(f"{self.attempts} attempts made")
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self.exhausted("the time budget ran out")
        # Back off, but wake at once when the supervisor publishes a topology change.
        engine._changed.wait(min(remaining, engine._policy.backoff(self.attempts)))
        return None

    def _landed_insert(self, error: DuplicateKeyError) -> Landed:
        """A replayed insert met a duplicate ``_id``: the earlier, ambiguous attempt landed."""
        details = error.details or {}
        key_pattern = details.get("keyPattern")
        if key_pattern is not None and dict(key_pattern) != {"_id": 1}:
            raise error  # a duplicate on another unique index is the caller's business
        command = self.command
        assert isinstance(command, Command)
        name = "document" if command.operation == "insert_one" else "documents"
        document_or_documents = command.args[0] if command.args else command.kwargs[name]
        if command.operation == "insert_one":
            return Landed(InsertOneResult(document_or_documents["_id"], acknowledged=True))
        ids = [document["_id"] for document in document_or_documents]
        collection = command.target.resolve(self.engine.client)
        present = {doc["_id"] for doc in collection.find({"_id": {"$in": ids}}, {"_id": 1})}
        if present != set(ids):
            raise error  # some documents are missing: the batch did not fully land
        return Landed(InsertManyResult(ids, acknowledged=True))

    def exhausted(self, reason: str) -> None:
        elapsed = time.monotonic() - self.started
        self.engine._counters.bump("budget_exhausted")
        raise RetryBudgetExhaustedError(
            f"{self.command.describe()} gave up after {self.attempts} attempt(s) "
            f"in {elapsed:.2f} s: {reason}",
            command=self.command,
            cause=self.last_error,
            attempts=self.attempts,
            elapsed=elapsed,
        )
