"""``Database.plan`` and ``Database.create_all`` through the engine, against the simulated replica set.

Definitions use only what the simulator's nx backend keeps (ascending keys, ``unique``,
``expireAfterSeconds``; it renames indexes, so assertions compare key patterns, never names).  Option
kinds the backend loses (collation, partial filters, validators, collMod...) are covered at plan level by
tests/unit/test_ddl_plan.py and live by the ``real_cluster`` tests of tests/sim/test_ddl_apply.py.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import traceback
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from pymongo.database import Database as PyMongoDatabase

from mongomancy import (
    ApplyResult,
    Database,
    Engine,
    Index,
    IndexConflictError,
    Plan,
)
from mongomancy.errors import OutcomeUnknownError, RetryBudgetExhaustedError
from mongomancy.retry import RetryPolicy
from mongomancy.schema.apply import BuildRunner, apply_plan
from mongomancy.schema.definitions import CollectionDefinition
from mongomancy.schema.errors import DuplicateValuesError, SchemaStepError
from mongomancy.schema.live import LiveCollection, LiveState
from mongomancy.schema.plan import plan
from mongomancy.testing import SimulatedReplicaSet
from tests.helpers import GAME, PLAYER, assert_matches_definitions, live_keys

ID_INDEX = {"v": 2, "key": {"_id": 1}, "name": "_id_"}
WORKERS = 4
DB_NAME = "create_all_test"


@pytest.fixture
def db(engine: Engine) -> Iterator[Database]:
    with Database(engine, name=DB_NAME) as database:
        database.extend(GAME, PLAYER)
        yield database


def raw(engine: Engine) -> PyMongoDatabase[Any]:
    return engine.client[DB_NAME]


# --------------------------------------------------------------------------------------------------
# plan and create_all
# --------------------------------------------------------------------------------------------------


def test_plan_of_a_fresh_database_lists_everything(db: Database) -> None:
    plan = db.plan()
    assert isinstance(plan, Plan)
    assert [c.collection for c in plan.create_collections] == ["game", "player"]
    assert sorted((a.collection, a.index.name) for a in plan.create_indexes) == [
        ("game", "created_1"),
        ("game", "genre_1"),
        ("game", "slug_1"),
        ("player", "player_id_1"),
    ]
    assert len(plan.insert_documents) == 3
    assert not plan.is_empty
    assert "+ create collection game" in str(plan)
    assert db.plan() == plan  # comparable, deterministic


def test_create_all_then_the_plan_is_empty(db: Database, engine: Engine) -> None:
    result = db.create_all()
    assert isinstance(result, ApplyResult)
    assert sorted(result.created_collections) == ["game", "player"]
    assert len(result.created_indexes) == 4
    assert len(result.inserted_documents) == 3
    assert result.changed
    assert_matches_definitions(raw(engine), GAME, PLAYER)
    assert db.plan().is_empty
    # a second run changes nothing, with either mode
    assert not db.create_all().changed
    assert not db.create_all(skip_existing=False).changed
    assert raw(engine).game.count_documents({}) == 2


def test_default_documents_changed_by_users_are_kept(db: Database, engine: Engine) -> None:
    db.create_all()
    db["game"].update_one({"slug": "chess"}, {"$set": {"players": 3}})
    db["player"].delete_one({"player_id": 0})
    result = db.create_all(skip_existing=False)
    assert len(result.inserted_documents) == 1  # the deleted one comes back...
    assert db["game"].find_one({"slug": "chess"}, {"_id": 0})["players"] == 3  # ...the edited one stays
    assert raw(engine).player.count_documents({"player_id": 0}) == 1


def test_default_create_all_heals_an_implicitly_created_collection(
    db: Database, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    raw(engine).game.insert_one({"slug": "zork", "genre": "adventure"})  # created by an insert, no indexes
    result = db.create_all()  # the default: skip_existing=True
    assert result.created_collections == ("player",)
    assert sorted(label for label in result.created_indexes if label.startswith("game.")) == [
        "game.created_1",
        "game.genre_1",
        "game.slug_1",
    ]
    assert len([label for label in result.inserted_documents if label.startswith("game ")]) == 2
    assert live_keys(raw(engine), "game")[(("slug", 1),)].get("unique") is True
    assert raw(engine).game.count_documents({}) == 3
    assert_matches_definitions(raw(engine), GAME, PLAYER)
    assert db.plan().is_empty
    with caplog.at_level(logging.INFO, logger="mongomancy.schema"):
        assert not db.create_all().changed
    assert "matches its definitions" in caplog.text


def test_an_index_added_to_an_existing_definition_is_created(db: Database, engine: Engine) -> None:
    db.create_all()
    bigger = Database(engine=engine, name=db.name)
    bigger.add_collection(PLAYER)
    bigger.add_collection(attrs.evolve(GAME, indices=(*GAME.indices, Index({"rating": 1}))))
    try:
        result = bigger.create_all()
        assert result.created_indexes == ("game.rating_1",)
        assert (("rating", 1),) in live_keys(raw(engine), "game")
        assert bigger.plan().is_empty
    finally:
        bigger.close()


def test_drift_needing_a_replacement_is_left_with_a_warning_or_raises_unless_allowed(
    db: Database, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    db.create_all()
    players = raw(engine).player
    players.drop_indexes()
    players.create_index("player_id")  # the same key, but not unique
    # skip_existing=True leaves the existing index alone, says so at WARNING, and never says "matches"
    with caplog.at_level(logging.INFO, logger="mongomancy.schema"):
        skipped = db.create_all()
    assert not skipped.changed
    (left,) = skipped.left_unchanged
    assert "player.player_id_1" in left and "unique" in left
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("player.player_id_1" in r.getMessage() for r in warnings)
    assert "matches its definitions" not in caplog.text
    drifted = db.plan()
    assert [change.index.name for change in drifted.recreate_indexes] == ["player_id_1"]
    with pytest.raises(IndexConflictError) as info:
        db.create_all(skip_existing=False)
    error = info.value
    assert error.collection == "player" and error.index == "player_id_1"
    assert error.differences == {"unique": (None, True)}
    assert "player.player_id_1" in str(error) and "unique" in str(error) and "allow_drop=True" in str(error)
    # nothing was changed before raising
    assert not live_keys(raw(engine), "player")[(("player_id", 1),)].get("unique")


def test_extra_indexes_are_reported_and_kept(db: Database, engine: Engine) -> None:
    db.create_all()
    raw(engine).game.create_index("mine")
    plan = db.plan()
    assert plan.is_empty
    assert [dict(extra.key) for extra in plan.extra_indexes] == [{"mine": 1}]
    result = db.create_all(skip_existing=False)
    assert len(result.extra_indexes) == 1
    assert (("mine", 1),) in live_keys(raw(engine), "game")


def test_create_all_survives_a_failover(
    sim_cluster: SimulatedReplicaSet, db: Database, engine: Engine
) -> None:
    """Every step runs through the engine: a step refused during an election waits and is retried."""
    sim_cluster.step_down(election_seconds=0.3)
    result = db.create_all()
    assert len(result.created_indexes) + len(result.indexes_already_present) == 4
    assert_matches_definitions(raw(engine), GAME, PLAYER)
    assert db.plan().is_empty


# --------------------------------------------------------------------------------------------------
# Several processes at once
# --------------------------------------------------------------------------------------------------


def _create_all_worker(uri: str, barrier: Any, results: Any) -> None:
    """One process: its own engine and database; all call create_all at the same moment."""
    try:
        engine = Engine(uri=uri)
        try:
            database = Database(engine, name=DB_NAME)
            database.extend(GAME, PLAYER)
            barrier.wait(timeout=60)
            result = database.create_all()
            database.close()
            results.put(("ok", os.getpid(), result))
        finally:
            engine.dispose()
    except BaseException:
        results.put(("error", os.getpid(), traceback.format_exc()))


def test_four_processes_create_all_at_once(sim_cluster: SimulatedReplicaSet, engine: Engine) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    results = context.Queue()
    processes = [
        context.Process(target=_create_all_worker, args=(sim_cluster.uri, barrier, results), daemon=True)
        for _ in range(WORKERS)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=120) for _ in processes]
        for process in processes:
            process.join(timeout=30)
    finally:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGKILL)
                process.join(timeout=10)
    errors = [detail for status, _, detail in outcomes if status != "ok"]
    assert not errors, "\n".join(errors)
    assert [process.exitcode for process in processes] == [0] * WORKERS
    applied: list[ApplyResult] = [result for _, _, result in outcomes]
    # Each default document was inserted by exactly one process (the others found it).  Collections are
    # not counted: the nx backend answers ``create`` of an existing collection with success instead of
    # NamespaceExists, so every process reports the collections it asked for as created.
    assert {name for result in applied for name in result.created_collections} == {"game", "player"}
    inserted = [label for result in applied for label in result.inserted_documents]
    assert len(inserted) == len(set(inserted)) == 3

    database = raw(engine)
    assert_matches_definitions(database, GAME, PLAYER)
    assert database.game.count_documents({}) == 2
    assert database.player.count_documents({}) == 1
    with Database(engine, name=DB_NAME) as check:
        check.extend(GAME, PLAYER)
        assert check.plan().is_empty


# --------------------------------------------------------------------------------------------------
# Index builds get their own time
# --------------------------------------------------------------------------------------------------


def test_a_build_slower_than_the_retry_budget_succeeds(
    sim_cluster: SimulatedReplicaSet, fast_heartbeats: None
) -> None:
    """The primary takes 2.5 s to answer while the engine's budget (and so its socket timeout) is 1.5 s:
    an ordinary DDL step runs out of budget, the index build (own runner, own timeout) lands."""
    definition = CollectionDefinition("slow", indices=[Index({"k": 1})])
    with Engine(
        uri=sim_cluster.uri, heartbeatFrequencyMS=100, retry_policy=RetryPolicy(budget=1.5)
    ) as engine:
        with Database(engine, name=DB_NAME) as database:
            database.add_collection(CollectionDefinition("slow"))
            database.create_all()  # the collection exists, without the index
            live = LiveState(collections=[LiveCollection("slow", indexes=[ID_INDEX])])
            step = plan([definition], live)
            other = plan([CollectionDefinition("slow", indices=[Index({"other": 1})])], live)
            sim_cluster.delay(0, 2.5)
            try:
                with pytest.raises(SchemaStepError) as info:  # without the build runner: the budget's
                    apply_plan(other, database._execute_ddl, build=database._execute_ddl)
                assert isinstance(info.value.cause, (RetryBudgetExhaustedError, OutcomeUnknownError))
                result = apply_plan(
                    step,
                    database._execute_ddl,
                    build=BuildRunner(attempt=database._attempt_build, timeout=30),
                )
            finally:
                sim_cluster.delay(0, 0)
            assert result.created_indexes == ("slow.k_1",)
            assert (("k", 1),) in live_keys(raw(engine), "slow")


@pytest.mark.deviation("test_group_push_keeps_types[int]")
def test_a_unique_index_over_duplicates_names_them(db: Database, engine: Engine) -> None:
    # int _ids: the backend's $push returns ObjectIds as hex strings (test_group_push_keeps_types[ObjectId])
    raw(engine).player.insert_many(
        [
            {"_id": 1, "player_id": 7, "name": "a"},
            {"_id": 2, "player_id": 7, "name": "b"},
            {"_id": 3, "player_id": 8},
        ]
    )
    with pytest.raises(DuplicateValuesError) as info:
        db.create_all()
    error = info.value
    assert (error.collection, error.index, error.step) == (
        "player",
        "player_id_1",
        "create index player.player_id_1",
    )
    stored = {doc["name"]: doc["_id"] for doc in raw(engine).player.find({"player_id": 7})}
    (example,) = error.examples
    assert example["key"] == {"player_id": 7} and example["count"] == 2
    assert sorted(example["ids"]) == sorted(stored.values()) == [1, 2]
    assert "duplicate values exist, for example {'player_id': 7} in 2 documents" in str(error)
    assert (("player_id", 1),) not in live_keys(raw(engine), "player")
