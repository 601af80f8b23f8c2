"""The query for "the documents after this one" under a sort, exact across BSON type brackets.

Rule (MongoDB manual, "Comparison/Sort Order" and "Type Bracketing"): a sort orders values across type
brackets (see :mod:`mongomancy.bson_order`), but ``$gt``/``$lt`` compare only within the operand's bracket,
and ``{$eq: null}`` matches both null and a missing field, which a sort also treats as equal.  So "after
``v`` in an ascending sort on ``k``" is ``{k: {$gt: v}}`` (the rest of ``v``'s bracket) *or* ``k`` in a later
bracket (``{$type: [...]}``, or ``{$eq: null}`` for the null bracket), and a descending sort mirrors it.  A
compound sort is the lexicographic ``$or`` of "equal on the first keys, after on the next one".

Pure functions, no I/O: the cursor calls :func:`after_filter` with the sort key values of the last document
it yielded.  Where no exact filter exists it raises :class:`~mongomancy.errors.CursorResumeError` saying why:
an array value (a multi-valued key has no single position in the sort), a regular expression (not a valid
``$gt`` operand), or a value the model cannot place.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Final

from bson.decimal128 import Decimal128

from mongomancy._paths import MISSING
from mongomancy.bson_order import TYPE_ALIASES, Bracket, UnorderableValueError, bracket_of, is_nan
from mongomancy.errors import CursorResumeError

SortSpec = Sequence[tuple[str, Any]]

#: Both NaN spellings: NaN equals NaN in a sort, and ``$in`` finds either stored form.
_NANS: Final = (float("nan"), Decimal128("NaN"))

#: Brackets whose values all sort equal: nothing of the same bracket comes strictly after one of them.
_SINGLE_POSITION = frozenset({Bracket.NULL, Bracket.MIN_KEY, Bracket.MAX_KEY})

#: Brackets ``$gt``/``$lt`` cannot compare within (a regex is no range operand; code is not modelled).
_NO_RANGE_OPERAND = {
    Bracket.REGEX: "a regular expression cannot be the operand of $gt/$lt",
    Bracket.DB_POINTER: "a dbPointer cannot be the operand of $gt/$lt",
    Bracket.CODE: "JavaScript code values are not modelled as $gt/$lt operands",
    Bracket.CODE_WITH_SCOPE: "JavaScript code values are not modelled as $gt/$lt operands",
}


def cannot_resume(reason: str) -> CursorResumeError:
    """The error for a position no exact filter can express (the cursor adds its context)."""
    return CursorResumeError(reason, command=None, cause=None)


def check_direction(key: str, direction: Any) -> int:
    """The sort direction as 1 or -1; anything else (``{$meta: ...}``, ``"2d"``) has no resume filter."""
    if isinstance(direction, int) and not isinstance(direction, bool) and direction in (1, -1):
        return direction
    raise cannot_resume(f"the sort on {key!r} is {direction!r}, not ascending (1) or descending (-1)")


def total_prefix(sort: SortSpec, unique_key: str = "_id") -> SortSpec | None:
    """The sort up to and including ``unique_key`` when it is one of the keys (a total order), else None."""
    for index, (key, _direction) in enumerate(sort):
        if key == unique_key:
            return list(sort[: index + 1])
    return None


def equal_clause(key: str, value: Any) -> dict[str, Any]:
    """Documents whose ``key`` sorts equal to ``value`` (numbers by value, null with missing)."""
    if value is MISSING or value is None:
        return {key: {"$eq": None}}
    _bracket(key, value)
    if is_nan(value):
        return {key: {"$in": list(_NANS)}}
    return {key: {"$eq": value}}


def after_clause(key: str, value: Any, direction: int) -> dict[str, Any] | None:
    """Documents whose ``key`` sorts strictly after ``value`` in ``direction``; None when there are none."""
    bracket = _bracket(key, value)
    pieces: list[dict[str, Any]] = []
    within = _within_bracket(key, bracket, value, direction)
    if within is not None:
        pieces.append(within)
    beyond = [b for b in Bracket if (b > bracket if direction == 1 else b < bracket)]
    if Bracket.NULL in beyond:
        pieces.append({key: {"$eq": None}})
    # One ``$type`` clause per alias: equivalent to the array form, which not every server-compatible
    # backend accepts (the simulator's backend does not).
    pieces.extend({key: {"$type": alias}} for b in beyond if b is not Bracket.NULL for alias in _aliases(b))
    if not pieces:
        return None
    return pieces[0] if len(pieces) == 1 else {"$or": pieces}


def after_filter(
    sort: SortSpec,
    boundary: Sequence[Any],
    *,
    tied_ids: Collection[Any] | None = None,
    unique_key: str = "_id",
) -> dict[str, Any]:
    """The documents after the one whose sort key values are ``boundary`` (``MISSING`` where it has none).

    ``tied_ids``: when the sort is not total (``unique_key`` is not one of its keys), the ``unique_key``s of
    the documents already yielded whose sort key values equal ``boundary``; the filter then also matches the
    other documents of that tie (the server orders ties arbitrarily, so "after" includes the rest of them).
    """
    if len(boundary) != len(sort):
        raise ValueError(f"{len(boundary)} boundary values for a sort on {len(sort)} keys")
    keys = [(key, check_direction(key, direction)) for key, direction in sort]
    total = total_prefix(keys, unique_key)
    if total is None and tied_ids is None:
        raise ValueError(f"the sort does not end with a unique key ({unique_key!r}): give tied_ids")
    if total is not None:
        keys = list(total)
    alternatives: list[dict[str, Any]] = []
    equal_so_far: list[dict[str, Any]] = []
    for (key, direction), value in zip(keys, boundary, strict=False):
        after = after_clause(key, value, direction)
        if after is not None:
            alternatives.append(_all_of([*equal_so_far, after]))
        equal_so_far.append(equal_clause(key, value))
    if total is None:
        assert tied_ids is not None
        alternatives.append(_all_of([*equal_so_far, {unique_key: {"$nin": list(tied_ids)}}]))
    if not alternatives:
        return {unique_key: {"$in": []}}  # nothing sorts after the boundary: match no document
    return alternatives[0] if len(alternatives) == 1 else {"$or": alternatives}


def _aliases(bracket: Bracket) -> tuple[str, ...]:
    return ("number",) if bracket is Bracket.NUMBER else TYPE_ALIASES[bracket]


def _all_of(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _bracket(key: str, value: Any) -> Bracket:
    try:
        bracket = bracket_of(value)
    except UnorderableValueError as error:
        raise cannot_resume(f"the last document's {key!r}: {error}") from None
    if bracket is Bracket.ARRAY:
        raise cannot_resume(
            f"the last document's {key!r} is an array: a multi-valued sort key has no single position "
            "in the sort (ascending uses its smallest element, descending its largest)"
        )
    return bracket


def _within_bracket(key: str, bracket: Bracket, value: Any, direction: int) -> dict[str, Any] | None:
    """The rest of ``value``'s own bracket, after it in ``direction``."""
    if bracket in _SINGLE_POSITION:
        return None
    if bracket in _NO_RANGE_OPERAND:
        raise cannot_resume(f"the last document's {key!r}: {_NO_RANGE_OPERAND[bracket]}")
    if bracket is Bracket.NUMBER and is_nan(value):
        # NaN sorts below every number: ascending, every other number follows; descending, none does.
        return {key: {"$gte": float("-inf")}} if direction == 1 else None
    if bracket is Bracket.NUMBER and direction == -1:
        # NaN sorts below every number, so it follows ``value`` descending; name it explicitly, since
        # whether ``$lt`` matches NaN is not what the sort order says but how a range scan treats NaN.
        return {"$or": [{key: {"$lt": value}}, {key: {"$in": list(_NANS)}}]}
    return {key: {"$gt" if direction == 1 else "$lt": value}}
