"""RetryPolicy validation and backoff; the pure retry decision as a table of server replies and errors."""

from __future__ import annotations

import random

import pytest
from pymongo import errors
from pymongo.helpers_shared import _check_command_response, _check_write_command_response

from mongomancy.errors import ConfigurationError
from mongomancy.retry import (
    Attempts,
    CommandKind,
    Evidence,
    RetryPolicy,
    Verdict,
    at_deadline,
    decide,
)


def test_default_budget_covers_an_election():
    assert RetryPolicy().budget >= 30


@pytest.mark.parametrize(
    "kwargs",
    [
        {"budget": 0},
        {"budget": -1},
        {"budget": "10"},
        {"max_attempts": 0},
        {"max_attempts": 2.5},
        {"initial_backoff": 0},
        {"jitter": 1.5},
        {"jitter": -0.1},
        {"backoff_multiplier": 0.5},
        {"initial_backoff": 1.0, "max_backoff": 0.5},
    ],
)
def test_bad_policies_are_refused_with_the_field_named(kwargs):
    with pytest.raises(ConfigurationError) as info:
        RetryPolicy(**kwargs)
    assert any(name in str(info.value) for name in kwargs)


def test_policy_is_immutable():
    policy = RetryPolicy()
    with pytest.raises(AttributeError):
        policy.budget = 1  # type: ignore[misc]


def test_backoff_grows_is_capped_and_jittered():
    policy = RetryPolicy(initial_backoff=0.1, max_backoff=1.0, backoff_multiplier=2.0, jitter=0.5)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (30, 1.0)]:
        samples = [policy.backoff(attempt, rng) for _ in range(200)]
        assert max(samples) <= ceiling + 1e-9
        assert min(samples) >= ceiling * 0.5 - 1e-9
        assert len(set(samples)) > 100  # really jittered


def test_no_jitter_is_deterministic():
    policy = RetryPolicy(jitter=0.0)
    assert policy.backoff(2) == policy.backoff(2) == 0.1


READ = CommandKind.READ
IDEM = CommandKind.IDEMPOTENT
DRIVER = CommandKind.DRIVER_RETRIED_WRITE
WRITE = CommandKind.WRITE
FUNCTION = CommandKind.FUNCTION
MULTI = CommandKind.MULTI_COMMAND_WRITE

RAISE = Verdict.RAISE
RETRY = Verdict.RETRY_NOW
WAIT = Verdict.WAIT_FOR_PRIMARY
UNKNOWN = Verdict.OUTCOME_UNKNOWN
EXHAUSTED = Verdict.EXHAUSTED


def reply(code, labels=(), errmsg="injected"):
    """The exception pymongo itself raises for a command reply ``{ok: 0, code, errorLabels}``."""
    document = {"ok": 0.0, "code": code, "errmsg": errmsg}
    if labels:
        document["errorLabels"] = list(labels)
    try:
        _check_command_response(document, 21)
    except errors.PyMongoError as error:
        return error
    raise AssertionError("not an error reply")


def write_reply(write_errors, **counts):
    """The exception pymongo raises for a write command's ``writeErrors`` (a single-document write)."""
    try:
        _check_write_command_response({"ok": 1.0, **counts, "writeErrors": write_errors})
    except errors.PyMongoError as error:
        return error
    raise AssertionError("not an error reply")


def bulk_error(n_inserted=0, n_modified=0, write_errors=(), write_concern_errors=()):
    return errors.BulkWriteError(
        {
            "nInserted": n_inserted,
            "nModified": n_modified,
            "nMatched": n_modified,
            "nRemoved": 0,
            "nUpserted": 0,
            "upserted": [],
            "writeErrors": list(write_errors),
            "writeConcernErrors": list(write_concern_errors),
        }
    )


DUP_WITH_KEY = write_reply(
    [{"index": 0, "code": 11000, "errmsg": "E11000 duplicate key", "keyPattern": {"email": 1}}]
)
DUP_WITHOUT_KEY = write_reply([{"index": 0, "code": 11000, "errmsg": "E11000 duplicate key"}])
LABELLED = ["RetryableWriteError"]

# (kind, error, time left, expected verdict, why)
TABLE = [
    # ---- single-statement writes pymongo retries itself with the same txnNumber: never re-sent by us
    (DRIVER, reply(10107, LABELLED), 0.0, UNKNOWN, "step-down pattern: pymongo's retry met a non-primary"),
    (DRIVER, reply(10107, LABELLED), 5.0, UNKNOWN, "pymongo may have retried: 10107 hides the first attempt"),
    (DRIVER, reply(10107), 5.0, WAIT, "unlabelled: sent without txnNumber, pymongo's only attempt"),
    (DRIVER, reply(13436), 5.0, WAIT, "unlabelled NotPrimaryOrSecondary: a plain write's only attempt"),
    (DRIVER, write_reply([{"index": 0, "code": 10107, "errmsg": "x"}]), 5.0, UNKNOWN, "not top-level"),
    (DRIVER, errors.AutoReconnect("connection closed"), 5.0, UNKNOWN, "sent, then the connection broke"),
    (DRIVER, errors.NetworkTimeout("timed out"), 0.0, UNKNOWN, "the deadline passed after sending"),
    (DRIVER, errors.ServerSelectionTimeoutError("no primary"), 5.0, WAIT, "pymongo proves nothing was sent"),
    (DRIVER, errors.ServerSelectionTimeoutError("no primary"), 0.0, EXHAUSTED, "nothing sent, no time left"),
    (DRIVER, reply(91, ["RetryableWriteError", "NoWritesPerformed"]), 5.0, WAIT, "NoWritesPerformed"),
    (DRIVER, errors.WaitQueueTimeoutError("pool"), 5.0, UNKNOWN, "checkout after an applied try"),
    (DRIVER, DUP_WITH_KEY, 5.0, RAISE, "duplicate key with keyPattern: the server's answer"),
    (DRIVER, DUP_WITHOUT_KEY, 5.0, RAISE, "duplicate key without keyPattern: still the server's answer"),
    (DRIVER, write_reply([{"index": 0, "code": 121, "errmsg": "invalid"}]), 5.0, RAISE, "validation"),
    (DRIVER, bulk_error(1, 0, [{"index": 1, "code": 11000}]), 5.0, RAISE, "a bulk result with counts"),
    (DRIVER, errors.WriteConcernError("wtimeout", code=64), 5.0, RAISE, "applied, not confirmed: as pymongo"),
    (DRIVER, reply(50), 5.0, RAISE, "MaxTimeMSExpired: the caller's own limit"),
    (
        DRIVER,
        reply(20, errmsg="Transaction numbers are only allowed on a replica set member or mongos"),
        5.0,
        RETRY,
        "no retryable writes here: refused before executing",
    ),
    # ---- writes the server cannot retry: replayed only on proof that nothing applied
    (WRITE, reply(10107, LABELLED), 5.0, WAIT, "top-level NotWritablePrimary: refused before execution"),
    (WRITE, reply(13435), 5.0, WAIT, "top-level NotPrimaryNoSecondaryOk"),
    (WRITE, reply(13436), 5.0, WAIT, "top-level NotPrimaryOrSecondary"),
    (WRITE, reply(10107), 0.0, EXHAUSTED, "refused, and no time left: nothing was applied"),
    (WRITE, reply(89), 5.0, UNKNOWN, "NetworkTimeout from a router can follow an applied write"),
    (WRITE, reply(6), 5.0, UNKNOWN, "HostUnreachable: retryable, not proof"),
    (WRITE, reply(7), 5.0, UNKNOWN, "HostNotFound: retryable, not proof"),
    (WRITE, reply(9001), 5.0, UNKNOWN, "SocketException: retryable, not proof"),
    (WRITE, reply(262), 5.0, UNKNOWN, "ExceededTimeLimit: retryable, not proof"),
    (WRITE, reply(11602, LABELLED), 5.0, UNKNOWN, "interrupted by a state change mid-way"),
    (WRITE, reply(189), 5.0, UNKNOWN, "PrimarySteppedDown"),
    (WRITE, reply(9999, ["RetryableWriteError", "NoWritesPerformed"]), 5.0, RETRY, "NoWritesPerformed"),
    (WRITE, reply(9999, LABELLED), 5.0, RAISE, "a label on an unknown code proves nothing; not retryable"),
    (WRITE, errors.WaitQueueTimeoutError("pool"), 5.0, RETRY, "no connection checked out: never sent"),
    (WRITE, errors.InvalidOperation("Cannot use MongoClient after close"), 5.0, RETRY, "closed client"),
    (WRITE, errors.AutoReconnect("connection reset"), 5.0, UNKNOWN, "sent, then the connection broke"),
    (WRITE, bulk_error(0, 3, [{"index": 3, "code": 10107}]), 5.0, RAISE, "writeErrors 10107, 3 modified"),
    (WRITE, bulk_error(0, 0, [], [{"code": 64}]), 5.0, RAISE, "write concern error in a bulk: as pymongo"),
    (WRITE, write_reply([{"index": 0, "code": 10107, "errmsg": "x"}]), 5.0, UNKNOWN, "10107 not top-level"),
    # ---- reads: retried within the budget, except the caller's own limit
    (READ, errors.AutoReconnect("connection closed"), 5.0, WAIT, "the primary may be gone"),
    (READ, errors.NetworkTimeout("timed out"), 5.0, RETRY, "a slow reply: try again"),
    (READ, reply(10107), 5.0, WAIT, "not primary"),
    (READ, reply(89), 5.0, RETRY, "retryable code"),
    (READ, reply(43), 5.0, RETRY, "CursorNotFound"),
    (READ, reply(50), 5.0, RAISE, "MaxTimeMSExpired goes straight back"),
    (READ, errors.ExecutionTimeout("slow", code=50), 5.0, RAISE, "ExecutionTimeout is code 50"),
    (READ, reply(9999, LABELLED), 5.0, RAISE, "a write label does not make a read error retryable"),
    (READ, reply(2), 5.0, RAISE, "BadValue"),
    (READ, errors.AutoReconnect("connection closed"), 0.0, EXHAUSTED, "time ran out; a read applies nothing"),
    # ---- idempotent writes: replayed, but a deadline after a maybe-applied attempt is outcome unknown
    (IDEM, errors.AutoReconnect("connection closed"), 5.0, WAIT, "safe to apply twice"),
    (IDEM, errors.AutoReconnect("connection closed"), 0.0, UNKNOWN, "it may have applied, time ran out"),
    (IDEM, errors.ServerSelectionTimeoutError("none"), 0.0, EXHAUSTED, "never sent"),
    # ---- Engine.run functions not declared idempotent: no error proves their earlier operations unapplied
    (FUNCTION, reply(10107), 5.0, UNKNOWN, "refusal of its last operation only"),
    (FUNCTION, errors.ServerSelectionTimeoutError("none"), 5.0, UNKNOWN, "earlier operations may have run"),
    (FUNCTION, DUP_WITH_KEY, 5.0, RAISE, "the server's answer"),
    # ---- a bulk pymongo sends as several commands: a refusal may follow earlier commands that applied
    (MULTI, reply(10107), 5.0, UNKNOWN, "refusal of a later command: earlier runs may have applied"),
    (MULTI, reply(9999, ["RetryableWriteError", "NoWritesPerformed"]), 5.0, UNKNOWN, "this command only"),
    (MULTI, errors.ServerSelectionTimeoutError("none"), 5.0, WAIT, "never sent: no command went out"),
    (MULTI, errors.WaitQueueTimeoutError("pool"), 5.0, RETRY, "no connection checked out: never sent"),
    (MULTI, errors.AutoReconnect("connection reset"), 5.0, UNKNOWN, "sent, then the connection broke"),
    (MULTI, bulk_error(0, 3, [{"index": 3, "code": 10107}]), 5.0, RAISE, "the server's counts"),
]


@pytest.mark.parametrize(
    ("kind", "error", "time_left", "expected"),
    [row[:4] for row in TABLE],
    ids=[f"{row[0].value}-{row[4]}" for row in TABLE],
)
def test_decision_table(kind, error, time_left, expected, monkeypatch):
    # Pure: no clock, no sleep (either would raise here).
    monkeypatch.setattr("time.monotonic", _forbidden)
    monkeypatch.setattr("time.sleep", _forbidden)
    decision = decide(kind, error, Attempts(), time_left)
    assert decision.verdict is expected
    assert decision.attempts.count == 1 and decision.attempts.last_error is error


def _forbidden(*_args):
    raise AssertionError("the decision must not read the clock or sleep")


def test_a_maybe_applied_attempt_is_remembered():
    first = decide(IDEM, errors.AutoReconnect("reset"), Attempts(), 5.0)
    assert first.attempts.maybe_applied
    second = decide(IDEM, errors.ServerSelectionTimeoutError("none"), first.attempts, 0.0)
    assert second.verdict is UNKNOWN and second.attempts.count == 2
    assert second.evidence is Evidence.NOT_SENT


def test_reads_never_count_as_applied():
    decision = decide(READ, errors.AutoReconnect("reset"), Attempts(), 5.0)
    assert not decision.attempts.maybe_applied


def test_the_attempt_limit_ends_retries():
    history = Attempts(count=4)
    assert decide(READ, errors.NetworkTimeout("t"), history, 5.0, max_attempts=5).verdict is EXHAUSTED
    assert decide(READ, errors.NetworkTimeout("t"), history, 5.0, max_attempts=6).verdict is RETRY


def test_the_callers_deadline_returns_the_driver_error():
    timeout = errors.NetworkTimeout("timed out")
    assert decide(READ, timeout, Attempts(), 0.0, limit_is_callers=True).verdict is RAISE
    assert decide(DRIVER, timeout, Attempts(), 0.0, limit_is_callers=True).verdict is RAISE
    # ...but while the caller's time remains, a maybe-applied write is still outcome unknown.
    assert decide(DRIVER, timeout, Attempts(), 1.0, limit_is_callers=True).verdict is UNKNOWN


def test_at_deadline():
    assert at_deadline(Attempts()) is EXHAUSTED
    assert at_deadline(Attempts(1, maybe_applied=True)) is UNKNOWN
    assert at_deadline(Attempts(1, last_error=errors.AutoReconnect("x")), limit_is_callers=True) is RAISE
    assert at_deadline(Attempts(), limit_is_callers=True) is EXHAUSTED  # no driver error to hand back
