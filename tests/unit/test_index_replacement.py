"""Index replacement, concurrency and build time, against the in-memory model of a 5.0+ primary
(tests/unit/index_server.py; why a model: its docstring)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pymongo.errors import AutoReconnect, OperationFailure

from mongomancy.errors import RetryBudgetExhaustedError
from mongomancy.schema.apply import ApplyResult, BuildRunner, apply_plan
from mongomancy.schema.definitions import CollectionDefinition, Index
from mongomancy.schema.errors import DuplicateValuesError, IndexBuildTimeoutError
from mongomancy.schema.live import read_live_state
from mongomancy.schema.plan import plan
from tests.unit.index_server import FakeDatabase, IndexServer

V1 = CollectionDefinition("users", indices=[Index({"email": 1})])
V2 = CollectionDefinition("users", indices=[Index({"email": 1}, unique=True)])


def direct(db: FakeDatabase) -> Any:
    return lambda description, fn: fn(db)


def create_all(db: FakeDatabase, definition: CollectionDefinition, *, allow_drop: bool = True) -> ApplyResult:
    """What Database.create_all(skip_existing=False) does, on the model: read, plan, apply."""
    step = plan([definition], read_live_state(db, [definition]))  # type: ignore[arg-type]
    build = BuildRunner(attempt=direct(db), pause=0.001)
    return apply_plan(step, direct(db), allow_drop=allow_drop, build=build)


def email_indexes(server: IndexServer) -> list[dict[str, Any]]:
    return [spec for spec in server.ready("users") if list(spec["key"]) == ["email"]]


class KeyAlwaysIndexed:
    """on_change hook: records every state in which the collection had no ready index on email."""

    def __init__(self) -> None:
        self.states = 0
        self.unindexed: list[list[str]] = []

    def __call__(self, server: IndexServer) -> None:
        self.states += 1
        if "users" in server.collections and not email_indexes(server):
            self.unindexed.append([spec["name"] for spec in server.ready("users")])


def test_unique_conversion_is_built_beside_and_the_old_index_dropped_after() -> None:
    check = KeyAlwaysIndexed()
    server = IndexServer(on_change=check)
    db = server.database()
    create_all(db, V1)
    db["users"].insert_many([{"email": "a"}, {"email": "b"}])
    result = create_all(db, V2)
    assert result.recreated_indexes == ("users.email_1",)
    (index,) = email_indexes(server)
    assert index["unique"] is True and index["name"].startswith("email_1_")
    create_index = server.commands.index(f"createIndexes users {index['name']}")
    assert server.commands.index("dropIndexes users email_1") > create_index  # dropped only after the build
    assert check.unindexed == [] and check.states >= 3
    assert plan([V2], read_live_state(db, [V2])).is_empty  # type: ignore[arg-type]


def test_unique_over_duplicates_names_them_and_keeps_the_old_index() -> None:
    server = IndexServer()
    db = server.database()
    create_all(db, V1)
    db["users"].insert_many([{"email": "a"}, {"email": "b"}, {"email": "a"}])
    with pytest.raises(DuplicateValuesError) as info:
        create_all(db, V2)
    error = info.value
    assert (error.collection, error.old_index_kept) == ("users", True)
    assert error.step.startswith("build users.email_1_") and error.step.endswith("beside email_1")
    assert [example["key"] for example in error.examples] == [{"email": "a"}]
    assert error.examples[0]["count"] == 2 and len(error.examples[0]["ids"]) == 2
    assert "duplicate values exist, for example {'email': 'a'} in 2 documents" in str(error)
    assert "the index it was to replace is still in place" in str(error)
    assert isinstance(error.__cause__, OperationFailure) and error.__cause__.code == 11000
    assert [spec["name"] for spec in email_indexes(server)] == ["email_1"]  # the old one, untouched


@pytest.mark.parametrize("round_", range(8))
def test_two_versions_racing_with_allow_drop_converge_on_the_unique_index(round_: int) -> None:
    check = KeyAlwaysIndexed()
    server = IndexServer(on_change=check)
    db = server.database()
    create_all(db, V1)  # v1 was deployed first
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def run(definition: CollectionDefinition) -> None:
        barrier.wait()
        try:
            create_all(db, definition)
        except BaseException as error:
            errors.append(error)

    order = [V1, V2, V1, V2] if round_ % 2 else [V2, V1, V2, V1]
    threads = [threading.Thread(target=run, args=(definition,)) for definition in order]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert check.unindexed == []  # at no state was the key without a ready index
    (index,) = email_indexes(server)
    assert index["unique"] is True
    for definition in (V1, V2):  # v1 notes the stricter index and leaves it: nobody rebuilds any more
        after = plan([definition], read_live_state(db, [definition]))  # type: ignore[arg-type]
        assert after.is_empty


def test_a_name_held_by_an_undeclared_index_is_left_and_ours_created_beside() -> None:
    server = IndexServer()
    db = server.database()
    server.collection("users")["indexes"].append({"v": 2, "key": {"legacy": 1}, "name": "email_1"})
    result = create_all(db, V1, allow_drop=False)
    (created,) = result.created_indexes
    assert created.startswith("users.email_1_")
    names = {spec["name"]: dict(spec["key"]) for spec in server.ready("users")}
    assert names["email_1"] == {"legacy": 1}  # nobody declared it here: nothing here drops it
    assert {"email": 1} in names.values()


def test_a_build_in_progress_is_joined_not_dropped() -> None:
    server = IndexServer()
    db = server.database()
    create_all(db, V1)
    before = plan([V1], read_live_state(db, [V1]))  # type: ignore[arg-type]
    assert before.is_empty
    # another process's build of a second index, in progress: listIndexes does not show it
    ttl = CollectionDefinition(
        "users", indices=[Index({"email": 1}), Index({"seen": 1}, expire_after_seconds=60)]
    )
    server.builds.append(
        ("users", {"key": {"seen": 1}, "name": "seen_1", "expireAfterSeconds": 60}, threading.Event())
    )
    step = plan([ttl], read_live_state(db, [ttl]))  # type: ignore[arg-type]
    (create,) = step.create_indexes
    assert create.in_progress and "a build is in progress on the server" in str(create)


# --------------------------------------------------------------------------------------------------
# The build runner: its own deadline, not the engine's budget
# --------------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_build_outlasting_the_engine_budget_is_attempted_again_until_it_lands() -> None:
    clock = FakeClock()
    outcomes: list[BaseException | str] = [
        RetryBudgetExhaustedError(
            "time budget ran out", command="build", cause=None, attempts=3, elapsed=60.0
        ),
        AutoReconnect("primary stepped down"),
        "built",
    ]

    def attempt(description: str, fn: Any) -> Any:
        clock.now += 60.0  # each attempt takes the engine's whole budget
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    runner = BuildRunner(attempt=attempt, timeout=600.0, sleep=clock.sleep, clock=clock)
    assert runner("create index users.email_1", lambda db: None) == "built"
    assert outcomes == []


def test_a_build_past_its_own_timeout_says_it_may_still_be_running() -> None:
    clock = FakeClock()

    def attempt(description: str, fn: Any) -> Any:
        clock.now += 100.0
        raise RetryBudgetExhaustedError(
            "time budget ran out", command="build", cause=None, attempts=1, elapsed=100.0
        )

    runner = BuildRunner(attempt=attempt, timeout=250.0, sleep=clock.sleep, clock=clock)
    with pytest.raises(IndexBuildTimeoutError) as info:
        runner("create index users.email_1", lambda db: None)
    error = info.value
    assert "the build may still be running on the server" in str(error)
    assert (error.collection, error.index) == ("users", "email_1")
    assert isinstance(error.cause, RetryBudgetExhaustedError)


def test_a_fatal_build_error_is_not_attempted_again() -> None:
    calls: list[str] = []

    def attempt(description: str, fn: Any) -> Any:
        calls.append(description)
        raise OperationFailure("not authorized", 13)

    with pytest.raises(OperationFailure):
        BuildRunner(attempt=attempt, timeout=60.0)("create index users.email_1", lambda db: None)
    assert calls == ["create index users.email_1"]


def test_compound_unique_over_duplicates_names_each_field() -> None:
    server = IndexServer()
    db = server.database()
    db["users"].insert_many([{"org": 1, "email": "a"}, {"org": 1, "email": "a"}, {"org": 2, "email": "a"}])
    pair = CollectionDefinition("users", indices=[Index({"org": 1, "email": 1}, unique=True)])
    with pytest.raises(DuplicateValuesError) as info:
        create_all(db, pair)
    (example,) = info.value.examples
    assert example["key"] == {"org": 1, "email": "a"} and example["count"] == 2
    assert info.value.old_index_kept is None  # nothing was being replaced


def test_a_replacement_build_timeout_names_its_collection_and_index() -> None:
    server = IndexServer()
    db = server.database()
    create_all(db, V1)
    step = plan([V2], read_live_state(db, [V2]))  # type: ignore[arg-type]
    clock = FakeClock()

    def attempt(description: str, fn: Any) -> Any:
        clock.now += 100.0
        raise AutoReconnect("the primary went away")

    runner = BuildRunner(attempt=attempt, timeout=150.0, sleep=clock.sleep, clock=clock)
    with pytest.raises(IndexBuildTimeoutError) as info:
        apply_plan(step, direct(db), allow_drop=True, build=runner)
    error = info.value
    replacement = step.recreate_indexes[0].replacement_name
    assert (error.collection, error.index) == ("users", replacement)
    assert error.step == f"build users.{replacement} beside email_1"
    assert [spec["name"] for spec in email_indexes(server)] == ["email_1"]  # the old index stays
