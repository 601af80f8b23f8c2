"""A small model of MongoDB's query matching, for the operators the resume filters use.

Rule (MongoDB manual, "Type Bracketing" and the query operator pages): ``$gt``/``$gte``/``$lt``/``$lte``
match only values of the operand's type bracket (numbers compare across int/long/double/decimal);
``{$eq: null}`` matches null and a missing field; ``$type`` matches the value's BSON type (``"null"`` does not
match a missing field); ``$in``/``$nin`` are equality against each element.  NaN, as a range scan treats it,
matches no ``$gt``/``$lt`` and only ``$gte``/``$lte`` with a NaN operand.  Array values are not modelled (the
resume filter refuses array sort keys).  Used by the resume tests to evaluate filters without a server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bson.decimal128 import Decimal128

from mongomancy._paths import MISSING, lookup_dotted
from mongomancy.bson_order import TYPE_ALIASES, Bracket, bracket_of, compare, is_nan


def matches(document: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    """True when ``document`` matches ``query`` (an implicit AND of its entries)."""
    return all(_entry(document, key, condition) for key, condition in query.items())


def _entry(document: Mapping[str, Any], key: str, condition: Any) -> bool:
    if key == "$and":
        return all(matches(document, clause) for clause in condition)
    if key == "$or":
        return any(matches(document, clause) for clause in condition)
    if key.startswith("$"):
        raise NotImplementedError(f"the model does not know {key}")
    value = lookup_dotted(document, key)
    if isinstance(condition, Mapping) and condition and all(str(op).startswith("$") for op in condition):
        return all(_OPERATORS[op](value, operand) for op, operand in condition.items())
    return _equal(value, condition)


def _equal(value: Any, operand: Any) -> bool:
    if operand is None:
        return value is None or value is MISSING
    if value is MISSING:
        return False
    if is_nan(operand) or is_nan(value):
        return is_nan(operand) and is_nan(value)
    return bracket_of(value) == bracket_of(operand) and compare(value, operand) == 0


def _range(accept: Callable[[int], bool], inclusive: bool) -> Callable[[Any, Any], bool]:
    def check(value: Any, operand: Any) -> bool:
        if value is MISSING or operand is None:
            return operand is None and inclusive and (value is None or value is MISSING)
        if bracket_of(value) != bracket_of(operand):
            return False
        if is_nan(value) or is_nan(operand):
            return inclusive and is_nan(value) and is_nan(operand)
        return accept(compare(value, operand))

    return check


def _type(value: Any, aliases: Any) -> bool:
    if value is MISSING:
        return False
    wanted = [aliases] if isinstance(aliases, str) else list(aliases)
    bracket = bracket_of(value)
    if bracket is Bracket.NUMBER:
        if isinstance(value, Decimal128):
            actual = "decimal"
        elif isinstance(value, float):
            actual = "double"
        else:
            actual = "int" if -(2**31) <= value < 2**31 else "long"
        return actual in wanted or "number" in wanted
    if bracket is Bracket.STRING:
        return "string" in wanted
    return any(alias in wanted for alias in TYPE_ALIASES[bracket])


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": _equal,
    "$gt": _range(lambda c: c > 0, inclusive=False),
    "$gte": _range(lambda c: c >= 0, inclusive=True),
    "$lt": _range(lambda c: c < 0, inclusive=False),
    "$lte": _range(lambda c: c <= 0, inclusive=True),
    "$type": _type,
    "$in": lambda value, operands: any(_equal(value, operand) for operand in operands),
    "$nin": lambda value, operands: not any(_equal(value, operand) for operand in operands),
}
