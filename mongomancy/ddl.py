"""Plan and apply collection definitions: collections, indexes, collection options, default documents.

The work is split in three so each part can be reasoned about (and tested) on its own:

* :func:`read_live_state` asks the server what exists (``listCollections``, ``listIndexes``, one
  ``find_one`` per default document) and returns a frozen :class:`LiveState`;
* :func:`plan` is a *pure* function of the definitions and a :class:`LiveState`: it returns a
  :class:`Plan` you can print (one line per action, like ``terraform plan``), compare and test against
  recorded server answers, without a server;
* :func:`apply_plan` performs a plan, every operation going through an ``execute(description, fn)``
  callable so the engine can wrap each one in its retry policy.

Why indexes are compared by key pattern and options, never by name: mongomancy 0.1 compared names only,
so a changed option (a new TTL, ``unique`` added) went unnoticed forever; and servers do not always keep
the name asked for (the simulator backend renames indexes to ``idx_<collection>_<field>``).  An index
whose key and options match a definition is "present" whatever its name.

Why there is no lock collection: every step is idempotent and converges when several processes run it at
once, so mutual exclusion buys nothing and a lock only adds failure modes (mongomancy 0.1's lock had no
owner or expiry: a crashed process left it held, and the forced unlock after 55 s broke the exclusion it
was meant to give anyway).  Concretely:

* ``create`` of an existing collection fails with NamespaceExists (48), which is taken as success;
* ``createIndexes`` with a spec that already exists is a no-op on the server; a conflict (85/86) is
  re-read and re-planned, and only a real difference is raised;
* ``collMod`` sets absolute values, so running it twice is the same as once;
* a default document is written by an upsert with ``$setOnInsert`` only, matching its unique key *or*
  its deterministic ``_id`` (:meth:`~mongomancy.types.Document.document_id`).  Two processes upserting at
  once both miss and both insert the same ``_id``: the server refuses the second (duplicate key, 11000),
  whose retry then matches the winner's document.  Exactly one copy, with or without a unique index.

The one step that is not naturally idempotent, drop-and-re-create of an index whose options cannot be
changed in place, needs ``allow_drop=True`` and re-reads the index just before dropping it, so a process
that comes second sees the re-created index and leaves it alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Protocol, TypeVar

import attrs
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, OperationFailure

from mongomancy.errors import IndexConflictError, SchemaError
from mongomancy.types import CollectionDefinition, Direction, Document, FrozenMap, Index, thaw

__all__ = [
    "ApplyResult",
    "CollectionConflict",
    "CreateCollection",
    "CreateIndex",
    "Execute",
    "ExtraIndex",
    "IndexChange",
    "InsertDocument",
    "LiveCollection",
    "LiveState",
    "ModifyCollection",
    "Plan",
    "apply_plan",
    "plan",
    "read_live_state",
]

T = TypeVar("T")

NAMESPACE_EXISTS: Final = 48
INDEX_NOT_FOUND: Final = 27
INDEX_ALREADY_EXISTS: Final = 68
INDEX_OPTIONS_CONFLICT: Final = 85
INDEX_KEY_SPECS_CONFLICT: Final = 86
_INDEX_CONFLICT_CODES: Final = frozenset(
    {INDEX_ALREADY_EXISTS, INDEX_OPTIONS_CONFLICT, INDEX_KEY_SPECS_CONFLICT}
)

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

_GRANULARITY_ORDER: Final = ("seconds", "minutes", "hours")
_UPSERT_ATTEMPTS: Final = 3


class Execute(Protocol):
    """How :func:`apply_plan` runs each operation: ``execute(description, fn) -> fn(database)``.

    The engine passes its retry-wrapped runner; tests pass ``lambda description, fn: fn(raw_db)``.
    Every ``fn`` is idempotent, so running it again after an ambiguous failure is safe.
    """

    def __call__(self, description: str, fn: Callable[[Database[Any]], T], /) -> T: ...


# --------------------------------------------------------------------------------------------------
# Normalisation of server answers and definitions
# --------------------------------------------------------------------------------------------------


def _canon(value: Any) -> Any:
    """A hashable, order-insensitive (for mappings) form in which 1 == 1.0 == Int64(1)."""
    if isinstance(value, Mapping):
        return ("{}", tuple(sorted((str(k), _canon(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("[]", tuple(_canon(v) for v in value))
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return int(value)
    return value


def _same(a: Any, b: Any) -> bool:
    return bool(_canon(a) == _canon(b))


def _direction(value: Any) -> Direction:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and float(value).is_integer():
        return int(value)
    if isinstance(value, str):
        return value
    return str(value)


@attrs.frozen
class _NormIndex:
    """An index reduced to what decides equality: key pattern (ordered) and non-default options."""

    name: str
    key: tuple[tuple[str, Direction], ...]
    options: FrozenMap

    @property
    def key_dict(self) -> dict[str, Direction]:
        return dict(self.key)


def _drop_defaults(options: dict[str, Any]) -> dict[str, Any]:
    result = {}
    for option, value in options.items():
        if value is None:
            continue
        if option in _INDEX_OPTION_DEFAULTS and _same(value, _INDEX_OPTION_DEFAULTS[option]):
            continue
        if option == "collation":
            if value.get("locale") == "simple":
                continue
            result[option] = {k: v for k, v in value.items() if k != "version"}
            continue
        result[option] = value
    return result


def _normalise_live_index(document: Mapping[str, Any]) -> _NormIndex:
    """A ``listIndexes`` document as the planner compares it."""
    key = tuple((str(field), _direction(direction)) for field, direction in document["key"].items())
    options = {option: thaw(document[option]) for option in COMPARED_INDEX_OPTIONS if option in document}
    return _NormIndex(name=str(document.get("name", "")), key=key, options=FrozenMap(_drop_defaults(options)))


def _normalise_defined_index(index: Index, inherited_collation: Mapping[str, Any] | None) -> _NormIndex:
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
    return _NormIndex(name=index.name, key=key, options=FrozenMap(_drop_defaults(options)))


def _collation_matches(wanted: Any, live: Any) -> bool:
    """Collations match when every field the definition states has the live value.

    The server answers with the collation fully expanded (``caseLevel``, ``alternate``, ``version``...,
    defaults depending on the locale), so only the fields the definition states can be compared.
    """
    if wanted is None or live is None:
        return wanted is None and live is None
    return all(_same(value, live.get(field)) for field, value in wanted.items() if field != "version")


def _index_differences(wanted: _NormIndex, live: _NormIndex) -> dict[str, tuple[Any, Any]]:
    """``{option: (live value, wanted value)}`` for each option that differs (key excluded)."""
    differences: dict[str, tuple[Any, Any]] = {}
    for option in COMPARED_INDEX_OPTIONS:
        wanted_value = wanted.options.get(option)
        live_value = live.options.get(option)
        if option == "collation":
            equal = _collation_matches(wanted_value, live_value)
        else:
            equal = _same(wanted_value, live_value)
        if not equal:
            differences[option] = (thaw(live_value), thaw(wanted_value))
    return differences


def _changes_in_place(differences: Mapping[str, tuple[Any, Any]]) -> bool:
    """True when ``collMod`` can apply every difference (removing a TTL cannot: that needs a re-create)."""
    if not set(differences) <= IN_PLACE_INDEX_OPTIONS:
        return False
    ttl = differences.get("expireAfterSeconds")
    return ttl is None or ttl[1] is not None


def _is_id_index(index: _NormIndex) -> bool:
    return index.name == "_id_" or index.key == (("_id", 1),)


def _plain_differences(differences: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{option: (live, wanted)}`` with plain dicts/lists inside, for error objects and callers."""
    return {option: (thaw(change[0]), thaw(change[1])) for option, change in differences.items()}


def _format_value(value: Any) -> str:
    return repr(thaw(value))


def _format_differences(differences: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{option} {_format_value(d[0])} -> {_format_value(d[1])}" for option, d in differences.items()
    )


# --------------------------------------------------------------------------------------------------
# Live state
# --------------------------------------------------------------------------------------------------


def _to_frozen_map(value: Mapping[str, Any]) -> FrozenMap:
    return FrozenMap(value)


def _to_frozen_maps(values: Iterable[Mapping[str, Any]]) -> tuple[FrozenMap, ...]:
    return tuple(FrozenMap(value) for value in values)


@attrs.frozen
class LiveCollection:
    """One existing collection as the server describes it.

    ``options`` is the ``options`` field of its ``listCollections`` entry, ``type`` its ``type``
    (``"collection"``, ``"timeseries"`` or ``"view"``), ``indexes`` the raw ``listIndexes`` documents.
    """

    name: str
    options: FrozenMap = attrs.field(factory=FrozenMap, converter=_to_frozen_map)
    indexes: tuple[FrozenMap, ...] = attrs.field(default=(), converter=_to_frozen_maps)
    type: str = "collection"

    @classmethod
    def from_server(
        cls, collection_info: Mapping[str, Any], indexes: Iterable[Mapping[str, Any]]
    ) -> LiveCollection:
        """Build from a ``listCollections`` entry and the collection's ``listIndexes`` documents."""
        return cls(
            name=str(collection_info["name"]),
            options=collection_info.get("options", {}),
            indexes=indexes,
            type=str(collection_info.get("type", "collection")),
        )


def _to_collections(values: Iterable[LiveCollection] | Mapping[str, LiveCollection]) -> FrozenMap:
    items = values.values() if isinstance(values, Mapping) else values
    return FrozenMap({collection.name: collection for collection in items})


def _to_present_documents(
    values: Iterable[tuple[str, Mapping[str, Any]]],
) -> frozenset[tuple[str, FrozenMap]]:
    return frozenset((str(name), FrozenMap(key)) for name, key in values)


@attrs.frozen
class LiveState:
    """What exists on the server, as far as the definitions care.

    ``collections`` maps a name to its :class:`LiveCollection` (collections that do not exist are absent);
    ``present_documents`` holds ``(collection, unique_key)`` for each default document already there.
    """

    collections: FrozenMap = attrs.field(factory=FrozenMap, converter=_to_collections)
    present_documents: frozenset[tuple[str, FrozenMap]] = attrs.field(
        factory=frozenset, converter=_to_present_documents
    )

    def collection(self, name: str) -> LiveCollection | None:
        """The live collection called ``name``, or None when it does not exist."""
        found = self.collections.get(name)
        return found if isinstance(found, LiveCollection) else None

    def has_document(self, collection: str, document: Document) -> bool:
        """True when the default document is present in ``collection``."""
        return (collection, document.unique_key) in self.present_documents


def _document_filter(collection: str, document: Document) -> dict[str, Any]:
    """Matches the default document by its unique key, or by the ``_id`` mongomancy gives it.

    Matching the ``_id`` too means a document users have edited (even its unique-key fields) still counts
    as present: it is never inserted a second time, nor overwritten.
    """
    by_key = document.filter()
    by_id = {"_id": document.document_id(collection)}
    if by_key == by_id:
        return by_key
    return {"$or": [by_key, by_id]}


def read_live_state(db: Database[Any], definitions: Iterable[CollectionDefinition]) -> LiveState:
    """Ask the server about the collections, indexes and default documents the definitions name.

    Read-only and idempotent: the engine may run (and retry) it as one operation.
    """
    definitions = tuple(definitions)
    names = [definition.name for definition in definitions]
    infos = {info["name"]: info for info in db.list_collections(filter={"name": {"$in": names}})}
    collections = []
    present: list[tuple[str, Mapping[str, Any]]] = []
    for definition in definitions:
        info = infos.get(definition.name)
        if info is None:
            continue
        indexes = [] if info.get("type") == "view" else list(db[definition.name].list_indexes())
        collections.append(LiveCollection.from_server(info, indexes))
        for document in definition.default_docs:
            query = _document_filter(definition.name, document)
            if db[definition.name].find_one(query, projection={"_id": 1}) is not None:
                present.append((definition.name, document.unique_key))
    return LiveState(collections=collections, present_documents=present)


# --------------------------------------------------------------------------------------------------
# Plan
# --------------------------------------------------------------------------------------------------


@attrs.frozen
class CreateCollection:
    """Create a missing collection with these ``create`` options."""

    collection: str
    options: FrozenMap = attrs.field(factory=FrozenMap, converter=_to_frozen_map)

    def __str__(self) -> str:
        options = f" {_format_value(self.options)}" if self.options else ""
        return f"+ create collection {self.collection}{options}"


@attrs.frozen
class ModifyCollection:
    """Change collection options in place with ``collMod``: ``changes`` is ``{option: (live, wanted)}``."""

    collection: str
    changes: FrozenMap = attrs.field(converter=_to_frozen_map)

    def command(self) -> dict[str, Any]:
        """The ``collMod`` arguments (without the collection name)."""
        return {option: thaw(change[1]) for option, change in self.changes.items()}

    def __str__(self) -> str:
        return f"~ modify collection {self.collection} (collMod): {_format_differences(self.changes)}"


@attrs.frozen
class CollectionConflict:
    """A collection option that differs and cannot change without re-creating the collection.

    mongomancy never drops a collection: this needs a manual migration, so :func:`apply_plan` refuses.
    """

    collection: str
    differences: FrozenMap = attrs.field(converter=_to_frozen_map)

    def __str__(self) -> str:
        return (
            f"! cannot change collection {self.collection}: {_format_differences(self.differences)}"
            " (needs a manual migration)"
        )


@attrs.frozen
class CreateIndex:
    """Create a missing index.

    ``inherited_collation`` is the collection's default collation, kept so a conflict at apply time can
    be re-planned exactly as here.
    """

    collection: str
    index: Index
    inherited_collation: FrozenMap | None = attrs.field(default=None, repr=False)

    def __str__(self) -> str:
        spec = self.index.to_mongo()
        del spec["name"]
        return f"+ create index {self.collection}.{self.index.name} {_format_value(spec)}"


@attrs.frozen
class IndexChange:
    """An index whose key matches a definition but whose options differ: ``{option: (live, wanted)}``.

    In :attr:`Plan.modify_indexes` it is changed in place by ``collMod``; in :attr:`Plan.recreate_indexes`
    it must be dropped (``live_name``) and created again.
    """

    collection: str
    live_name: str
    index: Index
    differences: FrozenMap = attrs.field(converter=_to_frozen_map)
    inherited_collation: FrozenMap | None = attrs.field(default=None, repr=False)

    def collmod_index(self) -> dict[str, Any]:
        """The ``index`` argument of ``collMod`` for an in-place change."""
        changes = {option: thaw(change[1]) for option, change in self.differences.items()}
        if "hidden" in changes:
            changes["hidden"] = bool(changes["hidden"])
        return {"name": self.live_name, **changes}

    def _label(self) -> str:
        live = f" (live name {self.live_name})" if self.live_name != self.index.name else ""
        return f"{self.collection}.{self.index.name}{live}"

    def describe_modify(self) -> str:
        return f"~ modify index {self._label()} (collMod): {_format_differences(self.differences)}"

    def describe_recreate(self) -> str:
        return (
            f"-/+ drop and re-create index {self._label()}: {_format_differences(self.differences)}"
            " (needs allow_drop=True)"
        )


@attrs.frozen
class ExtraIndex:
    """An index on the server that no definition asks for.  Reported, never dropped."""

    collection: str
    name: str
    key: FrozenMap = attrs.field(converter=_to_frozen_map)

    def __str__(self) -> str:
        key = _format_value(self.key)
        return f"? extra index {self.collection}.{self.name} {key} (not defined; left in place)"


@attrs.frozen
class InsertDocument:
    """Insert a missing default document (by an idempotent upsert)."""

    collection: str
    document: Document

    def __str__(self) -> str:
        return f"+ insert default document {self.collection} {_format_value(self.document.unique_key)}"


def _sorted(actions: Iterable[T], key: Callable[[T], Any]) -> tuple[T, ...]:
    return tuple(sorted(actions, key=key))


@attrs.frozen
class Plan:
    """What :func:`apply_plan` would do, sorted deterministically so two plans compare with ``==``.

    ``extra_indexes`` is informational only: :attr:`is_empty` ignores it and nothing drops them.
    """

    create_collections: tuple[CreateCollection, ...] = ()
    modify_collections: tuple[ModifyCollection, ...] = ()
    collection_conflicts: tuple[CollectionConflict, ...] = ()
    recreate_indexes: tuple[IndexChange, ...] = ()
    modify_indexes: tuple[IndexChange, ...] = ()
    create_indexes: tuple[CreateIndex, ...] = ()
    insert_documents: tuple[InsertDocument, ...] = ()
    extra_indexes: tuple[ExtraIndex, ...] = ()

    @property
    def is_empty(self) -> bool:
        """True when the live database already matches the definitions (extra indexes aside)."""
        return not (
            self.create_collections
            or self.modify_collections
            or self.collection_conflicts
            or self.recreate_indexes
            or self.modify_indexes
            or self.create_indexes
            or self.insert_documents
        )

    def lines(self) -> list[str]:
        """One line per action, in the order :func:`apply_plan` performs them."""
        return [
            *(str(a) for a in self.collection_conflicts),
            *(str(a) for a in self.create_collections),
            *(str(a) for a in self.modify_collections),
            *(a.describe_recreate() for a in self.recreate_indexes),
            *(a.describe_modify() for a in self.modify_indexes),
            *(str(a) for a in self.create_indexes),
            *(str(a) for a in self.insert_documents),
            *(str(a) for a in self.extra_indexes),
        ]

    def __str__(self) -> str:
        lines = self.lines()
        if self.is_empty:
            lines.insert(0, "No changes: the database matches the definitions.")
        return "\n".join(lines)


def _size_matches(wanted: int, live: Any) -> bool:
    # The server may round a capped size up (to 4096 bytes at least, then to a multiple of 256).
    rounded = max(4096, -(-wanted // 256) * 256)
    return _same(live, wanted) or _same(live, rounded)


def _plan_collection_options(
    definition: CollectionDefinition, live: LiveCollection
) -> tuple[dict[str, tuple[Any, Any]], dict[str, tuple[Any, Any]]]:
    """``(collMod changes, conflicts)`` between a definition and an existing collection.

    Options the definition leaves at ``None`` are not managed and never compared.
    """
    changes: dict[str, tuple[Any, Any]] = {}
    conflicts: dict[str, tuple[Any, Any]] = {}
    options = live.options
    if live.type == "view":
        conflicts["type"] = ("view", "collection")
        return changes, conflicts
    if definition.validator is not None and not _same(definition.validator, options.get("validator", {})):
        changes["validator"] = (thaw(options.get("validator")), definition.validator.to_dict())
    for option, attribute, default in (
        ("validationLevel", definition.validation_level, "strict"),
        ("validationAction", definition.validation_action, "error"),
    ):
        if attribute is not None and attribute != options.get(option, default):
            changes[option] = (options.get(option, default), attribute)
    if definition.capped:
        if not options.get("capped", False):
            conflicts["capped"] = (False, True)
        else:
            assert definition.size is not None  # guaranteed by CollectionDefinition
            if not _size_matches(definition.size, options.get("size")):
                changes["cappedSize"] = (options.get("size"), definition.size)
            if definition.max is not None and not _same(options.get("max"), definition.max):
                changes["cappedMax"] = (options.get("max"), definition.max)
    if definition.timeseries is not None:
        live_ts = options.get("timeseries")
        wanted_ts = definition.timeseries
        if live_ts is None:
            conflicts["timeseries"] = (None, wanted_ts.to_mongo())
        else:
            for option, wanted_value in (
                ("timeField", wanted_ts.time_field),
                ("metaField", wanted_ts.meta_field),
            ):
                if live_ts.get(option) != wanted_value:
                    conflicts[f"timeseries.{option}"] = (live_ts.get(option), wanted_value)
            live_granularity = live_ts.get("granularity", "seconds")
            wanted_granularity = wanted_ts.granularity or "seconds"
            if live_granularity != wanted_granularity:
                order = _GRANULARITY_ORDER
                if live_granularity in order and order.index(wanted_granularity) > order.index(
                    live_granularity
                ):
                    changes["timeseries"] = (
                        {"granularity": live_granularity},
                        {"granularity": wanted_granularity},
                    )
                else:  # the server only lets granularity grow
                    conflicts["timeseries.granularity"] = (live_granularity, wanted_granularity)
    if definition.expire_after_seconds is not None and not _same(
        options.get("expireAfterSeconds"), definition.expire_after_seconds
    ):
        changes["expireAfterSeconds"] = (options.get("expireAfterSeconds"), definition.expire_after_seconds)
    if definition.collation is not None and not _collation_matches(
        definition.collation, options.get("collation")
    ):
        conflicts["collation"] = (thaw(options.get("collation")), definition.collation.to_dict())
    return changes, conflicts


def _live_indexes(live: LiveCollection) -> list[_NormIndex]:
    return [index for index in map(_normalise_live_index, live.indexes) if not _is_id_index(index)]


def _match_index(
    wanted: _NormIndex, live_indexes: list[_NormIndex], taken: set[int]
) -> tuple[int | None, dict[str, tuple[Any, Any]]]:
    """Find the live index for ``wanted``: same key and options first, then same key (preferring the
    same name).  Returns ``(position or None, differences)``."""
    candidates = [i for i, live in enumerate(live_indexes) if live.key == wanted.key and i not in taken]
    candidates.sort(key=lambda i: live_indexes[i].name != wanted.name)
    for i in candidates:
        if not _index_differences(wanted, live_indexes[i]):
            return i, {}
    if candidates:
        return candidates[0], _index_differences(wanted, live_indexes[candidates[0]])
    return None, {}


@attrs.define
class _IndexPlan:
    creates: list[CreateIndex] = attrs.Factory(list)
    modifies: list[IndexChange] = attrs.Factory(list)
    recreates: list[IndexChange] = attrs.Factory(list)
    extras: list[ExtraIndex] = attrs.Factory(list)


def _plan_indexes(
    collection: str,
    indices: Iterable[Index],
    live_indexes: list[_NormIndex],
    inherited_collation: FrozenMap | None,
) -> _IndexPlan:
    result = _IndexPlan()
    taken: dict[int, Index] = {}
    pending: list[tuple[Index, _NormIndex]] = []
    wanted_by_index = {index: _normalise_defined_index(index, inherited_collation) for index in indices}
    # Pass 1: exact matches (key and options), so a changed duplicate cannot steal an identical index.
    for index, wanted in wanted_by_index.items():
        position, differences = _match_index(wanted, live_indexes, set(taken))
        if position is not None and not differences:
            taken[position] = index
        else:
            pending.append((index, wanted))
    # Pass 2: same key with other options, name clashes, and missing indexes.
    displaced: set[int] = set()
    for index, wanted in pending:
        position, differences = _match_index(wanted, live_indexes, set(taken))
        if position is not None:
            taken[position] = index
            change = IndexChange(
                collection, live_indexes[position].name, index, differences, inherited_collation
            )
            (result.modifies if _changes_in_place(differences) else result.recreates).append(change)
            continue
        clash = next((i for i, live in enumerate(live_indexes) if live.name == index.name), None)
        if clash is None:
            result.creates.append(CreateIndex(collection, index, inherited_collation))
            continue
        # The name is held by an index with another key: creating ours would fail (IndexKeySpecsConflict).
        differences = {"key": (live_indexes[clash].key_dict, wanted.key_dict)}
        result.recreates.append(IndexChange(collection, index.name, index, differences, inherited_collation))
        displaced.add(clash)
        if clash in taken:  # the dropped index satisfied another definition, which must be re-created
            other = taken.pop(clash)
            result.modifies = [m for m in result.modifies if m.index != other]
            result.recreates = [r for r in result.recreates if r.index != other]
            result.creates.append(CreateIndex(collection, other, inherited_collation))
    for position, live in enumerate(live_indexes):
        if position not in taken and position not in displaced:
            result.extras.append(ExtraIndex(collection, live.name, live.key_dict))
    return result


def plan(definitions: Iterable[CollectionDefinition], live: LiveState) -> Plan:
    """Compare the definitions with the live state and say what :func:`apply_plan` has to do.

    Pure: no I/O, the same inputs always give an equal plan.
    """
    create_collections: list[CreateCollection] = []
    modify_collections: list[ModifyCollection] = []
    conflicts: list[CollectionConflict] = []
    indexes = _IndexPlan()
    documents: list[InsertDocument] = []
    for definition in definitions:
        name = definition.name
        live_collection = live.collection(name)
        if live_collection is None:
            create_collections.append(CreateCollection(name, definition.create_options()))
            indexes.creates.extend(
                CreateIndex(name, index, definition.collation) for index in definition.indices
            )
            documents.extend(InsertDocument(name, document) for document in definition.default_docs)
            continue
        changes, differences = _plan_collection_options(definition, live_collection)
        if changes:
            modify_collections.append(ModifyCollection(name, changes))
        if differences:
            conflicts.append(CollectionConflict(name, differences))
        inherited = definition.collation
        if inherited is None and isinstance(live_collection.options.get("collation"), FrozenMap):
            inherited = live_collection.options["collation"]
        collection_plan = _plan_indexes(name, definition.indices, _live_indexes(live_collection), inherited)
        indexes.creates.extend(collection_plan.creates)
        indexes.modifies.extend(collection_plan.modifies)
        indexes.recreates.extend(collection_plan.recreates)
        indexes.extras.extend(collection_plan.extras)
        documents.extend(
            InsertDocument(name, document)
            for document in definition.default_docs
            if not live.has_document(name, document)
        )

    def index_key(action: CreateIndex | IndexChange) -> tuple[str, str]:
        return (action.collection, action.index.name)

    return Plan(
        create_collections=_sorted(create_collections, key=lambda a: a.collection),
        modify_collections=_sorted(modify_collections, key=lambda a: a.collection),
        collection_conflicts=_sorted(conflicts, key=lambda a: a.collection),
        recreate_indexes=_sorted(indexes.recreates, key=index_key),
        modify_indexes=_sorted(indexes.modifies, key=index_key),
        create_indexes=_sorted(indexes.creates, key=index_key),
        insert_documents=_sorted(
            documents, key=lambda a: (a.collection, repr(sorted(a.document.filter().items())))
        ),
        extra_indexes=_sorted(indexes.extras, key=lambda a: (a.collection, a.name)),
    )


# --------------------------------------------------------------------------------------------------
# Apply
# --------------------------------------------------------------------------------------------------


@attrs.frozen
class ApplyResult:
    """What :func:`apply_plan` did.  Names are ``collection`` or ``collection.index``.

    The ``*_already`` fields list work another process (or an earlier run) had done in the meantime,
    which is normal when several processes apply the same definitions at once.
    """

    created_collections: tuple[str, ...] = ()
    collections_already_created: tuple[str, ...] = ()
    modified_collections: tuple[str, ...] = ()
    recreated_indexes: tuple[str, ...] = ()
    modified_indexes: tuple[str, ...] = ()
    created_indexes: tuple[str, ...] = ()
    indexes_already_present: tuple[str, ...] = ()
    inserted_documents: tuple[str, ...] = ()
    documents_already_present: tuple[str, ...] = ()
    extra_indexes: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """True when this call changed something on the server."""
        return bool(
            self.created_collections
            or self.modified_collections
            or self.recreated_indexes
            or self.modified_indexes
            or self.created_indexes
            or self.inserted_documents
        )

    def __str__(self) -> str:
        parts = [
            f"{label}: {', '.join(values)}"
            for label, values in attrs.asdict(self, recurse=False).items()
            if values
        ]
        return "\n".join(parts) if parts else "nothing to do"


def _add_note(exc: BaseException, note: str) -> None:
    add_note = getattr(exc, "add_note", None)  # Python 3.11+
    if add_note is not None:
        add_note(note)


def _run(execute: Execute, description: str, fn: Callable[[Database[Any]], T]) -> T:
    """Run one step through ``execute``; a failure keeps its type and gains a note saying what failed.

    The type is kept on purpose: the engine's retry policy classifies driver errors by type.
    """
    try:
        return execute(description, fn)
    except Exception as exc:
        _add_note(exc, f"mongomancy: while trying to {description}")
        raise


def _create_collection(name: str, options: Mapping[str, Any]) -> Callable[[Database[Any]], bool]:
    def run(db: Database[Any]) -> bool:
        try:
            db.command("create", name, **options)
        except OperationFailure as exc:
            if exc.code == NAMESPACE_EXISTS:
                return False  # created meanwhile by another process: any option drift shows in the next plan
            raise
        return True

    return run


def _reread_index(
    db: Database[Any], action: CreateIndex | IndexChange
) -> tuple[str, int | None, dict[str, Any]]:
    """Re-plan one index against the server now: ``(verdict, position, differences)``.

    verdict is ``"present"``, ``"differs"`` (same key, other options), ``"name-clash"`` or ``"missing"``.
    """
    live = [
        index
        for index in map(_normalise_live_index, db[action.collection].list_indexes())
        if not _is_id_index(index)
    ]
    wanted = _normalise_defined_index(action.index, action.inherited_collation)
    position, differences = _match_index(wanted, live, set())
    if position is not None:
        return ("present" if not differences else "differs"), position, differences
    clash = next((i for i, index in enumerate(live) if index.name == action.index.name), None)
    if clash is not None:
        return "name-clash", clash, {"key": (live[clash].key_dict, wanted.key_dict)}
    return "missing", None, {}


def _create_index(action: CreateIndex | IndexChange) -> Callable[[Database[Any]], bool]:
    spec = action.index.to_mongo()
    collection = action.collection

    def run(db: Database[Any]) -> bool:
        try:
            reply = db.command("createIndexes", collection, indexes=[spec])
        except OperationFailure as exc:
            if exc.code not in _INDEX_CONFLICT_CODES:
                raise
            verdict, _, differences = _reread_index(db, action)
            if verdict == "present":  # created meanwhile under another name: the same index
                return False
            raise IndexConflictError(
                f"cannot create index {action.index.name!r} on {collection!r}: an existing index conflicts "
                f"({_format_differences(differences) or exc.details}); "
                "re-plan and apply with allow_drop=True to replace it",
                collection=collection,
                index=action.index.name,
                differences=differences,
            ) from exc
        before, after = reply.get("numIndexesBefore"), reply.get("numIndexesAfter")
        return not (before is not None and before == after)

    return run


def _drop_for_recreate(action: IndexChange) -> Callable[[Database[Any]], bool]:
    def run(db: Database[Any]) -> bool:
        verdict, _, _ = _reread_index(db, action)
        if verdict == "present":  # another process re-created it already
            return False
        try:
            db.command("dropIndexes", action.collection, index=action.live_name)
        except OperationFailure as exc:
            if exc.code != INDEX_NOT_FOUND:
                raise
        return True

    return run


def _collmod(collection: str, arguments: Mapping[str, Any]) -> Callable[[Database[Any]], Any]:
    """``collMod`` sets absolute values, so it is idempotent as it stands."""

    def run(db: Database[Any]) -> Any:
        return db.command("collMod", collection, **arguments)

    return run


def _upsert_document(collection: str, document: Document) -> Callable[[Database[Any]], bool]:
    query = _document_filter(collection, document)
    update = {"$setOnInsert": {**document.to_mongo(), "_id": document.document_id(collection)}}

    def run(db: Database[Any]) -> bool:
        last_error: DuplicateKeyError | None = None
        for _ in range(_UPSERT_ATTEMPTS):
            try:
                result = db[collection].update_one(query, update, upsert=True)
            except DuplicateKeyError as exc:
                # Another process inserted the same _id between our miss and our insert: retrying now
                # matches its document.  If it still fails, another unique index refuses the document.
                last_error = exc
                continue
            return result.upserted_id is not None
        raise SchemaError(
            f"default document {document.filter()!r} of {collection!r} cannot be inserted: "
            f"a unique index refuses it and no document matches its unique key ({last_error})"
        ) from last_error

    return run


def apply_plan(plan: Plan, execute: Execute, *, allow_drop: bool = False) -> ApplyResult:
    """Perform ``plan``; every step through ``execute`` and safe to run from several processes at once.

    Raises before changing anything when the plan contains a collection conflict
    (:class:`~mongomancy.errors.SchemaError`) or an index that must be dropped and re-created while
    ``allow_drop`` is False (:class:`~mongomancy.errors.IndexConflictError`).  Extra indexes are never
    dropped.  Server errors are not swallowed: they propagate with their type, plus a note naming the step.
    """
    if plan.collection_conflicts:
        raise SchemaError(
            "the live collections cannot be brought in line without re-creating them (mongomancy never "
            "drops a collection): " + "; ".join(str(c) for c in plan.collection_conflicts)
        )
    if plan.recreate_indexes and not allow_drop:
        first = plan.recreate_indexes[0]
        raise IndexConflictError(
            "these indexes can only change by dropping and re-creating them; pass allow_drop=True "
            "to do so: " + "; ".join(change.describe_recreate() for change in plan.recreate_indexes),
            collection=first.collection,
            index=first.index.name,
            differences=_plain_differences(first.differences),
        )

    created_collections: list[str] = []
    collections_already: list[str] = []
    for create in plan.create_collections:
        options = create.options.to_dict()
        created = _run(
            execute, f"create collection {create.collection}", _create_collection(create.collection, options)
        )
        (created_collections if created else collections_already).append(create.collection)

    modified_collections: list[str] = []
    for modify in plan.modify_collections:
        command = modify.command()
        _run(
            execute,
            f"modify collection {modify.collection} ({', '.join(command)})",
            _collmod(modify.collection, command),
        )
        modified_collections.append(modify.collection)

    recreated: list[str] = []
    created_indexes: list[str] = []
    indexes_already: list[str] = []
    for change in plan.recreate_indexes:
        label = f"{change.collection}.{change.index.name}"
        dropped = _run(
            execute,
            f"drop index {change.collection}.{change.live_name} to re-create it",
            _drop_for_recreate(change),
        )
        if not dropped:
            indexes_already.append(label)
            continue
        _run(execute, f"re-create index {label}", _create_index(change))
        recreated.append(label)

    modified_indexes: list[str] = []
    for change in plan.modify_indexes:
        index_spec = change.collmod_index()
        _run(
            execute,
            f"modify index {change.collection}.{change.live_name}",
            _collmod(change.collection, {"index": index_spec}),
        )
        modified_indexes.append(f"{change.collection}.{change.index.name}")

    for create_index in plan.create_indexes:
        label = f"{create_index.collection}.{create_index.index.name}"
        created = _run(execute, f"create index {label}", _create_index(create_index))
        (created_indexes if created else indexes_already).append(label)

    inserted: list[str] = []
    documents_already: list[str] = []
    for insert in plan.insert_documents:
        label = f"{insert.collection} {insert.document.filter()!r}"
        done = _run(
            execute, f"insert default document {label}", _upsert_document(insert.collection, insert.document)
        )
        (inserted if done else documents_already).append(label)

    return ApplyResult(
        created_collections=tuple(created_collections),
        collections_already_created=tuple(collections_already),
        modified_collections=tuple(modified_collections),
        recreated_indexes=tuple(recreated),
        modified_indexes=tuple(modified_indexes),
        created_indexes=tuple(created_indexes),
        indexes_already_present=tuple(indexes_already),
        inserted_documents=tuple(inserted),
        documents_already_present=tuple(documents_already),
        extra_indexes=tuple(f"{extra.collection}.{extra.name}" for extra in plan.extra_indexes),
    )
