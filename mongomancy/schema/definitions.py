"""Schema declarations: :class:`Index`, :class:`Document`, :class:`TimeSeries`, :class:`CollectionDefinition`.

Why value objects validated on construction: a definition is written once, in code, and applied to
every environment at every start.  A mistake MongoDB would reject (a TTL on a compound index, a unique
hashed index, ``sparse`` mixed with a partial filter...) should fail at import time, naming the argument,
instead of at deploy time on a production replica set.  Every class here is frozen, and the mappings they
hold are deep-frozen (:class:`FrozenMap`, tuples), so a definition shared between threads or modules cannot
be changed behind the planner's back; :meth:`FrozenMap.to_dict` / ``to_mongo()`` give plain BSON-ready
dicts back.

Wrong *types* raise :class:`TypeError`; wrong *values* raise :class:`~mongomancy.errors.ConfigurationError`
(a :class:`ValueError`).  Both messages name the argument and say what was wrong.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final, TypeAlias, cast

import attrs
import bson

from mongomancy._paths import MISSING, lookup_dotted
from mongomancy.errors import ConfigurationError

__all__ = [
    "INDEX_DIRECTIONS",
    "CollectionDefinition",
    "Direction",
    "Document",
    "FrozenMap",
    "Index",
    "TimeSeries",
    "freeze",
    "thaw",
]

Direction: TypeAlias = "int | str"
"""An index key direction: ``1``, ``-1``, ``"text"``, ``"2dsphere"``, ``"2d"`` or ``"hashed"``."""

INDEX_DIRECTIONS: Final = (1, -1, "text", "2dsphere", "2d", "hashed")

_TTL_MAX: Final = 2**31 - 1  # MongoDB 5.0+ rejects expireAfterSeconds outside [0, 2^31 - 1]
_WEIGHT_MAX: Final = 99999  # text index weights are integers in [1, 99999]
_GRANULARITIES: Final = ("seconds", "minutes", "hours")
_VALIDATION_LEVELS: Final = ("off", "strict", "moderate")
_VALIDATION_ACTIONS: Final = ("error", "warn", "errorAndLog")  # errorAndLog: MongoDB 8.1+

# --------------------------------------------------------------------------------------------------
# Deep-frozen mappings
# --------------------------------------------------------------------------------------------------


class FrozenMap(Mapping[str, Any]):
    """An ordered, read-only, hashable mapping whose nested dicts and lists are frozen too.

    Why not ``types.MappingProxyType``: a proxy is neither hashable (so frozen attrs classes holding one
    could not be hashed or put in sets) nor deep (a nested dict would stay mutable).  Equality follows
    ``dict`` (order-insensitive), because that is what callers comparing with a dict expect; places where
    order matters (an index key pattern) compare ``tuple(items())`` explicitly.
    """

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()) -> None:
        items = data.items() if isinstance(data, Mapping) else data
        frozen: dict[str, Any] = {}
        for key, value in items:
            frozen[key] = freeze(value)
        self._data = frozen
        self._hash: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMap):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    def to_dict(self) -> dict[str, Any]:
        """A deep, mutable copy with plain dicts and lists, ready to hand to pymongo."""
        return cast("dict[str, Any]", thaw(self))


def freeze(value: Any) -> Any:
    """Deep-freeze ``value``: mappings become :class:`FrozenMap`, lists and tuples become tuples."""
    if isinstance(value, FrozenMap):
        return value
    if isinstance(value, Mapping):
        return FrozenMap(value)
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Undo :func:`freeze`: plain ``dict`` and ``list`` all the way down (what BSON encoding expects)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def _freeze_optional_map(argument: str) -> Any:
    def convert(value: Mapping[str, Any] | None) -> FrozenMap | None:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise TypeError(f"{argument} must be a mapping or None, not {type(value).__name__}")
        _check_keys_are_strings(argument, value)
        return FrozenMap(value)

    return convert


def _check_keys_are_strings(argument: str, value: Mapping[Any, Any]) -> None:
    for key in value:
        if not isinstance(key, str):
            raise TypeError(f"{argument} keys must be strings, got {key!r}")


def _to_flag(argument: str) -> Any:
    def convert(value: bool | None) -> bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            raise TypeError(f"{argument} must be True, False or None, not {value!r}")
        return value

    return convert


def _check_optional_int(argument: str, value: Any, *, minimum: int, maximum: int | None = None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argument} must be an int or None, not {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise ConfigurationError(f"{argument} must be at least {minimum}{upper}, got {value}")


def _check_optional_str(argument: str, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{argument} must be a str or None, not {value!r}")


def _check_collation(argument: str, collation: FrozenMap | None) -> None:
    if collation is None:
        return
    locale = collation.get("locale")
    if not isinstance(locale, str) or not locale:
        raise ConfigurationError(f"{argument} needs a non-empty string 'locale', got {dict(collation)!r}")


# --------------------------------------------------------------------------------------------------
# Index
# --------------------------------------------------------------------------------------------------


def _check_field_path(argument: str, path: Any) -> None:
    if not isinstance(path, str):
        raise TypeError(f"{argument}: field names must be strings, got {path!r}")
    if not path:
        raise ConfigurationError(f"{argument}: a field name must not be empty")
    if "\0" in path:
        raise ConfigurationError(f"{argument}: field name {path!r} contains a NUL character")
    parts = path.split(".")
    for position, part in enumerate(parts):
        if not part:
            raise ConfigurationError(f"{argument}: field name {path!r} has an empty path component")
        if part.startswith("$") and not (part == "$**" and position == len(parts) - 1):
            raise ConfigurationError(
                f"{argument}: field name {path!r} starts a component with '$' "
                "(only a trailing '$**' wildcard is allowed)"
            )


def _normalise_direction(field: str, direction: Any) -> Direction:
    if isinstance(direction, bool):
        raise TypeError(f"fields: direction of {field!r} must be 1, -1 or an index type string, not a bool")
    if isinstance(direction, float) and direction in (1.0, -1.0):
        return int(direction)
    if isinstance(direction, int) and direction in (1, -1):
        return direction
    if isinstance(direction, str) and direction in INDEX_DIRECTIONS:
        return direction
    raise ConfigurationError(
        f"fields: direction of {field!r} must be one of {', '.join(map(repr, INDEX_DIRECTIONS))}, "
        f"got {direction!r}"
    )


def _freeze_fields(fields: Any) -> tuple[tuple[str, Direction], ...]:
    if isinstance(fields, (str, bytes)):
        raise TypeError("fields must be a mapping or a list of (field, direction) pairs, not a string")
    if isinstance(fields, Mapping):
        pairs: list[Any] = list(fields.items())
    elif isinstance(fields, Iterable):
        pairs = list(fields)
    else:
        raise TypeError(
            f"fields must be a mapping or a list of (field, direction) pairs, not {type(fields).__name__}"
        )
    if not pairs:
        raise ConfigurationError("fields must name at least one field")
    result: list[tuple[str, Direction]] = []
    seen: set[str] = set()
    for pair in pairs:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"fields: each entry must be a (field, direction) pair, got {pair!r}")
        field, direction = pair
        _check_field_path("fields", field)
        if field in seen:
            raise ConfigurationError(f"fields: field {field!r} appears more than once")
        seen.add(field)
        result.append((field, _normalise_direction(field, direction)))
    return tuple(result)


def default_index_name(fields: Iterable[tuple[str, Direction]]) -> str:
    """MongoDB's (and every driver's) default index name: ``a_1_b_-1``, ``title_text``, ``loc_2dsphere``."""
    return "_".join(f"{field}_{direction}" for field, direction in fields)


def _is_wildcard(field: str) -> bool:
    return field == "$**" or field.endswith(".$**")


def _index_type(field: str, direction: Direction) -> str | None:
    """The index 'plugin' a key field uses, or None for a plain ascending/descending field."""
    if isinstance(direction, str):
        return direction
    if _is_wildcard(field):
        return "wildcard"
    return None


def _fields_eq_key(fields: Any) -> Any:
    # Key order matters for an index ({a: 1, b: 1} is not {b: 1, a: 1}); FrozenMap equality ignores it.
    return tuple(fields.items())


@attrs.frozen(init=False)
class Index:
    """One index of a collection, with the options MongoDB's ``createIndexes`` accepts.

    ``fields`` is ordered (a dict, an ``OrderedDict`` as in mongomancy 0.1, or a list of pairs).  When
    ``name`` is omitted the driver convention (``a_1_b_-1``) is used, so the name is always set after
    construction.  Names matter little here: the planner matches indexes by key pattern and options,
    because servers (and the simulator) may name an index differently.

    ``unique``/``sparse``/``hidden`` are stored as bools: ``None`` and ``False`` mean the same to MongoDB.
    """

    fields: FrozenMap = attrs.field(eq=_fields_eq_key)
    name: str
    unique: bool = False
    sparse: bool = False
    expire_after_seconds: int | None = None
    partial_filter_expression: FrozenMap | None = None
    collation: FrozenMap | None = None
    hidden: bool = False
    weights: FrozenMap | None = None
    default_language: str | None = None
    language_override: str | None = None
    wildcard_projection: FrozenMap | None = None
    bits: int | None = None
    min: float | None = None
    max: float | None = None

    def __init__(
        self,
        fields: Mapping[str, Direction] | Iterable[tuple[str, Direction]],
        name: str | None = None,
        unique: bool | None = None,
        *,
        sparse: bool | None = None,
        expire_after_seconds: int | None = None,
        partial_filter_expression: Mapping[str, Any] | None = None,
        collation: Mapping[str, Any] | None = None,
        hidden: bool | None = None,
        weights: Mapping[str, int] | None = None,
        default_language: str | None = None,
        language_override: str | None = None,
        wildcard_projection: Mapping[str, Any] | None = None,
        bits: int | None = None,
        min: float | None = None,
        max: float | None = None,
    ) -> None:
        pairs = _freeze_fields(fields)
        if name is None:
            name = default_index_name(pairs)
        elif not isinstance(name, str):
            raise TypeError(f"name must be a str or None, not {type(name).__name__}")
        _check_optional_int("expire_after_seconds", expire_after_seconds, minimum=0, maximum=_TTL_MAX)
        _check_optional_str("default_language", default_language)
        _check_optional_str("language_override", language_override)
        _check_optional_int("bits", bits, minimum=1, maximum=32)
        for argument, bound in (("min", min), ("max", max)):
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))):
                raise TypeError(f"{argument} must be a number or None, not {bound!r}")
        self.__attrs_init__(
            fields=FrozenMap(pairs),
            name=name,
            unique=_to_flag("unique")(unique),
            sparse=_to_flag("sparse")(sparse),
            expire_after_seconds=expire_after_seconds,
            partial_filter_expression=_freeze_optional_map("partial_filter_expression")(
                partial_filter_expression
            ),
            collation=_freeze_optional_map("collation")(collation),
            hidden=_to_flag("hidden")(hidden),
            weights=_freeze_optional_map("weights")(weights),
            default_language=default_language,
            language_override=language_override,
            wildcard_projection=_freeze_optional_map("wildcard_projection")(wildcard_projection),
            bits=bits,
            min=min,
            max=max,
        )

    def __attrs_post_init__(self) -> None:
        self._validate()

    # -- validation ---------------------------------------------------------------------------------

    def _validate(self) -> None:
        name = self.name
        if not name:
            raise ConfigurationError("name must not be empty")
        if name == "*":
            raise ConfigurationError("name must not be '*' (dropIndexes reserves it for 'all indexes')")
        if "\0" in name:
            raise ConfigurationError(f"name {name!r} contains a NUL character")
        pairs = list(self.fields.items())
        types = [_index_type(field, direction) for field, direction in pairs]
        plugins = {t for t in types if t is not None}
        is_text = "text" in plugins
        if len(plugins) > 1:
            raise ConfigurationError(
                f"fields: cannot combine index types {sorted(plugins)} in one index "
                "(MongoDB allows one special type per index)"
            )
        if types.count("hashed") > 1:
            raise ConfigurationError("fields: at most one field of an index can be 'hashed'")
        if types.count("2d") > 1:
            raise ConfigurationError("fields: at most one field of an index can be '2d'")
        if "2d" in plugins and types[0] != "2d":
            raise ConfigurationError("fields: a '2d' field must come first in the index")
        if types.count("wildcard") > 1:
            raise ConfigurationError("fields: at most one wildcard ('$**') field per index")
        if is_text:
            text_positions = [i for i, t in enumerate(types) if t == "text"]
            if text_positions != list(range(text_positions[0], text_positions[-1] + 1)):
                raise ConfigurationError("fields: the 'text' fields of a compound index must be adjacent")
        for field, direction in pairs:
            whole_text = field == "$**" and direction == "text"
            if _is_wildcard(field) and direction not in (1, -1) and not whole_text:
                raise ConfigurationError(f"fields: wildcard field {field!r} must have direction 1 or -1")
        is_wildcard = "wildcard" in plugins
        is_id_index = pairs == [("_id", 1)]

        if self.unique and "hashed" in plugins:
            raise ConfigurationError("unique: a hashed index cannot be unique")
        if self.unique and is_wildcard:
            raise ConfigurationError("unique: a wildcard index cannot be unique")
        if self.expire_after_seconds is not None:
            if len(pairs) != 1:
                raise ConfigurationError(
                    "expire_after_seconds: a TTL index must have exactly one field, "
                    f"this one has {len(pairs)} ({', '.join(f for f, _ in pairs)})"
                )
            if pairs[0][0] == "_id":
                raise ConfigurationError("expire_after_seconds: the _id field cannot have a TTL index")
            if is_wildcard or is_text:
                raise ConfigurationError(
                    "expire_after_seconds: a TTL index must be a plain ascending/descending index"
                )
        if self.sparse and self.partial_filter_expression is not None:
            raise ConfigurationError(
                "sparse and partial_filter_expression cannot be combined (MongoDB rejects the mix)"
            )
        if self.partial_filter_expression is not None and not self.partial_filter_expression:
            raise ConfigurationError("partial_filter_expression must not be empty")
        if self.hidden and (name == "_id_" or is_id_index):
            raise ConfigurationError("hidden: the _id index cannot be hidden")
        _check_collation("collation", self.collation)
        if (
            self.collation is not None
            and plugins & {"text", "2d"}
            and self.collation.get("locale") != "simple"
        ):
            # An explicit {"locale": "simple"} is how such an index opts out of a collection's default
            # collation (manual, "Collation and Unsupported Index Types").
            raise ConfigurationError(
                "collation: text and 2d indexes support only the simple collation ({'locale': 'simple'})"
            )
        if not is_text:
            for argument, value in (
                ("weights", self.weights),
                ("default_language", self.default_language),
                ("language_override", self.language_override),
            ):
                if value is not None:
                    raise ConfigurationError(f"{argument} applies only to text indexes; fields has no 'text'")
        if self.weights is not None:
            text_fields = {f for f, t in zip((f for f, _ in pairs), types, strict=True) if t == "text"}
            for field, weight in self.weights.items():
                if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= _WEIGHT_MAX:
                    raise ConfigurationError(
                        f"weights: weight of {field!r} must be an int in [1, {_WEIGHT_MAX}], got {weight!r}"
                    )
                if "$**" not in text_fields and field not in text_fields:
                    raise ConfigurationError(f"weights: {field!r} is not a 'text' field of this index")
        if self.wildcard_projection is not None:
            if dict(pairs).get("$**") not in (1, -1):
                raise ConfigurationError(
                    "wildcard_projection applies only to an index on the whole-document wildcard '$**'"
                )
            if not self.wildcard_projection:
                raise ConfigurationError("wildcard_projection must not be empty")
            modes = {bool(v) for k, v in self.wildcard_projection.items() if k != "_id"}
            if len(modes) > 1:
                raise ConfigurationError("wildcard_projection cannot mix inclusions and exclusions")
        if "2d" not in plugins:
            for argument, number in (("bits", self.bits), ("min", self.min), ("max", self.max)):
                if number is not None:
                    raise ConfigurationError(f"{argument} applies only to 2d indexes; fields has no '2d'")
        if self.min is not None and self.max is not None and not self.min < self.max:
            raise ConfigurationError(f"min ({self.min}) must be lower than max ({self.max})")

    # -- views ----------------------------------------------------------------------------------------

    @property
    def is_text(self) -> bool:
        """True for a text index (key pattern in listIndexes is ``{_fts: "text", _ftsx: 1}``)."""
        return "text" in self.fields.values()

    def field_for_mongo(self) -> list[tuple[str, Direction]]:
        """The key as pymongo's ``create_index`` takes it: a list of ``(field, direction)`` pairs."""
        return list(self.fields.items())

    def options(self) -> dict[str, Any]:
        """The options that are set, under MongoDB's names (``expireAfterSeconds``...), without key/name."""
        options: dict[str, Any] = {}
        if self.unique:
            options["unique"] = True
        if self.sparse:
            options["sparse"] = True
        if self.expire_after_seconds is not None:
            options["expireAfterSeconds"] = self.expire_after_seconds
        if self.partial_filter_expression is not None:
            options["partialFilterExpression"] = self.partial_filter_expression.to_dict()
        if self.collation is not None:
            options["collation"] = self.collation.to_dict()
        if self.hidden:
            options["hidden"] = True
        if self.weights is not None:
            options["weights"] = self.weights.to_dict()
        if self.default_language is not None:
            options["default_language"] = self.default_language
        if self.language_override is not None:
            options["language_override"] = self.language_override
        if self.wildcard_projection is not None:
            options["wildcardProjection"] = self.wildcard_projection.to_dict()
        if self.bits is not None:
            options["bits"] = self.bits
        if self.min is not None:
            options["min"] = self.min
        if self.max is not None:
            options["max"] = self.max
        return options

    def to_mongo(self) -> dict[str, Any]:
        """The index document for the ``createIndexes`` command: ``{key, name, **options}``."""
        return {"key": dict(self.fields.items()), "name": self.name, **self.options()}

    create_spec = to_mongo


# --------------------------------------------------------------------------------------------------
# Document
# --------------------------------------------------------------------------------------------------


def _lookup_path(data: Mapping[str, Any], path: str) -> Any:
    """The value at ``path`` of ``data``: a literal key first (a unique key may name ``"a.b"`` as is),
    else the dotted path into sub-documents; ``MISSING`` when neither exists."""
    if path in data:
        return data[path]
    return lookup_dotted(data, path)


def _freeze_required_map(argument: str) -> Any:
    def convert(value: Mapping[str, Any]) -> FrozenMap:
        if not isinstance(value, Mapping):
            raise TypeError(f"{argument} must be a mapping, not {type(value).__name__}")
        _check_keys_are_strings(argument, value)
        return FrozenMap(value)

    return convert


def _unique_key_converter(value: Mapping[str, Any]) -> FrozenMap:
    return cast("FrozenMap", _freeze_required_map("unique_key")(value))


def _data_converter(value: Mapping[str, Any]) -> FrozenMap:
    return cast("FrozenMap", _freeze_required_map("data")(value))


def _ordered(value: Any) -> Any:
    """``value`` with every mapping as its ordered items, so equality sees key order (1 == 1.0 still)."""
    if isinstance(value, Mapping):
        return ("{}", tuple((key, _ordered(item)) for key, item in value.items()))
    if isinstance(value, tuple):
        return tuple(_ordered(item) for item in value)
    return value


@attrs.frozen
class Document:
    """A default document: present once in its collection, identified by ``unique_key``.

    ``unique_key`` is the filter that finds the document (for example ``{"slug": "admin"}``); every field
    of it must be in ``data`` with the same value, otherwise the inserted document would not match its own
    key and would be inserted again on every run.  Both mappings are deep-frozen; use
    :meth:`filter` / :meth:`to_mongo` for plain dicts.
    """

    unique_key: FrozenMap = attrs.field(converter=_unique_key_converter)
    data: FrozenMap = attrs.field(converter=_data_converter)

    def __attrs_post_init__(self) -> None:
        if not self.unique_key:
            raise ConfigurationError("unique_key must name at least one field")
        for field, value in self.unique_key.items():
            if not field or field.startswith("$"):
                raise ConfigurationError(f"unique_key: {field!r} is not a field name")
            actual = _lookup_path(self.data, field)
            if actual is MISSING:
                raise ConfigurationError(f"unique_key field {field!r} is missing from data")
            if actual != value:
                raise ConfigurationError(
                    f"unique_key field {field!r} is {thaw(value)!r} but data has {thaw(actual)!r}"
                )
            if _ordered(actual) != _ordered(value):
                # MongoDB compares embedded documents field by field, in order: a key whose embedded
                # document lists its fields in another order than the stored one never finds it.
                raise ConfigurationError(
                    f"unique_key field {field!r} is {thaw(value)!r} but data has {thaw(actual)!r}: the same "
                    "fields in another order, which MongoDB compares as a different document"
                )

    def filter(self) -> dict[str, Any]:
        """The query that finds this document: its unique key as a plain dict."""
        return self.unique_key.to_dict()

    def to_mongo(self) -> dict[str, Any]:
        """The document's data as a plain dict (without the derived ``_id``)."""
        return self.data.to_dict()

    def document_id(self, collection: str) -> Any:
        """The ``_id`` this document gets when mongomancy inserts it.

        ``data["_id"]`` when given; otherwise an ObjectId derived from a hash of the collection name and
        the unique key.  Why deterministic: two processes inserting the same default document at once
        then collide on ``_id`` (duplicate key error), so exactly one copy can ever exist even when no
        unique index covers the unique key.
        """
        if "_id" in self.data:
            return thaw(self.data["_id"])
        canonical = bson.encode({"collection": collection, "key": sorted(self.unique_key.to_dict().items())})
        return bson.ObjectId(hashlib.sha256(canonical).digest()[:12])


# --------------------------------------------------------------------------------------------------
# Collections
# --------------------------------------------------------------------------------------------------


@attrs.frozen
class TimeSeries:
    """The ``timeseries`` option of a time series collection (MongoDB 5.0+)."""

    time_field: str
    meta_field: str | None = None
    granularity: str | None = None

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.time_field, str):
            raise TypeError(f"time_field must be a str, not {self.time_field!r}")
        _check_optional_str("meta_field", self.meta_field)
        _check_optional_str("granularity", self.granularity)
        for argument, value in (("time_field", self.time_field), ("meta_field", self.meta_field)):
            if value is not None:
                if not value or value.startswith("$") or "\0" in value:
                    raise ConfigurationError(f"{argument} {value!r} is not a valid field name")
                if value == "_id":
                    raise ConfigurationError(f"{argument} cannot be '_id'")
        if self.meta_field is not None and self.meta_field == self.time_field:
            raise ConfigurationError("meta_field must differ from time_field")
        if self.granularity is not None and self.granularity not in _GRANULARITIES:
            raise ConfigurationError(
                f"granularity must be one of {', '.join(_GRANULARITIES)}, got {self.granularity!r}"
            )

    def to_mongo(self) -> dict[str, Any]:
        """The ``timeseries`` document of the ``create`` command."""
        spec: dict[str, Any] = {"timeField": self.time_field}
        if self.meta_field is not None:
            spec["metaField"] = self.meta_field
        if self.granularity is not None:
            spec["granularity"] = self.granularity
        return spec


def _to_tuple_of(kind: type[Any], argument: str) -> Any:
    def convert(values: Iterable[Any]) -> tuple[Any, ...]:
        if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
            raise TypeError(f"{argument} must be a sequence of {kind.__name__}, not {type(values).__name__}")
        result = tuple(values)
        for value in result:
            if not isinstance(value, kind):
                raise TypeError(f"{argument} must contain only {kind.__name__}, got {value!r}")
        return result

    return convert


_COLLECTION_NAME_RE: Final = re.compile(r"^system\.")


def check_collection_name(name: Any) -> None:
    """Raise unless ``name`` is a collection name MongoDB accepts."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    if not name:
        raise ConfigurationError("name must not be empty")
    if "$" in name:
        raise ConfigurationError(f"name {name!r} must not contain '$'")
    if "\0" in name:
        raise ConfigurationError(f"name {name!r} must not contain a NUL character")
    if _COLLECTION_NAME_RE.match(name):
        raise ConfigurationError(f"name {name!r} must not start with 'system.' (reserved by MongoDB)")
    if name.startswith(".") or name.endswith("."):
        raise ConfigurationError(f"name {name!r} must not start or end with '.'")


def _indices_converter(values: Iterable[Index]) -> tuple[Index, ...]:
    return cast("tuple[Index, ...]", _to_tuple_of(Index, "indices")(values))


def _default_docs_converter(values: Iterable[Document]) -> tuple[Document, ...]:
    return cast("tuple[Document, ...]", _to_tuple_of(Document, "default_docs")(values))


def _validator_converter(value: Mapping[str, Any] | None) -> FrozenMap | None:
    return cast("FrozenMap | None", _freeze_optional_map("validator")(value))


def _collation_converter(value: Mapping[str, Any] | None) -> FrozenMap | None:
    return cast("FrozenMap | None", _freeze_optional_map("collation")(value))


def _index_key_signature(index: Index) -> tuple[tuple[str, Direction], ...]:
    return tuple(index.fields.items())


def _index_signature(index: Index) -> tuple[Any, ...]:
    """Key pattern, collation and partial filter: two indexes on one key may coexist when the collation or
    the partial filter differs (manual, "Create Indexes with the Same Key Pattern")."""
    collation = (
        index.collation if index.collation is not None and index.collation.get("locale") != "simple" else None
    )
    return (_index_key_signature(index), collation, index.partial_filter_expression)


@attrs.frozen
class CollectionDefinition:
    """A collection as code declares it: its creation options, indexes and default documents.

    Options left at ``None`` are *not managed*: the planner does not compare them with the live
    collection (so a validator added by hand is not fought over).  To remove a validator, declare
    ``validator={}``.
    """

    name: str = attrs.field()
    indices: tuple[Index, ...] = attrs.field(default=(), converter=_indices_converter)
    default_docs: tuple[Document, ...] = attrs.field(default=(), converter=_default_docs_converter)
    validator: FrozenMap | None = attrs.field(default=None, converter=_validator_converter)
    validation_level: str | None = None
    validation_action: str | None = None
    capped: bool = False
    size: int | None = None
    max: int | None = None
    timeseries: TimeSeries | None = None
    expire_after_seconds: int | None = None
    collation: FrozenMap | None = attrs.field(default=None, converter=_collation_converter)

    def __attrs_post_init__(self) -> None:
        check_collection_name(self.name)
        _check_optional_str("validation_level", self.validation_level)
        _check_optional_str("validation_action", self.validation_action)
        if self.validation_level is not None and self.validation_level not in _VALIDATION_LEVELS:
            raise ConfigurationError(
                f"validation_level must be one of {', '.join(_VALIDATION_LEVELS)}, "
                f"got {self.validation_level!r}"
            )
        if self.validation_action is not None and self.validation_action not in _VALIDATION_ACTIONS:
            raise ConfigurationError(
                f"validation_action must be one of {', '.join(_VALIDATION_ACTIONS)}, "
                f"got {self.validation_action!r}"
            )
        if not isinstance(self.capped, bool):
            raise TypeError(f"capped must be a bool, not {self.capped!r}")
        _check_optional_int("size", self.size, minimum=1)
        _check_optional_int("max", self.max, minimum=1)
        _check_optional_int("expire_after_seconds", self.expire_after_seconds, minimum=0, maximum=_TTL_MAX)
        if self.timeseries is not None and not isinstance(self.timeseries, TimeSeries):
            raise TypeError(f"timeseries must be a TimeSeries or None, not {type(self.timeseries).__name__}")
        if self.capped and self.size is None:
            raise ConfigurationError("size is required when capped=True")
        if not self.capped and (self.size is not None or self.max is not None):
            raise ConfigurationError("size and max apply only to capped collections (capped=True)")
        if self.capped and self.timeseries is not None:
            raise ConfigurationError("capped and timeseries cannot be combined")
        if self.expire_after_seconds is not None and self.timeseries is None:
            raise ConfigurationError(
                "expire_after_seconds applies only to time series collections here (set timeseries); "
                "for other collections use a TTL index"
            )
        _check_collation("collation", self.collation)

        names: dict[str, Index] = {}
        keys: dict[tuple[Any, ...], Index] = {}
        text_indexes: list[str] = []
        for index in self.indices:
            if index.name in names:
                raise ConfigurationError(f"indices: two indexes are named {index.name!r} in {self.name!r}")
            names[index.name] = index
            signature = _index_signature(index)
            key = _index_key_signature(index)
            if signature in keys:
                raise ConfigurationError(
                    f"indices: {index.name!r} and {keys[signature].name!r} have the same key pattern "
                    f"{dict(key)!r} in {self.name!r} (and the same collation and partial filter)"
                )
            keys[signature] = index
            if index.is_text:
                text_indexes.append(index.name)
            if self.timeseries is not None and index.unique:
                raise ConfigurationError(
                    f"indices: {index.name!r} is unique, but time series collection {self.name!r} "
                    "cannot have unique indexes"
                )
            if key == (("_id", 1),):
                raise ConfigurationError(
                    f"indices: {index.name!r} duplicates the _id index every collection already has"
                )
        if len(text_indexes) > 1:
            raise ConfigurationError(
                f"indices: a collection can have only one text index, {self.name!r} defines "
                f"{', '.join(map(repr, text_indexes))}"
            )
        if self.timeseries is not None and self.default_docs:
            raise ConfigurationError(
                f"default_docs: time series collection {self.name!r} cannot hold default documents "
                "(they are found and written by unique key, which time series collections do not support)"
            )
        seen_keys: list[FrozenMap] = []
        seen_ids: dict[bytes, FrozenMap] = {}
        for document in self.default_docs:
            if document.unique_key in seen_keys:
                raise ConfigurationError(
                    f"default_docs: two documents of {self.name!r} have the unique key "
                    f"{document.unique_key.to_dict()!r}"
                )
            seen_keys.append(document.unique_key)
            doc_id = bson.encode({"_id": document.document_id(self.name)})
            if doc_id in seen_ids:
                raise ConfigurationError(
                    f"default_docs: documents {seen_ids[doc_id].to_dict()!r} and "
                    f"{document.unique_key.to_dict()!r} of {self.name!r} have the same _id"
                )
            seen_ids[doc_id] = document.unique_key

    def create_options(self) -> dict[str, Any]:
        """Keyword arguments for ``Database.create_collection`` / the ``create`` command, MongoDB names."""
        options: dict[str, Any] = {}
        if self.capped:
            options["capped"] = True
            options["size"] = self.size
            if self.max is not None:
                options["max"] = self.max
        if self.timeseries is not None:
            options["timeseries"] = self.timeseries.to_mongo()
        if self.expire_after_seconds is not None:
            options["expireAfterSeconds"] = self.expire_after_seconds
        if self.validator is not None:
            options["validator"] = self.validator.to_dict()
        if self.validation_level is not None:
            options["validationLevel"] = self.validation_level
        if self.validation_action is not None:
            options["validationAction"] = self.validation_action
        if self.collation is not None:
            options["collation"] = self.collation.to_dict()
        return options
