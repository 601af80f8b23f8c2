"""Normalisation of server answers and definitions, so the planner compares like with like.

Why a module of its own: the planner (pure) and the applier (which re-reads one index just before acting
on it) must judge "is this live index the one defined?" identically; one set of functions guarantees it.
Everything here is pure.  Indexes are compared by key pattern and options, never by name: servers do not
always keep the name asked for, and mongomancy 0.1, which compared names only, missed every changed option.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from mongomancy.schema.definitions import Direction, FrozenMap, Index, thaw

#: Index options the planner compares (MongoDB names).  Anything else in a ``listIndexes`` document
#: (``v``, ``ns``, ``background``, ``textIndexVersion``, ``2dsphereIndexVersion``, ``storageEngine``...)
#: is server bookkeeping or an option mongomancy does not declare, and is ignored.
COMPARED_INDEX_OPTIONS: Final = (
    "unique",
    "sparse",
    "expireAfterSeconds",
    "partialFilterExpression",
    "collation",
    "hidden",
    "weights",
    "default_language",
    "language_override",
    "wildcardProjection",
    "bits",
    "min",
    "max",
)

#: Server defaults: an option at its default is the same as the option absent.
_INDEX_OPTION_DEFAULTS: Final[Mapping[str, Any]] = {
    "unique": False,
    "sparse": False,
    "hidden": False,
    "default_language": "english",
    "language_override": "language",
    "bits": 26,
    "min": -180,
    "max": 180,
}

#: Index options ``collMod`` can change in place (MongoDB 5.1+ for adding a TTL to a plain index).
IN_PLACE_INDEX_OPTIONS: Final = frozenset({"expireAfterSeconds", "hidden"})


# --------------------------------------------------------------------------------------------------
# Normalisation of server answers and definitions
# --------------------------------------------------------------------------------------------------


def canon(value: Any) -> Any:
    """A hashable, order-insensitive (for mappings) form in which 1 == 1.0 == Int64(1)."""
    if isinstance(value, Mapping):
        return ("{}", tuple(sorted((str(k), canon(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("[]", tuple(canon(v) for v in value))
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return int(value)
    return value


def same(a: Any, b: Any) -> bool:
    return bool(canon(a) == canon(b))


def normalise_direction(value: Any) -> Direction:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and float(value).is_integer():
        return int(value)
    if isinstance(value, str):
        return value
    return str(value)


@attrs.frozen
class NormIndex:
    """An index reduced to what decides equality: key pattern (ordered) and non-default options."""

    name: str
    key: tuple[tuple[str, Direction], ...]
    options: FrozenMap

    @property
    def key_dict(self) -> dict[str, Direction]:
        return dict(self.key)


def drop_defaults(options: dict[str, Any]) -> dict[str, Any]:
    result = {}
    for option, value in options.items():
        if value is None:
            continue
        if option in _INDEX_OPTION_DEFAULTS and same(value, _INDEX_OPTION_DEFAULTS[option]):
            continue
        if option == "collation":
            if value.get("locale") == "simple":
                continue
            result[option] = {k: v for k, v in value.items() if k != "version"}
            continue
        result[option] = value
    return result


def normalise_live_index(document: Mapping[str, Any]) -> NormIndex:
    """A ``listIndexes`` document as the planner compares it."""
    key = tuple((str(field), normalise_direction(direction)) for field, direction in document["key"].items())
    options = {option: thaw(document[option]) for option in COMPARED_INDEX_OPTIONS if option in document}
    return NormIndex(name=str(document.get("name", "")), key=key, options=FrozenMap(drop_defaults(options)))


def normalise_defined_index(index: Index, inherited_collation: Mapping[str, Any] | None) -> NormIndex:
    """A defined index in the form ``listIndexes`` would show it.

    Text indexes appear with the key ``{<prefix>, _fts: "text", _ftsx: 1, <suffix>}`` and their fields
    in ``weights`` (weight 1 when not given); an index without its own collation inherits the
    collection's default collation (except text and 2d indexes, which only support the simple one).
    """
    options = index.options()
    pairs = list(index.fields.items())
    if index.is_text:
        text_fields = [field for field, direction in pairs if direction == "text"]
        first = next(i for i, (_, direction) in enumerate(pairs) if direction == "text")
        prefix = pairs[:first]
        suffix = pairs[first + len(text_fields) :]
        key = (*prefix, ("_fts", "text"), ("_ftsx", 1), *suffix)
        weights = dict.fromkeys(text_fields, 1)
        weights.update(options.get("weights", {}))
        options["weights"] = weights
    else:
        key = tuple(pairs)
        is_2d = any(direction == "2d" for _, direction in pairs)
        if "collation" not in options and inherited_collation is not None and not is_2d:
            options["collation"] = thaw(inherited_collation)
    return NormIndex(name=index.name, key=key, options=FrozenMap(drop_defaults(options)))


def collation_matches(wanted: Any, live: Any) -> bool:
    """Collations match when every field the definition states has the live value.

    The server answers with the collation fully expanded (``caseLevel``, ``alternate``, ``version``...,
    defaults depending on the locale), so only the fields the definition states can be compared.
    """
    if wanted is None or live is None:
        return wanted is None and live is None
    return all(same(value, live.get(field)) for field, value in wanted.items() if field != "version")


def index_differences(wanted: NormIndex, live: NormIndex) -> dict[str, tuple[Any, Any]]:
    """``{option: (live value, wanted value)}`` for each option that differs (key excluded)."""
    differences: dict[str, tuple[Any, Any]] = {}
    for option in COMPARED_INDEX_OPTIONS:
        wanted_value = wanted.options.get(option)
        live_value = live.options.get(option)
        if option == "collation":
            equal = collation_matches(wanted_value, live_value)
        else:
            equal = same(wanted_value, live_value)
        if not equal:
            differences[option] = (thaw(live_value), thaw(wanted_value))
    return differences


def changes_in_place(differences: Mapping[str, tuple[Any, Any]]) -> bool:
    """True when ``collMod`` can apply every difference (removing a TTL cannot: that needs a re-create)."""
    if not set(differences) <= IN_PLACE_INDEX_OPTIONS:
        return False
    ttl = differences.get("expireAfterSeconds")
    return ttl is None or ttl[1] is not None


def is_id_index(index: NormIndex) -> bool:
    return index.name == "_id_" or index.key == (("_id", 1),)


def plain_differences(differences: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{option: (live, wanted)}`` with plain dicts/lists inside, for error objects and callers."""
    return {option: (thaw(change[0]), thaw(change[1])) for option, change in differences.items()}


def format_value(value: Any) -> str:
    return repr(thaw(value))


def format_differences(differences: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{option} {format_value(d[0])} -> {format_value(d[1])}" for option, d in differences.items()
    )
