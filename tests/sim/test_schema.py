"""Database and Collection against the simulated replica set: the surface, the handle swap, bad input."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from bson.codec_options import CodecOptions
from pymongo import DeleteOne, InsertOne, ReturnDocument, UpdateOne
from pymongo.collection import Collection as PyMongoCollection
from pymongo.read_concern import ReadConcern
from pymongo.read_preferences import ReadPreference
from pymongo.write_concern import WriteConcern

from mongomancy import (
    ChangeKind,
    Collection,
    CollectionDefinition,
    ConfigurationError,
    Database,
    Engine,
    Index,
    ResumableCursor,
    TopologyChange,
    UnknownCollectionError,
)
from mongomancy.commands import Command
from mongomancy.cursor import ResumableAggregateCursor
from mongomancy.testing import SimulatedReplicaSet, wait_for

THINGS = CollectionDefinition(name="things", indices=[Index(fields={"kind": 1})])
OTHER = CollectionDefinition(name="other")
DB_NAME = "schema_test"


class CountingDatabase(Database):
    """Records every hook call, to check the hook runs once per event."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.changes: list[TopologyChange] = []
        super().__init__(*args, **kwargs)

    def invalidate_cache_hook(self, engine: Any, change: TopologyChange) -> None:
        super().invalidate_cache_hook(engine, change)
        self.changes.append(change)

    def replacements(self) -> int:
        return sum(change.kind is ChangeKind.CLIENT_REPLACED for change in self.changes)


@pytest.fixture
def db(engine: Engine) -> Iterator[CountingDatabase]:
    with CountingDatabase(engine, name=DB_NAME) as database:
        database.extend(THINGS, OTHER)
        yield database


def bound_to(database: Database, client: Any) -> bool:
    """True when the database and every one of its collections are bound to ``client``."""
    return database._binding[0] is client and all(
        database[name]._binding[0] is client and database[name]._binding[1].database.client is client
        for name in database
    )


# --------------------------------------------------------------------------------------------------
# The collection surface
# --------------------------------------------------------------------------------------------------


def test_collection_properties(db: Database, engine: Engine) -> None:
    things = db["things"]
    assert isinstance(things, Collection)
    assert things.name == "things"
    assert things.full_name == f"{DB_NAME}.things"
    assert things.database is db
    assert things.engine is engine
    assert things.options == {}
    raw = things.dialect_entity
    assert isinstance(raw, PyMongoCollection)
    assert raw.full_name == f"{DB_NAME}.things"
    assert raw.database.client is engine.client
    assert things.resolve(engine.client) is raw
    assert "schema_test.things" in repr(things)
    assert db.dialect_entity.name == DB_NAME
    assert db.dialect_entity.client is engine.client


def test_crud_round_trips_through_the_engine(db: Database) -> None:
    """Every write keeps each ``_id``'s BSON type: int 1 and 3, the numeric string "2", the string "4"."""
    things = db["things"]
    assert things.insert_one({"_id": 1, "kind": "a", "n": 1}).inserted_id == 1
    assert things.insert_many(
        [{"_id": "2", "kind": "b", "n": 2}, {"_id": 3, "kind": "b", "n": 3}]
    ).inserted_ids == ["2", 3]
    assert things.find_one({"_id": 1}) == {"_id": 1, "kind": "a", "n": 1}
    cursor = things.find({"kind": "b"}, {"n": 1}, sort=[("n", 1)])
    assert isinstance(cursor, ResumableCursor)
    assert list(cursor) == [{"_id": "2", "n": 2}, {"_id": 3, "n": 3}]
    assert things.count_documents({"kind": "b"}) == 2
    assert things.estimated_document_count() == 3
    assert sorted(things.distinct("kind")) == ["a", "b"]
    assert things.update_one({"_id": 1}, {"$set": {"n": 10}}).modified_count == 1
    assert things.update_many({"kind": "b"}, {"$set": {"seen": True}}).modified_count == 2
    assert things.replace_one({"_id": 3}, {"kind": "c", "n": 30}).modified_count == 1
    updated = things.find_one_and_update(
        {"_id": 1}, {"$set": {"n": 11}}, return_document=ReturnDocument.AFTER
    )
    assert updated == {"_id": 1, "kind": "a", "n": 11}
    replaced = things.find_one_and_replace(
        {"_id": "2"}, {"kind": "b", "n": 20}, return_document=ReturnDocument.AFTER
    )
    assert replaced == {"_id": "2", "kind": "b", "n": 20}
    assert things.find_one_and_delete({"_id": 3}) == {"_id": 3, "kind": "c", "n": 30}
    stored = sorted((repr(doc["_id"]), doc["n"]) for doc in things.find({}, {"n": 1}))
    assert stored == [("'2'", 20), ("1", 11)]
    totals = things.aggregate([{"$group": {"_id": None, "total": {"$sum": "$n"}}}])
    assert isinstance(totals, ResumableAggregateCursor)  # resolves the handle afresh when opened
    assert list(totals) == [{"_id": None, "total": 31}]
    result = things.bulk_write(
        [
            InsertOne({"_id": "4", "kind": "d"}),
            UpdateOne({"_id": "4"}, {"$set": {"n": 4}}),
            DeleteOne({"_id": "2"}),
        ]
    )
    assert (result.inserted_count, result.modified_count, result.deleted_count) == (1, 1, 1)
    assert things.find_one({"_id": "4"}) == {"_id": "4", "kind": "d", "n": 4}
    assert things.delete_one({"_id": "4"}).deleted_count == 1
    assert things.delete_many({}).deleted_count == 1
    assert things.count_documents({}) == 0
    # everything went to the collection asked for, nowhere else
    assert db.dialect_entity.list_collection_names() == ["things"]


def test_index_methods_round_trip(db: Database) -> None:
    things = db["things"]
    things.insert_one({"_id": 1, "a": 1, "b": 1})
    things.create_index("a")
    things.create_indexes([pytest.importorskip("pymongo").IndexModel([("b", 1)])])
    keys = {tuple(index["key"].items()): index["name"] for index in things.list_indexes()}
    assert (("a", 1),) in keys and (("b", 1),) in keys
    information = things.index_information()
    assert set(information) == set(keys.values())
    things.drop_index(keys[(("a", 1),)])
    assert (("a", 1),) not in {tuple(index["key"].items()) for index in things.list_indexes()}
    things.drop_indexes()
    assert [tuple(index["key"].items()) for index in things.list_indexes()] == [(("_id", 1),)]
    things.drop()
    assert "things" not in db.dialect_entity.list_collection_names()
    assert "things" in db  # the definition stays: create_all would bring it back


OPERATIONS = [
    "find_one",
    "count_documents",
    "estimated_document_count",
    "distinct",
    "watch",
    "list_indexes",
    "index_information",
    "insert_one",
    "insert_many",
    "update_one",
    "update_many",
    "replace_one",
    "delete_one",
    "delete_many",
    "find_one_and_update",
    "find_one_and_replace",
    "find_one_and_delete",
    "bulk_write",
    "create_index",
    "create_indexes",
    "drop_index",
    "drop_indexes",
    "drop",
]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_every_method_is_one_engine_command_on_the_collection(
    db: Database, engine: Engine, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    """Each method becomes one ``Command`` whose target is the mongomancy Collection (not a pymongo one),
    so every attempt, retries included, resolves the handle afresh."""
    seen: list[Command] = []

    def execute(command: Any) -> Any:
        seen.append(command)
        return {"count_documents": 0, "estimated_document_count": 0}.get(operation, [])

    monkeypatch.setattr(engine, "execute", execute)
    arguments: dict[str, tuple[Any, ...]] = {
        "distinct": ("kind",),
        "insert_one": ({"x": 1},),
        "insert_many": ([{"x": 1}],),
        "update_one": ({}, {"$set": {"x": 1}}),
        "update_many": ({}, {"$set": {"x": 1}}),
        "replace_one": ({}, {"x": 1}),
        "find_one_and_update": ({}, {"$set": {"x": 1}}),
        "find_one_and_replace": ({}, {"x": 1}),
        "bulk_write": ([InsertOne({"x": 1})],),
        "create_index": ("x",),
        "create_indexes": ([],),
        "drop_index": ("x_1",),
    }
    things = db["things"]
    getattr(things, operation)(*arguments.get(operation, ()))
    assert len(seen) == 1
    assert isinstance(seen[0], Command)
    assert seen[0].operation == operation
    assert seen[0].target is things


def test_watch_is_run_by_the_engine(db: Database, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []

    def watch(*args: Any, **kwargs: Any) -> str:
        calls.append((*args, kwargs))
        return "stream"

    monkeypatch.setattr(engine, "watch", watch)
    assert db["things"].watch([{"$match": {}}], full_document="updateLookup") == "stream"
    assert calls == [(db["things"], [{"$match": {}}], {"full_document": "updateLookup"})]


def test_with_options(db: Database, engine: Engine) -> None:
    things = db["things"]
    majority = WriteConcern(w="majority")
    derived = things.with_options(
        write_concern=majority,
        read_preference=ReadPreference.SECONDARY_PREFERRED,
        read_concern=ReadConcern("majority"),
        codec_options=CodecOptions(tz_aware=True),
    )
    assert isinstance(derived, Collection) and derived is not things
    assert derived.database is db and derived.full_name == things.full_name
    raw = derived.dialect_entity
    assert raw.write_concern == majority
    assert raw.read_preference == ReadPreference.SECONDARY_PREFERRED
    assert raw.read_concern == ReadConcern("majority")
    assert raw.codec_options.tz_aware
    # options accumulate, and the parent is untouched
    again = derived.with_options(write_concern=WriteConcern(w=1))
    assert again.dialect_entity.write_concern == WriteConcern(w=1)
    assert again.dialect_entity.codec_options.tz_aware
    assert things.dialect_entity.write_concern == engine.client.write_concern
    # still through the engine
    derived.insert_one({"_id": "d", "kind": "derived"})
    assert things.find_one({"_id": "d"}) == {"_id": "d", "kind": "derived"}
    # and still rebound by the hook after a client replacement
    engine.reconnect()
    wait_for(lambda: derived._binding[0] is engine.client, 10, "the derived collection rebound")
    assert derived.dialect_entity.write_concern == majority
    with pytest.raises(TypeError, match="write_concern must be a WriteConcern"):
        things.with_options(write_concern="majority")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# The handle swap
# --------------------------------------------------------------------------------------------------


def test_reconnect_rebinds_every_handle_once(db: CountingDatabase, engine: Engine) -> None:
    old = engine.client
    assert bound_to(db, old)
    engine.reconnect()
    new = engine.client
    assert new is not old
    wait_for(lambda: db.replacements() == 1, 10, "the hook to see the client replacement")
    assert bound_to(db, new)
    assert db.replacements() == 1
    db["things"].insert_one({"_id": "after"})
    assert db["things"].find_one({"_id": "after"}) == {"_id": "after"}


def test_resolve_never_returns_a_handle_of_another_client(
    sim_cluster: SimulatedReplicaSet, db: Database, engine: Engine
) -> None:
    """Correctness does not depend on the hook: a handle for another client is built afresh."""
    things = db["things"]
    other = Engine(uri=sim_cluster.uri)
    try:
        handle = things.resolve(other.client)
        assert handle.database.client is other.client
        assert handle.full_name == things.full_name
        # not cached: other.client is not this engine's current client
        assert things._binding[0] is engine.client
    finally:
        other.dispose()


def test_a_write_held_during_an_election_lands_in_its_collection_after_a_reconnect(
    sim_cluster: SimulatedReplicaSet, db: CountingDatabase, engine: Engine
) -> None:
    """The original bug: a retry rebound to a raw collection and wrote into ``things.dialect_entity``."""
    db["things"].insert_one({"_id": "before"})
    first = engine.client
    sim_cluster.step_down(election_seconds=60)  # no primary until we elect one below
    wait_for(lambda: not engine.topology().writable, 10, "the engine to see no primary")
    outcome: dict[str, Any] = {}

    def write() -> None:
        try:
            outcome["result"] = db["things"].insert_one({"_id": "held", "kind": "straddle"})
        except BaseException as error:  # reported by the assertions below
            outcome["error"] = error

    writer = threading.Thread(target=write)
    writer.start()
    try:
        wait_for(lambda: engine.stats().queue_length >= 1, 10, "the write to wait for a primary")
        engine.reconnect()
        wait_for(lambda: db.replacements() == 1, 10, "the hook to rebind the handles")
        assert engine.client is not first
        assert bound_to(db, engine.client)
        assert "result" not in outcome  # still held: no primary yet
    finally:
        sim_cluster.elect(wait=True)
        writer.join(30)
    assert not writer.is_alive()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"].inserted_id == "held"
    assert db["things"].find_one({"_id": "held"}) == {"_id": "held", "kind": "straddle"}
    assert sorted(db.dialect_entity.list_collection_names()) == ["things"]


def test_concurrent_readers_during_fifty_swaps(db: CountingDatabase, engine: Engine) -> None:
    things = db["things"]
    things.insert_one({"_id": 1, "kind": "x"})
    stop = threading.Event()
    errors: list[BaseException] = []
    reads = [0] * 6

    def reader(slot: int) -> None:
        while not stop.is_set():
            try:
                assert things.find_one({"_id": 1}) == {"_id": 1, "kind": "x"}
                reads[slot] += 1
            except BaseException as error:
                errors.append(error)
                return

    threads = [threading.Thread(target=reader, args=(slot,)) for slot in range(len(reads))]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: all(reads), 10, "every reader to read once")
        for _ in range(50):
            engine.reconnect()
            if errors:
                break
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not errors, repr(errors[:3])
    wait_for(lambda: db.replacements() == 50, 10, "50 hook runs")
    assert bound_to(db, engine.client)
    assert sum(reads) > 50


def test_close_unregisters_the_hook(db: CountingDatabase, engine: Engine) -> None:
    db.close()
    db.close()  # idempotent
    assert db.invalidate_cache_hook not in engine.hooks
    engine.reconnect()
    # no hook: the handles stay on the old client, yet every call resolves the current one
    assert db.replacements() == 0
    db["things"].insert_one({"_id": "closed"})
    assert db["things"].dialect_entity.database.client is engine.client
    assert db["things"].find_one({"_id": "closed"}) == {"_id": "closed"}


# --------------------------------------------------------------------------------------------------
# Database: definitions, names, ping
# --------------------------------------------------------------------------------------------------


def test_names_membership_and_topology(db: Database) -> None:
    assert db.name == DB_NAME
    assert list(db) == ["things", "other"]
    assert len(db) == 2
    assert "things" in db and "nope" not in db and 3 not in db
    assert db.topology == [THINGS, OTHER]
    assert db.get_collection("other") is db["other"]
    db.topology.clear()  # a copy
    assert len(db.topology) == 2


def test_unknown_collection_lists_the_known_ones(db: Database) -> None:
    with pytest.raises(UnknownCollectionError) as info:
        db["nope"]
    assert isinstance(info.value, KeyError)
    message = str(info.value)
    assert "'nope'" in message and "'things'" in message and "'other'" in message
    with pytest.raises(KeyError):
        db.get_collection("nope")


def test_adding_definitions(db: Database) -> None:
    things = db["things"]
    assert db.add_collection(THINGS) is things  # identical again: the same collection
    new = db.add_collection(CollectionDefinition(name="new"))
    assert db["new"] is new and list(db)[-1] == "new"
    changed = CollectionDefinition(name="things", indices=[Index(fields={"kind": 1}, unique=True)])
    with pytest.raises(ConfigurationError, match=r"'things' is already defined .* different indices"):
        db.add_collection(changed)
    # extend is all or nothing
    with pytest.raises(ConfigurationError):
        db.extend(CollectionDefinition(name="fresh"), changed)
    assert "fresh" not in db
    assert db["things"] is things and db.topology[0] is THINGS


def test_bad_input(engine: Engine, db: Database) -> None:
    with pytest.raises(TypeError, match="engine must be a mongomancy Engine"):
        Database(engine.client)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="engine must be a mongomancy Engine"):
        Database(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="name must be a str"):
        Database(engine, name=5)  # type: ignore[arg-type]
    for bad in ("", "a.b", "a b", "a$b", "x" * 64):
        with pytest.raises(ConfigurationError):
            Database(engine, name=bad)
    with pytest.raises(TypeError, match="logger"):
        Database(engine, logger="mongomancy")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="CollectionDefinition"):
        db.add_collection({"name": "x"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="CollectionDefinition"):
        db.extend(OTHER, "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be a str"):
        db.get_collection(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="skip_existing"):
        db.create_all(skip_existing="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="allow_drop"):
        db.create_all(allow_drop=1)  # type: ignore[arg-type]
    for timeout in (0, -1, "1", True):
        with pytest.raises(ConfigurationError, match="timeout"):
            db.ping(timeout)  # type: ignore[arg-type]
    # a failed construction leaves no hook behind
    assert engine.hooks == (db.invalidate_cache_hook,)


def test_ping(sim_cluster: SimulatedReplicaSet, db: Database, caplog: pytest.LogCaptureFixture) -> None:
    assert db.ping() is True
    sim_cluster.step_down(election_seconds=60)
    assert db.ping() is True  # a secondary answers: the cluster is reachable mid-election
    for member in range(3):
        sim_cluster.kill(member)
    try:
        with caplog.at_level(logging.WARNING, logger="mongomancy.schema"):
            assert db.ping(timeout=0.3) is False
        assert any("ping of database schema_test failed" in r.getMessage() for r in caplog.records)
    finally:
        # Bring members back: closing a client whose every member is down blocks in endSessions for the
        # engine's serverSelectionTimeoutMS (60 s by default), see the note in the report.
        for member in range(3):
            sim_cluster.restart(member)
    assert db.ping() is True


def test_ping_on_a_disposed_engine_is_false_and_logged(
    engine: Engine, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    engine.dispose()
    with caplog.at_level(logging.WARNING, logger="mongomancy.schema"):
        assert db.ping() is False
    assert any("disposed" in r.getMessage() for r in caplog.records)


def test_default_logger_and_given_logger(engine: Engine) -> None:
    mine = logging.getLogger("tests.schema")
    with Database(engine) as default, Database(engine, logger=mine) as given:
        assert default.logger is logging.getLogger("mongomancy.schema")
        assert given.logger is mine
        assert default.name == "mongomancy"


def test_mongomancy_0_1_names_still_work(engine: Engine) -> None:
    logger = logging.getLogger("legacy")
    with pytest.warns(DeprecationWarning, match="0.1's argument order"):
        legacy = Database("legacy_names", logger, engine)  # type: ignore[arg-type]
    with legacy:
        assert (legacy.name, legacy.engine, legacy.logger) == ("legacy_names", engine, logger)
        game = legacy.create_collection(
            CollectionDefinition("game", indices=[Index({"slug": 1}, unique=True)])
        )
        assert legacy.list_collection_names() == ["game"]
        assert game.pymongo_collection.full_name == "legacy_names.game"
        keys = [tuple(index["key"].items()) for index in game.pymongo_collection.list_indexes()]
        assert (("slug", 1),) in keys
        legacy.drop()
        assert legacy.list_collection_names() == []
