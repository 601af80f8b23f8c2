"""Wire framing of the simulator, and the ``mongod`` backend path (with a stand-in ``mongod``)."""

from __future__ import annotations

import os
import stat
import struct
import sys
from pathlib import Path
from typing import Any

import bson
import pytest
from pymongo import MongoClient

from mongomancy.testing import MongodBackend, Outcome, SimulatedReplicaSet, make_backend, wire


def op_msg_with_sequence(body: dict[str, Any], identifier: str, docs: list[dict[str, Any]]) -> bytes:
    seq_docs = b"".join(bson.encode(d) for d in docs)
    seq = identifier.encode() + b"\x00" + seq_docs
    payload = (
        struct.pack("<I", 0) + b"\x00" + bson.encode(body) + b"\x01" + struct.pack("<i", 4 + len(seq)) + seq
    )
    return struct.pack("<iiii", 16 + len(payload), 42, 0, wire.OP_MSG) + payload


def test_parse_op_msg_with_document_sequence_and_rewrite() -> None:
    raw = op_msg_with_sequence(
        {"insert": "c", "$db": "app", "txnNumber": bson.Int64(3)}, "documents", [{"_id": 1}, {"_id": 2}]
    )
    msg = wire.parse(raw)
    assert msg.request_id == 42 and msg.body["insert"] == "c" and len(msg.sequences) == 1
    rewritten = wire.parse(wire.rewrite_op_msg(msg, {"insert": "c", "$db": "app"}, wire.FLAG_MORE_TO_COME))
    assert rewritten.body == {"insert": "c", "$db": "app"}
    assert rewritten.sequences == msg.sequences and rewritten.request_id == 42


def test_op_query_handshake_and_reply() -> None:
    query = bson.encode({"$query": {"isMaster": 1, "helloOk": True}})
    payload = struct.pack("<i", 0) + b"admin.$cmd\x00" + struct.pack("<ii", 0, -1) + query
    msg = wire.parse(struct.pack("<iiii", 16 + len(payload), 5, 0, wire.OP_QUERY) + payload)
    assert msg.body == {"isMaster": 1, "helloOk": True} and msg.collection == "admin.$cmd"
    reply = wire.reply_to(msg, {"ok": 1.0})
    assert bson.decode(wire.reply_body(reply)) == {"ok": 1.0}


def test_malformed_messages_are_rejected() -> None:
    with pytest.raises(wire.WireError):
        wire.parse(struct.pack("<iiii", 16, 1, 0, 9999))
    with pytest.raises(wire.WireError):
        wire.parse(struct.pack("<iiii", 22, 1, 0, wire.OP_MSG) + b"\x00\x00\x00\x00\x07\x00")


@pytest.fixture
def fake_mongod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``mongod`` on PATH that really runs nx_27017 (mongod's argv: --port P --bind_ip H ...)."""
    script = tmp_path / "mongod"
    script.write_text(
        f'#!/bin/sh\nexec {sys.executable} -m nx_27017.nx_27017 --db memory --host "$4" -p "$2"'
        f" --log-file {tmp_path}/nx.log --pid-file {tmp_path}/nx.pid\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("MONGOMANCY_SIM_BACKEND", "mongod")
    return script


def test_mongod_backend_path(fake_mongod: Path) -> None:
    assert isinstance(make_backend(), MongodBackend)
    with SimulatedReplicaSet() as rs, MongoClient(rs.uri, serverSelectionTimeoutMS=5000) as client:
        assert rs.backend.kind == "mongod"
        with client.start_session() as session:
            client.app.things.insert_one({"_id": 1}, session=session)  # txnNumber stripped on the way
        assert rs.count("insert", outcome=Outcome.FORWARDED) == 1
        assert client.app.things.find_one() == {"_id": 1}
