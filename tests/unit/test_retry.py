"""RetryPolicy validation and backoff; classification of driver errors by what they say about the command."""

from __future__ import annotations

import random

import pytest
from pymongo import errors

from mongomancy.errors import ConfigurationError, StaleSessionError
from mongomancy.retry import ErrorKind, RetryPolicy, classify_error


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


def _failure(code, labels=(), cls=errors.OperationFailure):
    return cls("boom", code=code, details={"code": code, "errorLabels": list(labels)})


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (errors.ServerSelectionTimeoutError("no primary"), ErrorKind.NOT_APPLIED),
        (errors.NotPrimaryError("not primary", {"code": 10107}), ErrorKind.NOT_APPLIED),
        (_failure(10107, ["RetryableWriteError"]), ErrorKind.NOT_APPLIED),
        (_failure(13435), ErrorKind.NOT_APPLIED),
        (_failure(43), ErrorKind.NOT_APPLIED),  # CursorNotFound: a getMore returned nothing
        (_failure(11602, ["RetryableWriteError"]), ErrorKind.OUTCOME_UNKNOWN),
        (_failure(189), ErrorKind.OUTCOME_UNKNOWN),
        (_failure(91), ErrorKind.OUTCOME_UNKNOWN),
        (_failure(9999, ["RetryableWriteError"]), ErrorKind.OUTCOME_UNKNOWN),
        (_failure(9999, ["RetryableWriteError", "NoWritesPerformed"]), ErrorKind.NOT_APPLIED),
        (errors.AutoReconnect("connection closed"), ErrorKind.OUTCOME_UNKNOWN),
        (errors.NetworkTimeout("timed out"), ErrorKind.OUTCOME_UNKNOWN),
        (errors.ExecutionTimeout("slow", code=50), ErrorKind.OUTCOME_UNKNOWN),
        (errors.WriteConcernError("wc", code=64), ErrorKind.OUTCOME_UNKNOWN),
        (errors.DuplicateKeyError("dup", code=11000), ErrorKind.FATAL),
        (_failure(121), ErrorKind.FATAL),  # document validation
        (_failure(18), ErrorKind.FATAL),  # authentication
        (_failure(2), ErrorKind.FATAL),  # bad value
        (errors.InvalidOperation("Cannot use MongoClient after close"), ErrorKind.NOT_APPLIED),
        (errors.InvalidOperation("something else"), ErrorKind.FATAL),
        (StaleSessionError("stale"), ErrorKind.FATAL),
        (ValueError("not ours"), ErrorKind.FATAL),
    ],
)
def test_classify_error(error, kind):
    assert classify_error(error) is kind


def test_bulk_write_errors():
    refused = errors.BulkWriteError({"writeErrors": [{"code": 10107}], "writeConcernErrors": []})
    assert classify_error(refused) is ErrorKind.NOT_APPLIED
    duplicate = errors.BulkWriteError({"writeErrors": [{"code": 11000}], "writeConcernErrors": []})
    assert classify_error(duplicate) is ErrorKind.FATAL
    unconfirmed = errors.BulkWriteError({"writeErrors": [], "writeConcernErrors": [{"code": 64}]})
    assert classify_error(unconfirmed) is ErrorKind.OUTCOME_UNKNOWN
