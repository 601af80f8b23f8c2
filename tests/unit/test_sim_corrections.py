"""The members' request and reply corrections (mongomancy/testing/corrections.py), as pure functions.

The simulated cluster's answers with them are checked end to end in tests/sim/test_conformance.py; these
tests pin the edge cases: what is left alone, and when ``keyValue`` cannot be derived.
"""

from __future__ import annotations

from typing import Any

import bson
import pytest
from bson import ObjectId

from mongomancy.testing import corrections, nx_launcher, wire

OID = ObjectId("64b7f0c2a1b2c3d4e5f60718")


@pytest.mark.parametrize(
    ("query", "replacement", "expected"),
    [
        ({"_id": 7}, {"n": 1}, {"_id": 7, "n": 1}),  # the query's _id, first, with its type
        ({"_id": "7"}, {"n": 1}, {"_id": "7", "n": 1}),
        ({"_id": 7}, {"_id": 7, "n": 1}, None),  # the replacement names its _id itself
        ({"_id": {"$in": [1, 2]}}, {"n": 1}, None),  # not an equality
        ({"k": 1}, {"n": 1}, None),  # no _id in the query: the backend keeps the stored one
        ({"_id": {"a": 1}}, {"n": 1}, {"_id": {"a": 1}, "n": 1}),  # an embedded document is a value
    ],
)
def test_keep_replaced_id(query: Any, replacement: dict[str, Any], expected: dict[str, Any] | None) -> None:
    corrected = corrections.keep_replaced_id(query, replacement)
    assert corrected == expected
    if expected is not None:
        assert list(corrected or {}) == list(expected)  # _id first, as MongoDB stores it


def test_upserts_get_the_query_id_on_insert_only() -> None:
    assert corrections.upsert_keeps_query_id({"_id": OID}, {"$set": {"n": 1}}) == {
        "$set": {"n": 1},
        "$setOnInsert": {"_id": OID},
    }
    merged = corrections.upsert_keeps_query_id({"_id": OID}, {"$setOnInsert": {"a": 1}})
    assert merged == {"$setOnInsert": {"a": 1, "_id": OID}}
    assert corrections.upsert_keeps_query_id({"_id": OID}, {"$set": {"_id": OID}}) is None
    statement = {"q": {"_id": OID}, "u": {"$inc": {"n": 1}}, "upsert": False}
    assert corrections.update_statement(statement) is None  # no upsert: nothing is inserted
    assert corrections.update_statement({"q": {"_id": 1}, "u": [{"$set": {"n": 1}}]}) is None  # pipeline


def test_update_sequences_are_rewritten_only_when_needed() -> None:
    untouched = wire.encode_sequence("updates", [{"q": {"k": 1}, "u": {"$set": {"n": 1}}}])
    assert corrections.correct_request("update", {"update": "c", "$db": "d"}, (untouched,)) is None
    replaced = wire.encode_sequence("updates", [{"q": {"_id": 3}, "u": {"n": 1}, "upsert": True}])
    body, sequences = corrections.correct_request("update", {"update": "c", "$db": "d"}, (replaced,)) or (
        {},
        (),
    )
    assert body == {"update": "c", "$db": "d"}
    assert wire.decode_sequence(sequences[0]) == (
        "updates",
        [{"q": {"_id": 3}, "u": {"_id": 3, "n": 1}, "upsert": True}],
    )
    assert corrections.correct_request("insert", {"insert": "c"}, (untouched,)) is None


INDEXES = [
    {"v": 2, "key": {"_id": 1}, "name": "_id_"},
    {"v": 2, "key": {"email": 1}, "name": "idx_c_email", "unique": True},
    {"v": 2, "key": {"a": 1, "b.c": 1}, "name": "idx_c_a_b_c", "unique": True},
]


def _reply(errmsg: str, index: int = 0) -> dict[str, Any]:
    return {"ok": 1, "n": 0, "writeErrors": [{"index": index, "code": 11000, "errmsg": errmsg}]}


def test_duplicate_id_on_insert() -> None:
    fixed = corrections.name_duplicate_keys(
        "insert", "d.c", [{"_id": 5, "email": "x"}], _reply("UNIQUE constraint failed: c._id"), INDEXES
    )
    assert fixed is not None
    (error,) = fixed["writeErrors"]
    assert (error["keyPattern"], error["keyValue"]) == ({"_id": 1}, {"_id": 5})
    assert error["errmsg"] == "E11000 duplicate key error collection: d.c index: _id_ dup key: { _id: 5 }"


def test_duplicate_on_a_compound_index_from_set_and_dotted_paths() -> None:
    statement = {"q": {"_id": 1}, "u": {"$set": {"a": 1, "b.c": "x"}}}
    fixed = corrections.name_duplicate_keys(
        "update", "d.c", [statement], _reply("UNIQUE constraint failed: index 'idx_c_a_b_c'"), INDEXES
    )
    assert fixed is not None
    assert fixed["writeErrors"][0]["keyValue"] == {"a": 1, "b.c": "x"}


def test_key_value_is_left_out_when_the_statement_does_not_give_it() -> None:
    """An update that sets only part of a compound key: the other part is in the stored document, which the
    error does not show, so keyValue is not guessed."""
    statement = {"q": {"_id": 1}, "u": {"$set": {"a": 1}}}
    fixed = corrections.name_duplicate_keys(
        "update", "d.c", [statement], _reply("UNIQUE constraint failed: index 'idx_c_a_b_c'"), INDEXES
    )
    assert fixed is not None
    (error,) = fixed["writeErrors"]
    assert error["keyPattern"] == {"a": 1, "b.c": 1} and "keyValue" not in error


@pytest.mark.parametrize(
    "reply",
    [
        _reply("UNIQUE constraint failed: index 'idx_c_gone'"),  # an index the listing does not have
        {"ok": 1, "n": 1},  # no write errors
        {"ok": 1, "writeErrors": [{"index": 0, "code": 11000, "errmsg": "x", "keyPattern": {"a": 1}}]},
        _reply("UNIQUE constraint failed: c._id", index=3),  # no such statement
    ],
)
def test_replies_left_alone(reply: dict[str, Any]) -> None:
    assert corrections.name_duplicate_keys("insert", "d.c", [{"_id": 1}], reply, INDEXES) is None


def test_the_duplicate_mark_is_in_the_encoded_reply() -> None:
    """The member decodes a reply only when these bytes are in it."""
    assert corrections.DUPLICATE_MARK in bson.encode(_reply("UNIQUE constraint failed: c._id"))


def test_sqlite_choice() -> None:
    assert nx_launcher.sqlite_choice({}) == "pinned"
    assert nx_launcher.sqlite_choice({nx_launcher.SQLITE_ENV: " Platform "}) == "platform"
    with pytest.raises(
        ValueError, match="MONGOMANCY_SIM_SQLITE must be 'pinned' or 'platform', not 'newest'"
    ):
        nx_launcher.sqlite_choice({nx_launcher.SQLITE_ENV: "newest"})
