"""Requests the member rewrites so that ``nx_27017`` answers them as MongoDB does.

Why here and not in the tests: ``mongomancy.testing`` is what users test their programs with, so a backend
answer that differs from MongoDB's and can be put right at the protocol layer is put right once, for everyone.
What cannot be put right is listed (and tested, as strict xfails) in tests/sim/test_conformance.py.

Each correction is a pure function from a command body to a new body, or None when the command needs none,
so the common case costs one dict lookup and the bytes are forwarded untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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


#: Command name -> correction of its body.
BODY_CORRECTIONS = {
    "findAndModify": find_and_modify,
    "findandmodify": find_and_modify,
}


def correct_body(name: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The corrected command body, or None when ``body`` goes to the backend unchanged."""
    correction = BODY_CORRECTIONS.get(name)
    return correction(body) if correction is not None else None
