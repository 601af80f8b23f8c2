"""Who owns the retries of each operation (its kind), and how commands replay on a fresh handle."""

from __future__ import annotations

import pytest
from pymongo import DeleteMany, DeleteOne, InsertOne, MongoClient, ReplaceOne, UpdateMany, UpdateOne

from mongomancy.commands import (
    Command,
    FunctionCommand,
    RawCollectionTarget,
    RetryClass,
    as_target,
    command_kind,
)
from mongomancy.errors import StaleSessionError
from mongomancy.retry import CommandKind

READ = CommandKind.READ
IDEM = CommandKind.IDEMPOTENT
DRIVER = CommandKind.DRIVER_RETRIED_WRITE
WRITE = CommandKind.WRITE
MULTI = CommandKind.MULTI_COMMAND_WRITE


@pytest.fixture
def collection():
    client = MongoClient("mongodb://127.0.0.1:1/", connect=False)
    yield client.db.things
    client.close()


@pytest.mark.parametrize(
    ("operation", "args", "kwargs", "expected"),
    [
        ("find_one", ({"_id": 1},), {}, READ),
        ("count_documents", ({},), {}, READ),
        ("distinct", ("a",), {}, READ),
        ("aggregate", ([{"$match": {}}],), {}, READ),
        ("aggregate", ([{"$match": {}}, {"$out": "other"}],), {}, IDEM),
        ("aggregate", ([{"$merge": {"into": "o", "whenMatched": "replace"}}],), {}, WRITE),
        ("insert_one", ({"a": 1},), {}, DRIVER),
        ("insert_many", ([{"a": 1}],), {}, DRIVER),
        ("update_one", ({"_id": 1}, {"$inc": {"a": 1}}), {}, DRIVER),
        ("update_one", ({"_id": 1}, {"$set": {"a": 1}}), {}, DRIVER),
        ("replace_one", ({"_id": 1}, {"a": 1}), {}, DRIVER),
        ("delete_one", ({"x": 1},), {}, DRIVER),
        ("find_one_and_update", ({"x": 1}, {"$set": {"a": 1}}), {}, DRIVER),
        ("find_one_and_replace", ({"x": 1}, {"a": 1}), {}, DRIVER),
        ("find_one_and_delete", ({"x": 1},), {}, DRIVER),
        # The server cannot retry these; a replay would also change their result (modified/deleted counts).
        ("update_many", ({}, {"$set": {"a": 1}}), {}, WRITE),
        ("update_many", (), {"filter": {}, "update": {"$inc": {"a": 1}}}, WRITE),
        ("delete_many", ({"x": 1},), {}, WRITE),
        ("drop_index", ("a_1",), {}, WRITE),  # a replay after it applied meets "index not found"
        ("create_index", ([("a", 1)],), {}, IDEM),
        ("drop", (), {}, IDEM),
        ("rename", ("other",), {}, WRITE),  # unknown to the classifier: the safe default
    ],
)
def test_kinds(operation, args, kwargs, expected):
    assert command_kind(operation, args, kwargs) is expected


@pytest.mark.parametrize(
    ("requests", "expected"),
    [
        ([InsertOne({"a": 1}), UpdateOne({"_id": 1}, {"$inc": {"a": 2}}), ReplaceOne({}, {"b": 1})], DRIVER),
        ([DeleteOne({"x": 1})], DRIVER),
        ([InsertOne({"a": 1}), UpdateMany({}, {"$set": {"a": 1}})], MULTI),
        ([UpdateMany({"a": 1}, {"$set": {"b": 1}}), UpdateMany({"a": 2}, {"$set": {"b": 2}})], MULTI),
        ([DeleteMany({})], WRITE),
    ],
)
def test_bulk_write_kind_depends_on_multi_document_operations(collection, requests, expected):
    assert Command.build("bulk_write", collection, (requests,), {}).kind is expected


def test_insert_many_materialises_a_generator(collection):
    command = Command.build("insert_many", collection, (({"i": i} for i in range(3)),), {})
    documents = command.args[0]
    assert documents == [{"i": 0}, {"i": 1}, {"i": 2}]  # a list: replayable when nothing was sent


@pytest.mark.parametrize(
    ("retry_class", "kind"),
    [
        (RetryClass.READ, READ),
        (RetryClass.IDEMPOTENT_WRITE, IDEM),
        (RetryClass.NON_IDEMPOTENT_WRITE, CommandKind.FUNCTION),
    ],
)
def test_function_command_kind_follows_the_callers_promise(retry_class, kind):
    assert FunctionCommand("f", lambda client: 1, retry_class).kind is kind


def test_raw_target_rebinds_to_a_new_client(collection):
    target = as_target(collection)
    assert isinstance(target, RawCollectionTarget)
    assert target.resolve(collection.database.client) is collection
    other = MongoClient("mongodb://127.0.0.1:2/", connect=False)
    try:
        rebound = target.resolve(other)
        assert rebound.database.client is other
        assert rebound.full_name == "db.things"
        assert rebound.codec_options == collection.codec_options
    finally:
        other.close()


def test_as_target_rejects_other_objects():
    with pytest.raises(TypeError, match="collection must be"):
        as_target("things")  # type: ignore[arg-type]


def test_a_session_of_another_client_is_refused(collection):
    other = MongoClient("mongodb://127.0.0.1:2/", connect=False)
    try:
        session = other.start_session()
        command = Command.build("find_one", collection, ({},), {"session": session})
        with pytest.raises(StaleSessionError, match="replaced"):
            command.run(collection.database.client)
    finally:
        other.close()


def test_function_command_defaults_to_never_replayed():
    command = FunctionCommand("create indexes", lambda client: 1)
    assert command.kind is CommandKind.FUNCTION
    assert "create indexes" in command.describe()
    assert command.run(None) == 1  # type: ignore[arg-type]
