"""What a resumable cursor sends and how it would resume, decided without a server."""

from __future__ import annotations

import re
from collections import deque
from typing import Any

import pytest
from pymongo.errors import InvalidOperation

from mongomancy.cursor import ResumableAggregateCursor, ResumableCursor, uses_server_order
from mongomancy.errors import CursorResumeError
from mongomancy.fetch_keys import plan_fetch, strip_paths


class _Target:
    full_name = "db.things"

    def resolve(self, client: Any) -> Any:
        raise AssertionError("no server in unit tests")


def _cursor(*args: Any, **kwargs: Any) -> ResumableCursor:
    return ResumableCursor(None, _Target(), *args, **kwargs)  # type: ignore[arg-type]


def _sent(cursor: ResumableCursor) -> dict[str, Any]:
    return dict(cursor._command(None, 0).kwargs)


# ------------------------------------------------------------------------------------- the query sent
def test_the_callers_sort_goes_out_unchanged_and_nothing_else_is_added():
    cursor = _cursor({"ts": {"$gt": 5}}, sort=[("ts", 1)], batch_size=10)
    assert _sent(cursor) == {
        "filter": {"ts": {"$gt": 5}},
        "projection": None,
        "sort": [("ts", 1)],
        "batch_size": 10,
    }


def test_an_unsorted_query_is_sorted_by_id_unless_resumable_is_false():
    assert _sent(_cursor({}))["sort"] == [("_id", 1)]
    assert "sort" not in _sent(_cursor({}, resumable=False))


@pytest.mark.parametrize(
    "query",
    [
        {"loc": {"$near": [0, 0]}},
        {
            "$and": [
                {"a": 1},
                {"loc": {"$nearSphere": {"$geometry": {"type": "Point", "coordinates": [0, 0]}}}},
            ]
        },
        {"$text": {"$search": "coffee"}},
    ],
)
def test_geo_and_text_queries_get_no_added_sort_and_say_why_they_cannot_resume(query):
    cursor = _cursor(query)
    assert "sort" not in _sent(cursor)
    refusal = cursor._plan().refusal
    assert refusal is not None and ("distance order" in refusal or "score order" in refusal)


def test_a_text_score_sort_is_sent_and_cannot_resume():
    cursor = _cursor({"$text": {"$search": "x"}}, sort=[("score", {"$meta": "textScore"})])
    assert _sent(cursor)["sort"] == [("score", {"$meta": "textScore"})]
    assert "score order" in (cursor._plan().refusal or "")


def test_a_sort_without_id_needs_ties_and_fetches_the_id():
    plan = _cursor({}, {"_id": 0, "name": 1}, sort=[("rank", -1)])._plan()
    assert plan.keys == (("rank", -1),) and plan.needs_ties
    assert plan.fetch.projection == {"name": 1, "rank": True}
    assert plan.fetch.strip == ("rank", "_id")


def test_a_sort_through_id_is_total_and_stops_at_id():
    plan = _cursor({}, sort=[("a", 1), ("_id", -1), ("b", 1)])._plan()
    assert plan.keys == (("a", 1), ("_id", -1)) and not plan.needs_ties


def test_options_cannot_change_after_iteration_started_as_in_pymongo():
    cursor = _cursor({})
    cursor._current_plan()
    with pytest.raises(InvalidOperation):
        cursor.sort("a")
    with pytest.raises(InvalidOperation):
        cursor.hint("a_1")


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="filter must be a mapping"):
        _cursor([("a", 1)])
    with pytest.raises(TypeError, match="skip must be an int >= 0"):
        _cursor({}, skip=-1)
    with pytest.raises(TypeError, match="max_ties must be an int >= 1"):
        _cursor({}, max_ties=0)


def test_server_ordered_operators_are_found_anywhere():
    assert uses_server_order({"$or": [{"a": 1}, {"b": {"$near": [1, 2]}}]}) == "$near"
    assert uses_server_order({"a": {"$geoWithin": {}}}) is None


# ------------------------------------------------------------------------------------- fetch and strip
@pytest.mark.parametrize(
    ("projection", "needed", "sent", "strip"),
    [
        (None, ["a"], None, ()),
        ({"x": 1}, ["a"], {"x": 1, "a": True}, ("a",)),
        (["x"], ["a.b"], {"x": True, "a.b": True}, ("a",)),
        ({"a.c": 1}, ["a.b"], {"a.c": 1, "a.b": True}, ("a.b",)),
        ({"a.c": 1}, ["a.b.d"], {"a.c": 1, "a.b.d": True}, ("a.b",)),
        ({"a": 1}, ["a.b"], {"a": 1}, ()),
        ({"_id": 0, "x": 1}, ["_id"], {"x": 1}, ("_id",)),
        ({"_id": 0}, ["_id", "a"], None, ("_id",)),
        ({"a": 0, "z": 0}, ["a.b"], {"z": 0}, ("a",)),
        ({"a.b.c": 0}, ["a.b"], None, ("a.b.c",)),
        ({}, ["a"], {"_id": True, "a": True}, ("a",)),
    ],
)
def test_a_projection_is_widened_by_exactly_the_keys_it_drops(projection, needed, sent, strip):
    plan = plan_fetch(projection, needed)
    assert plan.blocker is None
    assert plan.projection == sent
    assert plan.strip == strip


@pytest.mark.parametrize(
    ("projection", "reason"),
    [
        ({"a": {"$slice": 2}}, "reshapes"),
        ({"a.$": 1, "x": 1}, "reshapes"),
        ({"a.b.c": 1}, "only part"),
    ],
)
def test_a_projection_that_reshapes_a_sort_key_blocks_the_resume(projection, reason):
    plan = plan_fetch(projection, ["a.b"] if reason == "only part" else ["a"])
    assert plan.blocker is not None and reason in plan.blocker
    assert plan.strip == ()


def test_stripping_restores_what_the_callers_projection_returns():
    document = {"_id": 1, "x": 1, "a": {"b": 2, "c": 3}, "l": [{"b": 1, "c": 1}, {"c": 2}, 5]}
    strip_paths(document, ["_id", "a.b", "l.b"])
    assert document == {"x": 1, "a": {"c": 3}, "l": [{"c": 1}, {"c": 2}, 5]}


# ------------------------------------------------------------------------------------- aggregate
def _pipeline_cursor(pipeline: list[dict[str, Any]], **kwargs: Any) -> ResumableAggregateCursor:
    return ResumableAggregateCursor(None, _Target(), pipeline, **kwargs)  # type: ignore[arg-type]


def test_a_match_sort_pipeline_goes_out_as_given_and_resumes_by_its_sort():
    pipeline = [{"$match": {"a": 1}}, {"$sort": {"b": -1, "_id": 1}}, {"$match": {"c": 2}}]
    cursor = _pipeline_cursor(pipeline)
    assert cursor.sent_pipeline == pipeline
    plan = cursor._plan()
    assert plan.refusal is None and plan.keys == (("b", -1), ("_id", 1)) and not plan.needs_ties
    assert cursor._base_filter() == {"$and": [{"a": 1}, {"c": 2}]}
    resumed = cursor._command({"b": {"$lt": 5}}, 10).args[0]
    assert resumed == [{"$match": {"b": {"$lt": 5}}}, *pipeline]


def test_a_match_only_pipeline_is_sorted_by_id_unless_resumable_is_false():
    assert _pipeline_cursor([{"$match": {}}]).sent_pipeline == [{"$match": {}}, {"$sort": {"_id": 1}}]
    assert _pipeline_cursor([{"$match": {}}], resumable=False).sent_pipeline == [{"$match": {}}]


@pytest.mark.parametrize(
    ("pipeline", "reason"),
    [
        ([{"$group": {"_id": "$a"}}], r"stage 0 \(\$group\)"),
        ([{"$match": {}}, {"$sort": {"a": 1}}, {"$sort": {"b": 1}}], r"stage 2 \(\$sort\)"),
        ([{"$match": {"$text": {"$search": "x"}}}], r"\$text"),
    ],
)
def test_other_pipelines_are_sent_as_given_and_name_why_they_cannot_resume(pipeline, reason):
    cursor = _pipeline_cursor(pipeline)
    assert cursor.sent_pipeline == pipeline
    assert re.search(reason, cursor._plan().refusal or "")


# ------------------------------------------------------------------------------------- ties across batches
def _feed(cursor: ResumableCursor, batches: list[list[dict[str, Any]]]) -> None:
    """Hand the cursor ``batches`` as if pymongo had fetched them, yielding every document of each."""
    plan = cursor._current_plan()
    for documents in batches:
        cursor._consumed += cursor._batch_len
        batch = deque(documents)
        cursor._take(batch, plan)
        while cursor._buffer:
            next(cursor)


def test_ties_spanning_batches_are_all_excluded_from_the_resume():
    cursor = _cursor({"kind": "a"}, sort=[("g", 1)])
    _feed(cursor, [[{"_id": 1, "g": 0}, {"_id": 2, "g": 1}], [{"_id": 3, "g": 1.0}], [{"_id": 4, "g": 1}]])
    query = cursor._resume_position(cursor._current_plan())
    assert query["$or"][-1] == {"$and": [{"g": {"$eq": 1}}, {"_id": {"$nin": [4, 3, 2]}}]}
    assert cursor._yielded() == 4


def test_more_ties_than_max_ties_refuse_the_resume_naming_the_bound():
    cursor = _cursor({}, sort=[("g", 1)], max_ties=2)
    _feed(cursor, [[{"_id": 1, "g": 5}, {"_id": 2, "g": 5}], [{"_id": 3, "g": 5}]])
    with pytest.raises(CursorResumeError, match="more than max_ties=2 documents share the sort values"):
        cursor._resume_position(cursor._current_plan())


def test_a_new_sort_value_starts_a_new_tie_group():
    cursor = _cursor({}, sort=[("g", -1)], max_ties=2)
    _feed(cursor, [[{"_id": 1, "g": 5}, {"_id": 2, "g": 5}, {"_id": 3, "g": 5}], [{"_id": 4, "g": 4}]])
    query = cursor._resume_position(cursor._current_plan())
    assert query["$or"][-1] == {"$and": [{"g": {"$eq": 4}}, {"_id": {"$nin": [4]}}]}


def test_a_caller_editing_a_yielded_document_does_not_move_the_resume_point():
    cursor = _cursor({}, sort=[("meta", 1), ("_id", 1)])
    document = {"_id": 1, "meta": {"v": 1}}
    _feed(cursor, [[document]])
    document["meta"]["v"] = 99
    query = cursor._resume_position(cursor._current_plan())
    assert {"meta": {"$eq": {"v": 1}}} in query["$or"][-1]["$and"]
