"""The engine against the simulated replica set: failovers, the queue, the budget, hooks and lifecycle."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterator

import pymongo
import pytest
from pymongo import WriteConcern, monitoring
from pymongo.errors import DuplicateKeyError

from mongomancy import (
    ChangeKind,
    ConfigurationError,
    CursorResumeError,
    Engine,
    EngineDisposedError,
    OutcomeUnknownError,
    QueueFullError,
    RetryBudgetExhaustedError,
    RetryPolicy,
    StaleSessionError,
    SupervisorError,
    TopologyChange,
)
from mongomancy.testing import Outcome, SimulatedReplicaSet, wait_for


@pytest.fixture
def make_engine(sim_cluster: SimulatedReplicaSet, fast_heartbeats: None) -> Iterator:
    engines: list[Engine] = []

    def make(**options) -> Engine:
        options.setdefault("heartbeatFrequencyMS", 100)
        engine = Engine(uri=sim_cluster.uri, **options)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        thread = engine.supervisor_thread
        engine.dispose()
        assert thread is None or not thread.is_alive()


@pytest.fixture
def engine(make_engine) -> Engine:
    engine = make_engine()
    wait_for(lambda: engine.topology().writable, 10, "a primary")
    return engine


def _things(engine: Engine):
    return engine.client.db.things


class HookLog:
    """A hook that records what it saw; tests wait on it instead of sleeping."""

    def __init__(self) -> None:
        self.changes: list[TopologyChange] = []
        self.lock = threading.Lock()

    def __call__(self, engine: Engine, change: TopologyChange) -> None:
        with self.lock:
            self.changes.append(change)

    def kinds(self) -> list[ChangeKind]:
        with self.lock:
            return [change.kind for change in self.changes]


# ------------------------------------------------------------------------------------------ basics
def test_crud_through_the_engine(engine):
    things = _things(engine)
    inserted = engine.insert_one(things, {"name": "a", "n": 0})
    assert engine.find_one(things, {"_id": inserted.inserted_id})["name"] == "a"
    engine.update_one(things, {"_id": inserted.inserted_id}, {"$inc": {"n": 2}})
    engine.insert_many(things, [{"name": "b"}, {"name": "c"}])
    assert engine.count_documents(things, {}) == 3
    assert engine.find_one(things, {"name": "a"})["n"] == 2
    assert [d["name"] for d in engine.find(things, {}, sort=[("name", 1)])] == ["a", "b", "c"]
    assert engine.delete_many(things, {"name": {"$in": ["b", "c"]}}).deleted_count == 2
    stats = engine.stats()
    assert stats.operations >= 6 and stats.failed == 0 and stats.writable
    assert stats.current_primary == sim_address(engine)


def sim_address(engine: Engine) -> str | None:
    return engine.topology().primary


def test_host_and_port_form(sim_cluster, fast_heartbeats):
    member = sim_cluster.members[0]
    with Engine(member.host, member.port, heartbeatFrequencyMS=100) as engine:
        engine.insert_one(engine.client.db.things, {"x": 1})
        assert engine.topology().set_name == sim_cluster.set_name
    assert engine.disposed


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {"uri": "http://127.0.0.1"}, "must start with mongodb://"),
        (("127.0.0.1",), {"uri": "mongodb://127.0.0.1"}, "not both"),
        (("127.0.0.1", 0), {}, "port must be"),
        (("127.0.0.1", "27017"), {}, "port must be"),
        ((), {"uri": "mongodb://127.0.0.1", "retry_policy": 30}, "retry_policy must be a RetryPolicy"),
        ((), {"uri": "mongodb://127.0.0.1", "queue_capacity": 0}, "queue_capacity"),
        ((), {"uri": "mongodb://127.0.0.1", "heartbeatFrequencyMS": "often"}, "heartbeatfrequencyms"),
    ],
)
def test_bad_configuration_is_named(args, kwargs, message):
    with pytest.raises(ConfigurationError) as info:
        Engine(*args, **kwargs)
    assert message.lower() in str(info.value).lower()


def test_credentials_never_reach_logs_or_messages(caplog):
    caplog.set_level(logging.DEBUG)
    uri = "mongodb://admin:s3cr3tPass@127.0.0.1:1/?serverSelectionTimeoutMS=100"
    with pytest.raises(ConfigurationError) as info:
        Engine(uri=uri, heartbeatFrequencyMS="often")
    assert "s3cr3tPass" not in str(info.value)
    with Engine(uri=uri) as engine:
        assert "s3cr3tPass" not in repr(engine)
    assert "s3cr3tPass" not in caplog.text
    assert "admin:***@" in caplog.text


# ------------------------------------------------------------------------------------------ failovers
def test_hooks_run_once_per_change(engine, sim_cluster):
    hooks = HookLog()
    engine.register_hook(hooks)
    first = engine.topology().primary
    sim_cluster.step_down()  # 0 s election
    wait_for(lambda: ChangeKind.PRIMARY_CHANGED in hooks.kinds(), 10, "the primary change")
    sim_cluster.step_down(election_seconds=0.5)
    wait_for(lambda: hooks.kinds().count(ChangeKind.PRIMARY_CHANGED) == 2, 10, "the second change")
    changed = [c for c in hooks.changes if c.kind is ChangeKind.PRIMARY_CHANGED]
    assert changed[0].old_primary == first and changed[0].new_primary == changed[1].old_primary
    assert ChangeKind.NO_PRIMARY in hooks.kinds()  # the 0.5 s window without a primary was seen
    assert engine.stats().failovers == 2
    engine.unregister_hook(hooks)
    with pytest.raises(ValueError, match="not registered"):
        engine.unregister_hook(hooks)


def test_a_failing_hook_is_logged_and_the_others_still_run(engine, sim_cluster, caplog):
    def broken(engine, change):
        raise RuntimeError("hook bug")

    hooks = HookLog()
    engine.register_hook(broken)
    engine.register_hook(hooks)
    sim_cluster.step_down()
    wait_for(lambda: ChangeKind.PRIMARY_CHANGED in hooks.kinds(), 10, "the primary change")
    assert engine.stats().hook_failures >= 1
    assert "hook bug" in caplog.text


def test_a_slow_hook_is_logged_with_its_duration(make_engine, sim_cluster, caplog):
    engine = make_engine(slow_hook_seconds=0.0)
    wait_for(lambda: engine.topology().writable, 10, "a primary")
    hooks = HookLog()
    engine.register_hook(hooks)
    sim_cluster.step_down()
    wait_for(lambda: hooks.changes, 10, "a hook run")
    wait_for(lambda: " took " in caplog.text, 5, "the slow-hook warning")


def test_writes_wait_through_an_election_longer_than_server_selection(make_engine, sim_cluster):
    engine = make_engine(serverSelectionTimeoutMS=300, retry_policy=RetryPolicy(budget=20))
    things = _things(engine)
    engine.insert_one(things, {"before": True})
    sim_cluster.step_down(election_seconds=1.5)
    started = time.monotonic()
    engine.insert_one(things, {"during": True})
    engine.update_many(things, {}, {"$set": {"seen": True}})
    assert time.monotonic() - started >= 1.0  # it really waited for the election
    assert engine.count_documents(things, {"seen": True}) == 2


def test_an_election_longer_than_the_budget_raises_the_dedicated_error(make_engine, sim_cluster):
    engine = make_engine(retry_policy=RetryPolicy(budget=1.0))
    things = _things(engine)
    engine.insert_one(things, {})
    sim_cluster.step_down(election_seconds=30)
    wait_for(lambda: not engine.topology().writable, 10, "no primary")  # so nothing is ever sent
    started = time.monotonic()
    with pytest.raises(RetryBudgetExhaustedError) as info:
        engine.insert_one(things, {"late": True})
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 2.5  # after the budget, and not long after
    assert info.value.elapsed == pytest.approx(elapsed, abs=0.5)
    assert info.value.attempts == 0
    assert info.value.addresses  # says where...
    assert "no usable primary" in str(info.value)  # ...and why
    assert engine.stats().budget_exhausted == 1
    sim_cluster.elect(wait=True)


def test_a_full_queue_fails_at_once_and_the_waiters_run_when_a_primary_is_back(make_engine, sim_cluster):
    engine = make_engine(queue_capacity=2)
    things = _things(engine)
    wait_for(lambda: engine.topology().writable, 10, "a primary")
    sim_cluster.step_down(election_seconds=60)
    wait_for(lambda: not engine.topology().writable, 10, "no primary")
    outcomes: list = []

    def insert(i: int) -> None:
        outcomes.append(engine.insert_one(things, {"i": i}).acknowledged)

    workers = [threading.Thread(target=insert, args=(i,)) for i in range(2)]
    for worker in workers:
        worker.start()
    wait_for(lambda: engine.stats().queue_length == 2, 10, "two queued commands")
    started = time.monotonic()
    with pytest.raises(QueueFullError, match="already waiting"):
        engine.insert_one(things, {"i": 99})
    assert time.monotonic() - started < 1
    sim_cluster.elect()  # supersedes the 60 s election
    for worker in workers:
        worker.join(10)
    assert outcomes == [True, True]
    assert engine.count_documents(things, {}) == 2
    assert engine.stats().queue_high_water == 2


def test_the_bound_counts_commands_waiting_inside_pymongo(make_engine, sim_cluster):
    engine = make_engine(queue_capacity=3, retry_policy=RetryPolicy(budget=20))
    things = _things(engine)
    wait_for(lambda: engine.topology().writable, 10, "a primary")
    sim_cluster.delay(sim_cluster.primary, 5.0)  # replies (not handshakes) come 5 s late: the inserts wait
    workers = [threading.Thread(target=engine.insert_one, args=(things, {"i": i})) for i in range(3)]
    for worker in workers:
        worker.start()
    backend: pymongo.MongoClient = pymongo.MongoClient(sim_cluster.backend_uri, directConnection=True)
    try:  # the three inserts reached the server (their replies are held back)
        wait_for(lambda: backend.db.things.count_documents({}) == 3, 10, "three inserts applied")
    finally:
        backend.close()
    assert engine.commands_in_flight == 3
    sim_cluster.step_down(election_seconds=60)
    wait_for(lambda: not engine.topology().writable, 10, "no primary")
    assert engine.stats().queue_length == 0  # the queue itself is empty...
    with pytest.raises(QueueFullError, match="3 inside pymongo"):  # ...but three commands already wait
        engine.insert_one(things, {"i": 99})
    sim_cluster.elect()
    for worker in workers:
        worker.join(30)
    assert not any(worker.is_alive() for worker in workers)
    assert engine.count_documents(things, {}) == 3


def test_dispose_wakes_waiting_commands_and_is_final(make_engine, sim_cluster):
    engine = make_engine()
    things = _things(engine)
    wait_for(lambda: engine.topology().writable, 10, "a primary")
    sim_cluster.step_down(election_seconds=60)
    wait_for(lambda: not engine.topology().writable, 10, "no primary")
    errors: list = []

    def insert() -> None:
        try:
            engine.insert_one(things, {})
        except EngineDisposedError as error:
            errors.append(error)

    workers = [threading.Thread(target=insert) for _ in range(3)]
    for worker in workers:
        worker.start()
    wait_for(lambda: engine.stats().queue_length == 3, 10, "three queued commands")
    supervisor = engine.supervisor_thread
    engine.dispose()
    engine.dispose()  # idempotent
    for worker in workers:
        worker.join(10)
    assert len(errors) == 3
    assert supervisor is not None and not supervisor.is_alive()
    with pytest.raises(EngineDisposedError):
        engine.find_one(things, {})
    with pytest.raises(EngineDisposedError):
        engine.reconnect()


# ------------------------------------------------------------------------------------------ exactly once
def test_an_insert_whose_reply_was_lost_lands_exactly_once(engine, sim_cluster):
    things = _things(engine)
    sim_cluster.fail_command("insert", close_connection=True, after_forward=True)
    result = engine.insert_one(things, {"k": "once"})
    assert engine.count_documents(things, {"k": "once"}) == 1
    inserts = sim_cluster.records(command="insert")
    outcomes = [r.outcome for r in inserts]
    assert outcomes.count(Outcome.FORWARDED) == 1  # reached the backend once...
    assert Outcome.DEDUPLICATED in outcomes  # ...and the retry was answered from the record
    assert len({(r.lsid, r.txn_number) for r in inserts}) == 1  # pymongo's retry: same transaction number
    assert result.inserted_id is not None


def test_an_inc_across_a_hang_up_election_is_applied_exactly_once(engine, sim_cluster):
    things = _things(engine)
    things_id = engine.insert_one(things, {"n": 0}).inserted_id
    sim_cluster.fail_command("update", close_connection=True, after_forward=True)
    sim_cluster.step_down(election_seconds=0.5, hang_up=True)
    engine.update_one(things, {"_id": things_id}, {"$inc": {"n": 1}})
    assert engine.find_one(things, {"_id": things_id})["n"] == 1
    updates = sim_cluster.records(command="update")
    assert len({(r.lsid, r.txn_number) for r in updates}) == 1  # one write, however many arrivals
    assert sum(r.outcome is Outcome.FORWARDED or r.outcome is Outcome.INJECTED for r in updates) >= 1


def test_a_non_idempotent_multi_update_with_unknown_outcome_is_reported_not_replayed(engine, sim_cluster):
    things = _things(engine)
    engine.insert_many(things, [{"n": 0} for _ in range(3)])
    sim_cluster.fail_command("update", close_connection=True, after_forward=True)
    with pytest.raises(OutcomeUnknownError) as info:
        engine.update_many(things, {}, {"$inc": {"n": 1}})
    assert isinstance(info.value.cause, pymongo.errors.AutoReconnect)
    assert info.value.__cause__ is info.value.cause
    assert info.value.command.operation == "update_many"
    assert sorted(d["n"] for d in engine.find(things, {})) == [1, 1, 1]  # applied once, never twice
    assert engine.stats().outcome_unknown == 1


def test_a_multi_update_of_set_with_unknown_outcome_is_reported_not_replayed(engine, sim_cluster):
    # A replay would leave the same data but report modified_count 0: not the result of one application.
    things = _things(engine)
    engine.insert_many(things, [{"n": 0} for _ in range(3)])
    sim_cluster.fail_command("update", close_connection=True, after_forward=True)
    with pytest.raises(OutcomeUnknownError):
        engine.update_many(things, {}, {"$set": {"flag": True}})
    assert engine.count_documents(things, {"flag": True}) == 3


def test_a_refused_non_idempotent_write_is_retried(engine, sim_cluster):
    things = _things(engine)
    engine.insert_many(things, [{"n": 0} for _ in range(2)])
    sim_cluster.fail_command("update", code=10107, labels=["RetryableWriteError"], times=2)
    engine.update_many(things, {}, {"$inc": {"n": 1}})  # refused before execution: safe to send again
    assert sorted(d["n"] for d in engine.find(things, {})) == [1, 1]


def test_fatal_errors_are_raised_at_once(engine):
    things = _things(engine)
    engine.insert_one(things, {"_id": "dup"})
    before = engine.stats().retries
    with pytest.raises(DuplicateKeyError):
        engine.insert_one(things, {"_id": "dup"})
    assert engine.stats().retries == before


# ------------------------------------------------------------------------------------------ cursors
@pytest.fixture
def cursor_engine(make_engine) -> Engine:
    """An engine that gives up on a dead cursor's server after 1 s (the default is 10 s)."""
    engine = make_engine(retry_policy=RetryPolicy(cursor_fetch_timeout=1.0))
    wait_for(lambda: engine.topology().writable, 10, "a primary")
    return engine


def test_iterating_10000_documents_across_a_failover_yields_each_exactly_once(cursor_engine, sim_cluster):
    engine = cursor_engine
    things = _things(engine)
    engine.insert_many(things, [{"i": i} for i in range(10_000)])
    seen: list[int] = []
    cursor = engine.find(things, {}, batch_size=500)
    for document in cursor:
        seen.append(document["i"])
        if len(seen) == 3_000:
            sim_cluster.kill(sim_cluster.primary, election_seconds=0.2)  # the cursor dies with its server
    assert len(seen) == 10_000 and len(set(seen)) == 10_000
    assert cursor.resumes >= 1


def test_a_cursor_resumes_on_a_compound_sort(cursor_engine, sim_cluster):
    engine = cursor_engine
    things = _things(engine)
    engine.insert_many(things, [{"group": i % 7, "i": i} for i in range(2_000)])
    seen = []
    for document in engine.find(things, {"i": {"$gte": 100}}, sort=[("group", -1)], batch_size=100):
        seen.append((document["group"], document["i"]))
        if len(seen) == 500:
            sim_cluster.kill(sim_cluster.primary, election_seconds=0.2)
    assert len(seen) == 1_900 and len(set(seen)) == 1_900
    groups = [group for group, _ in seen]
    assert groups == sorted(groups, reverse=True)


def test_a_cursor_that_cannot_resume_says_why(cursor_engine, sim_cluster):
    engine = cursor_engine
    things = _things(engine)
    engine.insert_many(things, [{"i": i, "tags": [i, -i] if i == 250 else i} for i in range(300)])
    cursor = engine.find(things, {}, sort=[("tags", 1)], batch_size=50)
    with pytest.raises(CursorResumeError, match="holds an array in a sort key"):
        for count, _document in enumerate(cursor, 1):
            if count == 60:
                sim_cluster.kill(sim_cluster.primary, election_seconds=0.2)


def test_a_secondary_read_does_not_wait_for_a_primary(engine, sim_cluster):
    things = _things(engine)
    engine.insert_one(things, {"x": 1})
    sim_cluster.step_down(election_seconds=60)
    wait_for(lambda: not engine.topology().writable, 10, "no primary")
    relaxed = things.with_options(read_preference=pymongo.ReadPreference.SECONDARY_PREFERRED)
    assert engine.find_one(relaxed, {"x": 1})["x"] == 1
    sim_cluster.elect()


# ------------------------------------------------------------------------------------------ lifecycle
def _sim_free_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if not t.name.startswith("mongomancy-sim-")}


def test_reconnect_replaces_and_closes_the_client_and_runs_hooks(engine):
    hooks = HookLog()
    engine.register_hook(hooks)
    old = engine.client
    engine.reconnect()
    assert engine.client is not old
    assert hooks.kinds() == [ChangeKind.CLIENT_REPLACED]
    # A raw handle of the old client is rebound to the new one at every attempt, never revived.
    engine.insert_one(old.db.things, {"after": "reconnect"})
    assert engine.find_one(_things(engine), {"after": "reconnect"}) is not None


def test_100_reconnects_leave_no_extra_thread(engine):
    things = _things(engine)
    engine.reconnect()
    engine.find_one(things, {})
    baseline = len(_sim_free_threads())
    for _ in range(100):
        engine.reconnect()
    engine.find_one(things, {})
    wait_for(lambda: len(_sim_free_threads()) <= baseline, 20, "old clients' threads to end")
    assert engine.stats().client_replacements == 101


def test_reconnect_is_single_flight(engine, sim_cluster):
    release = threading.Event()
    blocked = threading.Event()

    def hold_the_supervisor(engine, change):
        if change.kind is ChangeKind.PRIMARY_CHANGED:
            blocked.set()
            release.wait(10)

    engine.register_hook(hold_the_supervisor)
    sim_cluster.step_down()
    wait_for(blocked.is_set, 10, "the supervisor busy in a hook")
    callers = [threading.Thread(target=engine.reconnect) for _ in range(16)]
    for caller in callers:
        caller.start()
    release.set()
    for caller in callers:
        caller.join(10)
    assert engine.stats().client_replacements == 1


def test_a_session_of_a_replaced_client_fails_clearly(engine):
    things = _things(engine)
    session = engine.start_session()
    engine.find_one(things, {}, session=session)
    engine.reconnect()
    retries = engine.stats().retries
    with pytest.raises(StaleSessionError, match="start a new session"):
        engine.find_one(things, {}, session=session)
    assert engine.stats().retries == retries  # no retry loop


def test_with_transaction(engine):
    things = _things(engine)
    engine.insert_one(things, {"_id": "account", "balance": 10})

    def move(session):
        engine.update_one(things, {"_id": "account"}, {"$inc": {"balance": -3}}, session=session)
        return "done"

    assert engine.with_transaction(move) == "done"
    assert engine.find_one(things, {"_id": "account"})["balance"] == 7


def test_a_dead_supervisor_is_restarted(engine, monkeypatch):
    supervisor = engine._supervisor
    first_thread = engine.supervisor_thread
    original = supervisor._observe
    crashes = iter([True])

    def crash_once():
        if next(crashes, False):
            raise RuntimeError("simulated supervisor bug")
        original()

    monkeypatch.setattr(supervisor, "_observe", crash_once)
    supervisor.nudge()
    wait_for(lambda: engine.stats().supervisor_restarts == 1, 10, "a supervisor restart")
    wait_for(
        lambda: engine.supervisor_thread is not first_thread and engine.supervisor_thread.is_alive(),
        10,
        "a new supervisor thread",
    )
    engine.insert_one(_things(engine), {"still": "working"})


def test_a_supervisor_that_keeps_dying_fails_loudly(engine, monkeypatch):
    def always_crash():
        raise RuntimeError("persistent supervisor bug")

    monkeypatch.setattr(engine._supervisor, "_observe", always_crash)
    engine._supervisor.nudge()
    wait_for(lambda: engine._failure is not None, 10, "the engine to give up")
    with pytest.raises(SupervisorError, match="died 5 times"):
        engine.find_one(_things(engine), {})


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_its_own_client_and_the_parent_is_untouched(engine):
    things = _things(engine)
    engine.insert_one(things, {"who": "parent"})
    parent_client = engine.client
    parent_thread = engine.supervisor_thread
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report through the pipe, never return into pytest
        code = 1
        try:
            engine.insert_one(engine.client.db.things, {"who": "child"})
            ok = engine.client is not parent_client and engine.supervisor_thread is not parent_thread
            code = 0 if ok else 2
            engine.dispose()
        finally:
            os.write(write_end, bytes([code]))
            os._exit(code)
    os.close(write_end)
    status = os.read(read_end, 1)
    os.close(read_end)
    _, exit_status = os.waitpid(pid, 0)
    assert status == b"\x00" and os.waitstatus_to_exitcode(exit_status) == 0
    assert engine.client is parent_client and engine.supervisor_thread is parent_thread
    assert engine.count_documents(things, {"who": {"$in": ["parent", "child"]}}) == 2


def test_a_standalone_server_works(sim_cluster, fast_heartbeats):
    with Engine(uri=sim_cluster.backend_uri, heartbeatFrequencyMS=100) as engine:
        things = engine.client.db.things
        engine.insert_one(things, {"x": 1})
        engine.update_one(things, {"x": 1}, {"$inc": {"x": 1}})
        assert engine.find_one(things, {})["x"] == 2
        assert engine.topology().topology_type == "Single"


if sys.platform == "win32":  # pragma: no cover
    pytestmark = pytest.mark.skip("POSIX only")


def test_a_server_without_retryable_writes_is_adapted_to(engine, sim_cluster, caplog):
    things = _things(engine)
    sim_cluster.fail_command(
        "insert",
        code=20,
        error_message="Transaction numbers are only allowed on a replica set member or mongos",
    )
    engine.insert_one(things, {"k": "adapted"})
    assert engine.count_documents(things, {"k": "adapted"}) == 1
    assert engine.client.options.retry_writes is False
    assert engine.stats().client_replacements == 1
    assert "does not support retryable writes" in caplog.text
    engine.insert_one(things, {"k": "later"})
    assert sim_cluster.records(command="insert")[-1].txn_number is None  # no transaction numbers any more


def test_an_insert_whose_hidden_first_attempt_landed_is_not_reported_as_a_duplicate(engine, sim_cluster):
    # Found by the chaos run (seed 17): pymongo's first attempt landed, its own retry was refused (10107,
    # not applied), so the engine's replay met the _id.  The caller chose this _id: the stored document
    # is compared with the one sent.
    things = _things(engine)
    sim_cluster.fail_command("insert", close_connection=True, after_forward=True)  # applied, reply lost
    sim_cluster.fail_command("insert", code=10107, labels=["RetryableWriteError"])  # pymongo's retry refused
    result = engine.insert_one(things, {"_id": "x", "v": 1})
    assert result.inserted_id == "x"
    assert engine.count_documents(things, {"_id": "x"}) == 1


def test_a_replay_meeting_a_different_document_is_the_callers_duplicate(engine, sim_cluster):
    things = _things(engine)
    engine.insert_one(things, {"_id": "taken", "v": "someone else's"})
    sim_cluster.fail_command("insert", code=10107, labels=["RetryableWriteError"], times=2)
    with pytest.raises(DuplicateKeyError):
        engine.insert_one(things, {"_id": "taken", "v": "mine"})


def test_an_insert_many_whose_first_attempt_landed_completes(engine, sim_cluster):
    things = _things(engine)
    documents = [{"i": i} for i in range(50)]
    sim_cluster.fail_command("insert", close_connection=True, after_forward=True)
    sim_cluster.fail_command("insert", code=10107, labels=["RetryableWriteError"])
    result = engine.insert_many(things, documents)
    assert len(result.inserted_ids) == 50
    assert engine.count_documents(things, {}) == 50


def test_a_write_with_wtimeout_keeps_it_and_is_not_replayed(make_engine, sim_cluster):
    # pymongo drops wtimeout under pymongo.timeout, so such a write runs without it, with pymongo's single
    # retry (same txnNumber): the first attempt (applied, reply lost) hides behind its retry's refusal, and
    # replaying the $inc with a new transaction number would apply it twice.
    sent = _CommandLog()
    engine = make_engine(event_listeners=[sent])
    wait_for(lambda: engine.topology().writable, 10, "a primary")
    things = _things(engine).with_options(write_concern=WriteConcern(w=1, wtimeout=5000))
    engine.insert_one(things, {"_id": "c", "n": 0})
    assert sent.write_concerns("insert")[-1] == {"w": 1, "wtimeout": 5000}
    sim_cluster.fail_command("update", close_connection=True, after_forward=True)
    sim_cluster.fail_command("update", code=10107, labels=["RetryableWriteError"])
    with pytest.raises(OutcomeUnknownError) as info:
        engine.update_one(things, {"_id": "c"}, {"$inc": {"n": 1}})
    assert info.value.attempts == 1
    assert engine.find_one(things, {"_id": "c"})["n"] == 1


class _CommandLog(monitoring.CommandListener):
    """Records the commands a client sends, to check what reached the wire."""

    def __init__(self) -> None:
        self.started_commands: list[dict] = []
        self.lock = threading.Lock()

    def started(self, event: monitoring.CommandStartedEvent) -> None:  # type: ignore[override]
        with self.lock:
            self.started_commands.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def write_concerns(self, name: str) -> list[dict | None]:
        with self.lock:
            return [c.get("writeConcern") for c in self.started_commands if name in c]
