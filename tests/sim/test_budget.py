"""The budget binds and the caller's limits win.

A member holding every request (``blackhole``) or answering later than the budget (``delay``): each call ends
within the budget plus 0.5 s, a read with ``RetryBudgetExhaustedError`` (nothing changed), a write with
``OutcomeUnknownError`` (it may have landed).  The caller's own limits (``max_time_ms``, an enclosing
``pymongo.timeout``, URI options) are respected and their errors come back unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pymongo
import pytest
from pymongo.errors import ExecutionTimeout, PyMongoError

from mongomancy import Engine, OutcomeUnknownError, RetryBudgetExhaustedError, RetryClass, RetryPolicy
from mongomancy.testing import SimulatedReplicaSet, wait_for

BUDGET = 1.5
SLACK = 0.5


@pytest.fixture
def engine(sim_cluster: SimulatedReplicaSet, fast_heartbeats: None) -> Iterator[Engine]:
    engine = Engine(uri=sim_cluster.uri, heartbeatFrequencyMS=100, retry_policy=RetryPolicy(budget=BUDGET))
    try:
        wait_for(lambda: engine.topology().writable, 10, "a primary")
        engine.insert_many(engine.client.db.things, [{"_id": i, "n": 0, "state": "free"} for i in range(3)])
        yield engine
    finally:
        engine.dispose()


def _find_one(engine: Engine) -> Any:
    return engine.find_one(engine.client.db.things, {"_id": 0})


def _insert_one(engine: Engine) -> Any:
    return engine.insert_one(engine.client.db.things, {"_id": "late"})


def _claim(engine: Engine) -> Any:
    return engine.find_one_and_update(
        engine.client.db.things, {"state": "free"}, {"$set": {"state": "taken"}}
    )


def _update_many(engine: Engine) -> Any:
    return engine.update_many(engine.client.db.things, {}, {"$inc": {"n": 1}})


def _run(engine: Engine) -> Any:
    return engine.run("count", lambda client: client.db.things.update_one({"_id": 0}, {"$inc": {"n": 1}}))


CALLS: list[tuple[Callable[[Engine], Any], type[Exception]]] = [
    (_find_one, RetryBudgetExhaustedError),
    (_insert_one, OutcomeUnknownError),
    (_claim, OutcomeUnknownError),
    (_update_many, OutcomeUnknownError),
    (_run, OutcomeUnknownError),
]


@pytest.mark.parametrize("fault", ["blackhole", "delay"])
@pytest.mark.parametrize(("call", "expected"), CALLS, ids=[call.__name__.strip("_") for call, _ in CALLS])
def test_a_server_holding_every_attempt_cannot_hold_the_caller(engine, sim_cluster, fault, call, expected):
    primary = sim_cluster.primary
    assert primary is not None
    if fault == "blackhole":
        sim_cluster.blackhole(primary)
    else:
        sim_cluster.delay(primary, BUDGET * 3)
    started = time.monotonic()
    with pytest.raises(expected) as info:
        call(engine)
    elapsed = time.monotonic() - started
    sim_cluster.clear_faults()
    assert elapsed < BUDGET + SLACK, f"{call.__name__} took {elapsed:.2f} s with a {BUDGET} s budget"
    assert info.value.addresses
    assert isinstance(info.value.__cause__, PyMongoError)


def test_max_time_ms_is_the_callers_limit_and_comes_back_unchanged(engine, sim_cluster):
    sim_cluster.fail_command("find", code=50, times=5)
    with pytest.raises(ExecutionTimeout):
        engine.find_one(engine.client.db.things, {"_id": 0}, max_time_ms=100)
    assert sim_cluster.count(command="find") == 1  # not retried


@pytest.mark.parametrize("call", [_find_one, _insert_one, _update_many], ids=lambda c: c.__name__.strip("_"))
def test_an_enclosing_timeout_is_the_callers_limit(engine, sim_cluster, call):
    sim_cluster.blackhole(sim_cluster.primary)
    started = time.monotonic()
    with pytest.raises(PyMongoError) as info, pymongo.timeout(0.3):
        call(engine)
    elapsed = time.monotonic() - started
    sim_cluster.clear_faults()
    assert not isinstance(info.value, (RetryBudgetExhaustedError, OutcomeUnknownError))
    assert info.value.timeout  # pymongo's own timeout error, as without mongomancy
    assert elapsed < 0.3 + SLACK


def test_engine_run_is_replayed_only_when_the_caller_says_so(engine, sim_cluster):
    calls: list[str] = []

    def increment_then_update(client: Any) -> None:
        calls.append("non-idempotent")
        client.db.things.update_one({"_id": 1}, {"$inc": {"n": 1}})
        sim_cluster.fail_command("update", code=10107)  # the function's next update is refused
        client.db.things.update_many({}, {"$set": {"seen": True}})

    with pytest.raises(OutcomeUnknownError) as info:
        engine.run("increment then update", increment_then_update)  # NON_IDEMPOTENT_WRITE by default
    assert info.value.attempts == 1 and calls == ["non-idempotent"]
    # The refusal of its last operation said nothing about its first: the $inc ran once, never replayed.
    assert engine.find_one(engine.client.db.things, {"_id": 1})["n"] == 1

    def mark(client: Any) -> None:
        calls.append("idempotent")
        client.db.things.update_many({"_id": 2}, {"$set": {"v": 1}})

    sim_cluster.fail_command("update", code=10107)
    engine.run("mark", mark, retry_class=RetryClass.IDEMPOTENT_WRITE)
    assert calls.count("idempotent") == 2  # refused once, run again as promised safe
    assert engine.find_one(engine.client.db.things, {"_id": 2})["v"] == 1


def test_uri_options_beat_the_engines_defaults(sim_cluster, fast_heartbeats):
    uri = sim_cluster.uri + "&socketTimeoutMS=5000&serverSelectionTimeoutMS=3000"
    engine = Engine(uri=uri, retry_policy=RetryPolicy(budget=60))
    try:
        options = engine.client.options
        assert options.pool_options.socket_timeout == 5.0
        assert options.server_selection_timeout == 3.0
    finally:
        engine.dispose()
    defaulted = Engine(uri=sim_cluster.uri, retry_policy=RetryPolicy(budget=7))
    try:
        assert defaulted.client.options.server_selection_timeout == 7.0
        assert defaulted.client.options.pool_options.socket_timeout == 7.0
    finally:
        defaulted.dispose()
