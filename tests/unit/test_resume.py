"""The resume filter against the BSON order model: for every prefix of a sorted result, the filter built
from the prefix's last document matches exactly the rest (no server; see tests/unit/filter_model.py)."""

from __future__ import annotations

import datetime
import functools
import itertools
import random
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from bson.binary import Binary
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp

from mongomancy._paths import MISSING, lookup_dotted
from mongomancy.bson_order import Bracket, bracket_of, compare
from mongomancy.errors import CursorResumeError
from mongomancy.resume import after_filter, total_prefix
from tests.unit.filter_model import matches

Doc = dict[str, Any]
Sort = list[tuple[str, int]]


def sort_documents(documents: Sequence[Doc], sort: Sort) -> list[Doc]:
    """The documents as MongoDB sorts them (ties keep their input order, which a server need not)."""

    def by_keys(left: Doc, right: Doc) -> int:
        for key, direction in sort:
            order = compare(lookup_dotted(left, key), lookup_dotted(right, key))
            if order:
                return order * direction
        return 0

    return sorted(documents, key=functools.cmp_to_key(by_keys))


def sort_values(document: Doc, sort: Sort) -> list[Any]:
    return [lookup_dotted(document, key) for key, _ in sort]


def remaining_after(documents: Sequence[Doc], sort: Sort, yielded: int) -> tuple[set[Any], set[Any]]:
    """(what a resume filter must match, what it must not) after ``yielded`` sorted documents."""
    ordered = sort_documents(documents, sort)
    return {d["_id"] for d in ordered[yielded:]}, {d["_id"] for d in ordered[:yielded]}


def filter_after(documents: Sequence[Doc], sort: Sort, yielded: int) -> dict[str, Any]:
    """The resume filter after the first ``yielded`` sorted documents, with the tie group's ids if needed."""
    ordered = sort_documents(documents, sort)
    last = ordered[yielded - 1]
    boundary = sort_values(last, sort)
    tied: list[Any] | None = None
    if total_prefix(sort) is None:
        tied = [
            d["_id"]
            for d in ordered[:yielded]
            if all(compare(a, b) == 0 for a, b in zip(sort_values(d, sort), boundary))
        ]
    return after_filter(sort, boundary, tied_ids=tied)


def check_every_prefix(documents: Sequence[Doc], sort: Sort) -> int:
    """Assert the exact-suffix property for every prefix; return how many prefixes could not resume."""
    refused = 0
    for yielded in range(1, len(documents) + 1):
        try:
            query = filter_after(documents, sort, yielded)
        except CursorResumeError as error:
            last = sort_documents(documents, sort)[yielded - 1]
            brackets = {bracket_of(v) for v in sort_values(last, sort)}
            assert brackets & {Bracket.ARRAY, Bracket.REGEX}, f"refused without cause: {error}"
            refused += 1
            continue
        expected, already = remaining_after(documents, sort, yielded)
        found = {d["_id"] for d in documents if matches(d, query)}
        assert found == expected, (
            f"after {yielded} documents sorted by {sort}: missing {expected - found}, "
            f"duplicated {found & already}; filter {query}"
        )
    return refused


# ------------------------------------------------------------------------------------- the model itself
def test_the_model_orders_brackets_as_the_manual_lists_them():
    ascending = [
        MinKey(),
        None,
        float("nan"),
        -5,
        Decimal128("0.1"),
        0.5,
        Int64(7),
        "",
        "a",
        {"a": 1},
        [1],
        Binary(b"\x00"),
        ObjectId("000000000000000000000000"),
        False,
        True,
        datetime.datetime(2020, 1, 1),
        Timestamp(1, 1),
        Regex("a"),
        MaxKey(),
    ]
    for lower, higher in itertools.pairwise(ascending):
        assert compare(lower, higher) < 0 < compare(higher, lower), (lower, higher)
    shuffled = list(ascending)
    random.Random(3).shuffle(shuffled)
    ordered = sorted(shuffled, key=functools.cmp_to_key(compare))
    assert [repr(v) for v in ordered] == [repr(v) for v in ascending]


def test_numbers_compare_by_value_across_types():
    assert compare(1, 1.0) == 0
    assert compare(Int64(1), Decimal128("1.000")) == 0
    assert compare(Decimal128("0.1"), 0.1) < 0  # the double 0.1 is 0.1000000000000000055...
    assert compare(float("nan"), float("-inf")) < 0
    assert compare(Decimal128("NaN"), float("nan")) == 0
    assert compare(-0.0, 0) == 0
    assert compare(2**62, float(2**62) + 2048) < 0


def test_null_and_missing_sort_equal():
    assert compare(None, MISSING) == 0
    assert compare(MISSING, MinKey()) > 0 and compare(MISSING, -(10**9)) < 0


def test_objects_compare_by_field_type_then_name_then_value():
    assert compare({"a": 1}, {"a": "x"}) < 0  # number bracket before string bracket
    assert compare({"a": 1}, {"b": 0}) < 0  # same type: by field name
    assert compare({"a": 1}, {"a": 1, "b": 0}) < 0  # the shorter object first
    assert compare({"a": 2}, {"a": 1.5}) > 0


def test_binary_compares_length_then_subtype_then_bytes():
    assert compare(Binary(b"\xff", 0), Binary(b"\x00\x00", 0)) < 0
    assert compare(Binary(b"\x00", 5), Binary(b"\xff", 0)) > 0


# ------------------------------------------------------------------------------------- table tests
def ids(documents: Sequence[Doc], query: Mapping[str, Any]) -> list[Any]:
    return [d["_id"] for d in documents if matches(d, query)]


def test_int_then_string_ascending_keeps_every_string():
    docs = [{"_id": i, "k": v} for i, v in enumerate([3, 1, "b", "a", 2])]
    query = after_filter([("k", 1)], [3], tied_ids=[0])
    assert sorted(ids(docs, query)) == [2, 3]  # "$gt: 3" alone would lose both strings


def test_string_and_object_id_ids_resume_across_the_bracket():
    oid = ObjectId("5f0000000000000000000001")
    docs = [{"_id": "a"}, {"_id": "b"}, {"_id": oid}, {"_id": ObjectId("5f0000000000000000000002")}]
    assert ids(docs, after_filter([("_id", 1)], ["b"])) == [oid, docs[3]["_id"]]
    assert ids(docs, after_filter([("_id", -1)], [oid])) == ["a", "b"]


@pytest.mark.parametrize("direction", [1, -1])
def test_null_and_missing_in_both_directions(direction):
    docs: list[Doc] = [
        {"_id": 0, "k": None},
        {"_id": 1},
        {"_id": 2, "k": 5},
        {"_id": 3, "k": "s"},
        {"_id": 4, "k": MinKey()},
        {"_id": 5},
        {"_id": 6, "k": None},
    ]
    assert check_every_prefix(docs, [("k", direction)]) == 0
    assert check_every_prefix(docs, [("k", direction), ("_id", 1)]) == 0


def test_descending_after_a_number_reaches_null_missing_and_min_key():
    docs: list[Doc] = [{"_id": 0, "k": 1}, {"_id": 1}, {"_id": 2, "k": None}, {"_id": 3, "k": MinKey()}]
    query = after_filter([("k", -1), ("_id", 1)], [1, 0])
    assert sorted(ids(docs, query)) == [1, 2, 3]


def test_compound_keys_with_many_ties():
    rng = random.Random(11)
    docs = [{"_id": i, "g": rng.choice([1, 1.0, "x", None]), "h": rng.choice([0, 1])} for i in range(40)]
    for i in range(0, 40, 5):
        del docs[i]["g"]
    for sort in ([("g", 1), ("h", -1)], [("g", -1)], [("h", 1), ("g", 1)]):
        assert check_every_prefix(docs, sort) == 0


def test_decimal_and_double_compare_by_value():
    docs = [
        {"_id": 0, "k": Decimal128("0.1")},
        {"_id": 1, "k": 0.1},
        {"_id": 2, "k": Decimal128("1")},
        {"_id": 3, "k": 1.0},
        {"_id": 4, "k": Int64(1)},
        {"_id": 5, "k": float("nan")},
        {"_id": 6, "k": Decimal128("-Infinity")},
    ]
    for sort in ([("k", 1), ("_id", 1)], [("k", -1), ("_id", -1)], [("k", 1)], [("k", -1)]):
        assert check_every_prefix(docs, sort) == 0


def test_nothing_after_max_key_matches_no_document():
    docs: list[Doc] = [{"_id": 0, "k": MaxKey()}, {"_id": 1, "k": 1}]
    assert ids(docs, after_filter([("k", 1), ("_id", 1)], [MaxKey(), 0])) == []


def test_dotted_keys_treat_a_scalar_parent_as_missing():
    docs: list[Doc] = [{"_id": 0, "a": 5}, {"_id": 1, "a": {"b": 2}}, {"_id": 2, "a": {"b": "z"}}, {"_id": 3}]
    assert check_every_prefix(docs, [("a.b", 1)]) == 0
    assert check_every_prefix(docs, [("a.b", -1), ("_id", -1)]) == 0


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ([1, 2], "array"),
        (Regex("^a"), "regular expression"),
        (re.compile("^a"), "regular expression"),
        (object(), "no known place"),
    ],
)
def test_positions_without_an_exact_filter_are_refused_with_the_reason(value, reason):
    with pytest.raises(CursorResumeError, match=reason):
        after_filter([("k", 1), ("_id", 1)], [value, 1])


def test_directions_other_than_one_and_minus_one_are_refused():
    with pytest.raises(CursorResumeError, match="textScore"):
        after_filter([("score", {"$meta": "textScore"}), ("_id", 1)], [1.5, 1])


def test_a_sort_without_a_unique_key_needs_the_tied_ids():
    with pytest.raises(ValueError, match="tied_ids"):
        after_filter([("k", 1)], [1])


# ------------------------------------------------------------------------------------- property style
_POOL: list[Any] = [
    MISSING,
    None,
    MinKey(),
    MaxKey(),
    -3,
    0,
    2,
    Int64(2),
    2.0,
    -0.0,
    2.5,
    float("inf"),
    float("-inf"),
    float("nan"),
    Decimal128("2.50"),
    Decimal128("0.1"),
    0.1,
    "",
    "a",
    "B",
    "é",
    {"x": 1},
    {"x": "1"},
    {"y": 0},
    {},
    b"\x01",
    Binary(b"\x01", 4),
    Binary(b"\x00\x00", 0),
    ObjectId("000000000000000000000001"),
    ObjectId("ffffffffffffffffffffffff"),
    False,
    True,
    datetime.datetime(2001, 1, 1),
    datetime.datetime(1960, 6, 1, tzinfo=datetime.timezone.utc),
    Timestamp(5, 1),
    Timestamp(5, 2),
]


def _random_id(rng: random.Random, index: int) -> Any:
    kind = rng.randrange(4)
    if kind == 0:
        return index
    if kind == 1:
        return f"id{index:03d}"
    if kind == 2:
        return ObjectId(f"{index:024x}")
    return index + 0.5


def _random_documents(rng: random.Random, count: int) -> list[Doc]:
    documents = []
    for index in range(count):
        document: Doc = {"_id": _random_id(rng, index)}
        for field in ("a", "b"):
            value = rng.choice(_POOL)
            if value is not MISSING:
                document[field] = value
        documents.append(document)
    return documents


_SORTS: list[Sort] = [
    [("a", 1)],
    [("a", -1)],
    [("a", 1), ("b", -1)],
    [("b", -1), ("a", 1)],
    [("a", -1), ("_id", 1)],
    [("a", 1), ("b", 1), ("_id", -1)],
    [("_id", 1)],
    [("_id", -1)],
]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("sort", _SORTS, ids=lambda s: ",".join(f"{k}:{d}" for k, d in s))
def test_every_prefix_of_random_mixed_type_documents_resumes_exactly(seed, sort):
    documents = _random_documents(random.Random(seed), 30)
    assert check_every_prefix(documents, sort) == 0


def test_uuids_are_binary_subtype_4_values():
    value = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert compare(value, Binary(value.bytes, 4)) == 0
    assert compare(value, ObjectId()) < 0 and compare(value, "z") > 0
    docs = [{"_id": i, "k": v} for i, v in enumerate([value, "s", uuid.UUID(int=0), ObjectId()])]
    assert check_every_prefix(docs, [("k", 1), ("_id", 1)]) == 0
