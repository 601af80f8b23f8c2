"""The engine's lifecycle on the simulated cluster: seed-style hooks, a hook that calls ``reconnect()``,
``dispose()`` with a slow hook, a failed engine, per-thread counters, ``fork()``, ``MONGODB_URI`` and the
WARNING users hear while commands wait for a primary."""

from __future__ import annotations

import logging
import os
import threading
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo.errors import InvalidOperation

from mongomancy import (
    ChangeKind,
    CollectionDefinition,
    Database,
    Engine,
    RetryPolicy,
    SupervisorError,
    TopologyChange,
)
from mongomancy.testing import SimulatedReplicaSet, wait_for
from tests.sim.logs import EngineLog


@pytest.fixture
def make_engine(sim_cluster: SimulatedReplicaSet, fast_heartbeats: None) -> Iterator[Any]:
    engines: list[Engine] = []

    def make(**options: Any) -> Engine:
        options.setdefault("heartbeatFrequencyMS", 100)
        options.setdefault("uri", sim_cluster.uri)
        engine = Engine(**options)
        engines.append(engine)
        wait_for(lambda: engine.topology().writable, 10, "a primary")
        return engine

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture
def engine(make_engine: Any) -> Engine:
    return make_engine()


def things(engine: Engine) -> Any:
    return engine.client.db.things


# ------------------------------------------------------------------------------------------------ hooks
class SeedStyle:
    """A hook object in the seed's style: a bound method taking only the engine."""

    def __init__(self) -> None:
        self.sources: list[object] = []

    def invalidate_cache_hook(self, source: object) -> None:
        self.sources.append(source)


def test_one_argument_hooks_are_called_with_the_engine(engine, sim_cluster):
    seed = SeedStyle()
    plain: list[object] = []
    both: list[tuple[object, ChangeKind]] = []
    engine.register_hook(seed.invalidate_cache_hook)
    engine.register_hook(plain.append)  # a builtin method: one positional argument
    engine.register_hook(lambda e, change: both.append((e, change.kind)))
    sim_cluster.step_down()
    wait_for(lambda: any(kind is ChangeKind.PRIMARY_CHANGED for _, kind in both), 10, "the change")
    assert seed.sources and all(source is engine for source in seed.sources)
    assert plain and all(source is engine for source in plain)
    assert len(seed.sources) == len(plain) == len(both)
    assert engine.stats().hook_failures == 0
    assert seed.invalidate_cache_hook in engine.hooks
    engine.unregister_hook(seed.invalidate_cache_hook)
    assert seed.invalidate_cache_hook not in engine.hooks


def test_a_hook_that_fits_neither_convention_is_refused_at_registration(engine):
    def three(engine: object, change: object, extra: object) -> None:
        raise AssertionError("never called")

    def none() -> None:
        raise AssertionError("never called")

    with pytest.raises(TypeError, match="3 positional arguments"):
        engine.register_hook(three)
    with pytest.raises(TypeError, match="no positional argument"):
        engine.register_hook(none)
    assert engine.hooks == ()


def test_a_hook_may_call_reconnect_which_is_served_after_it_returns(engine, sim_cluster):
    seen: list[TopologyChange] = []

    def reconnecting_hook(source: Engine, change: TopologyChange) -> None:
        seen.append(change)
        source.reconnect()  # on every change, CLIENT_REPLACED included: must neither deadlock nor loop

    engine.register_hook(reconnecting_hook)
    first = engine.topology().generation
    sim_cluster.step_down()
    wait_for(
        lambda: engine.topology().generation == first + 1, 10, "the client replaced by the hook's request"
    )
    wait_for(lambda: any(c.kind is ChangeKind.CLIENT_REPLACED for c in seen), 10, "the hook told of it")
    engine.unregister_hook(reconnecting_hook)
    # A reconnect from this thread waits for its own replacement: had the hook's requests looped, the
    # generation would have run past first + 2.
    engine.reconnect()
    assert engine.topology().generation == first + 2
    engine.insert_one(things(engine), {"after": "reconnects"})
    assert engine.count_documents(things(engine), {"after": "reconnects"}) == 1


# ------------------------------------------------------------------------------------------------ dispose
def test_dispose_closes_the_client_even_while_a_hook_is_slow(make_engine, sim_cluster):
    log = EngineLog()
    engine = make_engine(logger=log.logger)
    entered, release = threading.Event(), threading.Event()

    def slow_hook(source: Engine, change: TopologyChange) -> None:
        entered.set()
        release.wait(30)

    engine.register_hook(slow_hook)
    client = engine.client
    supervisor = engine.supervisor_thread
    assert supervisor is not None
    sim_cluster.step_down()
    assert entered.wait(10)
    engine.dispose(timeout=0.2)  # returns although the hook holds the supervisor thread
    with pytest.raises(InvalidOperation):
        client.admin.command("ping")
    assert log.messages(logging.WARNING, "did not stop within 0.2 s")
    release.set()
    supervisor.join(10)
    assert not supervisor.is_alive()


def test_a_failed_engine_raises_a_fresh_error_each_time(engine, monkeypatch):
    collection = things(engine)

    def always_crash() -> None:
        raise RuntimeError("persistent supervisor bug")

    monkeypatch.setattr(engine._supervisor, "_observe", always_crash)
    engine._supervisor.nudge()
    wait_for(lambda: engine._failure is not None, 10, "the engine to give up")
    errors = []
    for _ in range(50):
        with pytest.raises(SupervisorError, match="died 5 times") as info:
            engine.find_one(collection, {})
        errors.append(info.value)
    assert len({id(error) for error in errors}) == 50
    depths = {len(traceback.extract_tb(error.__traceback__)) for error in errors}
    assert len(depths) == 1, "the traceback does not grow from call to call"
    assert all(isinstance(error.__cause__, RuntimeError) for error in errors)


# ------------------------------------------------------------------------------------------------ counters
def test_success_counters_do_not_keep_a_cell_per_dead_thread(engine):
    collection = things(engine)
    engine.insert_one(collection, {"_id": 1})

    def one_call() -> None:
        engine.find_one(collection, {"_id": 1})

    before = engine.stats().succeeded
    for _ in range(20):  # 20 waves of 25 short-lived threads
        wave = [threading.Thread(target=one_call) for _ in range(25)]
        for thread in wave:
            thread.start()
        for thread in wave:
            thread.join()
    assert engine.stats().succeeded - before == 500
    assert engine._counters.live_success_cells <= 30  # this thread, at most a wave still being torn down


# ------------------------------------------------------------------------------------------------ fork
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_after_fork_every_lock_is_fresh_and_hooks_hear_of_the_childs_client(engine):
    database = Database(engine, "forked")
    collection = database.add_collection(CollectionDefinition(name="items"))
    collection.insert_one({"who": "parent"})
    heard: list[TopologyChange] = []
    engine.register_hook(lambda source, change: heard.append(change))
    parent_generation = engine.topology().generation

    # Hold every lock a parent thread could hold at the moment of fork().
    locks = [
        engine._lifecycle,
        engine._counters._lock,
        engine._counters._succeeded._lock,
        engine._hooks.hooks._lock,
        engine._hooks.observers._lock,
        database._lock,
    ]
    holding, release = threading.Event(), threading.Event()

    def hold_all() -> None:
        for lock in locks:
            lock.acquire()
        holding.set()
        release.wait(30)
        for lock in reversed(locks):
            lock.release()

    holder = threading.Thread(target=hold_all)
    holder.start()
    assert holding.wait(10)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        code = 1
        try:
            collection.insert_one({"who": "child"})  # needs a new client, and the hook's rebinding
            database.add_collection(CollectionDefinition(name="child_only"))  # takes the Database lock
            engine.register_hook(lambda source, change: None)  # takes the hook list's lock
            replaced = [c for c in heard if c.kind is ChangeKind.CLIENT_REPLACED]
            told = len(replaced) == 1 and replaced[0].client_generation == parent_generation + 1
            code = 0 if told and engine.stats().succeeded >= 1 else 2
            engine.dispose()
        finally:
            os.write(write_end, bytes([code]))
            os._exit(code)
    release.set()
    holder.join()
    os.close(write_end)
    status = os.read(read_end, 1)
    os.close(read_end)
    _, exit_status = os.waitpid(pid, 0)
    assert status == b"\x00", f"child reported {status!r}"
    assert os.waitstatus_to_exitcode(exit_status) == 0
    assert sorted(d["who"] for d in collection.find({}, {"_id": 0})) == ["child", "parent"]
    assert engine.topology().generation == parent_generation
    database.close()


# ------------------------------------------------------------------------------------------------ MONGODB_URI
def test_an_engine_without_host_or_uri_uses_mongodb_uri(sim_cluster, fast_heartbeats, monkeypatch):
    monkeypatch.setenv("MONGODB_URI", sim_cluster.uri)
    with Engine(heartbeatFrequencyMS=100) as engine:
        engine.insert_one(things(engine), {"from": "MONGODB_URI"})
        assert engine.topology().set_name == sim_cluster.set_name
        assert engine.count_documents(things(engine), {"from": "MONGODB_URI"}) == 1


# ------------------------------------------------------------------------------------------------ waiting
def test_waiting_for_a_primary_is_announced_with_each_members_reason_then_its_end(make_engine, sim_cluster):
    log = EngineLog()
    engine = make_engine(retry_policy=RetryPolicy(budget=30), logger=log.logger)
    engine.insert_one(things(engine), {"k": 0})
    old_primary = sim_cluster.primary_address
    sim_cluster.kill(sim_cluster.primary)  # no election until we say so

    done = threading.Event()
    outcome: list[object] = []

    def write() -> None:
        outcome.append(engine.insert_one(things(engine), {"k": 1}))
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    wait_for(lambda: log.messages(logging.WARNING, "no primary of replica set"), 10, "the waiting WARNING")
    warning = log.messages(logging.WARNING, "no primary of replica set")[0]
    assert f"{old_primary} refused the connection" in warning
    others = [m.address for m in sim_cluster.members if m.address != old_primary]
    assert all(f"{address} is a secondary" in warning for address in others)
    assert "no primary elected" in warning
    sim_cluster.elect(sim_cluster.member_index(others[0]))
    assert done.wait(20)
    writer.join()
    wait_for(lambda: log.messages(logging.INFO, "waiting commands released"), 10, "the INFO line at the end")
    assert others[0] in log.messages(logging.INFO, "waiting commands released")[0]
    assert engine.count_documents(things(engine), {"k": 1}) == 1
    assert len(log.messages(logging.WARNING, "no primary of replica set")) == 1
