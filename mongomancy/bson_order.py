"""MongoDB's comparison/sort order of BSON values, modelled on the Python values pymongo decodes.

Rule (MongoDB manual, "BSON Types > Comparison/Sort Order"): values of different types sort by type
bracket, MinKey < null (and a missing field) < numbers (int, long, double, decimal, compared by value) <
symbol/string < object < array < binData < ObjectId < boolean < date < timestamp < regular expression <
JavaScript code < JavaScript code with scope < MaxKey; within a bracket, by value.  Strings compare as
simple binary (UTF-8 order, the same as code point order); binData by length, then subtype, then bytes;
objects pair by pair (field type, then field name, then value; the shorter object first); NaN sorts below
every other number.  The deprecated dbPointer type sits between regex and code (the server's canonical type
table; the manual does not list it); the deprecated undefined type is not modelled (pymongo decodes it as
``None``).

Why a model: the cursor's resume filter must be exact under this order, and ``$gt``/``$lt`` compare within
one bracket only (type bracketing).  The model lets the filter be checked against the real order without a
server, and tells the cursor which bracket a boundary value belongs to.  Arrays are classified but, in a
sort, a multi-valued key has no single position (ascending uses the smallest element, descending the
largest), so the resume filter refuses them rather than compare them.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import functools
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

from bson.binary import Binary
from bson.code import Code
from bson.datetime_ms import DatetimeMS
from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp

from mongomancy._paths import MISSING


class Bracket(enum.IntEnum):
    """The type brackets of the sort order, lowest first."""

    MIN_KEY = 1
    NULL = 2  # null and a missing field sort (and compare) as equal
    NUMBER = 3
    STRING = 4
    OBJECT = 5
    ARRAY = 6
    BINARY = 7
    OBJECT_ID = 8
    BOOLEAN = 9
    DATE = 10
    TIMESTAMP = 11
    REGEX = 12
    DB_POINTER = 13
    CODE = 14
    CODE_WITH_SCOPE = 15
    MAX_KEY = 16


#: The ``$type`` aliases of each bracket (``null`` is matched by ``{$eq: null}``, which also finds missing).
TYPE_ALIASES: Final[Mapping[Bracket, tuple[str, ...]]] = {
    Bracket.MIN_KEY: ("minKey",),
    Bracket.NULL: ("null",),
    Bracket.NUMBER: ("double", "int", "long", "decimal"),
    Bracket.STRING: ("string", "symbol"),
    Bracket.OBJECT: ("object",),
    Bracket.ARRAY: ("array",),
    Bracket.BINARY: ("binData",),
    Bracket.OBJECT_ID: ("objectId",),
    Bracket.BOOLEAN: ("bool",),
    Bracket.DATE: ("date",),
    Bracket.TIMESTAMP: ("timestamp",),
    Bracket.REGEX: ("regex",),
    Bracket.DB_POINTER: ("dbPointer",),
    Bracket.CODE: ("javascript",),
    Bracket.CODE_WITH_SCOPE: ("javascriptWithScope",),
    Bracket.MAX_KEY: ("maxKey",),
}

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_REGEX_FLAGS = (
    ("i", re.IGNORECASE),
    ("l", re.LOCALE),
    ("m", re.MULTILINE),
    ("s", re.DOTALL),
    ("u", re.UNICODE),
    ("x", re.VERBOSE),
)


class UnorderableValueError(TypeError):
    """A Python value the model cannot place in the BSON order (a custom type, a DBRef...)."""


def bracket_of(value: Any) -> Bracket:
    """The sort bracket of ``value`` (``MISSING`` and ``None`` are both ``NULL``)."""
    if value is None or value is MISSING:
        return Bracket.NULL
    if isinstance(value, bool):  # before int: bool is an int subclass
        return Bracket.BOOLEAN
    if isinstance(value, (int, float, Decimal128)):
        return Bracket.NUMBER
    if isinstance(value, Code):  # before str: Code is a str subclass
        return Bracket.CODE if value.scope is None else Bracket.CODE_WITH_SCOPE
    if isinstance(value, str):
        return Bracket.STRING
    if isinstance(value, DBRef):
        raise UnorderableValueError("a DBRef (its order depends on how it was stored) is not modelled")
    if isinstance(value, Mapping):
        return Bracket.OBJECT
    if isinstance(value, (list, tuple)):
        return Bracket.ARRAY
    if isinstance(value, (bytes, Binary, uuid.UUID)):
        return Bracket.BINARY
    if isinstance(value, ObjectId):
        return Bracket.OBJECT_ID
    if isinstance(value, (datetime.datetime, DatetimeMS)):
        return Bracket.DATE
    if isinstance(value, Timestamp):
        return Bracket.TIMESTAMP
    if isinstance(value, (Regex, re.Pattern)):
        return Bracket.REGEX
    if isinstance(value, MinKey):
        return Bracket.MIN_KEY
    if isinstance(value, MaxKey):
        return Bracket.MAX_KEY
    raise UnorderableValueError(f"a {type(value).__name__} value has no known place in the BSON sort order")


def is_nan(value: Any) -> bool:
    """True for a double or decimal NaN (all NaNs sort equal, below every other number)."""
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, Decimal128):
        return value.to_decimal().is_nan()
    return False


def compare(left: Any, right: Any) -> int:
    """-1, 0 or 1 as ``left`` sorts before, with, or after ``right`` in an ascending sort."""
    left_bracket, right_bracket = bracket_of(left), bracket_of(right)
    if left_bracket != right_bracket:
        return -1 if left_bracket < right_bracket else 1
    return _compare_within(left_bracket, left, right)


def sort_key(value: Any) -> Any:
    """A key for ``sorted()`` that orders values as MongoDB sorts them ascending."""
    return functools.cmp_to_key(compare)(value)


def _sign(left: Any, right: Any) -> int:
    return int(left > right) - int(left < right)


def _compare_within(bracket: Bracket, left: Any, right: Any) -> int:
    if bracket in (Bracket.NULL, Bracket.MIN_KEY, Bracket.MAX_KEY):
        return 0
    if bracket is Bracket.NUMBER:
        return _compare_numbers(left, right)
    if bracket is Bracket.OBJECT:
        return _compare_objects(left, right)
    if bracket is Bracket.ARRAY:
        return _compare_sequences(left, right)
    if bracket is Bracket.BINARY:
        return _sign(_binary_key(left), _binary_key(right))
    if bracket is Bracket.OBJECT_ID:
        return _sign(left.binary, right.binary)
    if bracket is Bracket.DATE:
        return _sign(_date_ms(left), _date_ms(right))
    if bracket is Bracket.TIMESTAMP:
        return _sign((left.time, left.inc), (right.time, right.inc))
    if bracket is Bracket.REGEX:
        return _sign(_regex_key(left), _regex_key(right))
    if bracket is Bracket.CODE_WITH_SCOPE:
        by_code = _sign(str(left), str(right))
        return by_code if by_code else _compare_objects(left.scope, right.scope)
    return _sign(left, right)  # strings (and code) by code point, booleans False < True


def _number(value: Any) -> int | float | decimal.Decimal:
    return value.to_decimal() if isinstance(value, Decimal128) else value


def _compare_numbers(left: Any, right: Any) -> int:
    left_nan, right_nan = is_nan(left), is_nan(right)
    if left_nan or right_nan:
        return right_nan - left_nan if not (left_nan and right_nan) else 0
    # Python compares int, float and Decimal exactly, as the server compares numbers by value.
    return _sign(_number(left), _number(right))


def _compare_objects(left: Mapping[str, Any], right: Mapping[str, Any]) -> int:
    left_items, right_items = list(left.items()), list(right.items())
    for (left_name, left_value), (right_name, right_value) in zip(left_items, right_items, strict=False):
        left_bracket, right_bracket = bracket_of(left_value), bracket_of(right_value)
        if left_bracket != right_bracket:
            return -1 if left_bracket < right_bracket else 1
        by_name = _sign(left_name, right_name)
        if by_name:
            return by_name
        by_value = _compare_within(left_bracket, left_value, right_value)
        if by_value:
            return by_value
    return _sign(len(left_items), len(right_items))


def _compare_sequences(left: Sequence[Any], right: Sequence[Any]) -> int:
    """Arrays compared as values (inside an object): element by element, the shorter first."""
    for left_value, right_value in zip(left, right, strict=False):
        by_value = compare(left_value, right_value)
        if by_value:
            return by_value
    return _sign(len(left), len(right))


def _binary_key(value: bytes | Binary | uuid.UUID) -> tuple[int, int, bytes]:
    if isinstance(value, uuid.UUID):
        # As the standard representation (subtype 4) stores it; a legacy representation (subtype 3)
        # reorders the bytes, so the order among UUIDs is modelled for the standard one only (equality, all
        # the cursor needs from it, holds for every representation).
        return 16, 4, value.bytes
    subtype = value.subtype if isinstance(value, Binary) else 0
    return len(value), subtype, bytes(value)


def _date_ms(value: datetime.datetime | DatetimeMS) -> int:
    if isinstance(value, DatetimeMS):
        return int(value)
    aware = value if value.tzinfo is not None else value.replace(tzinfo=datetime.timezone.utc)
    delta = aware - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _regex_key(value: Regex[Any] | re.Pattern[Any]) -> tuple[str, str]:
    flags = value.flags
    if isinstance(flags, str):
        letters = "".join(sorted(flags))
    else:
        letters = "".join(letter for letter, bit in _REGEX_FLAGS if flags & bit)
    return str(value.pattern), letters
