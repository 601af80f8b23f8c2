"""Requests the member rewrites so that ``nx_27017`` answers them as MongoDB does.

Why here and not in the tests: ``mongomancy.testing`` is what users test their programs with, so a backend
answer that differs from MongoDB's and can be put right at the protocol layer is put right once, for everyone.
What cannot be put right is listed (and tested, as strict xfails) in tests/sim/test_conformance.py.

Each correction is a pure function from a request to a new request, or None when the command needs none,
so the common case costs one comparison and the bytes are forwarded untouched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from mongomancy._paths import MISSING, lookup_dotted
from mongomancy.testing import wire


def _is_operator_document(value: object) -> bool:
    return isinstance(value, Mapping) and any(isinstance(key, str) and key.startswith("$") for key in value)


def _is_replacement(update: object) -> bool:
    """A replacement document (not an update with ``$`` operators, not a pipeline)."""
    return isinstance(update, Mapping) and not _is_operator_document(update)


def _equality_id(query: object) -> tuple[bool, Any]:
    """``(True, value)`` when ``query`` pins ``_id`` by plain equality (``{_id: value}``)."""
    if isinstance(query, Mapping) and "_id" in query and not _is_operator_document(query["_id"]):
        return True, query["_id"]
    return False, None


def keep_replaced_id(query: object, replacement: Mapping[str, Any]) -> dict[str, Any] | None:
    """The replacement with the ``_id`` its target keeps, when the query gives it by equality.

    MongoDB: a replacement document without ``_id`` keeps the replaced document's ``_id``; an upsert takes
    it from the query's equality condition ("replaceOne", "findAndModify" in the manual).  ``nx_27017``
    re-derives it from the query through SQLite and changes its type (an int becomes a string on SQLite
    3.40, a numeric string an int on 3.45+); an explicit, equal ``_id`` in the replacement is kept exactly.
    """
    if "_id" in replacement:
        return None
    found, value = _equality_id(query)
    if not found:
        return None
    return {"_id": value, **replacement}


def find_and_modify(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """``findAndModify`` with a replacement keeps the replaced document's ``_id`` and its type."""
    update = body.get("update")
    if not _is_replacement(update):
        return None
    assert isinstance(update, Mapping)
    replacement = keep_replaced_id(body.get("query"), update)
    if replacement is None:
        return None
    return {**body, "update": replacement}


def upsert_keeps_query_id(query: object, update: Mapping[str, Any]) -> dict[str, Any] | None:
    """An upserting operator update that inserts the query's ``_id`` exactly, via ``$setOnInsert``.

    MongoDB: an upsert inserts the equality fields of its query ("update", upsert behaviour).  ``nx_27017``
    copies them through SQLite's JSON text, which turns an ObjectId ``_id`` into its hex string; a
    ``$setOnInsert`` of the same value is what MongoDB would insert anyway, and nx stores it exactly.
    """
    found, value = _equality_id(query)
    if not found:
        return None
    for operator in ("$set", "$setOnInsert"):
        fields = update.get(operator)
        if isinstance(fields, Mapping) and "_id" in fields:
            return None
    on_insert = update.get("$setOnInsert")
    return {**update, "$setOnInsert": {**(on_insert if isinstance(on_insert, Mapping) else {}), "_id": value}}


def update_statement(statement: Mapping[str, Any]) -> dict[str, Any] | None:
    """One statement of an ``update`` command (``{q, u, upsert, ...}``), corrected, or None."""
    update = statement.get("u")
    query = statement.get("q")
    if _is_replacement(update):
        assert isinstance(update, Mapping)
        corrected = keep_replaced_id(query, update)
    elif isinstance(update, Mapping) and statement.get("upsert"):
        corrected = upsert_keeps_query_id(query, update)
    else:
        corrected = None
    return None if corrected is None else {**statement, "u": corrected}


def _statements(statements: list[Any]) -> list[Any] | None:
    corrected = [update_statement(s) if isinstance(s, Mapping) else None for s in statements]
    if all(c is None for c in corrected):
        return None
    return [c if c is not None else s for c, s in zip(corrected, statements, strict=True)]


def correct_request(
    name: str, body: Mapping[str, Any], sequences: tuple[bytes, ...]
) -> tuple[Mapping[str, Any], tuple[bytes, ...]] | None:
    """The corrected ``(body, kind-1 sections)`` of an OP_MSG request, or None to forward it unchanged."""
    if name in ("findAndModify", "findandmodify"):
        corrected = find_and_modify(body)
        return None if corrected is None else (corrected, sequences)
    if name != "update":
        return None
    in_body = body.get("updates")
    if isinstance(in_body, list):
        statements = _statements(in_body)
        return None if statements is None else ({**body, "updates": statements}, sequences)
    new_sequences = list(sequences)
    changed = False
    for i, section in enumerate(sequences):
        identifier, documents = wire.decode_sequence(section)
        if identifier != "updates":
            continue
        statements = _statements(documents)
        if statements is not None:
            new_sequences[i] = wire.encode_sequence(identifier, statements)
            changed = True
    return (body, tuple(new_sequences)) if changed else None


# -- duplicate-key errors ---------------------------------------------------------------------------------

#: Bytes every duplicate-key error of the backend contains (a cheap test before decoding a reply).
DUPLICATE_MARK = b"UNIQUE constraint failed"
_ID_CLASH = re.compile(r"UNIQUE constraint failed: \S+\._id\b")
_INDEX_CLASH = re.compile(r"UNIQUE constraint failed: index '([^']+)'")


def clashing_key(
    errmsg: str, indexes: list[Mapping[str, Any]], listed: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[str, dict[str, Any]] | None:
    """``(index name, key pattern)`` of the unique index an nx duplicate-key message names, if known.

    ``indexes`` is the backend's listing (its names are the ones in its messages); ``listed`` maps such a
    name to the index as MongoDB lists it (the name and key directions it was created with), if known.
    """
    if _ID_CLASH.search(errmsg):
        return "_id_", {"_id": 1}
    found = _INDEX_CLASH.search(errmsg)
    if found is None:
        return None
    for index in indexes:
        if index.get("name") == found.group(1) and isinstance(index.get("key"), Mapping):
            shown = (listed or {}).get(found.group(1), index)
            return str(shown.get("name")), dict(shown.get("key") or index["key"])
    return None


def _field(document: Mapping[str, Any], path: str) -> Any:
    if path in document:  # "$set": {"a.b": 1} names the dotted path as one key
        return document[path]
    return lookup_dotted(document, path)


def written_document(name: str, statement: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The fields an insert or update statement writes, as far as they can be known without the stored
    document: the inserted document, a replacement (with the query's ``_id``), or the ``$set`` values."""
    if name == "insert":
        return statement
    update = statement.get("u")
    if _is_replacement(update):
        assert isinstance(update, Mapping)
        return keep_replaced_id(statement.get("q"), update) or update
    if isinstance(update, Mapping):
        fields: dict[str, Any] = {}
        for operator in ("$setOnInsert", "$set") if statement.get("upsert") else ("$set",):
            values = update.get(operator)
            if isinstance(values, Mapping):
                fields.update(values)
        return fields
    return None


def key_value(pattern: Mapping[str, Any], written: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``keyValue`` for ``pattern`` when ``written`` gives every field of it, else None (not derivable)."""
    if written is None:
        return None
    value = {path: _field(written, path) for path in pattern}
    return None if any(v is MISSING for v in value.values()) else value


def _render(value: Mapping[str, Any]) -> str:
    parts = [f"{k}: {json.dumps(v) if isinstance(v, str) else v!r}" for k, v in value.items()]
    return "{ " + ", ".join(parts) + " }"


def name_duplicate_keys(
    name: str,
    namespace: str,
    statements: list[Mapping[str, Any]],
    reply: Mapping[str, Any],
    indexes: list[Mapping[str, Any]],
    *,
    listed: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """The reply with MongoDB's ``keyPattern``/``keyValue`` (and errmsg form) on each duplicate-key write
    error the backend answered without them, or None when there is nothing to add.

    MongoDB 4.4+: a DuplicateKey (11000) write error carries ``keyPattern`` and ``keyValue``; drivers and
    programs read them to tell a clash on ``_id`` from one on another unique index.  ``keyValue`` is added
    only when the statement itself gives every field (an insert, a replacement, ``$set``): the backend's
    error names the index, never the values.
    """
    write_errors = reply.get("writeErrors")
    if not isinstance(write_errors, list):
        return None
    changed = False
    corrected = []
    for error in write_errors:
        if not isinstance(error, Mapping) or error.get("code") != 11000 or "keyPattern" in error:
            corrected.append(error)
            continue
        clash = clashing_key(str(error.get("errmsg", "")), indexes, listed)
        index = error.get("index")
        if clash is None or not isinstance(index, int) or not 0 <= index < len(statements):
            corrected.append(error)
            continue
        index_name, pattern = clash
        value = key_value(pattern, written_document(name, statements[index]))
        fixed = {**error, "keyPattern": pattern}
        message = f"E11000 duplicate key error collection: {namespace} index: {index_name}"
        if value is not None:
            fixed["keyValue"] = value
            message += f" dup key: {_render(value)}"
        fixed["errmsg"] = message
        corrected.append(fixed)
        changed = True
    return {**reply, "writeErrors": corrected} if changed else None
