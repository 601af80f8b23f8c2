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
    return _canon_scalar(value)


def _canon_scalar(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return int(value)
    return value


def same(a: Any, b: Any) -> bool:
    return bool(canon(a) == canon(b))


def canon_filter(value: Any) -> Any:
    """A comparable form of a query filter (a partial filter expression, a validator) as MongoDB reads it.

    The fields of a filter document are ANDed, and so are the arguments of an operator document
    (``{$gte: 1, $lt: 5}``): their order does not matter.  A literal embedded document compared for
    equality (``{addr: {city: "x", zip: 1}}``) does: MongoDB compares embedded documents field by field,
    in order (manual: "Query on Embedded/Nested Documents"), so ``{zip: 1, city: "x"}`` matches other
    documents and is another filter.
    """
    if isinstance(value, Mapping):
        return ("{}", tuple(sorted((str(k), _canon_filter_value(str(k), v)) for k, v in value.items())))
    return canon(value)


def _canon_filter_value(key: str, value: Any) -> Any:
    if key in ("$and", "$or", "$nor") and isinstance(value, (list, tuple)):
        return ("[]", tuple(canon_filter(v) for v in value))
    if isinstance(value, Mapping):
        if value and all(str(k).startswith("$") for k in value):
            return canon_filter(value)  # an operator document
        return ordered_canon(value)  # a literal embedded document
    if isinstance(value, (list, tuple)):
        return ("[]", tuple(ordered_canon(v) if isinstance(v, Mapping) else canon(v) for v in value))
    return _canon_scalar(value)


def ordered_canon(value: Any) -> Any:
    """Like :func:`canon`, but embedded documents keep their key order (BSON document equality)."""
    if isinstance(value, Mapping):
        return ("{o}", tuple((str(k), ordered_canon(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return ("[]", tuple(ordered_canon(v) for v in value))
    return _canon_scalar(value)


def same_filter(a: Any, b: Any) -> bool:
    """Equal as query filters: see :func:`canon_filter`."""
    return bool(canon_filter(a) == canon_filter(b))


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


#: ICU's collation defaults, which the server writes out in full in every collation it reports.
_COLLATION_DEFAULTS: Final[Mapping[str, Any]] = {
    "caseLevel": False,
    "caseFirst": "off",
    "strength": 3,
    "numericOrdering": False,
    "alternate": "non-ignorable",
    "maxVariable": "punct",
    "normalization": False,
    "backwards": False,
}

#: Locales whose defaults differ from ICU's root (manual, "Collation Locales and Default Parameters").
_LOCALE_DEFAULTS: Final[Mapping[str, Mapping[str, Any]]] = {
    "fr_CA": {"backwards": True},
    "da": {"caseFirst": "upper"},
    "mt": {"caseFirst": "upper"},
}


def expand_collation(collation: Mapping[str, Any]) -> dict[str, Any]:
    """A collation with every field the server reports filled in with its default for the locale."""
    locale = str(collation.get("locale", ""))
    expanded = {"locale": locale, **_COLLATION_DEFAULTS, **_LOCALE_DEFAULTS.get(locale, {})}
    expanded.update({field: value for field, value in collation.items() if field != "version"})
    return expanded


def collation_matches(wanted: Any, live: Any) -> bool:
    """Collations match when they are equal in full, each filled in with its locale's defaults.

    The server answers with the collation fully expanded (``caseLevel``, ``alternate``, ``version``...),
    so a definition stating only ``{"locale": "en"}`` means ``strength: 3`` and every other default: a live
    ``strength: 2`` is a different collation (it compares case-insensitively).  ``version`` (the ICU
    version) is the server's business and is ignored.
    """
    if wanted is None or live is None:
        return wanted is None and live is None
    return same(expand_collation(wanted), expand_collation(live))


def index_differences(wanted: NormIndex, live: NormIndex) -> dict[str, tuple[Any, Any]]:
    """``{option: (live value, wanted value)}`` for each option that differs (key excluded)."""
    differences: dict[str, tuple[Any, Any]] = {}
    for option in COMPARED_INDEX_OPTIONS:
        wanted_value = wanted.options.get(option)
        live_value = live.options.get(option)
        if option == "collation":
            equal = collation_matches(wanted_value, live_value)
        elif option == "partialFilterExpression":
            equal = same_filter(wanted_value, live_value)
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


#: Options in a MongoDB 5.0+ index signature besides the key (SERVER-47657): two indexes on the same key
#: may coexist when one of these differs, so a change of them can be built beside the old index.
SIGNATURE_OPTIONS: Final = frozenset({"unique", "sparse", "partialFilterExpression", "collation"})


def buildable_beside(differences: Mapping[str, tuple[Any, Any]]) -> bool:
    """True when an index with these differences can be built next to the live one before it is dropped.

    It must differ in a signature option (else the server refuses an "equivalent" index, code 85) and in
    nothing the server cannot hold twice.  A TTL or ``hidden`` difference travels with the new index.
    """
    return bool(set(differences) & SIGNATURE_OPTIONS) and set(differences) <= (
        SIGNATURE_OPTIONS | IN_PLACE_INDEX_OPTIONS
    )


def only_stricter(differences: Mapping[str, tuple[Any, Any]]) -> bool:
    """True when the live index differs only by being unique where the definition is not.

    Such an index serves every query the definition's index serves; it only refuses duplicates.
    create_all never relaxes a constraint by itself: that is what lets two application versions (v1
    without ``unique``, v2 with it) converge on v2 instead of rebuilding each other's index forever.
    """
    change = differences.get("unique")
    return set(differences) == {"unique"} and change is not None and bool(change[0]) and not change[1]


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
