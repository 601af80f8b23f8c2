"""The slow path of one command: counting attempts, classifying failures, waiting, and the budget.

Shared by ``Engine.execute`` and ``ResumableCursor`` (whose getMore failures are retried the same way).
It is the engine's friend: it reads the engine's published state, queue, counters and policy directly.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import bson
import pymongo
from pymongo import MongoClient
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError, ServerSelectionTimeoutError
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
            # Any attempt after the first may meet an earlier one that landed: pymongo's own retry can
            # hide the first, ambiguous attempt behind a "not primary" refusal of its second.
            if command.is_insert and self.attempts > 1 and _is_duplicate_key(error):
                return self._landed_insert(error)
            raise error
        engine._supervisor.nudge()
        if kind is ErrorKind.NOT_APPLIED and self._driver_may_have_retried(error):
            kind = ErrorKind.OUTCOME_UNKNOWN
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

    def _driver_may_have_retried(self, error: PyMongoError) -> bool:
        """True when a refusal may hide an earlier, ambiguous attempt of a non-idempotent write.

        pymongo retries single-document writes itself and reports the *last* attempt's error: a "not
        primary" refusal of its retry says nothing about its first attempt, which may have landed.  Only
        a server-selection timeout proves nothing was sent (pymongo re-raises the earlier error otherwise).
        """
        command = self.command
        if command.retry_class is not RetryClass.NON_IDEMPOTENT_WRITE or not command.driver_retryable:
            return False
        if isinstance(error, ServerSelectionTimeoutError):
            return False
        client = self.engine._state.client
        return client is None or bool(client.options.retry_writes)

    def _landed_insert(self, error: PyMongoError) -> Landed:
        """A replayed insert met duplicate ``_id``s: decide whether they are the earlier attempt's.

        An ``_id`` the engine generated can only be ours; for an ``_id`` the caller chose, the stored
        document must equal the one being inserted (then the outcome is the same either way).  Anything
        else, or a duplicate on another unique index, is the caller's duplicate-key error.
        """
        command = self.command
        assert isinstance(command, Command)
        single = command.operation == "insert_one"
        name = "document" if single else "documents"
        argument = command.args[0] if command.args else command.kwargs[name]
        documents = [argument] if single else list(argument)
        details = getattr(error, "details", None) or {}
        collisions = [details] if isinstance(error, DuplicateKeyError) else details.get("writeErrors", [])
        for collision in collisions:
            key_pattern = collision.get("keyPattern")
            if key_pattern is not None and dict(key_pattern) != {"_id": 1}:
                raise error
            document = documents[0] if single else documents[collision["index"]]
            if document["_id"] not in command.generated_ids and not self._stored_as_sent(document):
                raise error
        ids = [document["_id"] for document in documents]
        self.engine.logger.info(
            "%s: a replay met its own earlier insert, which had landed", command.describe()
        )
        if single:
            return Landed(InsertOneResult(ids[0], acknowledged=True))
        return Landed(InsertManyResult(ids, acknowledged=True))

    def _stored_as_sent(self, document: Mapping[str, Any]) -> bool:
        command = self.command
        assert isinstance(command, Command)
        lookup = Command.build("find_one", command.target, ({"_id": document["_id"]},), {})
        stored = self.engine.execute(lookup)
        codec_options = command.target.resolve(self.engine.client).codec_options
        return bool(stored == bson.decode(bson.encode(document), codec_options=codec_options))

    def replay_command(self) -> AnyCommand:
        """The command for the next attempt: an ordered ``insert_many`` replays unordered, so documents
        after one that had landed are still inserted (the landed ones then come back as duplicates)."""
        command = self.command
        if (
            isinstance(command, Command)
            and command.operation == "insert_many"
            and self.attempts > 1
            and command.kwargs.get("ordered", True) is not False
        ):
            self.command = attrs.evolve(command, kwargs={**command.kwargs, "ordered": False})
        return self.command

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


def _is_duplicate_key(error: PyMongoError) -> bool:
    if isinstance(error, DuplicateKeyError):
        return True
    if isinstance(error, BulkWriteError):
        write_errors = (error.details or {}).get("writeErrors", [])
        return bool(write_errors) and all(e.get("code") == 11000 for e in write_errors)
    return False
