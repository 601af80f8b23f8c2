"""Fetch the sort keys a projection leaves out, and strip them again before the caller sees a document.

Why: resuming after the last document needs that document's sort key values (and its ``_id`` when ties
are possible).  Refusing to resume whenever a projection drops them would punish an ordinary query, so the
query asks for them too and each document loses them again before it is yielded: the caller receives what
its own projection returns.  Where the projection reshapes a needed key (``$slice``, ``$elemMatch``,
``$meta``, an expression, a positional ``a.$``, or includes only part of it), the plan keeps the caller's
projection and names the reason instead, so a resume is refused with that reason.

Rule (MongoDB manual, "Project Fields to Return from Query"): a projection is an inclusion or an exclusion
(``_id`` may be excluded from an inclusion); ``$slice`` and ``$meta`` do not choose the mode.  pymongo
sends an empty projection as ``{_id: 1}``, so a projection emptied here is sent as ``None`` (all fields).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import attrs

#: Projection operators that return the whole document otherwise (they do not make an inclusion).
_NEUTRAL_OPERATORS = frozenset({"$slice", "$meta"})


@attrs.frozen
class FetchPlan:
    """The projection to send, the paths to remove from each document, and why a resume is impossible."""

    projection: Mapping[str, Any] | None
    strip: tuple[str, ...] = ()
    blocker: str | None = None


def normalise_projection(projection: Any) -> dict[str, Any] | None:
    """pymongo's projection forms (a list of field names, or a mapping) as one mapping (None: all fields)."""
    if projection is None:
        return None
    if isinstance(projection, Mapping):
        return dict(projection) or {"_id": True}  # pymongo sends an empty projection as {_id: 1}
    if isinstance(projection, (list, tuple)) and all(isinstance(f, str) for f in projection):
        return dict.fromkeys(projection, True) or {"_id": True}
    raise TypeError(f"projection must be a mapping or a list of field names, got {projection!r}")


def _plain(value: Any) -> bool:
    return isinstance(value, (bool, int, float))


def _related(path: str, key: str) -> bool:
    """``path`` is ``key``, one of its parents, or one of its sub-fields."""
    return path == key or key.startswith(path + ".") or path.startswith(key + ".")


def _mode(projection: Mapping[str, Any]) -> str:
    if set(projection) <= {"_id"}:
        return "inclusion" if projection.get("_id", True) else "exclusion"
    for path, value in projection.items():
        if path == "_id":
            continue
        if _plain(value):
            if value:
                return "inclusion"
        elif not (isinstance(value, Mapping) and set(value) <= _NEUTRAL_OPERATORS):
            return "inclusion"  # $elemMatch, expressions and positional projections include
    return "exclusion"


def plan_fetch(projection: Any, needed: Sequence[str]) -> FetchPlan:
    """How to send ``projection`` so that every ``needed`` field comes back whole."""
    wanted = normalise_projection(projection)
    if wanted is None or not needed:
        return FetchPlan(wanted)
    send = dict(wanted)
    strip: list[str] = []
    for key in needed:
        reshaped = [p for p, v in wanted.items() if _related(p, key) and (not _plain(v) or p.endswith(".$"))]
        if reshaped:
            return FetchPlan(
                wanted, blocker=f"the projection reshapes the sort key {key!r} ({reshaped[0]!r})"
            )
    mode = _mode(wanted)
    for key in needed:
        if key == "_id":
            if "_id" in send and not send["_id"]:
                del send["_id"]
                strip.append("_id")
            continue
        if mode == "exclusion":
            for path in [p for p, v in send.items() if p != "_id" and not v and _related(p, key)]:
                del send[path]
                strip.append(path)
            continue
        included = [p for p, v in wanted.items() if v and (p == key or key.startswith(p + "."))]
        if included:
            continue
        partial = [p for p in wanted if p.startswith(key + ".")]
        if partial:
            return FetchPlan(wanted, blocker=f"the projection includes only part of the sort key {key!r}")
        send[key] = True
        strip.append(_added_root(wanted, key))
    return FetchPlan(send or None, tuple(strip))


def _added_root(wanted: Mapping[str, Any], key: str) -> str:
    """The path to remove after adding ``key`` to an inclusion: the first level the caller did not ask for."""
    parts = key.split(".")
    for depth in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:depth])
        if any(p.startswith(prefix + ".") for p in wanted):
            return ".".join(parts[: depth + 1])
    return parts[0]


def strip_paths(document: MutableMapping[str, Any], paths: Sequence[str]) -> None:
    """Delete each dotted path from ``document`` in place, into every element of an array on the way."""
    for path in paths:
        _delete(document, path.split("."))


def _delete(container: Any, parts: list[str]) -> None:
    if isinstance(container, list):
        for element in container:
            _delete(element, parts)
        return
    if not isinstance(container, MutableMapping) or parts[0] not in container:
        return
    if len(parts) == 1:
        del container[parts[0]]
    else:
        _delete(container[parts[0]], parts[1:])
