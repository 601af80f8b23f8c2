"""The retry policy (an immutable value) and the pure retry decision.

"This attempt failed: what now?" is one pure function, :func:`decide`, of the command's kind, the error, the
attempts so far and the time left; it returns a :class:`Decision` (a verdict and the attempts *after* this
failure) and does no I/O and no sleeping, the way urllib3's ``Retry.increment`` is apart from ``Retry.sleep``.
The engine's loop and the resumable cursor do the effects (wait, back off, run again, raise).

The rules it encodes, each from its specification:

- Retryable writes spec: a single-statement write the server can retry is retried by pymongo with the *same*
  transaction number, and the server answers a repeat with the original result; under ``pymongo.timeout`` the
  CSOT spec has the driver retry "as many times as possible before the timeout expires".  So mongomancy never
  re-sends such a write itself, except where pymongo proves nothing was sent (it re-raises the earlier
  attempt's error instead of a ``ServerSelectionTimeoutError`` or a ``NoWritesPerformed`` error).
- The retryable-writes list of retryable errors is *not* a list of "not applied" errors: 89, 6, 7, 9001, 262
  and the ``RetryableWriteError`` label can follow a write that was applied.  Only errors raised before
  sending, a top-level 10107/13435/13436 from the member that received the command, or the
  ``NoWritesPerformed`` label prove a write was not applied.
- mongod attaches ``RetryableWriteError`` only to the errors of retryable writes (commands carrying a
  ``txnNumber``; ``ErrorLabelBuilder::isRetryableWriteError``): an unlabelled refusal was a plain write.
- ``MaxTimeMSExpired`` (50) and an enclosing ``pymongo.timeout`` are the caller's own limits: their error goes
  straight back, unchanged.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from typing import Any

import attrs
from pymongo import errors as pymongo_errors

from mongomancy.errors import ConfigurationError


class CommandKind(enum.Enum):
    """Who may run a command again after a failed attempt, and on what evidence."""

    #: A read: running it again changes nothing; retried within the budget.
    READ = "read"
    #: A write safe to apply twice (``create_index``, ``Engine.run(..., retry_class=IDEMPOTENT_WRITE)``):
    #: replayed like a read, but a deadline after a maybe-applied attempt is "outcome unknown".
    IDEMPOTENT = "idempotent"
    #: A single-statement write pymongo retries itself with the same transaction number (``insert_one``,
    #: ``update_one``, ``find_one_and_*``, a bulk without multi-document operations): mongomancy re-sends
    #: it only when pymongo proves that nothing was sent.
    DRIVER_RETRIED_WRITE = "driver_retried_write"
    #: A write the server cannot retry (``update_many``, ``delete_many``, a bulk with multi-document
    #: operations, ``drop_index``): one attempt per pymongo call, replayed only when that attempt provably
    #: did not apply.
    WRITE = "write"
    #: A write the server cannot retry that pymongo sends as several commands: a ``bulk_write`` of more
    #: than one request with multi-document operations (pymongo sends one command per run of same-type
    #: requests, and splits a run at the server's batch limits).  A refusal proves only the failing command
    #: unapplied, not the commands before it; only "never sent" proves the whole write unapplied.
    MULTI_COMMAND_WRITE = "multi_command_write"
    #: A function of the client (``Engine.run``) not declared idempotent: it may have run some of its
    #: operations before any error, so no error proves it applied nothing; never replayed once started.
    FUNCTION = "function"


class Evidence(enum.Enum):
    """What one failed attempt proves about the command's effect on the data."""

    #: Never left the client: no server selected, no pooled connection, the client was closed.
    NOT_SENT = "not_sent"
    #: The member that received it refused it before executing (a top-level 10107/13435/13436, or the
    #: ``NoWritesPerformed`` label).
    REFUSED = "refused"
    #: Sent, and then the connection broke, a timeout hit or a state change interrupted it: maybe applied.
    TRANSIENT = "transient"
    #: The caller's own limit fired (``MaxTimeMSExpired``): the error belongs to the caller.
    CALLERS_LIMIT = "callers_limit"
    #: The server's answer (duplicate key, validation, a bulk result, a write concern error...): final.
    FINAL = "final"


class Verdict(enum.Enum):
    """What the loop does after a failed attempt."""

    #: Hand the driver's error back unchanged (the server's answer, or the caller's own limit).
    RAISE = "raise"
    #: Back off briefly, then run the command again.
    RETRY_NOW = "retry_now"
    #: Wait until a primary (or a server the read preference accepts) is known, then run it again.
    WAIT_FOR_PRIMARY = "wait_for_primary"
    #: Raise ``OutcomeUnknownError``: an attempt may have applied and replaying could apply it twice.
    OUTCOME_UNKNOWN = "outcome_unknown"
    #: Raise ``RetryBudgetExhaustedError``: time or attempts ran out and no attempt may have applied.
    EXHAUSTED = "exhausted"


#: Top-level codes with which the member that received a command refuses it before executing anything.
NOT_PRIMARY_REFUSAL_CODES = frozenset({10107, 13435, 13436})

#: Codes worth another attempt (pymongo's retryable set, cursor loss, not-primary), none of which proves
#: anything about a write: a router answers 89/6/7/9001/262 after a shard's network failed *after* sending.
TRANSIENT_CODES = frozenset(
    {
        11600,  # InterruptedAtShutdown
        11602,  # InterruptedDueToReplStateChange
        10058,  # LegacyNotPrimary
        189,  # PrimarySteppedDown
        91,  # ShutdownInProgress
        7,  # HostNotFound
        6,  # HostUnreachable
        89,  # NetworkTimeout
        9001,  # SocketException
        262,  # ExceededTimeLimit
        134,  # ReadConcernMajorityNotAvailableYet
        43,  # CursorNotFound (a getMore lost its cursor; re-querying is the cursor's business)
        237,  # CursorKilled
    }
)

#: Codes that say "this member is not (or no longer) primary": wait for the supervisor to see a new one.
_NO_PRIMARY_CODES = frozenset({10107, 13435, 13436, 10058, 11600, 11602, 189, 91})

_MAX_TIME_MS_EXPIRED = 50


def error_code(error: BaseException) -> int | None:
    """The server's error code: ``OperationFailure.code``, or the reply inside a ``NotPrimaryError``."""
    code = getattr(error, "code", None)
    if code is None:
        details = getattr(error, "details", None)
        if isinstance(details, dict):
            code = details.get("code")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _has_label(error: BaseException, label: str) -> bool:
    has = getattr(error, "has_error_label", None)
    return bool(has(label)) if callable(has) else False


def retryable_writes_unsupported(error: BaseException) -> bool:
    """The deployment refuses transaction numbers (a standalone behind a proxy, MMAPv1...): error 20,
    returned before anything is executed."""
    return (
        isinstance(error, pymongo_errors.OperationFailure)
        and error_code(error) == 20
        and ("Transaction numbers" in str(error) or "does not support retryable writes" in str(error))
    )


def assess(kind: CommandKind, error: BaseException) -> Evidence:
    """What ``error``, raised by one pymongo call for a command of ``kind``, proves about its effect."""
    if isinstance(error, pymongo_errors.ServerSelectionTimeoutError):
        # pymongo re-raises an earlier attempt's error rather than this one after a retry: nothing was sent.
        return Evidence.NOT_SENT
    if isinstance(error, (pymongo_errors.BulkWriteError, pymongo_errors.WriteConcernError)):
        return Evidence.FINAL  # the server's exact answer: counts, write errors, an unconfirmed write
    if isinstance(error, pymongo_errors.DuplicateKeyError):
        return Evidence.FINAL
    if not isinstance(error, pymongo_errors.PyMongoError):
        return Evidence.FINAL
    if isinstance(error, pymongo_errors.ExecutionTimeout) or error_code(error) == _MAX_TIME_MS_EXPIRED:
        return Evidence.CALLERS_LIMIT
    if _has_label(error, "NoWritesPerformed"):
        # pymongo raises an error carrying this label only when no earlier attempt's error exists.
        return Evidence.REFUSED
    if retryable_writes_unsupported(error):
        # The deployment refuses transaction numbers before executing anything, and pymongo does not retry it.
        return Evidence.REFUSED
    if kind is CommandKind.DRIVER_RETRIED_WRITE:
        # pymongo may have made several attempts and reports the last: only the proofs above count, and a
        # top-level refusal *without* the RetryableWriteError label.  mongod labels the errors of retryable
        # writes only (a command with a txnNumber), so an unlabelled refusal was sent without one: pymongo
        # made it a plain write (it saw no retryable-writes support, e.g. its primary's description changed
        # under it), and pymongo sends a plain write only as its first attempt (a retry raises the earlier
        # attempt's error instead).
        if _is_top_level_refusal(error) and not _has_label(error, "RetryableWriteError"):
            return Evidence.REFUSED
        return _transient_or_final(error)
    if isinstance(error, pymongo_errors.WaitQueueTimeoutError):
        return Evidence.NOT_SENT  # no connection was checked out: never sent
    if isinstance(error, pymongo_errors.InvalidOperation):
        # The engine replaced and closed the client between resolving the handle and using it.
        return Evidence.NOT_SENT if "after close" in str(error) else Evidence.FINAL
    if _is_top_level_refusal(error):
        return Evidence.REFUSED
    return _transient_or_final(error)


def _is_top_level_refusal(error: BaseException) -> bool:
    """A top-level 10107/13435/13436: the reply's own code, not one inside ``writeErrors`` or
    ``writeConcernError``."""
    if isinstance(error, (pymongo_errors.WriteError, pymongo_errors.WriteConcernError)):
        return False
    return error_code(error) in NOT_PRIMARY_REFUSAL_CODES


def _transient_or_final(error: BaseException) -> Evidence:
    if isinstance(error, (pymongo_errors.NotPrimaryError, pymongo_errors.OperationFailure)):
        code = error_code(error)
        if code in TRANSIENT_CODES or code in NOT_PRIMARY_REFUSAL_CODES:
            return Evidence.TRANSIENT
        if isinstance(error, pymongo_errors.NotPrimaryError) and code is None:
            return Evidence.TRANSIENT  # a "not primary" message without a code (legacy servers)
        return Evidence.FINAL
    if isinstance(error, pymongo_errors.ConnectionFailure):
        return Evidence.TRANSIENT  # AutoReconnect, NetworkTimeout, a reset or refused connection
    return Evidence.FINAL


def needs_primary(error: BaseException) -> bool:
    """True when the error says the cluster has no usable primary right now (wait for the supervisor)."""
    if isinstance(error, (pymongo_errors.ServerSelectionTimeoutError, pymongo_errors.NotPrimaryError)):
        return True
    if isinstance(error, pymongo_errors.NetworkTimeout):
        return False
    return error_code(error) in _NO_PRIMARY_CODES or type(error) is pymongo_errors.AutoReconnect


@attrs.frozen
class Attempts:
    """The history of one command's attempts, as a value: how many, whether any may have applied, the last
    error.  Each failure makes a new value (``Decision.attempts``)."""

    count: int = 0
    #: Some attempt may have changed data (sent, and not provably refused).
    maybe_applied: bool = False
    last_error: BaseException | None = attrs.field(default=None, eq=False)

    def after(self, error: BaseException, *, maybe_applied: bool) -> Attempts:
        return Attempts(self.count + 1, self.maybe_applied or maybe_applied, error)


@attrs.frozen
class Decision:
    """A verdict, the evidence behind it, and the attempts including the failure just decided on."""

    verdict: Verdict
    evidence: Evidence
    attempts: Attempts


_PROOFS = frozenset({Evidence.NOT_SENT, Evidence.REFUSED})
_REPLAYABLE = frozenset({CommandKind.READ, CommandKind.IDEMPOTENT})


def decide(
    kind: CommandKind,
    error: BaseException,
    attempts: Attempts,
    time_left: float,
    *,
    max_attempts: int = 50,
    limit_is_callers: bool = False,
) -> Decision:
    """The verdict after ``error`` ended one attempt of a command of ``kind``.

    ``attempts`` is the history *before* this failure; ``time_left`` the seconds to the effective deadline
    (the budget's or the caller's enclosing ``pymongo.timeout``, whichever is sooner); ``limit_is_callers``
    says that deadline is the caller's.  Pure: no I/O, no clock, no sleep.
    """
    evidence = assess(kind, error)
    if (kind is CommandKind.FUNCTION and evidence in _PROOFS) or (
        kind is CommandKind.MULTI_COMMAND_WRITE and evidence is Evidence.REFUSED
    ):
        # It proves the failing operation (or command) unapplied, not the earlier ones.
        evidence = Evidence.TRANSIENT
    maybe_applied = kind is not CommandKind.READ and evidence not in _PROOFS
    history = attempts.after(error, maybe_applied=maybe_applied)
    if evidence in (Evidence.FINAL, Evidence.CALLERS_LIMIT):
        return Decision(Verdict.RAISE, evidence, history)
    if maybe_applied and kind not in _REPLAYABLE:
        # Replaying could apply it twice; pymongo's own error stands where the caller's deadline fired.
        verdict = Verdict.RAISE if limit_is_callers and time_left <= 0 else Verdict.OUTCOME_UNKNOWN
        return Decision(verdict, evidence, history)
    if time_left <= 0 or history.count >= max_attempts:
        return Decision(at_deadline(history, limit_is_callers=limit_is_callers), evidence, history)
    verdict = Verdict.WAIT_FOR_PRIMARY if needs_primary(error) else Verdict.RETRY_NOW
    return Decision(verdict, evidence, history)


def at_deadline(attempts: Attempts, *, limit_is_callers: bool = False) -> Verdict:
    """The verdict when time (or the attempt limit) runs out between attempts."""
    if limit_is_callers and attempts.last_error is not None:
        return Verdict.RAISE
    return Verdict.OUTCOME_UNKNOWN if attempts.maybe_applied else Verdict.EXHAUSTED


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
    Every write attempt runs under ``pymongo.timeout(time left)``, under which pymongo itself retries
    single-statement writes with the *same* transaction number until the deadline (CSOT spec, "Retryability"),
    so the server de-duplicates them: exactly once even for ``$inc`` across an election.
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
