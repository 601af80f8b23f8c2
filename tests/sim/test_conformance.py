"""The simulated cluster against documented MongoDB behaviour: the conformance list.

Every test asserts what MongoDB does (the rule is quoted in :data:`BEHAVIOURS`, one entry per test).  Where
the simulated cluster answers otherwise, the entry names the deviation and the SQLite versions it shows on;
the test is then a *strict* xfail on those versions only (decided from the SQLite the backend process reports
it runs on), so a deviation that goes away, or a new one, fails the suite.  No other test of the project may
work around a deviation silently: it names the entry with ``@pytest.mark.deviation("<entry>")`` and is then a
strict xfail wherever the entry's deviation applies (tests/conftest.py).

The README's conformance table is rendered from :data:`BEHAVIOURS` (``python -m tests.sim.test_conformance``
prints it, ``--write`` puts it into README.md) and
:func:`test_readme_table_matches_the_conformance_list` keeps the two identical.
"""

from __future__ import annotations

import datetime
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import bson
import pytest
from bson import ObjectId
from bson.int64 import Int64
from pymongo import InsertOne, MongoClient, ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from mongomancy.testing import SimulatedReplicaSet

README = Path(__file__).resolve().parents[2] / "README.md"
TABLE_START = "<!-- conformance table: rendered by python -m tests.sim.test_conformance -->"
TABLE_END = "<!-- end of conformance table -->"


@attrs.frozen
class Deviation:
    """What the simulated cluster does instead, and on which SQLite versions (both None: on every one)."""

    what: str
    before_sqlite: tuple[int, int] | None = None
    from_sqlite: tuple[int, int] | None = None

    def applies(self, sqlite_version: tuple[int, ...]) -> bool:
        """Whether the simulated cluster deviates when its backend runs on this SQLite version."""
        if self.before_sqlite is not None:
            return sqlite_version[:2] < self.before_sqlite
        if self.from_sqlite is not None:
            return sqlite_version[:2] >= self.from_sqlite
        return True

    def describe(self) -> str:
        if self.before_sqlite is not None:
            return "SQLite before {}.{} only: {}".format(*self.before_sqlite, self.what)
        if self.from_sqlite is not None:
            return "SQLite {}.{} and later only: {}".format(*self.from_sqlite, self.what)
        return self.what


@attrs.frozen
class Behaviour:
    """A documented MongoDB behaviour and, where the simulated cluster differs, how."""

    rule: str
    deviation: Deviation | None = None


JSONB = (3, 45)  # SQLite 3.45 added JSONB, which neosqlite uses when the library has it
REFUSED = "refused loudly with 115 CommandNotSupported (the backend would drop it silently)"

#: test node name -> the behaviour it checks.  The README table is rendered from this, in this order.
BEHAVIOURS: dict[str, Behaviour] = {
    # -- _id through every write method -------------------------------------------------------------------
    "test_id_is_kept_by_every_write_method[int]": Behaviour(
        "an int `_id` is stored and returned as that int by every write method"
        " (it is immutable; an upsert takes it from the query's equality)"
    ),
    "test_id_is_kept_by_every_write_method[double]": Behaviour("the same for a double `_id`"),
    "test_id_is_kept_by_every_write_method[numeric string]": Behaviour(
        'the same for a numeric string `_id` ("7" stays a string)'
    ),
    "test_id_is_kept_by_every_write_method[string]": Behaviour("the same for a string `_id`"),
    "test_id_is_kept_by_every_write_method[ObjectId]": Behaviour(
        "the same for an ObjectId `_id`",
        Deviation("`find_one_and_update(upsert=True)` stores it as its hex string"),
    ),
    "test_id_is_kept_by_every_write_method[long]": Behaviour(
        "the same for a long (Int64) `_id`",
        Deviation("stored as a 32-bit int (the backend keeps documents as JSON)"),
    ),
    "test_null_id_is_kept": Behaviour(
        "`_id: null` is a value like any other: stored, found by equality",
        Deviation("replaced by a new ObjectId"),
    ),
    "test_document_id_is_kept": Behaviour(
        "an embedded document may be an `_id`",
        Deviation("refused: the backend reads its keys as query operators"),
    ),
    "test_bool_id_is_found_by_equality": Behaviour(
        "a boolean `_id` is found by equality",
        Deviation("stored, but `{_id: true}` finds nothing"),
    ),
    "test_upsert_inserts_the_query_fields": Behaviour(
        "an upsert inserts the equality fields of its query with their types",
        Deviation("an ObjectId from the query is stored as its hex string (except `_id`, see above)"),
    ),
    # -- order and comparison -----------------------------------------------------------------------------
    "test_sort_order[int]": Behaviour(
        "ints sort numerically (1, 2, 10, 100), ascending and descending, also as `_id`",
        Deviation("ints sort as text (1, 10, 100, 2)", before_sqlite=JSONB),
    ),
    "test_sort_order[numbers]": Behaviour(
        "int, long and double sort together by numeric value",
        Deviation("numbers sort as text", before_sqlite=JSONB),
    ),
    "test_sort_order[strings]": Behaviour(
        "strings sort by their UTF-8 bytes (simple collation): `10` < `9` < `A` < `a` < `ä`",
        Deviation("numeric strings sort as numbers (`9` before `10`)", from_sqlite=JSONB),
    ),
    "test_sort_order[types]": Behaviour(
        "values of different types sort in BSON order: null < numbers < strings < objects < binary"
        " < ObjectId < bool < date",
        Deviation("bool sorts with the numbers; objects, binary, ObjectId and dates out of order"),
    ),
    "test_numbers_compare_across_int_long_double": Behaviour(
        "`$eq`, `$gt`, `$lt`, `$in` compare int, long and double by numeric value"
    ),
    "test_comparison_stays_within_its_type": Behaviour(
        "`{$gt: 2}` matches numbers only, never the string `'3'` (comparison within a type bracket)",
        Deviation("`{$gt: 2}` also matches the string '3'"),
    ),
    "test_group_push_keeps_types[int]": Behaviour(
        "`$group` with `$push` collects the values with their types, whatever stage follows",
        Deviation('the array comes back as JSON text of strings (`\'["1","2"]\'`)', before_sqlite=JSONB),
    ),
    "test_group_push_keeps_types[ObjectId]": Behaviour(
        "the same for ObjectIds", Deviation("ObjectIds come back as hex strings")
    ),
    "test_group_by_an_expression_document": Behaviour(
        "`$group` by a document of field paths (`{k: '$k'}`) groups by their values",
        Deviation("the document is taken literally: all documents in one group"),
    ),
    "test_distinct_with_a_filter": Behaviour(
        "`distinct` applies its filter, reads dotted paths and unwinds arrays"
    ),
    # -- duplicate keys -----------------------------------------------------------------------------------
    "test_duplicate_key_error_names_the_key[insert _id]": Behaviour(
        "a duplicate `_id` on insert: code 11000 with `keyPattern` and `keyValue`"
    ),
    "test_duplicate_key_error_names_the_key[insert unique index]": Behaviour(
        "a duplicate on a unique index on insert: code 11000 with `keyPattern` and `keyValue`"
    ),
    "test_duplicate_key_error_names_the_key[insert_many]": Behaviour(
        "each duplicate-key write error of a bulk insert carries `keyPattern` and `keyValue`"
    ),
    "test_duplicate_key_error_names_the_key[update $set]": Behaviour(
        "a duplicate made by an update: code 11000 with `keyPattern` and `keyValue`"
    ),
    "test_duplicate_key_error_names_the_key[compound unique index]": Behaviour(
        "the same for a compound unique index, its key pattern with its directions and its name in `errmsg`"
    ),
    "test_find_one_and_update_into_a_duplicate_key_fails": Behaviour(
        "`find_one_and_update` that would duplicate a unique key fails with code 11000",
        Deviation("answers `value: null` (as if nothing matched) and leaves the document unchanged"),
    ),
    # -- indexes, collections, collMod --------------------------------------------------------------------
    "test_index_is_listed_as_created[name]": Behaviour("an index is listed under the name it was given"),
    "test_index_is_listed_as_created[unique]": Behaviour("`unique` is kept"),
    "test_index_is_listed_as_created[expireAfterSeconds]": Behaviour("`expireAfterSeconds` is kept"),
    "test_index_is_listed_as_created[descending]": Behaviour(
        "a compound key keeps its directions (`{a: 1, b: -1}`)"
    ),
    "test_index_is_listed_as_created[sparse]": Behaviour("`sparse` is kept", Deviation(REFUSED)),
    "test_index_is_listed_as_created[partialFilterExpression]": Behaviour(
        "`partialFilterExpression` is kept", Deviation(REFUSED)
    ),
    "test_index_is_listed_as_created[collation]": Behaviour("an index collation is kept", Deviation(REFUSED)),
    "test_index_is_listed_as_created[hidden]": Behaviour("`hidden` is kept"),
    "test_collection_options_are_kept[validator]": Behaviour(
        "a validator is kept and enforced", Deviation(REFUSED)
    ),
    "test_collection_options_are_kept[capped]": Behaviour("`capped` and `size` are kept", Deviation(REFUSED)),
    "test_index_conflicts_are_errors[same key, other name]": Behaviour(
        "re-creating an index under another name fails with 85 IndexOptionsConflict"
    ),
    "test_index_conflicts_are_errors[same name, other options]": Behaviour(
        "re-creating a name with other options fails with 86 IndexKeySpecsConflict"
    ),
    "test_drop_index_by_name_and_by_key": Behaviour("`dropIndexes` takes the index name or its key pattern"),
    "test_coll_mod_changes_the_collection[expireAfterSeconds]": Behaviour(
        "`collMod` changes an index's `expireAfterSeconds` (refused, 115, for a unique index)"
    ),
    "test_coll_mod_changes_the_collection[hidden]": Behaviour("`collMod` hides and unhides an index"),
    "test_coll_mod_changes_the_collection[validator]": Behaviour(
        "`collMod` changes the validator", Deviation(REFUSED)
    ),
}


def render_table() -> str:
    """The README's conformance table, one row per entry of :data:`BEHAVIOURS`."""
    lines = [
        TABLE_START,
        "| test (tests/sim/test_conformance.py) | MongoDB | simulated cluster |",
        "|---|---|---|",
    ]
    for node, behaviour in BEHAVIOURS.items():
        status = "same" if behaviour.deviation is None else f"**differs** ({behaviour.deviation.describe()})"
        lines.append(f"| `{node}` | {behaviour.rule} | {status} |")
    lines.append(TABLE_END)
    return "\n".join(lines)


# -- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture
def db(request: pytest.FixtureRequest, sim_cluster: SimulatedReplicaSet) -> Iterator[Database[Any]]:
    """A database on a fresh simulated cluster; the test is a strict xfail where its entry deviates."""
    behaviour = BEHAVIOURS.get(request.node.name)
    if behaviour is None:
        pytest.fail(f"{request.node.name} has no entry in BEHAVIOURS")
    deviation = behaviour.deviation
    runtime = sim_cluster.backend.runtime
    assert runtime is not None, "the nx backend reports its SQLite version once started"
    if deviation is not None and deviation.applies(runtime.sqlite_version_info):
        request.applymarker(pytest.mark.xfail(strict=True, reason=deviation.what))
    with MongoClient(sim_cluster.uri) as client:
        yield client["conformance"]


def exactly(document: Any) -> bytes:
    """The BSON bytes: equal only with the same types (int vs long vs double), values and field order."""
    return bson.encode(document)


# -- _id --------------------------------------------------------------------------------------------------

ID_VALUES: dict[str, Any] = {
    "int": 7,
    "double": 7.5,
    "numeric string": "7",
    "string": "seven",
    "ObjectId": ObjectId("64b7f0c2a1b2c3d4e5f60718"),
    "long": Int64(7),
}


def write_paths(things: Collection[Any], ident: Any) -> Iterator[tuple[str, Any]]:
    """Each write method in turn; yields (method, what it returned as the document, if anything)."""
    things.insert_one({"_id": ident, "n": 1})
    yield "insert_one", None
    things.delete_many({})
    things.insert_many([{"_id": ident, "n": 1}])
    yield "insert_many", None
    things.delete_many({})
    things.bulk_write([InsertOne({"_id": ident, "n": 1})])
    yield "bulk_write insert", None
    things.delete_many({})
    things.update_one({"_id": ident}, {"$set": {"n": 1}}, upsert=True)
    yield "update_one upsert", None
    things.replace_one({"_id": ident}, {"n": 1})
    yield "replace_one", None
    things.update_many({"_id": ident}, {"$set": {"n": 1}})
    yield "update_many", None
    yield (
        "find_one_and_update",
        things.find_one_and_update({"_id": ident}, {"$set": {"n": 1}}, return_document=ReturnDocument.AFTER),
    )
    yield (
        "find_one_and_replace",
        things.find_one_and_replace({"_id": ident}, {"n": 1}, return_document=ReturnDocument.AFTER),
    )
    things.delete_many({})
    things.replace_one({"_id": ident}, {"n": 1}, upsert=True)
    yield "replace_one upsert", None
    things.delete_many({})
    yield (
        "find_one_and_update upsert",
        things.find_one_and_update(
            {"_id": ident}, {"$set": {"n": 1}}, upsert=True, return_document=ReturnDocument.AFTER
        ),
    )
    things.delete_many({})
    yield (
        "find_one_and_replace upsert",
        things.find_one_and_replace(
            {"_id": ident}, {"n": 1}, upsert=True, return_document=ReturnDocument.AFTER
        ),
    )


@pytest.mark.parametrize("kind", list(ID_VALUES))
def test_id_is_kept_by_every_write_method(db: Database[Any], kind: str) -> None:
    """MongoDB manual, "The _id Field": immutable; an upsert takes it from the query's equality condition."""
    ident = ID_VALUES[kind]
    expected = exactly({"_id": ident, "n": 1})
    wrong = []
    for method, returned in write_paths(db.things, ident):
        stored = [exactly(document) for document in db.things.find({}, {"_id": 1, "n": 1})]
        if stored != [expected] or (returned is not None and exactly(returned) != expected):
            wrong.append((method, list(db.things.find()), returned))
    assert wrong == []


def test_null_id_is_kept(db: Database[Any]) -> None:
    db.things.insert_one({"_id": None, "n": 1})
    assert [exactly(d) for d in db.things.find()] == [exactly({"_id": None, "n": 1})]
    assert db.things.find_one({"_id": None}) == {"_id": None, "n": 1}


def test_document_id_is_kept(db: Database[Any]) -> None:
    ident = {"day": "2024-01-01", "shard": 3}
    db.things.insert_one({"_id": ident, "n": 1})
    assert db.things.find_one({"_id": ident}) == {"_id": ident, "n": 1}


def test_bool_id_is_found_by_equality(db: Database[Any]) -> None:
    db.things.insert_many([{"_id": True, "n": 1}, {"_id": False, "n": 0}])
    assert db.things.find_one({"_id": True}) == {"_id": True, "n": 1}


def test_upsert_inserts_the_query_fields(db: Database[Any]) -> None:
    """MongoDB manual, "update" (upsert): the new document gets the query's equality fields, then the
    update."""
    owner = ObjectId("64b7f0c2a1b2c3d4e5f60718")
    db.things.update_one({"_id": 1, "owner": owner, "size": Int64(5)}, {"$set": {"n": 1}}, upsert=True)
    assert [exactly(d) for d in db.things.find()] == [
        exactly({"_id": 1, "owner": owner, "size": Int64(5), "n": 1})
    ]


# -- order and comparison ---------------------------------------------------------------------------------

SORTED_VALUES: dict[str, list[Any]] = {
    "int": [1, 2, 3, 10, 100],
    "numbers": [-1.5, 0, Int64(1), 2.5, 3, Int64(10), 100.25],
    "strings": ["10", "9", "A", "B", "a", "b", "ä"],
    "types": [
        None,
        1,
        2.5,
        "a",
        {"x": 1},
        b"\x00bin",
        ObjectId("64b7f0c2a1b2c3d4e5f60718"),
        False,
        True,
        datetime.datetime(2020, 1, 1),
    ],
}


@pytest.mark.parametrize("kind", list(SORTED_VALUES))
def test_sort_order(db: Database[Any], kind: str) -> None:
    """MongoDB manual, "Comparison/Sort Order" (BSON types) and the simple binary collation for strings."""
    values = SORTED_VALUES[kind]
    order = [5, 0, 3, 6, 1, 4, 2, 9, 7, 8]
    db.things.insert_many([{"_id": i, "v": values[i]} for i in order if i < len(values)])
    ascending = [d["v"] for d in db.things.find({}, {"_id": 0}).sort("v", 1)]
    descending = [d["v"] for d in db.things.find({}, {"_id": 0}).sort("v", -1)]
    assert (ascending, descending) == (values, values[::-1])
    # and as the sort key of _id itself (the order resumable cursors rely on)
    db.ids.insert_many([{"_id": values[i]} for i in order if i < len(values) and values[i] is not None])
    by_id = [d["_id"] for d in db.ids.find().sort("_id", 1)]
    assert by_id == [v for v in values if v is not None]


def test_numbers_compare_across_int_long_double(db: Database[Any]) -> None:
    """MongoDB manual, "Comparison/Sort Order": numeric types are compared by value, not by type."""
    db.things.insert_many(
        [
            {"_id": 1, "n": 1},
            {"_id": 2, "n": Int64(2)},
            {"_id": 3, "n": 2.0},
            {"_id": 4, "n": 2.5},
            {"_id": 5, "n": Int64(3)},
            {"_id": 6, "n": 2},
        ]
    )

    def ids(query: dict[str, Any]) -> list[int]:
        return sorted(d["_id"] for d in db.things.find(query))

    assert ids({"n": 2}) == ids({"n": 2.0}) == ids({"n": Int64(2)}) == [2, 3, 6]
    assert ids({"n": {"$gt": 2}}) == ids({"n": {"$gt": Int64(2)}}) == [4, 5]
    assert ids({"n": {"$lt": 2.5}}) == [1, 2, 3, 6]
    assert ids({"n": {"$gte": 2.5, "$lte": Int64(3)}}) == [4, 5]
    assert ids({"n": {"$in": [Int64(1), 3.0]}}) == [1, 5]


def test_comparison_stays_within_its_type(db: Database[Any]) -> None:
    """MongoDB manual, "Comparison Query Operators": comparisons only match fields of the same BSON type
    bracket (here: numbers), so the string "3" is not greater than 2."""
    db.things.insert_many([{"_id": 1, "n": 3}, {"_id": 2, "n": "3"}, {"_id": 3, "n": 1}])
    assert sorted(d["_id"] for d in db.things.find({"n": {"$gt": 2}})) == [1]


def test_distinct_with_a_filter(db: Database[Any]) -> None:
    """MongoDB manual, "distinct": the query filters documents first; arrays contribute each element."""
    db.things.insert_many(
        [
            {"_id": 1, "k": "a", "v": 1, "d": {"e": "x"}, "t": ["p", "q"]},
            {"_id": 2, "k": "a", "v": 2, "d": {"e": "y"}, "t": ["q"]},
            {"_id": 3, "k": "b", "v": 3, "d": {"e": "z"}, "t": ["r"]},
        ]
    )
    assert sorted(db.things.distinct("v", {"k": "a"})) == [1, 2]
    assert sorted(db.things.distinct("d.e", {"k": "a"})) == ["x", "y"]
    assert sorted(db.things.distinct("t", {"k": "a"})) == ["p", "q"]
    assert sorted(db.things.distinct("v", {"v": {"$gte": 2}})) == [2, 3]


@pytest.mark.parametrize("kind", ["int", "ObjectId"])
def test_group_push_keeps_types(db: Database[Any], kind: str) -> None:
    """MongoDB manual, "$push (aggregation accumulator)": an array of the values, as they are."""
    ids = [1, 2, 3] if kind == "int" else [ObjectId(f"64b7f0c2a1b2c3d4e5f6071{i}") for i in range(3)]
    db.things.insert_many([{"_id": ids[0], "k": 7}, {"_id": ids[1], "k": 7}, {"_id": ids[2], "k": 8}])
    pipeline: list[dict[str, Any]] = [
        {"$group": {"_id": "$k", "ids": {"$push": "$_id"}}},
        {"$sort": {"_id": 1}},
    ]
    groups = [(g["_id"], sorted(g["ids"])) for g in db.things.aggregate(pipeline)]
    assert groups == [(7, ids[:2]), (8, ids[2:])]


def test_group_by_an_expression_document(db: Database[Any]) -> None:
    """MongoDB manual, "$group": the ``_id`` may be any expression, a document of field paths included."""
    db.things.insert_many([{"_id": 1, "k": 7}, {"_id": 2, "k": 7}, {"_id": 3, "k": 8}])
    pipeline: list[dict[str, Any]] = [{"$group": {"_id": {"key": "$k"}, "n": {"$sum": 1}}}]
    assert sorted((g["_id"]["key"], g["n"]) for g in db.things.aggregate(pipeline)) == [(7, 2), (8, 1)]


# -- duplicate keys ---------------------------------------------------------------------------------------


def _duplicate(db: Database[Any], case: str) -> dict[str, Any]:
    things = db.things
    things.create_index("email", unique=True)
    things.insert_many([{"_id": 1, "email": "a@x"}, {"_id": 2, "email": "b@x"}])
    operations: dict[str, Callable[[], Any]] = {
        "insert _id": lambda: things.insert_one({"_id": 1, "email": "c@x"}),
        "insert unique index": lambda: things.insert_one({"_id": 3, "email": "a@x"}),
        "insert_many": lambda: things.insert_many([{"_id": 4, "email": "d@x"}, {"_id": 5, "email": "b@x"}]),
        "update $set": lambda: things.update_one({"_id": 2}, {"$set": {"email": "a@x"}}),
        "compound unique index": lambda: db.players.insert_many(
            [{"_id": 6, "team": "red", "number": 7}, {"_id": 7, "team": "red", "number": 7}]
        ),
    }
    db.players.create_index([("team", 1), ("number", -1)], unique=True, name="player_number")
    with pytest.raises((DuplicateKeyError, BulkWriteError)) as info:
        operations[case]()
    details = info.value.details or {}
    if isinstance(info.value, BulkWriteError):
        (details,) = details["writeErrors"]
    return dict(details)


DUPLICATES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "insert _id": ({"_id": 1}, {"_id": 1}),
    "insert unique index": ({"email": 1}, {"email": "a@x"}),
    "insert_many": ({"email": 1}, {"email": "b@x"}),
    "update $set": ({"email": 1}, {"email": "a@x"}),
    "compound unique index": ({"team": 1, "number": -1}, {"team": "red", "number": 7}),
}


@pytest.mark.parametrize("case", list(DUPLICATES))
def test_duplicate_key_error_names_the_key(db: Database[Any], case: str) -> None:
    """MongoDB (4.4+): duplicate-key errors carry ``keyPattern`` and ``keyValue`` (code 11000)."""
    key_pattern, key_value = DUPLICATES[case]
    details = _duplicate(db, case)
    assert details["code"] == 11000
    assert (details.get("keyPattern"), details.get("keyValue")) == (key_pattern, key_value)
    if case == "compound unique index":
        assert "index: player_number dup key" in details["errmsg"]


def test_find_one_and_update_into_a_duplicate_key_fails(db: Database[Any]) -> None:
    """MongoDB: findAndModify reports a unique-index violation as an error (11000), like any write."""
    db.things.create_index("email", unique=True)
    db.things.insert_many([{"_id": 1, "email": "a@x"}, {"_id": 2, "email": "b@x"}])
    with pytest.raises(DuplicateKeyError):
        db.things.find_one_and_update({"_id": 2}, {"$set": {"email": "a@x"}})
    assert db.things.find_one({"_id": 2}) == {"_id": 2, "email": "b@x"}


# -- indexes, collection options, collMod -----------------------------------------------------------------

INDEXES: dict[str, tuple[list[tuple[str, Any]], dict[str, Any]]] = {
    "name": ([("a", 1)], {"name": "by_a"}),
    "unique": ([("u", 1)], {"unique": True}),
    "expireAfterSeconds": ([("t", 1)], {"expireAfterSeconds": 3600}),
    "descending": ([("a", 1), ("b", -1)], {}),
    "sparse": ([("s", 1)], {"sparse": True}),
    "partialFilterExpression": ([("p", 1)], {"partialFilterExpression": {"p": {"$exists": True}}}),
    "collation": ([("c", 1)], {"collation": {"locale": "en", "strength": 2}}),
    "hidden": ([("h", 1)], {"hidden": True}),
}


@pytest.mark.parametrize("option", list(INDEXES))
def test_index_is_listed_as_created(db: Database[Any], option: str) -> None:
    """MongoDB manual, "createIndexes" and "listIndexes": an index is listed with the options it was created
    with."""
    keys, options = INDEXES[option]
    name = db.things.create_index(keys, **options)
    listed = [index for index in db.things.list_indexes() if index["key"].keys() == dict(keys).keys()]
    assert len(listed) == 1, f"no index on {keys}: {list(db.things.list_indexes())}"
    (index,) = listed
    assert list(index["key"].items()) == keys
    if option == "name":
        assert index["name"] == options["name"] == name
    for field, value in options.items():
        if field == "collation":
            assert {k: index[field].get(k) for k in value} == value
        elif field != "name":
            assert index.get(field) == value, f"{field}: {index}"


COLLECTIONS: dict[str, dict[str, Any]] = {
    "validator": {"validator": {"$jsonSchema": {"bsonType": "object", "required": ["a"]}}},
    "capped": {"capped": True, "size": 4096},
}


@pytest.mark.parametrize("option", list(COLLECTIONS))
def test_collection_options_are_kept(db: Database[Any], option: str) -> None:
    """MongoDB manual, "create" and "listCollections": the options given are listed, and a validator is
    enforced on insert (code 121, DocumentValidationFailure)."""
    options = COLLECTIONS[option]
    db.create_collection("things", **options)
    (listed,) = db.list_collections(filter={"name": "things"})
    assert {k: listed["options"].get(k) for k in options} == options
    if option == "validator":
        with pytest.raises(OperationFailure) as info:
            db.things.insert_one({"b": 1})
        assert info.value.code == 121


@pytest.mark.parametrize("case", ["same key, other name", "same name, other options"])
def test_index_conflicts_are_errors(db: Database[Any], case: str) -> None:
    """MongoDB manual, "db.collection.createIndex()": an existing key pattern under another name, or an
    existing name with other options, is an error (85 IndexOptionsConflict, 86 IndexKeySpecsConflict)."""
    db.things.create_index("a", name="by_a")
    assert db.things.create_index("a", name="by_a") == "by_a"  # the very same index again: a no-op
    with pytest.raises(OperationFailure) as info:
        if case == "same key, other name":
            db.things.create_index("a", name="a_again")
        else:
            db.things.create_index("a", name="by_a", unique=True)
    assert info.value.code == (85 if case == "same key, other name" else 86)
    assert [i["name"] for i in db.things.list_indexes()] == ["_id_", "by_a"]


def test_drop_index_by_name_and_by_key(db: Database[Any]) -> None:
    db.things.create_index([("a", 1), ("b", -1)], name="ab")
    db.things.create_index("c")
    db.things.drop_index("ab")
    db.things.drop_index([("c", 1)])
    assert [i["name"] for i in db.things.list_indexes()] == ["_id_"]
    with pytest.raises(OperationFailure) as info:
        db.things.drop_index("ab")
    assert info.value.code == 27  # IndexNotFound


@pytest.mark.parametrize("option", ["expireAfterSeconds", "hidden", "validator"])
def test_coll_mod_changes_the_collection(db: Database[Any], option: str) -> None:
    """MongoDB manual, "collMod": changes an index's TTL or visibility, or the validator, in place."""
    db.things.create_index("t", expireAfterSeconds=3600)
    if option in ("expireAfterSeconds", "hidden"):
        value = 60 if option == "expireAfterSeconds" else True
        answer = db.command("collMod", "things", index={"keyPattern": {"t": 1}, option: value})
        assert (answer[f"{option}_old"], answer[f"{option}_new"]) == (
            (3600, 60) if value == 60 else (False, True)
        )
        (index,) = [i for i in db.things.list_indexes() if dict(i["key"]) == {"t": 1}]
        assert (index["name"], index.get(option)) == ("t_1", value)
    else:
        validator = {"$jsonSchema": {"bsonType": "object", "required": ["t"]}}
        db.command("collMod", "things", validator=validator)
        (listed,) = db.list_collections(filter={"name": "things"})
        assert listed["options"].get("validator") == validator


# -- the list and the README ------------------------------------------------------------------------------


def test_readme_table_matches_the_conformance_list() -> None:
    text = README.read_text(encoding="utf-8")
    found = re.search(re.escape(TABLE_START) + r".*?" + re.escape(TABLE_END), text, re.S)
    assert found, f"README.md has no conformance table between {TABLE_START!r} and {TABLE_END!r}"
    assert found.group(0) == render_table(), "run: python -m tests.sim.test_conformance --write"


def test_every_entry_has_its_test() -> None:
    """Every entry names a test function here and one of its parameters (the ``db`` fixture fails a test
    without an entry, so the two lists are the same)."""
    for node in BEHAVIOURS:
        name, _, param = node.partition("[")
        function = globals().get(name)
        assert callable(function), f"{node}: no test function {name}"
        if param:
            (mark,) = [m for m in getattr(function, "pytestmark", []) if m.name == "parametrize"]
            assert param.removesuffix("]") in mark.args[1], f"{node}: no parameter {param}"


def write_table() -> None:
    """Replace the README's conformance table with :func:`render_table`."""
    text = README.read_text(encoding="utf-8")
    found = re.search(re.escape(TABLE_START) + r".*?" + re.escape(TABLE_END), text, re.S)
    assert found, "README.md has no conformance table markers"
    README.write_text(text[: found.start()] + render_table() + text[found.end() :], encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_table()
    else:
        print(render_table())
