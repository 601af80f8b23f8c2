"""The retry policy (an immutable value) and the classification of driver errors.

Why a value object: a policy is configuration, shared by every thread of an engine, so it must never change
under a running command (the urllib3 ``Retry`` model).  Why classify by *what happened to the command*
rather than by exception class: the only question that matters before a retry is "could the first attempt
have been applied?", and pymongo answers it through codes, labels and the exception class together.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from typing import Any

import attrs
from pymongo import errors as pymongo_errors

from mongomancy.errors import ConfigurationError, StaleSessionError


class ErrorKind(enum.Enum):
    """What a failed attempt tells us about the command's effect on the server."""

    #: Never sent, or refused before execution (not primary, no server selected): safe to retry anything.
    NOT_APPLIED = "not_applied"
    #: Sent, and then the connection broke, a timeout hit or a state change interrupted it: maybe applied.
    OUTCOME_UNKNOWN = "outcome_unknown"
    #: Retrying cannot help (duplicate key, validation, authentication, a bad query...): raise at once.
    FATAL = "fatal"


#: Refused before the server executed anything (the command never touched data).
_REFUSED_CODES = frozenset(
    {
        10107,  # NotWritablePrimary
        13435,  # NotPrimaryNoSecondaryOk
        13436,  # NotPrimaryOrSecondary
        10058,  # LegacyNotPrimary
        7,  # HostNotFound
        6,  # HostUnreachable
        89,  # NetworkTimeout (while routing)
        9001,  # SocketException
        262,  # ExceededTimeLimit before start (mongos)
        134,  # ReadConcernMajorityNotAvailableYet
        43,  # CursorNotFound: a getMore found its cursor gone (nothing was returned)
        237,  # CursorKilled
    }
)

#: The server began the command and was interrupted: a multi-document write may be half done.
_INTERRUPTED_CODES = frozenset(
    {
        11600,  # InterruptedAtShutdown
        11602,  # InterruptedDueToReplStateChange
        189,  # PrimarySteppedDown
        91,  # ShutdownInProgress
        50,  # MaxTimeMSExpired
        64,  # WriteConcernFailed (applied on the primary, not confirmed on the majority)
    }
)


def classify_error(error: BaseException) -> ErrorKind:
    """Say whether ``error`` leaves the command unapplied, maybe applied, or is not worth retrying."""
    if isinstance(error, StaleSessionError):
        return ErrorKind.FATAL
    if isinstance(error, pymongo_errors.ServerSelectionTimeoutError):
        # pymongo raises this only when no attempt was sent; after a sent attempt it re-raises that one.
        return ErrorKind.NOT_APPLIED
    if isinstance(error, pymongo_errors.InvalidOperation) and "after close" in str(error):
        # The engine replaced and closed the client between resolving the handle and using it.
        return ErrorKind.NOT_APPLIED
    if isinstance(error, pymongo_errors.DuplicateKeyError):
        return ErrorKind.FATAL
    if isinstance(error, pymongo_errors.BulkWriteError):
        return _classify_bulk_write_error(error)
    if isinstance(error, pymongo_errors.WriteConcernError):
        return ErrorKind.OUTCOME_UNKNOWN
    if isinstance(error, (pymongo_errors.NotPrimaryError, pymongo_errors.OperationFailure)):
        return _classify_code(_code_of(error), error)
    if isinstance(error, (pymongo_errors.AutoReconnect, pymongo_errors.ExecutionTimeout)):
        # NetworkTimeout, a reset connection, a hang-up: the request may have reached the server.
        return ErrorKind.OUTCOME_UNKNOWN
    if isinstance(error, pymongo_errors.ConnectionFailure):
        return ErrorKind.OUTCOME_UNKNOWN
    return ErrorKind.FATAL


def retryable_writes_unsupported(error: BaseException) -> bool:
    """The deployment refuses transaction numbers (a standalone behind a proxy, MMAPv1...): error 20."""
    return (
        isinstance(error, pymongo_errors.OperationFailure)
        and _code_of(error) == 20
        and ("Transaction numbers" in str(error) or "does not support retryable writes" in str(error))
    )


def _code_of(error: pymongo_errors.PyMongoError) -> int | None:
    """The server's error code: ``OperationFailure.code``, or the reply inside a ``NotPrimaryError``."""
    code = getattr(error, "code", None)
    if code is None:
        details = getattr(error, "details", None)
        if isinstance(details, dict):
            code = details.get("code")
    return code if isinstance(code, int) else None


def _classify_code(code: int | None, error: pymongo_errors.PyMongoError) -> ErrorKind:
    if code in _REFUSED_CODES:
        return ErrorKind.NOT_APPLIED
    if code in _INTERRUPTED_CODES:
        return ErrorKind.OUTCOME_UNKNOWN
    if error.has_error_label("NoWritesPerformed"):
        return ErrorKind.NOT_APPLIED
    if error.has_error_label("RetryableWriteError") or error.has_error_label("RetryableError"):
        return ErrorKind.OUTCOME_UNKNOWN
    if isinstance(error, pymongo_errors.NotPrimaryError):
        # A "not primary" message without a code (legacy servers): refused before execution.
        return ErrorKind.NOT_APPLIED
    return ErrorKind.FATAL


def _classify_bulk_write_error(error: pymongo_errors.BulkWriteError) -> ErrorKind:
    details = error.details or {}
    if details.get("writeConcernErrors"):
        return ErrorKind.OUTCOME_UNKNOWN
    codes = {write_error.get("code") for write_error in details.get("writeErrors", ())}
    if codes and codes <= _REFUSED_CODES:
        return ErrorKind.NOT_APPLIED
    if codes & _INTERRUPTED_CODES:
        return ErrorKind.OUTCOME_UNKNOWN
    return ErrorKind.FATAL


def _number_at_least(minimum: float, *, inclusive: bool) -> Callable[[Any, Any, Any], None]:
    """An attrs validator naming the field and the bad value, so a typo in a policy fails at construction."""

    def check(_instance: Any, attribute: Any, value: Any) -> None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and (value >= minimum if inclusive else value > minimum)
        if not ok:
            bound = f">= {minimum}" if inclusive else f"> {minimum}"
            raise ConfigurationError(f"RetryPolicy.{attribute.name} must be a number {bound}, got {value!r}")

    return check


_positive = _number_at_least(0, inclusive=False)
_non_negative = _number_at_least(0, inclusive=True)


@attrs.frozen
class RetryPolicy:
    """How long, how often and how patiently a command is retried.

    ``budget`` is the total time a command may take, attempts and waits included.  The default (60 s)
    covers a real election (about 12 s by default, up to 30 s with a slow catch-up) with room to spare.
    ``use_client_timeout``: run each attempt under ``pymongo.timeout(remaining budget)``, under which pymongo
    itself retries retryable single-document writes with the *same* transaction number until the deadline,
    so the server de-duplicates them: exactly-once even for ``$inc`` across an election.
    ``cursor_fetch_timeout`` bounds each batch a ``find()`` cursor fetches.  pymongo sends a ``getMore`` to
    the server that holds the cursor and waits for *that* server (up to ``serverSelectionTimeoutMS``) when it
    is gone; past this timeout the cursor gives up on it and resumes on the current primary instead.
    """

    budget: float = attrs.field(default=60.0, validator=_positive)
    max_attempts: int = attrs.field(default=50, validator=_positive)
    initial_backoff: float = attrs.field(default=0.05, validator=_positive)
    max_backoff: float = attrs.field(default=2.0, validator=_positive)
    backoff_multiplier: float = attrs.field(default=2.0, validator=_positive)
    jitter: float = attrs.field(default=0.5, validator=_non_negative)
    use_client_timeout: bool = True
    cursor_fetch_timeout: float = attrs.field(default=10.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.max_attempts, int):
            raise ConfigurationError(f"RetryPolicy.max_attempts must be an int, got {self.max_attempts!r}")
        if self.backoff_multiplier < 1:
            raise ConfigurationError(
                f"RetryPolicy.backoff_multiplier must be >= 1, got {self.backoff_multiplier!r}"
            )
        if self.jitter > 1:
            raise ConfigurationError(f"RetryPolicy.jitter must be between 0 and 1, got {self.jitter!r}")
        if self.max_backoff < self.initial_backoff:
            raise ConfigurationError(
                f"RetryPolicy.max_backoff ({self.max_backoff}) must not be below "
                f"initial_backoff ({self.initial_backoff})"
            )

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): exponential, capped, jittered.

        Jitter spreads the retries of many threads over time, so they do not all hit the new primary at once.
        """
        base = min(self.max_backoff, self.initial_backoff * self.backoff_multiplier ** max(0, attempt - 1))
        spread = (rng or random).uniform(1.0 - self.jitter, 1.0)
        return base * spread

    def attempts_left(self, attempts: int) -> bool:
        """True while another attempt is allowed by the attempt limit."""
        return attempts < self.max_attempts
