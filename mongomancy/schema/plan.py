"""The plan: a pure diff of collection definitions against a :class:`~mongomancy.schema.live.LiveState`.

:func:`plan` does no I/O, so the same inputs always give an equal :class:`Plan`, which prints one line
per action (like ``terraform plan``) and is tested against recorded server answers without a server.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar

import attrs
import bson
from bson import json_util

from mongomancy.schema.definitions import CollectionDefinition, Direction, Document, FrozenMap, Index, thaw
from mongomancy.schema.live import LiveCollection, LiveState
from mongomancy.schema.normalise import (
    NormIndex,
    buildable_beside,
    changes_in_place,
    collation_matches,
    format_differences,
    format_value,
    index_differences,
    is_id_index,
    normalise_defined_index,
    normalise_live_index,
    only_stricter,
    same,
    same_filter,
)

__all__ = [
    "CollectionConflict",
    "CreateCollection",
    "CreateIndex",
    "ExtraIndex",
    "IndexChange",
    "IndexNote",
    "InsertDocument",
    "ModifyCollection",
    "Plan",
    "alternate_index_name",
    "is_building",
    "match_index",
    "plan",
]

T = TypeVar("T")

_GRANULARITY_ORDER: Final = ("seconds", "minutes", "hours")


def _to_frozen_map(value: Any) -> FrozenMap:
    return FrozenMap(value)


# --------------------------------------------------------------------------------------------------


@attrs.frozen
class CreateCollection:
    """Create a missing collection with these ``create`` options."""

    collection: str
    options: FrozenMap = attrs.field(factory=FrozenMap, converter=_to_frozen_map)

    def __str__(self) -> str:
        options = f" {format_value(self.options)}" if self.options else ""
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
        return f"~ modify collection {self.collection} (collMod): {format_differences(self.changes)}"


@attrs.frozen
class CollectionConflict:
    """A collection option that differs and cannot change without re-creating the collection.

    mongomancy never drops a collection: this needs a manual migration, so :func:`apply_plan` refuses.
    """

    collection: str
    differences: FrozenMap = attrs.field(converter=_to_frozen_map)

    def __str__(self) -> str:
        return (
            f"! cannot change collection {self.collection}: {format_differences(self.differences)}"
            " (needs a manual migration)"
        )


@attrs.frozen
class CreateIndex:
    """Create a missing index, under ``name`` (the definition's name unless that name is taken on the
    server by an index with another key, which is then left alone).

    ``inherited_collation`` is the collection's default collation, kept so the index can be re-planned at
    apply time exactly as here; ``in_progress`` says a ``createIndexes`` building it is running on the
    server now (applying joins that build instead of starting another).
    """

    collection: str
    index: Index
    inherited_collation: FrozenMap | None = attrs.field(default=None, repr=False)
    name: str = attrs.field(default="")
    in_progress: bool = False

    def __attrs_post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.index.name)

    def spec(self) -> dict[str, Any]:
        """The index document for ``createIndexes``."""
        return {**self.index.to_mongo(), "name": self.name}

    def to_json(self) -> dict[str, Any]:
        return {"collection": self.collection, "index": self.name, "spec": _json_safe(self.spec())}

    def __str__(self) -> str:
        spec = self.index.to_mongo()
        del spec["name"]
        renamed = (
            f" as {self.name} (the name {self.index.name} is taken)" if self.name != self.index.name else ""
        )
        building = " (a build is in progress on the server: waits for it)" if self.in_progress else ""
        return f"+ create index {self.collection}.{self.index.name}{renamed} {format_value(spec)}{building}"


@attrs.frozen
class IndexChange:
    """An index whose key matches a definition but whose options differ: ``{option: (live, wanted)}``.

    In :attr:`Plan.modify_indexes` it is changed in place by ``collMod``.  In
    :attr:`Plan.recreate_indexes` it is replaced: when ``replacement_name`` is set the new index is built
    beside the old one under that name and the old one (``live_name``) is dropped only once the new one
    exists; otherwise (options a server cannot hold twice, such as a removed TTL) the old one must be
    dropped before the new one is built.
    """

    collection: str
    live_name: str
    index: Index
    differences: FrozenMap = attrs.field(converter=_to_frozen_map)
    inherited_collation: FrozenMap | None = attrs.field(default=None, repr=False)
    replacement_name: str | None = None

    @property
    def beside(self) -> bool:
        """True when the replacement is built before the old index is dropped."""
        return self.replacement_name is not None

    def collmod_index(self) -> dict[str, Any]:
        """The ``index`` argument of ``collMod`` for an in-place change."""
        changes = {option: thaw(change[1]) for option, change in self.differences.items()}
        if "hidden" in changes:
            changes["hidden"] = bool(changes["hidden"])
        return {"name": self.live_name, **changes}

    def replacement(self) -> CreateIndex:
        """The creation of the new index (under ``replacement_name`` when built beside)."""
        return CreateIndex(
            self.collection, self.index, self.inherited_collation, self.replacement_name or self.index.name
        )

    def label(self) -> str:
        live = f" (live name {self.live_name})" if self.live_name != self.index.name else ""
        return f"{self.collection}.{self.index.name}{live}"

    def to_json(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "index": self.index.name,
            "live_name": self.live_name,
            "replacement_name": self.replacement_name,
            "differences": {
                k: {"live": _json_safe(v[0]), "wanted": _json_safe(v[1])} for k, v in self.differences.items()
            },
        }

    def describe_modify(self) -> str:
        return f"~ modify index {self.label()} (collMod): {format_differences(self.differences)}"

    def describe_recreate(self) -> str:
        differences = format_differences(self.differences)
        if self.beside:
            return (
                f"-/+ replace index {self.label()}: {differences} (built beside as {self.replacement_name}, "
                "then the old one dropped; needs allow_drop=True)"
            )
        return (
            f"-/+ drop and re-create index {self.label()}: {differences} (the server cannot hold both: "
            "the collection is without it during the build; needs allow_drop=True)"
        )


@attrs.frozen
class IndexNote:
    """A live index that differs from its definition in a way create_all leaves alone, with why."""

    collection: str
    live_name: str
    index: Index
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "index": self.index.name,
            "live_name": self.live_name,
            "message": self.message,
        }

    def __str__(self) -> str:
        return f"! index {self.collection}.{self.index.name} (live name {self.live_name}): {self.message}"


@attrs.frozen
class ExtraIndex:
    """An index on the server that no definition asks for: reported and left in place, or (in
    :attr:`Plan.drop_indexes`, with ``drop_undeclared=True``) dropped."""

    collection: str
    name: str
    key: FrozenMap = attrs.field(converter=_to_frozen_map)

    def to_json(self) -> dict[str, Any]:
        return {"collection": self.collection, "index": self.name, "key": _json_safe(self.key)}

    def __str__(self) -> str:
        key = format_value(self.key)
        return f"? extra index {self.collection}.{self.name} {key} (not defined; left in place)"

    def describe_drop(self) -> str:
        return f"- drop undeclared index {self.collection}.{self.name} {format_value(self.key)}"


@attrs.frozen
class InsertDocument:
    """Insert a missing default document (by an idempotent upsert)."""

    collection: str
    document: Document

    def to_json(self) -> dict[str, Any]:
        return {"collection": self.collection, "unique_key": _json_safe(self.document.unique_key)}

    def __str__(self) -> str:
        return f"+ insert default document {self.collection} {format_value(self.document.unique_key)}"


def _sorted(actions: Iterable[T], key: Callable[[T], Any]) -> tuple[T, ...]:
    return tuple(sorted(actions, key=key))


def _json_safe(value: Any) -> Any:
    """Plain JSON values: BSON types (ObjectId, Int64, datetimes...) through bson.json_util's relaxed form."""
    return json.loads(json_util.dumps(thaw(value), json_options=json_util.RELAXED_JSON_OPTIONS))


#: The version of the JSON form of :class:`Plan` and ApplyResult.  Keys may be added within a version,
#: none removed or retyped.
JSON_SCHEMA_VERSION: Final = 1


@attrs.frozen
class Plan:
    """What :func:`apply_plan` would do, sorted deterministically so two plans compare with ``==``.

    ``extra_indexes`` and ``notes`` are informational: :attr:`is_empty` ignores them and nothing drops an
    extra index unless ``drop_undeclared=True`` moved it to ``drop_indexes``.
    """

    create_collections: tuple[CreateCollection, ...] = ()
    modify_collections: tuple[ModifyCollection, ...] = ()
    collection_conflicts: tuple[CollectionConflict, ...] = ()
    recreate_indexes: tuple[IndexChange, ...] = ()
    modify_indexes: tuple[IndexChange, ...] = ()
    create_indexes: tuple[CreateIndex, ...] = ()
    insert_documents: tuple[InsertDocument, ...] = ()
    extra_indexes: tuple[ExtraIndex, ...] = ()
    notes: tuple[IndexNote, ...] = ()
    drop_indexes: tuple[ExtraIndex, ...] = ()

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
            or self.drop_indexes
        )

    def missing_only(self) -> Plan:
        """The creations alone (collections, indexes, default documents): what ``skip_existing=True`` does."""
        return Plan(
            create_collections=self.create_collections,
            create_indexes=self.create_indexes,
            insert_documents=self.insert_documents,
            extra_indexes=self.extra_indexes,
            notes=self.notes,
        )

    def changes_to_existing(self) -> list[str]:
        """One line per change to an existing object (what ``skip_existing=True`` leaves alone)."""
        return [
            *(str(a) for a in self.collection_conflicts),
            *(str(a) for a in self.modify_collections),
            *(a.describe_recreate() for a in self.recreate_indexes),
            *(a.describe_modify() for a in self.modify_indexes),
            *(a.describe_drop() for a in self.drop_indexes),
        ]

    def lines(self) -> list[str]:
        """One line per action, in the order :func:`apply_plan` performs them, then the notes."""
        return [
            *(str(a) for a in self.collection_conflicts),
            *(str(a) for a in self.create_collections),
            *(str(a) for a in self.modify_collections),
            *(a.describe_recreate() for a in self.recreate_indexes),
            *(a.describe_modify() for a in self.modify_indexes),
            *(str(a) for a in self.create_indexes),
            *(str(a) for a in self.insert_documents),
            *(a.describe_drop() for a in self.drop_indexes),
            *(str(a) for a in self.notes),
            *(str(a) for a in self.extra_indexes),
        ]

    def to_json(self) -> dict[str, Any]:
        """The versioned JSON form (``schema_version`` 1): every key always present."""
        return {
            "schema_version": JSON_SCHEMA_VERSION,
            "kind": "plan",
            "empty": self.is_empty,
            "create_collections": [
                {"collection": a.collection, "options": _json_safe(a.options)}
                for a in self.create_collections
            ],
            "modify_collections": [
                {
                    "collection": a.collection,
                    "changes": {
                        k: {"live": _json_safe(v[0]), "wanted": _json_safe(v[1])}
                        for k, v in a.changes.items()
                    },
                }
                for a in self.modify_collections
            ],
            "collection_conflicts": [
                {
                    "collection": a.collection,
                    "differences": {
                        k: {"live": _json_safe(v[0]), "wanted": _json_safe(v[1])}
                        for k, v in a.differences.items()
                    },
                }
                for a in self.collection_conflicts
            ],
            "replace_indexes": [a.to_json() for a in self.recreate_indexes],
            "modify_indexes": [a.to_json() for a in self.modify_indexes],
            "create_indexes": [a.to_json() for a in self.create_indexes],
            "insert_documents": [a.to_json() for a in self.insert_documents],
            "drop_indexes": [a.to_json() for a in self.drop_indexes],
            "notes": [a.to_json() for a in self.notes],
            "extra_indexes": [a.to_json() for a in self.extra_indexes],
            "lines": self.lines(),
        }

    def __str__(self) -> str:
        lines = self.lines()
        if self.is_empty:
            lines.insert(0, "No changes: the database matches the definitions.")
        return "\n".join(lines)


def _size_matches(wanted: int, live: Any) -> bool:
    # The server may round a capped size up (to 4096 bytes at least, then to a multiple of 256).
    rounded = max(4096, -(-wanted // 256) * 256)
    return same(live, wanted) or same(live, rounded)


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
    if live.type == "timeseries" and definition.timeseries is None:
        conflicts["timeseries"] = (thaw(options.get("timeseries")), None)
    if options.get("capped", False) and not definition.capped:
        conflicts["capped"] = (True, False)
    if definition.validator is not None and not same_filter(
        definition.validator, options.get("validator", {})
    ):
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
            if definition.max is not None and not same(options.get("max"), definition.max):
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
    if definition.expire_after_seconds is not None and not same(
        options.get("expireAfterSeconds"), definition.expire_after_seconds
    ):
        changes["expireAfterSeconds"] = (options.get("expireAfterSeconds"), definition.expire_after_seconds)
    if definition.collation is not None and not collation_matches(
        definition.collation, options.get("collation")
    ):
        conflicts["collation"] = (thaw(options.get("collation")), definition.collation.to_dict())
    return changes, conflicts


def _live_indexes(live: LiveCollection) -> list[NormIndex]:
    return [index for index in map(normalise_live_index, live.indexes) if not is_id_index(index)]


def _automatic_index_key(live: LiveCollection) -> tuple[tuple[str, Direction], ...] | None:
    """The ``{metaField: 1, timeField: 1}`` index MongoDB 6.3+ creates on a time series collection with a
    metaField (manual, "Time Series Collection Limitations/Indexes"): the server's, never "extra"."""
    timeseries = live.options.get("timeseries")
    if live.type != "timeseries" or not isinstance(timeseries, FrozenMap) or not timeseries.get("metaField"):
        return None
    return ((str(timeseries["metaField"]), 1), (str(timeseries["timeField"]), 1))


def alternate_index_name(index: Index) -> str:
    """A name for ``index`` when its own name is held on the server: ``<name>_<8 hex digits>``.

    Derived from the key and options, so every process applying the same definition picks the same name
    (their ``createIndexes`` then meet as one build) and another definition picks another.
    """
    canonical = bson.encode({"key": list(index.fields.items()), "options": sorted(index.options().items())})
    return f"{index.name}_{hashlib.sha256(canonical).hexdigest()[:8]}"


def match_index(
    wanted: NormIndex, live_indexes: list[NormIndex], taken: set[int]
) -> tuple[int | None, dict[str, tuple[Any, Any]]]:
    """Find the live index for ``wanted``: same key and options first, then same key (preferring the
    same name).  Returns ``(position or None, differences)``."""
    candidates = [i for i, live in enumerate(live_indexes) if live.key == wanted.key and i not in taken]
    candidates.sort(key=lambda i: live_indexes[i].name != wanted.name)
    for i in candidates:
        if not index_differences(wanted, live_indexes[i]):
            return i, {}
    for i in candidates:
        differences = index_differences(wanted, live_indexes[i])
        if only_stricter(differences):
            return i, differences
    if candidates:
        return candidates[0], index_differences(wanted, live_indexes[candidates[0]])
    return None, {}


def is_building(wanted: NormIndex, builds: Iterable[Mapping[str, Any]] | None) -> bool:
    """True when one of the index builds in progress builds ``wanted`` (same key and options)."""
    return any(
        not index_differences(wanted, normalise_live_index(spec))
        and normalise_live_index(spec).key == wanted.key
        for spec in builds or ()
        if isinstance(spec.get("key"), Mapping)
    )


@attrs.define
class _IndexPlan:
    creates: list[CreateIndex] = attrs.Factory(list)
    modifies: list[IndexChange] = attrs.Factory(list)
    recreates: list[IndexChange] = attrs.Factory(list)
    notes: list[IndexNote] = attrs.Factory(list)
    extras: list[ExtraIndex] = attrs.Factory(list)


def _plan_indexes(
    collection: str,
    indices: Iterable[Index],
    live: LiveCollection,
    inherited_collation: FrozenMap | None,
) -> _IndexPlan:
    live_indexes = _live_indexes(live)
    result = _IndexPlan()
    taken: dict[int, Index] = {}
    pending: list[tuple[Index, NormIndex]] = []
    wanted_by_index = {index: normalise_defined_index(index, inherited_collation) for index in indices}
    # Pass 1: exact matches (key and options), so a changed duplicate cannot steal an identical index.
    for index, wanted in wanted_by_index.items():
        position, differences = match_index(wanted, live_indexes, set(taken))
        if position is not None and not differences:
            taken[position] = index
        else:
            pending.append((index, wanted))
    # Pass 2: same key with other options, and missing indexes.
    live_names = {live_index.name for live_index in live_indexes}
    for index, wanted in pending:
        position, differences = match_index(wanted, live_indexes, set(taken))
        if position is not None:
            taken[position] = index
            live_name = live_indexes[position].name
            if only_stricter(differences):
                result.notes.append(
                    IndexNote(
                        collection,
                        live_name,
                        index,
                        "unique on the server, declared without unique: left as is (create_all never relaxes "
                        "a constraint; drop the index by hand to relax it)",
                    )
                )
            elif changes_in_place(differences):
                result.modifies.append(
                    IndexChange(collection, live_name, index, differences, inherited_collation)
                )
            else:
                beside = None
                if buildable_beside(differences):
                    beside = index.name if index.name not in live_names else alternate_index_name(index)
                result.recreates.append(
                    IndexChange(collection, live_name, index, differences, inherited_collation, beside)
                )
            continue
        # Missing.  When its name is held by an index with another key, create it under another name and
        # leave that index alone: nobody declared it here, so nothing here may drop it.
        name = index.name if index.name not in live_names else alternate_index_name(index)
        result.creates.append(
            CreateIndex(collection, index, inherited_collation, name, is_building(wanted, live.builds))
        )
    automatic = _automatic_index_key(live)
    declared_keys = {wanted.key for wanted in wanted_by_index.values()}
    for position, live_index in enumerate(live_indexes):
        if position in taken:
            continue
        if automatic is not None and live_index.key == automatic and automatic not in declared_keys:
            continue
        result.extras.append(ExtraIndex(collection, live_index.name, live_index.key_dict))
    return result


def plan(
    definitions: Iterable[CollectionDefinition],
    live: LiveState,
    *,
    drop_undeclared: bool = False,
    keep: Iterable[str] = (),
) -> Plan:
    """Compare the definitions with the live state and say what :func:`apply_plan` has to do.

    Pure: no I/O, the same inputs always give an equal plan.  With ``drop_undeclared=True`` (like
    mongoose's ``syncIndexes``) the indexes no definition declares are planned for dropping, except
    those named in ``keep`` (``"index"`` or ``"collection.index"``: those a DBA or the hosting platform
    made), ``_id_`` and the automatic index of a time series collection.
    """
    kept = frozenset(keep)
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
        collection_plan = _plan_indexes(name, definition.indices, live_collection, inherited)
        indexes.creates.extend(collection_plan.creates)
        indexes.modifies.extend(collection_plan.modifies)
        indexes.recreates.extend(collection_plan.recreates)
        indexes.notes.extend(collection_plan.notes)
        indexes.extras.extend(collection_plan.extras)
        documents.extend(
            InsertDocument(name, document)
            for document in definition.default_docs
            if not live.has_document(name, document)
        )
    extras, drops = indexes.extras, []
    if drop_undeclared:
        drops = [e for e in extras if e.name not in kept and f"{e.collection}.{e.name}" not in kept]
        extras = [e for e in extras if e not in drops]

    def index_key(action: CreateIndex | IndexChange | IndexNote) -> tuple[str, str]:
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
        extra_indexes=_sorted(extras, key=lambda a: (a.collection, a.name)),
        notes=_sorted(indexes.notes, key=index_key),
        drop_indexes=_sorted(drops, key=lambda a: (a.collection, a.name)),
    )
