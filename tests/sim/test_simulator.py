"""The simulated replica set, exercised with plain pymongo."""

from __future__ import annotations

import importlib.metadata
import os
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bson
import pymongo.common
import pytest
from pymongo import MongoClient, ReadPreference
from pymongo.errors import (
    AutoReconnect,
    NetworkTimeout,
    NotPrimaryError,
    OperationFailure,
    ServerSelectionTimeoutError,
)
from pymongo.topology_description import TOPOLOGY_TYPE

from mongomancy.errors import BackendNotInstalledError, PortInUseError, SimulatorError, UnknownMemberError
from mongomancy.testing import (
    MAX_WIRE_VERSION,
    NxBackend,
    Outcome,
    SimulatedReplicaSet,
    fast_heartbeats,
    nx_launcher,
    wait_for,
    wire,
)
from tests.helpers import process_exists


@pytest.fixture
def rs(sim_cluster: SimulatedReplicaSet, fast_heartbeats: None) -> SimulatedReplicaSet:
    return sim_cluster


@pytest.fixture
def client(rs: SimulatedReplicaSet) -> Iterator[MongoClient[dict[str, Any]]]:
    c: MongoClient[dict[str, Any]] = MongoClient(
        rs.uri, heartbeatFrequencyMS=100, serverSelectionTimeoutMS=5000
    )
    c.admin.command("ping")
    yield c
    c.close()


def address(rs: SimulatedReplicaSet, index: int) -> tuple[str, int]:
    return ("127.0.0.1", rs.members[index].port)


def raw_command(port: int, doc: dict[str, Any]) -> dict[str, Any]:
    """Send one OP_MSG command on a fresh socket, without any driver logic in between."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(wire.op_msg_reply(7, doc))
        reply = wire.read_raw(s)
        return bson.decode(wire.reply_body(reply))


# -- topology and forwarding ---------------------------------------------------------------------------------


def test_pymongo_discovers_a_replica_set_with_a_primary(
    rs: SimulatedReplicaSet, client: MongoClient[dict[str, Any]]
) -> None:
    td = client.topology_description
    assert td.topology_type == TOPOLOGY_TYPE.ReplicaSetWithPrimary
    assert td.replica_set_name == "rs0"
    assert client.primary == address(rs, 0)
    wait_for(lambda: len(client.secondaries) == 2, what="two secondaries")
    assert rs.primary == 0
    assert rs.uri == ("mongodb://" + ",".join(m.address for m in rs.members) + "/?replicaSet=rs0")


def test_hello_fields(rs: SimulatedReplicaSet) -> None:
    primary = raw_command(rs.members[0].port, {"hello": 1, "$db": "admin"})
    secondary = raw_command(rs.members[1].port, {"isMaster": 1, "$db": "admin"})
    hosts = [m.address for m in rs.members]
    assert primary["isWritablePrimary"] is True and primary["secondary"] is False
    assert primary["hosts"] == hosts and primary["me"] == hosts[0] and primary["primary"] == hosts[0]
    assert primary["setName"] == "rs0" and primary["electionId"] == rs.election_id
    assert primary["maxWireVersion"] == MAX_WIRE_VERSION and primary["logicalSessionTimeoutMinutes"] == 30
    assert {"opTime", "lastWriteDate"} <= set(primary["lastWrite"])
    assert secondary["ismaster"] is False and secondary["secondary"] is True
    assert secondary["primary"] == hosts[0] and "electionId" not in secondary


def test_crud_indexes_and_collections_round_trip(
    rs: SimulatedReplicaSet, client: MongoClient[dict[str, Any]]
) -> None:
    coll = client.app.things
    coll.insert_one({"_id": 1, "a": 1})
    coll.insert_many([{"_id": 2, "a": 2}, {"_id": 3, "a": 3}])
    coll.update_one({"_id": 2}, {"$set": {"a": 20}})
    coll.delete_one({"_id": 3})
    assert list(coll.find({}, sort=[("_id", 1)])) == [{"_id": 1, "a": 1}, {"_id": 2, "a": 20}]
    assert coll.find_one_and_update({"_id": 1}, {"$inc": {"a": 1}})["a"] == 1  # type: ignore[index]
    assert coll.count_documents({}) == 2
    coll.create_index("a")
    assert sorted(coll.index_information()) == ["_id_", "a_1"]  # listed as MongoDB names it
    assert client.app.list_collection_names() == ["things"]
    forwarded = {r.command for r in rs.records(0, outcome=Outcome.FORWARDED)}
    assert {"insert", "update", "delete", "find", "findAndModify", "createIndexes"} <= forwarded
    assert rs.records(1, outcome=Outcome.FORWARDED) == []
    assert rs.count("hello") == 0  # handshakes are not recorded
    with MongoClient(rs.backend_uri) as direct:  # the data really is in the backend
        assert direct.app.things.count_documents({}) == 2


def test_what_the_backend_would_drop_is_refused_loudly(client: MongoClient[dict[str, Any]]) -> None:
    """Options nx_27017 would accept and forget are errors (115 CommandNotSupported) that name the option;
    nothing is created (see the conformance table in the README)."""
    app = client.app
    refused: list[tuple[str, Any]] = [
        ("sparse", lambda: app.things.create_index("s", sparse=True)),
        ("collation", lambda: app.things.create_index("c", collation={"locale": "en"})),
        ("index key t: 'text'", lambda: app.things.create_index([("t", "text")])),
        ("validator", lambda: app.create_collection("valid", validator={"a": {"$exists": True}})),
        ("capped, size", lambda: app.create_collection("log", capped=True, size=4096)),
        ("validator", lambda: app.command("collMod", "things", validator={})),
    ]
    for option, call in refused:
        with pytest.raises(OperationFailure) as info:
            call()
        assert info.value.code == 115 and option in str(info.value), (option, info.value)
    assert app.list_collection_names() == []
    app.things.create_index("u", unique=True, expireAfterSeconds=60)
    with pytest.raises(OperationFailure, match="unique index") as info:
        app.command("collMod", "things", index={"keyPattern": {"u": 1}, "expireAfterSeconds": 5})
    assert info.value.code == 115


def test_index_names_follow_the_collection(
    rs: SimulatedReplicaSet, client: MongoClient[dict[str, Any]]
) -> None:
    """The members' index catalogue forgets a dropped collection or database; an index made directly on the
    backend is listed as the backend names it."""
    app = client.app
    app.things.create_index("a", name="by_a")
    app.things.drop()
    app.things.create_index("a")
    assert [i["name"] for i in app.things.list_indexes()] == ["_id_", "a_1"]
    client.drop_database("app")
    with MongoClient(rs.backend_uri) as direct:
        direct.app.things.create_index("a", name="by_a")
    assert [i["name"] for i in app.things.list_indexes()] == ["_id_", "idx_things_a"]


def test_secondary_reads_with_a_read_preference(
    rs: SimulatedReplicaSet, client: MongoClient[dict[str, Any]]
) -> None:
    client.app.things.insert_one({"_id": 1})
    wait_for(lambda: len(client.secondaries) == 2, what="two secondaries")
    coll = client.app.get_collection("things", read_preference=ReadPreference.SECONDARY)
    assert coll.find_one({"_id": 1}) == {"_id": 1}
    assert [r.member for r in rs.records(command="find")] in ([1], [2])


def test_secondaries_refuse_writes_and_primary_only_reads(rs: SimulatedReplicaSet) -> None:
    with MongoClient(rs.members[1].address, directConnection=True) as direct:
        with pytest.raises(NotPrimaryError) as info:
            direct.app.things.insert_one({"_id": 1})
        assert info.value.details is not None and info.value.details["code"] == 10107
        # Sent to a secondary, pymongo makes it a plain write (no txnNumber), and mongod labels the errors of
        # retryable writes only (ErrorLabelBuilder::isRetryableWriteError).
        assert not info.value.has_error_label("RetryableWriteError")
    reply = raw_command(rs.members[1].port, {"find": "things", "$db": "app"})
    assert reply["code"] == 13435 and reply["codeName"] == "NotPrimaryNoSecondaryOk"
    reply = raw_command(
        rs.members[1].port, {"find": "things", "$db": "app", "$readPreference": {"mode": "secondary"}}
    )
    assert reply["ok"] == 1
    assert [r.outcome for r in rs.records(1)] == [Outcome.REFUSED, Outcome.REFUSED, Outcome.FORWARDED]


# -- elections -----------------------------------------------------------------------------------------------


def test_step_down_pymongo_follows_the_new_primary(
    rs: SimulatedReplicaSet, client: MongoClient[dict[str, Any]]
) -> None:
    first_id = rs.election_id
    assert rs.step_down() == 1
    assert rs.primary == 1
    assert rs.election_id is not None and first_id is not None and rs.election_id > first_id
    wait_for(lambda: client.primary == address(rs, 1), what="pymongo to see member 1 as primary")
    client.app.things.insert_one({"_id": 1})
    assert rs.count("insert", member=1, outcome=Outcome.FORWARDED) == 1


def test_election_window_has_no_primary(rs: SimulatedReplicaSet, client: MongoClient[dict[str, Any]]) -> None:
    rs.step_down(new_primary=2, election_seconds=0.3)
    assert rs.primary is None
    wait_for(lambda: client.primary is None, what="pymongo to see no primary")
    client.app.things.insert_one({"_id": 1})  # waits in server selection for the election
    assert rs.primary == 2
    assert client.primary == address(rs, 2)


def test_step_down_wait_blocks_until_elected(rs: SimulatedReplicaSet) -> None:
    rs.step_down(new_primary=rs.members[2].address, election_seconds=0.05, wait=True)
    assert rs.primary == 2


def test_repl_set_step_down_command(rs: SimulatedReplicaSet, client: MongoClient[dict[str, Any]]) -> None:
    client.admin.command("replSetStepDown", 10)
    assert rs.primary == 1
    wait_for(lambda: client.primary == address(rs, 1), what="the new primary")


def test_insert_across_a_step_down_lands_exactly_once(
    rs: SimulatedReplicaSet, client: MongoClient[dict[str, Any]]
) -> None:
    """The write reaches the backend, the old primary hangs up before answering (it stepped down), pymongo
    retries on the new primary with the same (lsid, txnNumber), and the retry is answered from the record."""
    rs.delay(0, 30)  # the reply is held back until the step-down closes the connection
    errors: list[BaseException] = []

    def insert() -> None:
        try:
            client.app.things.insert_one({"_id": "once"})
        except BaseException as exc:  # reported below
            errors.append(exc)

    worker = threading.Thread(target=insert)
    worker.start()
    wait_for(lambda: rs.count("insert", member=0, outcome=Outcome.FORWARDED) == 1, what="insert applied")
    rs.step_down(hang_up=True)
    worker.join(10)
    assert not worker.is_alive() and errors == []
    first = rs.records(command="insert")[0]
    assert first.lsid is not None and first.txn_number is not None
    seen = rs.writes_with_txn(first.lsid, first.txn_number)
    assert [(r.member, r.outcome) for r in seen] == [(0, Outcome.FORWARDED), (1, Outcome.DEDUPLICATED)]
    assert client.app.things.count_documents({}) == 1


def test_applied_write_with_lost_reply_is_deduplicated(
    rs: SimulatedReplicaSet, client: MongoClient[dict[str, Any]]
) -> None:
    with client.start_session() as session:
        rs.fail_command("insert", close_connection=True, after_forward=True)
        client.app.things.insert_one({"_id": 1}, session=session)
        records = rs.records(command="insert")
        assert [r.outcome for r in records] == [Outcome.FORWARDED, Outcome.INJECTED, Outcome.DEDUPLICATED]
        txn = records[0].txn_number
        assert txn is not None
        assert len(rs.writes_with_txn(session.session_id, txn)) == 3
    assert client.app.things.count_documents({}) == 1


def test_transactions_commit_and_abort(rs: SimulatedReplicaSet, client: MongoClient[dict[str, Any]]) -> None:
    coll = client.app.things
    coll.insert_one({"_id": 0})
    with client.start_session() as session, session.start_transaction():
        coll.insert_one({"_id": 1}, session=session)
        coll.insert_one({"_id": 2}, session=session)
    with pytest.raises(RuntimeError), client.start_session() as session, session.start_transaction():
        coll.insert_one({"_id": 3}, session=session)
        raise RuntimeError("abort")
    assert [d["_id"] for d in coll.find(sort=[("_id", 1)])] == [0, 1, 2]
    assert rs.count("commitTransaction", outcome=Outcome.FORWARDED) == 1
    assert rs.count("abortTransaction", outcome=Outcome.FORWARDED) == 1


def test_hang_up_on_step_down_mode(rs: SimulatedReplicaSet, client: MongoClient[dict[str, Any]]) -> None:
    rs.set_hang_up_on_step_down(True)
    client.app.things.insert_one({"_id": 1})
    rs.step_down()
    client.app.things.insert_one({"_id": 2})  # pymongo reconnects to the new primary
    assert rs.count("insert", member=1, outcome=Outcome.FORWARDED) == 1
    assert client.app.things.count_documents({}) == 2


# -- process faults ------------------------------------------------------------------------------------------


def test_kill_and_restart_a_secondary(rs: SimulatedReplicaSet, client: MongoClient[dict[str, Any]]) -> None:
    wait_for(lambda: len(client.secondaries) == 2, what="two secondaries")
    port = rs.members[2].port
    rs.kill(2)
    assert not rs.is_alive(2)
    wait_for(lambda: client.secondaries == {address(rs, 1)}, what="pymongo to drop member 2")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    rs.restart(2)
    assert rs.members[2].port == port
    wait_for(lambda: len(client.secondaries) == 2, what="pymongo to see member 2 again")
    client.app.things.insert_one({"_id": 1})


@pytest.fixture
def short_client(rs: SimulatedReplicaSet) -> Iterator[MongoClient[dict[str, Any]]]:
    c: MongoClient[dict[str, Any]] = MongoClient(
        rs.uri, heartbeatFrequencyMS=100, serverSelectionTimeoutMS=300, socketTimeoutMS=300
    )
    c.admin.command("ping")
    yield c
    c.close()


def test_kill_primary_leaves_no_primary_until_elect(
    rs: SimulatedReplicaSet, short_client: MongoClient[dict[str, Any]]
) -> None:
    rs.kill(0)
    assert rs.primary is None
    # Wait until pymongo knows, or the insert fails on a pooled connection to the dead member instead.
    wait_for(lambda: short_client.primary is None, what="pymongo to lose the primary")
    with pytest.raises(ServerSelectionTimeoutError):
        short_client.app.things.insert_one({"_id": 1})
    assert rs.elect() == 1
    short_client.app.things.insert_one({"_id": 1})
    rs.restart(0)
    assert rs.primary == 1  # a restarted member comes back as a secondary


def test_kill_primary_with_automatic_election(
    rs: SimulatedReplicaSet, client: MongoClient[dict[str, Any]]
) -> None:
    rs.kill(0, election_seconds=0.1)
    client.app.things.insert_one({"_id": 1})
    assert rs.primary == 1


def test_restart_of_a_running_member_is_refused(rs: SimulatedReplicaSet) -> None:
    with pytest.raises(SimulatorError, match="running"):
        rs.restart(1)


def test_hang_up_closes_live_connections(rs: SimulatedReplicaSet) -> None:
    # At the socket level: through pymongo the outcome races with its monitor, which may see the hang-up
    # first and discard the pooled connection before the next command uses it.
    member = rs.members[0]
    with socket.create_connection((member.host, member.port), timeout=5) as live:
        live.sendall(wire.op_msg_reply(0, {"ping": 1, "$db": "admin"}))  # any OP_MSG frame is a request
        assert bson.decode(wire.reply_body(wire.read_raw(live)))["ok"]
        rs.hang_up(0)
        assert live.recv(1) == b""  # the member closed it
    with MongoClient(rs.uri, serverSelectionTimeoutMS=5000) as c:
        assert c.app.things.find_one() is None  # new connections are still accepted


def test_a_cursor_cut_by_a_hang_up_fails_loudly_never_short(
    rs: SimulatedReplicaSet, client: MongoClient[dict[str, Any]]
) -> None:
    # nx_27017 forgets a cursor with the connection that opened it and would answer a later getMore with
    # an empty final batch; the member must turn that into CursorNotFound (43), as mongod would.
    client.app.things.insert_many([{"i": i} for i in range(100)])
    cursor = client.app.things.find({}, batch_size=10)
    seen = [next(cursor)]
    rs.hang_up(0)
    with pytest.raises((OperationFailure, AutoReconnect)) as info:
        seen.extend(cursor)
    if isinstance(info.value, OperationFailure):
        assert info.value.code == 43
    assert len(seen) < 100


# -- injected faults -----------------------------------------------------------------------------------------


def test_injected_not_primary_error_without_retry(rs: SimulatedReplicaSet) -> None:
    with MongoClient(rs.uri, retryWrites=False, serverSelectionTimeoutMS=5000) as c:
        rs.fail_command("insert", code=10107, labels=["RetryableWriteError"])
        with pytest.raises(NotPrimaryError) as info:
            c.app.things.insert_one({"_id": 1})
        assert isinstance(info.value, AutoReconnect)
        assert info.value.details is not None and info.value.details["code"] == 10107


def test_injected_retryable_error_is_retried(
    rs: SimulatedReplicaSet, client: MongoClient[dict[str, Any]]
) -> None:
    point = rs.fail_command("insert", code=91, labels=["RetryableWriteError"])
    client.app.things.insert_one({"_id": 1})
    assert point.triggered == 1 and point.remaining == 0
    assert [r.outcome for r in rs.records(command="insert")] == [Outcome.INJECTED, Outcome.FORWARDED]


def test_injected_non_retryable_error(rs: SimulatedReplicaSet, client: MongoClient[dict[str, Any]]) -> None:
    rs.fail_command(["insert", "find"], times=2, code=2, error_message="bad value injected", members=[0])
    with pytest.raises(OperationFailure) as info:
        client.app.things.insert_one({"_id": 1})
    assert info.value.code == 2 and not isinstance(info.value, AutoReconnect)
    with pytest.raises(OperationFailure):
        client.app.things.find_one()
    client.app.things.insert_one({"_id": 1})  # used up


def test_injected_closed_connection(rs: SimulatedReplicaSet) -> None:
    with MongoClient(rs.uri, retryReads=False, serverSelectionTimeoutMS=5000) as c:
        c.admin.command("ping")
        rs.fail_command("find", close_connection=True)
        with pytest.raises(AutoReconnect):
            c.app.things.find_one()
        assert c.app.things.find_one() is None
    assert [r.outcome for r in rs.records(command="find")] == [Outcome.INJECTED, Outcome.FORWARDED]


def test_clear_faults(rs: SimulatedReplicaSet, client: MongoClient[dict[str, Any]]) -> None:
    point = rs.fail_command("find", times=100, code=2)
    rs.delay(0, 5)
    rs.clear_faults()
    assert point.remaining == 0
    assert client.app.things.find_one() is None


def test_delay_causes_network_timeout(
    rs: SimulatedReplicaSet, short_client: MongoClient[dict[str, Any]]
) -> None:
    short_client.app.things.insert_one({"_id": 1})
    rs.delay(0, 2.0)
    with pytest.raises(NetworkTimeout):
        short_client.app.things.find_one()
    rs.delay(0, 0)
    assert short_client.app.things.find_one() == {"_id": 1}


def test_blackhole_causes_network_timeout(
    rs: SimulatedReplicaSet, short_client: MongoClient[dict[str, Any]]
) -> None:
    short_client.app.things.insert_one({"_id": 1})
    rs.blackhole(0)
    with pytest.raises(NetworkTimeout):
        short_client.app.things.find_one()
    rs.blackhole(0, enabled=False)


def test_lag_is_reported_in_hello_and_repl_set_get_status(rs: SimulatedReplicaSet) -> None:
    rs.set_lag(2, 30)
    status = raw_command(rs.members[0].port, {"replSetGetStatus": 1, "$db": "admin"})
    by_name = {m["name"]: m for m in status["members"]}
    primary, lagging = by_name[rs.members[0].address], by_name[rs.members[2].address]
    assert primary["stateStr"] == "PRIMARY" and lagging["stateStr"] == "SECONDARY"
    lag = (primary["optimeDate"] - lagging["optimeDate"]).total_seconds()
    assert 29 < lag < 31
    hello = raw_command(rs.members[2].port, {"hello": 1, "$db": "admin"})
    p_hello = raw_command(rs.members[0].port, {"hello": 1, "$db": "admin"})
    assert (p_hello["lastWrite"]["lastWriteDate"] - hello["lastWrite"]["lastWriteDate"]).total_seconds() > 29
    rs.kill(1)
    status = raw_command(rs.members[0].port, {"replSetGetStatus": 1, "$db": "admin"})
    assert status["members"][1]["health"] == 0


# -- bad input -----------------------------------------------------------------------------------------------


def test_unknown_member_lists_valid_ones(rs: SimulatedReplicaSet) -> None:
    with pytest.raises(UnknownMemberError, match=rs.members[0].address) as info:
        rs.kill(3)
    assert isinstance(info.value, LookupError)
    with pytest.raises(UnknownMemberError):
        rs.delay("127.0.0.1:1", 1)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"members": 0}, "members"), ({"set_name": ""}, "set_name"), ({"ports": [1]}, "ports")],
)
def test_bad_constructor_arguments(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        SimulatedReplicaSet(**kwargs)


def test_bad_control_arguments(rs: SimulatedReplicaSet) -> None:
    with pytest.raises(ValueError, match="election_seconds"):
        rs.step_down(election_seconds=-1)
    with pytest.raises(ValueError, match="seconds"):
        rs.delay(0, -1)
    with pytest.raises(ValueError, match="code"):
        rs.fail_command("insert")
    with pytest.raises(ValueError, match="times"):
        rs.fail_command("insert", times=0, code=2)


def test_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUseError, match=str(port)):
            SimulatedReplicaSet(members=1, ports=[port])


def test_backend_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nx_27017", None)
    with pytest.raises(BackendNotInstalledError, match=r"mongomancy\[sim\]"):
        SimulatedReplicaSet()
    monkeypatch.setenv("MONGOMANCY_SIM_BACKEND", "mongod")
    monkeypatch.setenv("PATH", "")
    with pytest.raises(BackendNotInstalledError, match="mongod"):
        SimulatedReplicaSet()


# -- the SQLite under the backend ----------------------------------------------------------------------------


def test_backend_runs_on_the_sqlite_the_environment_chooses(sim_cluster: SimulatedReplicaSet) -> None:
    """Unset or ``pinned``: the bundled SQLite the project pins; ``platform``: this interpreter's own."""
    runtime = sim_cluster.backend.runtime
    assert runtime is not None
    expected = os.environ.get(nx_launcher.SQLITE_ENV, "pinned")
    assert runtime.sqlite == expected
    if expected == "pinned":
        assert (runtime.sqlite_module, runtime.sqlite_version) == (
            "sqlean",
            nx_launcher.PINNED_SQLITE_VERSION,
        )
    else:
        assert (runtime.sqlite_module, runtime.sqlite_version) == ("sqlite3", sqlite3.sqlite_version)
    assert runtime.nx_27017 == importlib.metadata.version("nx-27017")
    assert runtime.neosqlite == importlib.metadata.version("neosqlite")


@pytest.mark.parametrize(
    ("choice", "module", "version"),
    [
        ("pinned", "sqlean", nx_launcher.PINNED_SQLITE_VERSION),
        ("platform", "sqlite3", sqlite3.sqlite_version),
    ],
)
def test_backend_runs_on_the_sqlite_asked_for(choice: str, module: str, version: str) -> None:
    with NxBackend(sqlite=choice) as backend:
        assert backend.runtime is not None
        assert (backend.runtime.sqlite, backend.runtime.sqlite_module) == (choice, module)
        assert backend.runtime.sqlite_version == version
        with MongoClient(backend.uri) as client:  # and that process is the one answering
            assert client.admin.command("serverStatus")["pid"] == backend.pid


def test_a_backend_launched_ahead_answers_once_started() -> None:
    """launch() returns at once (the fixture boots the next test's backend that way); finish_start() waits
    for that very process to answer."""
    backend = NxBackend().launch()
    try:
        assert backend.process is not None and backend.runtime is None
        assert backend.finish_start() is backend and backend.runtime is not None
        with MongoClient(backend.uri) as client:
            assert client.admin.command("serverStatus")["pid"] == backend.pid
    finally:
        backend.stop()
    assert backend.last_pid is not None and not process_exists(backend.last_pid)
    with pytest.raises(SimulatorError, match="not launched"):
        NxBackend().finish_start()


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie waiting for its new parent to reap it."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_backend_ends_with_the_process_that_started_it() -> None:
    """A test process killed outright cannot stop its backend; the backend notices and ends itself."""
    starter = (
        "from mongomancy.testing import NxBackend; import time; "
        "print(NxBackend().start().pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", starter], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        backend_pid = int(parent.stdout.readline())
        assert _running(backend_pid)
    finally:
        parent.kill()  # SIGKILL: no cleanup runs in the parent
        parent.wait()
    try:
        wait_for(lambda: not _running(backend_pid), timeout=10, what=f"backend {backend_pid} to end")
    finally:
        if _running(backend_pid):
            os.kill(backend_pid, 9)


def test_pinned_sqlite_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sqlean", None)
    monkeypatch.setenv(nx_launcher.SQLITE_ENV, "pinned")
    with pytest.raises(
        BackendNotInstalledError, match=r"sqlean-py.*mongomancy\[sim\].*MONGOMANCY_SIM_SQLITE"
    ):
        SimulatedReplicaSet()
    monkeypatch.setenv(nx_launcher.SQLITE_ENV, "bogus")
    with pytest.raises(ValueError, match="MONGOMANCY_SIM_SQLITE must be 'pinned' or 'platform', not 'bogus'"):
        SimulatedReplicaSet()


def test_launcher_refuses_a_missing_pinned_sqlite(tmp_path: Path) -> None:
    """The child process itself also refuses (exit 3, the reason on stderr) rather than fall back silently."""
    hide_sqlean = (
        "import runpy, sys; sys.modules['sqlean'] = None; "
        f"sys.argv = [{nx_launcher.__file__!r}, {str(tmp_path / 'runtime.json')!r}]; "
        f"runpy.run_path({nx_launcher.__file__!r}, run_name='__main__')"
    )
    env = {**os.environ, nx_launcher.SQLITE_ENV: "pinned"}
    done = subprocess.run(
        [sys.executable, "-c", hide_sqlean], env=env, capture_output=True, timeout=60, check=False
    )
    assert done.returncode == nx_launcher.EXIT_WRONG_SQLITE
    assert b"sqlean-py, which is not installed" in done.stderr
    assert not (tmp_path / "runtime.json").exists()


# -- teardown ------------------------------------------------------------------------------------------------


def test_teardown_leaves_nothing_behind() -> None:
    before = set(threading.enumerate())
    with pytest.raises(RuntimeError, match="test body failed"):
        with SimulatedReplicaSet() as rs:
            pid = rs.backend.pid
            ports = [m.port for m in rs.members]
            with MongoClient(rs.uri) as c:
                c.app.things.insert_one({"_id": 1})
                rs.delay(1, 10)
                raise RuntimeError("test body failed")
    assert pid is not None and not process_exists(pid)
    leaked = [t.name for t in set(threading.enumerate()) - before if t.name.startswith("mongomancy-sim")]
    assert leaked == []
    for port in ports:  # every port can be listened on again (as servers do: SO_REUSEADDR, for TIME_WAIT)
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen()
    rs.close()  # idempotent


def test_fast_heartbeats_restores_the_minimum() -> None:
    saved = pymongo.common.MIN_HEARTBEAT_INTERVAL
    with fast_heartbeats(0.01):
        assert pymongo.common.MIN_HEARTBEAT_INTERVAL == 0.01
    assert pymongo.common.MIN_HEARTBEAT_INTERVAL == saved
