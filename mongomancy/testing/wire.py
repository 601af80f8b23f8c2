"""MongoDB wire-protocol framing: just enough to read requests and write replies.

Why hand-written: the simulator must see each command (to refuse, record, de-duplicate or fail it) yet forward
the original bytes untouched, so that it adds microseconds, not a re-encoding, to every operation.  Only the
opcodes drivers send are understood: OP_MSG (with kind-1 document sequences) and OP_QUERY (the legacy
``isMaster`` handshake).  OP_COMPRESSED is never negotiated because members do not advertise compression.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Mapping
from typing import Any

import attrs
import bson

OP_REPLY = 1
OP_QUERY = 2004
OP_MSG = 2013

FLAG_CHECKSUM_PRESENT = 1
FLAG_MORE_TO_COME = 1 << 1
FLAG_EXHAUST_ALLOWED = 1 << 16

#: OP_QUERY flag bit telling a secondary that the client accepts a secondary read (``secondaryOk``).
QUERY_FLAG_SECONDARY_OK = 1 << 2

HEADER = struct.Struct("<iiii")
MAX_MESSAGE_SIZE = 48_000_000


class WireError(Exception):
    """A peer sent bytes that are not a well-formed message (or closed mid-message)."""


@attrs.frozen
class Message:
    """One request as read from a socket: the header fields, the raw bytes, and the decoded command."""

    request_id: int
    op_code: int
    raw: bytes
    #: The command document (OP_MSG kind-0 body, or the OP_QUERY query with ``$query`` unwrapped).
    body: dict[str, Any]
    #: OP_MSG flag bits, or OP_QUERY flags.
    flags: int
    #: For OP_QUERY: the full collection name (``admin.$cmd``); empty for OP_MSG.
    collection: str = ""
    #: For OP_MSG: the raw kind-1 sections, kept so a rewritten body can be re-framed without decoding them.
    sequences: tuple[bytes, ...] = ()

    @property
    def more_to_come(self) -> bool:
        """The client expects no reply (an unacknowledged ``w: 0`` write)."""
        return self.op_code == OP_MSG and bool(self.flags & FLAG_MORE_TO_COME)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """Read exactly ``n`` bytes; raise ``WireError`` if the peer closes first."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise WireError("connection closed by peer")
        buf += chunk
    return bytes(buf)


def read_raw(sock: socket.socket) -> bytes:
    """Read one whole framed message (header included) from ``sock``."""
    header = recv_exactly(sock, 16)
    length = HEADER.unpack(header)[0]
    if length < 16 or length > MAX_MESSAGE_SIZE:
        raise WireError(f"invalid message length {length}")
    if length == 16:
        return header
    return header + recv_exactly(sock, length - 16)


def _cstring(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(b"\x00", pos)
    return data[pos:end].decode("utf-8"), end + 1


def parse(raw: bytes) -> Message:
    """Decode the parts of a request the simulator needs; the raw bytes are kept for forwarding."""
    _length, request_id, _response_to, op_code = HEADER.unpack_from(raw)
    try:
        if op_code == OP_MSG:
            return _parse_op_msg(raw, request_id)
        if op_code == OP_QUERY:
            return _parse_op_query(raw, request_id)
    except (IndexError, ValueError, struct.error, bson.errors.BSONError) as exc:
        raise WireError(f"malformed message (opcode {op_code}): {exc}") from exc
    raise WireError(f"unsupported opcode {op_code}")


def _parse_op_msg(raw: bytes, request_id: int) -> Message:
    flags = int.from_bytes(raw[16:20], "little")
    end = len(raw) - (4 if flags & FLAG_CHECKSUM_PRESENT else 0)
    pos = 20
    body: dict[str, Any] | None = None
    sequences: list[bytes] = []
    while pos < end:
        kind = raw[pos]
        pos += 1
        size = int.from_bytes(raw[pos : pos + 4], "little")
        if kind == 0:
            body = bson.decode(raw[pos : pos + size])
        elif kind == 1:
            sequences.append(raw[pos : pos + size])
        else:
            raise WireError(f"unknown OP_MSG section kind {kind}")
        pos += size
    if body is None:
        raise WireError("OP_MSG without a body section")
    return Message(request_id, OP_MSG, raw, body, flags, sequences=tuple(sequences))


def _parse_op_query(raw: bytes, request_id: int) -> Message:
    flags = int.from_bytes(raw[16:20], "little")
    collection, pos = _cstring(raw, 20)
    pos += 8  # numberToSkip, numberToReturn
    size = int.from_bytes(raw[pos : pos + 4], "little")
    query = bson.decode(raw[pos : pos + size])
    if "$query" in query and isinstance(query["$query"], Mapping):
        query = dict(query["$query"])
    return Message(request_id, OP_QUERY, raw, query, flags, collection=collection)


_next_id = 0


def _request_id() -> int:
    # Reply ids only need to be distinct enough for logs; a plain counter is fine (races are harmless).
    global _next_id
    _next_id = (_next_id + 1) & 0x7FFFFFFF
    return _next_id


def op_msg_reply(response_to: int, doc: Mapping[str, Any] | bytes) -> bytes:
    """Frame ``doc`` (a mapping, or already-encoded BSON) as an OP_MSG reply to ``response_to``."""
    payload = doc if isinstance(doc, bytes) else bson.encode(doc)
    length = 16 + 4 + 1 + len(payload)
    return HEADER.pack(length, _request_id(), response_to, OP_MSG) + b"\x00\x00\x00\x00\x00" + payload


def op_reply(response_to: int, doc: Mapping[str, Any]) -> bytes:
    """Frame ``doc`` as a legacy OP_REPLY (answer to an OP_QUERY handshake)."""
    payload = bson.encode(doc)
    length = 16 + 20 + len(payload)
    return (
        HEADER.pack(length, _request_id(), response_to, OP_REPLY) + struct.pack("<iqii", 0, 0, 0, 1) + payload
    )


def reply_to(message: Message, doc: Mapping[str, Any] | bytes) -> bytes:
    """Frame ``doc`` in the reply format that matches the request's opcode."""
    if message.op_code == OP_QUERY:
        return op_reply(message.request_id, doc if isinstance(doc, Mapping) else bson.decode(doc))
    return op_msg_reply(message.request_id, doc)


def reply_body(raw: bytes) -> bytes:
    """The encoded BSON document of a backend reply (OP_MSG kind 0 or the first OP_REPLY document)."""
    op_code = HEADER.unpack_from(raw)[3]
    if op_code == OP_MSG:
        pos = 21
    elif op_code == OP_REPLY:
        pos = 36
    else:
        raise WireError(f"unexpected reply opcode {op_code}")
    size = int.from_bytes(raw[pos : pos + 4], "little")
    return raw[pos : pos + size]


def decode_sequence(section: bytes) -> tuple[str, list[dict[str, Any]]]:
    """A kind-1 section (its size, identifier and documents) as ``(identifier, documents)``."""
    identifier, pos = _cstring(section, 4)
    documents = []
    while pos < len(section):
        size = int.from_bytes(section[pos : pos + 4], "little")
        documents.append(bson.decode(section[pos : pos + size]))
        pos += size
    return identifier, documents


def encode_sequence(identifier: str, documents: list[Mapping[str, Any]]) -> bytes:
    """The inverse of :func:`decode_sequence`."""
    payload = identifier.encode("utf-8") + b"\x00" + b"".join(bson.encode(d) for d in documents)
    return struct.pack("<i", 4 + len(payload)) + payload


def rewrite_op_msg(
    message: Message, body: Mapping[str, Any], clear_flags: int, sequences: tuple[bytes, ...] | None = None
) -> bytes:
    """Re-frame an OP_MSG with a new body, keeping its kind-1 sections (or ``sequences``) and request id."""
    flags = message.flags & ~clear_flags & ~FLAG_CHECKSUM_PRESENT
    parts = [struct.pack("<I", flags), b"\x00", bson.encode(body)]
    for seq in message.sequences if sequences is None else sequences:
        parts.append(b"\x01")
        parts.append(seq)
    payload = b"".join(parts)
    return HEADER.pack(16 + len(payload), message.request_id, 0, OP_MSG) + payload


def clear_op_msg_flags(raw: bytes, clear_flags: int) -> bytes:
    """The same OP_MSG with some flag bits cleared (the bytes are returned unchanged if none was set)."""
    flags = int.from_bytes(raw[16:20], "little")
    if not flags & clear_flags:
        return raw
    return raw[:16] + struct.pack("<I", flags & ~clear_flags) + raw[20:]
