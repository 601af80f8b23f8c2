"""The engine against exact server replies on the wire (``mockupdb``, a scriptable mock primary).

The simulated cluster proves the results; this proves what reaches the wire: how many times a write is
sent, with which transaction number, for a given reply.  The mock answers as the primary of a one-member
replica set, so pymongo uses sessions and retryable writes as against a real one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from mockupdb import MockupDB, OpMsg
from pymongo import InsertOne, UpdateMany
from pymongo.errors import BulkWriteError, DuplicateKeyError

from mongomancy import Engine, OutcomeUnknownError, RetryPolicy
from mongomancy.retry import error_code
from mongomancy.testing import wait_for

SET_NAME = "rs"


class ScriptedPrimary:
    """A mock primary answering each write with the next scripted reply (a dict, or ``"hangup"``)."""

    def __init__(self) -> None:
        self.server = MockupDB(auto_ismaster=False, max_wire_version=21)
        self.server.autoresponds(self._hello)
        self.server.autoresponds("ping", ok=1)
        self.server.autoresponds("endSessions", ok=1)
        self.lock = threading.Lock()
        self.script: list[dict[str, Any] | str] = []
        self.received: list[dict[str, Any]] = []
        self.server.autoresponds(self._write)
        self.server.run()

    def _hello(self, request: Any) -> bool:
        if not (request.matches("ismaster") or request.matches("hello") or request.matches("isMaster")):
            return False
        return bool(
            request.ok(
                isWritablePrimary=True,
                ismaster=True,
                setName=SET_NAME,
                hosts=[self.server.address_string],
                me=self.server.address_string,
                primary=self.server.address_string,
                setVersion=1,
                minWireVersion=0,
                maxWireVersion=21,
                logicalSessionTimeoutMinutes=30,
            )
        )

    def _write(self, request: Any) -> bool:
        if not isinstance(request, OpMsg) or request.command_name not in {"insert", "update", "delete"}:
            return False
        with self.lock:
            self.received.append(dict(request.doc))
            reply = self.script.pop(0) if self.script else {"ok": 1, "n": 1, "nModified": 1}
        if reply == "hangup":
            return bool(request.hangup())
        assert isinstance(reply, dict)
        return bool(request.reply(reply))

    def then(self, *replies: dict[str, Any] | str) -> None:
        with self.lock:
            self.script = list(replies)
            self.received.clear()

    def txn_numbers(self) -> list[Any]:
        with self.lock:
            return [doc.get("txnNumber") for doc in self.received]

    def close(self) -> None:
        self.server.stop()


@pytest.fixture(scope="module")
def primary() -> Iterator[ScriptedPrimary]:
    server = ScriptedPrimary()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def shared_engine(primary: ScriptedPrimary) -> Iterator[Engine]:
    uri = f"mongodb://{primary.server.address_string}/?replicaSet={SET_NAME}"
    engine = Engine(uri=uri, retry_policy=RetryPolicy(budget=5), heartbeatFrequencyMS=500)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def engine(shared_engine: Engine) -> Engine:
    """The module's engine, once it sees the mock primary (a hang-up makes pymongo re-check it)."""
    wait_for(lambda: shared_engine.topology().writable, 10, "the mock primary")
    return shared_engine


NOT_PRIMARY = {"ok": 0, "code": 10107, "codeName": "NotWritablePrimary", "errmsg": "not primary"}
LABELLED_NOT_PRIMARY = {**NOT_PRIMARY, "errorLabels": ["RetryableWriteError"]}


def _things(engine: Engine) -> Any:
    return engine.client.db.things


def test_a_top_level_refusal_of_update_many_is_sent_again(engine, primary):
    primary.then(NOT_PRIMARY, {"ok": 1, "n": 2, "nModified": 2})
    result = engine.update_many(_things(engine), {}, {"$inc": {"n": 1}})
    assert (result.matched_count, result.modified_count) == (2, 2)
    assert len(primary.txn_numbers()) == 2


@pytest.mark.parametrize("code", [89, 6, 7, 9001, 262, 11602, 189, 91])
def test_a_retryable_code_on_update_many_is_not_proof_and_not_replayed(engine, primary, code):
    primary.then({"ok": 0, "code": code, "errmsg": "injected", "errorLabels": ["RetryableWriteError"]})
    with pytest.raises(OutcomeUnknownError) as info:
        engine.update_many(_things(engine), {}, {"$inc": {"n": 1}})
    assert error_code(info.value.cause) == code
    assert len(primary.txn_numbers()) == 1


def test_no_writes_performed_is_proof(engine, primary):
    primary.then(
        {"ok": 0, "code": 91, "errmsg": "shutting down", "errorLabels": ["NoWritesPerformed"]},
        {"ok": 1, "n": 1, "nModified": 1},
    )
    assert engine.update_many(_things(engine), {}, {"$set": {"a": 1}}).modified_count == 1
    assert len(primary.txn_numbers()) == 2


def test_the_step_down_pattern_keeps_one_transaction_number_and_the_duplicate_is_the_callers(engine, primary):
    # Applied and hung up; pymongo's retry refused; the next retry meets a real clash (no keyPattern sent).
    clash = {
        "ok": 1,
        "n": 0,
        "writeErrors": [{"index": 0, "code": 11000, "errmsg": "E11000 duplicate key error"}],
    }
    primary.then("hangup", LABELLED_NOT_PRIMARY, clash)
    with pytest.raises(DuplicateKeyError):
        engine.insert_one(_things(engine), {"email": "a"})
    numbers = primary.txn_numbers()
    assert len(numbers) == 3 and len(set(numbers)) == 1 and numbers[0] is not None


def test_a_partial_bulk_result_goes_back_unchanged(engine, primary):
    partial = {
        "ok": 1,
        "n": 3,
        "nModified": 3,
        "writeErrors": [{"index": 0, "code": 10107, "errmsg": "not primary"}],
    }
    primary.then(partial)
    with pytest.raises(BulkWriteError) as info:
        engine.bulk_write(_things(engine), [UpdateMany({}, {"$inc": {"n": 1}})])
    assert info.value.details["nModified"] == 3
    assert len(primary.txn_numbers()) == 1


def test_a_bulk_of_single_statements_is_left_to_pymongo(engine, primary):
    primary.then("hangup", {"ok": 1, "n": 1})
    result = engine.bulk_write(_things(engine), [InsertOne({"_id": 1})])
    assert result.inserted_count == 1
    numbers = primary.txn_numbers()
    assert len(numbers) == 2 and numbers[0] == numbers[1] is not None


CALLS: dict[str, Callable[[Engine], Any]] = {
    "update_one": lambda e: e.update_one(_things(e), {"_id": 1}, {"$inc": {"n": 1}}),
    "delete_one": lambda e: e.delete_one(_things(e), {"_id": 1}),
    "insert_many": lambda e: e.insert_many(_things(e), [{"_id": 1}, {"_id": 2}]),
}


@pytest.mark.parametrize("call", CALLS)
def test_single_statement_writes_are_retried_by_pymongo_with_one_transaction_number(engine, primary, call):
    primary.then("hangup", LABELLED_NOT_PRIMARY, {"ok": 1, "n": 2, "nModified": 1})
    CALLS[call](engine)
    numbers = primary.txn_numbers()
    assert len(numbers) == 3 and len(set(numbers)) == 1 and numbers[0] is not None
