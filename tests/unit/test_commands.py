"""Which operations are reads, idempotent writes or non-idempotent writes, and how commands replay."""

from __future__ import annotations

from types import MappingProxyType

import pytest
from bson import ObjectId
from pymongo import DeleteMany, DeleteOne, InsertOne, MongoClient, ReplaceOne, UpdateMany, UpdateOne

from mongomancy.commands import (
    Command,
    FunctionCommand,
    RawCollectionTarget,
    RetryClass,
    as_target,
    classify,
    filters_on_single_id,
    is_idempotent_update,
)
from mongomancy.errors import StaleSessionError

R, IDEM, N = RetryClass.READ, RetryClass.IDEMPOTENT_WRITE, RetryClass.NON_IDEMPOTENT_WRITE


@pytest.fixture
def collection():
    client = MongoClient("mongodb://127.0.0.1:1/", connect=False)
    yield client.db.things
    client.close()


@pytest.mark.parametrize(
    ("update", "expected"),
    [
        ({"$set": {"a": 1}}, True),
        ({"$set": {"a": 1}, "$unset": {"b": ""}, "$setOnInsert": {"c": 1}}, True),
        ({"$min": {"a": 1}, "$max": {"b": 2}, "$addToSet": {"tags": "x"}}, True),
        ({"$inc": {"n": 1}}, False),
        ({"$set": {"a": 1}, "$inc": {"n": 1}}, False),
        ({"$push": {"log": 1}}, False),
        ({"$mul": {"n": 2}}, False),
        ([{"$set": {"n": {"$add": ["$n", 1]}}}], False),  # a pipeline can compute from the old value
        ({}, False),
        ({"a": 1}, False),  # a replacement document is not an update
    ],
)
def test_update_idempotence(update, expected):
    assert is_idempotent_update(update) is expected


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ({"_id": 1}, True),
        ({"_id": {"a": 1}}, True),
        ({"_id": {"$in": [1, 2]}}, False),
        ({"x": 1}, False),
        (None, False),
    ],
)
def test_filters_on_single_id(filter_, expected):
    assert filters_on_single_id(filter_) is expected


@pytest.mark.parametrize(
    ("operation", "args", "kwargs", "expected"),
    [
        ("find_one", ({"_id": 1},), {}, R),
        ("count_documents", ({},), {}, R),
        ("aggregate", ([{"$match": {}}],), {}, R),
        ("aggregate", ([{"$match": {}}, {"$out": "other"}],), {}, IDEM),
        ("aggregate", ([{"$merge": {"into": "o", "whenMatched": "replace"}}],), {}, IDEM),
        ("aggregate", ([{"$merge": {"into": "o", "whenMatched": [{"$set": {"n": 1}}]}}],), {}, N),
        ("update_one", ({"_id": 1}, {"$set": {"a": 1}}), {}, IDEM),
        ("update_one", ({"_id": 1}, {"$inc": {"a": 1}}), {}, N),
        ("update_many", ({}, {"$set": {"a": 1}}), {}, IDEM),
        ("update_many", ({}, {"$inc": {"a": 1}}), {}, N),
        ("update_many", (), {"filter": {}, "update": {"$push": {"a": 1}}}, N),
        ("find_one_and_update", ({"x": 1}, {"$set": {"a": 1}}), {}, IDEM),
        ("replace_one", ({"_id": 1}, {"a": 1}), {}, IDEM),
        ("delete_many", ({"x": 1},), {}, IDEM),
        ("delete_one", ({"_id": 1},), {}, IDEM),
        ("delete_one", ({"x": 1},), {}, N),  # a replay could delete a second matching document
        ("find_one_and_delete", ({"x": 1},), {}, N),
        ("create_index", ([("a", 1)],), {}, IDEM),
        ("drop", (), {}, IDEM),
        ("rename", ("other",), {}, N),  # unknown to the classifier: the safe default
    ],
)
def test_classification(operation, args, kwargs, expected):
    retry_class, _driver_retryable = classify(operation, list(args), dict(kwargs))
    assert retry_class is expected


def test_insert_gets_its_id_before_the_first_attempt(collection):
    document = {"x": 1}
    command = Command.build("insert_one", collection, (document,), {})
    assert isinstance(document["_id"], ObjectId)  # as pymongo would, but now, so a replay reuses it
    assert command.retry_class is IDEM and command.is_insert


def test_insert_keeps_a_given_id(collection):
    document = {"_id": "mine"}
    Command.build("insert_one", collection, (document,), {})
    assert document["_id"] == "mine"


def test_insert_many_materialises_a_generator_and_gives_every_document_an_id(collection):
    command = Command.build("insert_many", collection, (({"i": i} for i in range(3)),), {})
    documents = command.args[0]
    assert isinstance(documents, list) and len(documents) == 3
    assert all("_id" in document for document in documents)
    assert command.retry_class is IDEM


def test_insert_of_an_immutable_document_without_id_is_not_idempotent(collection):

    command = Command.build("insert_one", collection, (MappingProxyType({"x": 1}),), {})
    assert command.retry_class is N


def test_bulk_write_classification(collection):
    safe = Command.build(
        "bulk_write",
        collection,
        ([InsertOne({"a": 1}), UpdateOne({"_id": 1}, {"$set": {"a": 2}}), ReplaceOne({"_id": 2}, {"b": 1})],),
        {},
    )
    assert safe.retry_class is IDEM and safe.driver_retryable
    multi = Command.build(
        "bulk_write", collection, ([UpdateMany({}, {"$set": {"a": 1}}), DeleteMany({})],), {}
    )
    assert multi.retry_class is IDEM and not multi.driver_retryable
    unsafe = Command.build(
        "bulk_write", collection, ([UpdateOne({"_id": 1}, {"$inc": {"n": 1}}), DeleteOne({"x": 1})],), {}
    )
    assert unsafe.retry_class is N


def test_only_non_idempotent_driver_retryable_writes_run_under_a_client_timeout(collection):
    # pymongo's retries under pymongo.timeout keep the txnNumber: exactly-once for these...
    assert Command.build("update_one", collection, ({"_id": 1}, {"$inc": {"n": 1}}), {}).client_timeout
    assert Command.build(
        "find_one_and_update", collection, ({"_id": 1}, {"$push": {"a": 1}}), {}
    ).client_timeout
    # ...while reads, idempotent writes and cursors skip its cost (our own retries are safe for them).
    assert not Command.build("find_one", collection, ({},), {}).client_timeout
    assert not Command.build("update_one", collection, ({"_id": 1}, {"$set": {"n": 1}}), {}).client_timeout
    assert not Command.build("update_many", collection, ({}, {"$inc": {"n": 1}}), {}).client_timeout
    assert not Command.build("find", collection, ({},), {}).client_timeout
    assert not Command.build("aggregate", collection, ([],), {}).client_timeout


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


def test_function_command_describes_itself():
    command = FunctionCommand("create indexes", lambda client: 1)
    assert command.retry_class is IDEM
    assert "create indexes" in command.describe()
    assert command.run(None) == 1  # type: ignore[arg-type]
