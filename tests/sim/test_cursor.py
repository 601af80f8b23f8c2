"""find() across a failover on the simulated cluster: exact resumes, and the query the members received.

Every test checks *results* against the stored data (each document once, in the sort's order) and, where
it matters, the commands the members saw (the simulator records them): the caller's sort unchanged and no
``maxTimeMS`` the caller did not set.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import Any

import pymongo
import pytest
from bson import ObjectId
from pymongo.errors import PyMongoError

from mongomancy import CursorResumeError, Engine, RetryPolicy
from mongomancy.bson_order import compare
from mongomancy.testing import SimulatedReplicaSet, wait_for

Fault = Callable[[SimulatedReplicaSet], None]


def _step_down(cluster: SimulatedReplicaSet) -> None:
    cluster.step_down(election_seconds=0.2, hang_up=True)


def _kill(cluster: SimulatedReplicaSet) -> None:
    primary = cluster.primary
    assert primary is not None
    cluster.kill(primary, election_seconds=0.2)


def _hang_up(cluster: SimulatedReplicaSet) -> None:
    primary = cluster.primary
    assert primary is not None
    cluster.hang_up(primary)


FAULTS: dict[str, Fault] = {"step_down": _step_down, "kill": _kill, "hang_up": _hang_up}


@pytest.fixture
def cursor_engine(sim_cluster: SimulatedReplicaSet, fast_heartbeats: None) -> Iterator[Engine]:
    """An engine that gives up on a dead cursor's server after 1 s (the default is 10 s)."""
    engine = Engine(
        uri=sim_cluster.uri, heartbeatFrequencyMS=100, retry_policy=RetryPolicy(cursor_fetch_timeout=1.0)
    )
    try:
        wait_for(lambda: engine.topology().writable, 10, "a primary")
        yield engine
    finally:
        engine.dispose()


def _things(engine: Engine) -> Any:
    return engine.client.db.things


def _iterate_with_fault(
    cursor: Any, cluster: SimulatedReplicaSet, fault: Fault, at: int
) -> list[dict[str, Any]]:
    seen = []
    for document in cursor:
        seen.append(document)
        if len(seen) == at:
            fault(cluster)
    return seen


def _sorted_like_mongodb(documents: list[dict[str, Any]], sort: list[tuple[str, int]]) -> list[Any]:
    def by_keys(left: dict[str, Any], right: dict[str, Any]) -> int:
        for key, direction in sort:
            order = compare(left.get(key), right.get(key))
            if order:
                return order * direction
        return 0

    return [d["_id"] for d in sorted(documents, key=functools.cmp_to_key(by_keys))]


def _finds_and_get_mores(cluster: SimulatedReplicaSet) -> list[dict[str, Any]]:
    return [dict(r.body) for r in cluster.records(command=("find", "getMore")) if r.db == "db"]


# ------------------------------------------------------------------------------------------ exact resumes
_ID_KINDS: dict[str, Callable[[int], Any]] = {
    "objectid": lambda i: ObjectId(),
    "string": lambda i: f"doc-{i:05d}",
    "int": lambda i: i,
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize(
    "id_kind",
    [
        pytest.param(kind, marks=pytest.mark.deviation("test_sort_order[int]")) if kind == "int" else kind
        for kind in sorted(_ID_KINDS)
    ],
)
def test_a_failover_mid_iteration_yields_each_document_once_in_id_order(
    cursor_engine, sim_cluster, id_kind, fault
):
    things = _things(cursor_engine)
    make_id = _ID_KINDS[id_kind]
    stored = [{"_id": make_id(i), "i": i} for i in range(3_000)]
    cursor_engine.insert_many(things, [dict(d) for d in stored])
    cursor = cursor_engine.find(things, {}, batch_size=200)
    seen = _iterate_with_fault(cursor, sim_cluster, FAULTS[fault], at=1_000)
    assert [d["_id"] for d in seen] == _sorted_like_mongodb(stored, [("_id", 1)])
    assert seen == sorted(stored, key=lambda d: d["i"])  # each document, whole, once
    assert cursor.resumes >= 1


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_callers_sort_with_many_ties_resumes_exactly_and_goes_out_unchanged(
    cursor_engine, sim_cluster, fault
):
    things = _things(cursor_engine)
    stored = [{"_id": ObjectId(), "group": i % 5, "i": i} for i in range(2_000)]
    cursor_engine.insert_many(things, [dict(d) for d in stored])
    sim_cluster.clear_records()
    cursor = cursor_engine.find(things, {"i": {"$gte": 100}}, sort=[("group", -1)], batch_size=150)
    seen = _iterate_with_fault(cursor, sim_cluster, FAULTS[fault], at=450)  # inside group 3's run of ties
    expected = [d for d in stored if d["i"] >= 100]
    assert sorted(d["i"] for d in seen) == [d["i"] for d in expected]  # every document, none twice
    assert [d["group"] for d in seen] == sorted((d["group"] for d in expected), reverse=True)
    assert cursor.resumes >= 1
    finds = [body for body in _finds_and_get_mores(sim_cluster) if "find" in body]
    # Before each resume, one find_one looks for array-valued sort keys (limit 1, no sort).
    probes = [body for body in finds if body.get("limit") == 1]
    queries = [body for body in finds if body.get("limit") != 1]
    assert len(probes) == cursor.resumes and len(queries) == cursor.resumes + 1
    assert [list(body["sort"].items()) for body in queries] == [[("group", -1)]] * len(queries)
    assert [body for body in _finds_and_get_mores(sim_cluster) if "maxTimeMS" in body] == []


_MIXED: dict[str, tuple[list[dict[str, Any]], list[tuple[str, int]]]] = {
    # The reproductions: "$gt" alone lost every string, half the ObjectIds, and missing values.
    "int and string": (
        [{"_id": i, "k": i if i % 2 else f"s{i:04d}"} for i in range(600)],
        [("k", 1), ("_id", 1)],
    ),
    "string and ObjectId _id": (
        [{"_id": f"s{i:04d}" if i % 2 else ObjectId(), "i": i} for i in range(600)],
        [("_id", 1)],
    ),
    "descending with missing and null": (
        [{"_id": i, **({} if i % 3 == 0 else {"k": None} if i % 3 == 1 else {"k": i})} for i in range(600)],
        [("k", -1), ("_id", 1)],
    ),
}


#: Conformance entries whose deviation these cases rely on (the resume filter itself is proven in tests/unit):
#: the backend sorts ObjectId _ids before strings.  ("int and string" and "descending with missing and null"
#: resume exactly on SQLite 3.40 too: measured, so they carry no mark, which would be a strict xpass there.)
_DEVIATIONS = {
    "string and ObjectId _id": "test_sort_order[types]",
}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(case, marks=pytest.mark.deviation(_DEVIATIONS[case])) if case in _DEVIATIONS else case
        for case in sorted(_MIXED)
    ],
)
def test_mixed_type_sort_keys_resume_exactly(cursor_engine, sim_cluster, case):
    stored, sort = _MIXED[case]
    things = _things(cursor_engine)
    cursor_engine.insert_many(things, [dict(d) for d in stored])
    expected = _sorted_like_mongodb(stored, sort)
    cursor = cursor_engine.find(things, {}, sort=sort, batch_size=50)
    seen: list[Any] = []
    for document in cursor:
        seen.append(document["_id"])
        if len(seen) in (120, 310):  # two failovers, in different type brackets
            _hang_up(sim_cluster)
    assert seen == expected
    assert cursor.resumes == 2


# ------------------------------------------------------------------------------------------ the query sent
def test_an_unsorted_query_is_sorted_by_id_and_sends_no_max_time_ms(cursor_engine, sim_cluster):
    things = _things(cursor_engine)
    cursor_engine.insert_many(things, [{"i": i} for i in range(500)])
    sim_cluster.clear_records()
    assert len(list(cursor_engine.find(things, {}, batch_size=100))) == 500
    bodies = _finds_and_get_mores(sim_cluster)
    assert [b["sort"] for b in bodies if "find" in b] == [{"_id": 1}]
    assert len(bodies) == 5 and all("maxTimeMS" not in b for b in bodies)


def test_resumable_false_sends_the_query_as_given_and_cannot_resume(cursor_engine, sim_cluster):
    things = _things(cursor_engine)
    cursor_engine.insert_many(things, [{"i": i} for i in range(500)])
    sim_cluster.clear_records()
    cursor = cursor_engine.find(things, {}, batch_size=100, resumable=False)
    with pytest.raises(CursorResumeError, match="resumable=False") as raised:
        _iterate_with_fault(cursor, sim_cluster, _hang_up, at=150)
    assert raised.value.cause is not None
    assert all("sort" not in b for b in _finds_and_get_mores(sim_cluster) if "find" in b)


def test_a_max_time_ms_the_caller_set_is_sent(cursor_engine, sim_cluster):
    things = _things(cursor_engine)
    cursor_engine.insert_many(things, [{"i": i} for i in range(10)])
    sim_cluster.clear_records()
    assert len(cursor_engine.find(things, {}).max_time_ms(5_000).to_list()) == 10
    assert [b.get("maxTimeMS") for b in _finds_and_get_mores(sim_cluster)] == [5_000]


# ------------------------------------------------------------------------------------------ pymongo semantics
@pytest.mark.deviation("test_sort_order[int]")
def test_a_negative_limit_returns_one_batch_then_closes(cursor_engine):
    things = _things(cursor_engine)
    cursor_engine.insert_many(things, [{"_id": i} for i in range(20)])
    cursor = cursor_engine.find(things, {}).limit(-3)
    assert [d["_id"] for d in cursor] == [0, 1, 2]
    assert [d["_id"] for d in things.find({}, sort=[("_id", 1)]).limit(-3)] == [0, 1, 2]  # pymongo agrees
    assert not cursor.alive


@pytest.mark.deviation("test_sort_order[int]")
def test_a_limit_is_kept_across_a_resume(cursor_engine, sim_cluster):
    things = _things(cursor_engine)
    cursor_engine.insert_many(things, [{"_id": i} for i in range(1_000)])
    cursor = cursor_engine.find(things, {}, batch_size=100, limit=450)
    seen = _iterate_with_fault(cursor, sim_cluster, _hang_up, at=120)
    assert [d["_id"] for d in seen] == list(range(450))


def test_a_projection_without_the_sort_keys_fetches_and_strips_them(cursor_engine, sim_cluster):
    things = _things(cursor_engine)
    cursor_engine.insert_many(things, [{"_id": i, "g": i % 3, "i": i, "x": -i} for i in range(600)])
    cursor = cursor_engine.find(things, {}, {"_id": False, "i": True}, sort=[("g", 1)], batch_size=50)
    seen = _iterate_with_fault(cursor, sim_cluster, _hang_up, at=260)
    assert all(set(d) == {"i"} for d in seen)  # what the caller's projection returns, nothing more
    assert sorted(d["i"] for d in seen) == list(range(600))
    assert [d["i"] % 3 for d in seen] == sorted(d["i"] % 3 for d in seen)
    assert cursor.resumes == 1


@pytest.mark.deviation("test_sort_order[int]")
def test_rewind_clone_distinct_explain_and_cursor_id(cursor_engine):
    things = _things(cursor_engine)
    cursor_engine.insert_many(things, [{"_id": i, "g": i % 4} for i in range(30)])
    cursor = cursor_engine.find(things, {"g": {"$lt": 2}}, batch_size=5)
    first = [next(cursor)["_id"], cursor.next()["_id"]]
    assert first == [0, 1] and cursor.cursor_id and cursor.alive
    clone = cursor.clone()
    assert [d["_id"] for d in cursor.rewind()] == [i for i in range(30) if i % 4 < 2]
    assert [d["_id"] for d in clone] == [i for i in range(30) if i % 4 < 2]
    assert sorted(cursor.distinct("g")) == [0, 1]
    assert "queryPlanner" in cursor.clone().explain() or cursor.clone().explain()


# ------------------------------------------------------------------------------------------ aggregate
def _aggregates(cluster: SimulatedReplicaSet) -> list[dict[str, Any]]:
    return [dict(r.body) for r in cluster.records(command="aggregate") if r.db == "db"]


def test_a_match_sort_pipeline_resumes_exactly_and_goes_out_as_given(cursor_engine, sim_cluster):
    things = _things(cursor_engine)
    stored = [{"_id": i, "group": i % 4, "i": i} for i in range(1_200)]
    cursor_engine.insert_many(things, [dict(d) for d in stored])
    sim_cluster.clear_records()
    pipeline = [{"$match": {"i": {"$gte": 200}}}, {"$sort": {"group": 1}}]
    cursor = cursor_engine.aggregate(things, pipeline, batchSize=100)
    seen = _iterate_with_fault(cursor, sim_cluster, _hang_up, at=330)
    assert sorted(d["i"] for d in seen) == list(range(200, 1_200))
    assert [d["group"] for d in seen] == sorted(d["group"] for d in seen)
    assert cursor.resumes == 1
    sent = _aggregates(sim_cluster)
    assert sent[0]["pipeline"] == pipeline
    assert sent[1]["pipeline"][1:] == pipeline and "$match" in sent[1]["pipeline"][0]  # the resume position
    assert [body for body in _finds_and_get_mores(sim_cluster) + sent if "maxTimeMS" in body] == []


def test_a_match_only_pipeline_is_sorted_by_id_and_resumes(cursor_engine, sim_cluster):
    things = _things(cursor_engine)
    cursor_engine.insert_many(things, [{"_id": f"k{i:05d}", "i": i} for i in range(900)])
    sim_cluster.clear_records()
    cursor = cursor_engine.aggregate(things, [{"$match": {}}], batchSize=100)
    seen = _iterate_with_fault(cursor, sim_cluster, _kill, at=250)
    assert [d["i"] for d in seen] == list(range(900))
    assert _aggregates(sim_cluster)[0]["pipeline"] == [{"$match": {}}, {"$sort": {"_id": 1}}]
    assert [d["i"] for d in cursor.rewind()] == list(range(900))  # rewind re-runs the pipeline


def test_other_pipelines_are_sent_as_given_and_say_why_they_cannot_resume(cursor_engine, sim_cluster):
    things = _things(cursor_engine)
    cursor_engine.insert_many(things, [{"_id": i, "i": i} for i in range(900)])
    sim_cluster.clear_records()
    pipeline = [{"$match": {"i": {"$lt": 800}}}, {"$project": {"double": {"$multiply": ["$i", 2]}}}]
    cursor = cursor_engine.aggregate(things, pipeline, batchSize=100)
    with pytest.raises(CursorResumeError, match=r"stage 1 \(\$project\) is not a \$match"):
        _iterate_with_fault(cursor, sim_cluster, _hang_up, at=150)
    assert _aggregates(sim_cluster)[0]["pipeline"] == pipeline


@pytest.mark.deviation("test_sort_order[int]")
def test_a_get_more_to_a_silent_server_is_bounded_per_batch_and_the_cursor_resumes(
    cursor_engine, sim_cluster
):
    """The old primary goes silent mid-iteration (it reads, never answers) and another member is elected:
    the getMore waits ``cursor_fetch_timeout`` (1 s here), not the budget, and no ``maxTimeMS`` is sent."""
    things = _things(cursor_engine)
    cursor_engine.insert_many(things, [{"_id": i} for i in range(1_000)])
    sim_cluster.clear_records()
    cursor = cursor_engine.find(things, {}, batch_size=100)
    seen: list[int] = []
    gap = 0.0
    for document in cursor:
        seen.append(document["_id"])
        if len(seen) == 100:
            silent = sim_cluster.primary
            assert silent is not None
            sim_cluster.blackhole(silent)
            sim_cluster.step_down(election_seconds=0.1, wait=True)
            before = time.monotonic()
        if len(seen) == 101:
            gap = time.monotonic() - before
            sim_cluster.blackhole(silent, enabled=False)
    assert seen == list(range(1_000))
    assert cursor.resumes == 1
    assert gap < cursor_engine.retry_policy.budget / 2  # bounded by the fetch timeout, not the budget
    assert [body for body in _finds_and_get_mores(sim_cluster) if "maxTimeMS" in body] == []


@pytest.mark.deviation("test_sort_order[int]")
def test_hint_comment_and_collation_reach_the_server_unchanged(cursor_engine, sim_cluster):
    things = _things(cursor_engine)
    cursor_engine.insert_many(things, [{"_id": i, "name": f"n{i}"} for i in range(300)])
    sim_cluster.clear_records()
    collation = {"locale": "simple"}
    cursor = (
        cursor_engine.find(things, {}, batch_size=100)
        .hint([("_id", 1)])
        .comment("nightly")
        .collation(collation)
    )
    assert [d["_id"] for d in cursor] == list(range(300))
    bodies = _finds_and_get_mores(sim_cluster)
    find = next(b for b in bodies if "find" in b)
    assert (find["hint"], find["comment"], find["collation"]) == ({"_id": 1}, "nightly", collation)
    assert all(b.get("comment") == "nightly" for b in bodies)  # pymongo sends it with every getMore too


@pytest.mark.deviation("test_sort_order[int]")
def test_the_callers_own_timeout_goes_straight_back_instead_of_a_resume(cursor_engine, sim_cluster):
    """Under the caller's ``pymongo.timeout``, a getMore that outlives it raises pymongo's error unchanged
    (the caller's limit), rather than resuming past the caller's deadline."""
    things = _things(cursor_engine)
    cursor_engine.insert_many(things, [{"_id": i} for i in range(500)])
    cursor = cursor_engine.find(things, {}, batch_size=100)
    seen: list[int] = []
    silent = sim_cluster.primary
    assert silent is not None
    with pytest.raises(PyMongoError) as raised, pymongo.timeout(0.5):
        for document in cursor:
            seen.append(document["_id"])
            if len(seen) == 100:
                sim_cluster.blackhole(silent)
    sim_cluster.blackhole(silent, enabled=False)
    assert raised.value.timeout  # pymongo's own timeout error, not a mongomancy one
    assert seen == list(range(100)) and cursor.resumes == 0


@pytest.mark.deviation("test_sort_order[int]")
def test_ties_under_a_collation_refuse_to_resume_rather_than_risk_a_duplicate(cursor_engine, sim_cluster):
    """Under a case-insensitive collation "ann" and "Ann" tie on the server but differ on the client, so a
    sort without ``_id`` cannot tell which of them were yielded: the resume is refused, saying so."""
    things = _things(cursor_engine)
    cursor_engine.insert_many(things, [{"_id": i, "name": "Ann" if i % 2 else "ann"} for i in range(300)])
    collation = {"locale": "en", "strength": 2}
    cursor = cursor_engine.find(things, {}, sort=[("name", 1)], collation=collation, batch_size=50)
    with pytest.raises(CursorResumeError, match="compared under the collation"):
        _iterate_with_fault(cursor, sim_cluster, _hang_up, at=120)
    with_id = cursor_engine.find(
        things, {}, sort=[("name", 1), ("_id", 1)], collation=collation, batch_size=50
    )
    assert sorted(d["_id"] for d in _iterate_with_fault(with_id, sim_cluster, _hang_up, at=120)) == list(
        range(300)
    )
