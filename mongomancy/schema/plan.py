"""The plan: a pure diff of collection definitions against a :class:`~mongomancy.schema.live.LiveState`.

:func:`plan` does no I/O, so the same inputs always give an equal :class:`Plan`, which prints one line
per action (like ``terraform plan``) and is tested against recorded server answers without a server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final, TypeVar

import attrs

from mongomancy.schema.definitions import CollectionDefinition, Document, FrozenMap, Index, thaw
from mongomancy.schema.live import LiveCollection, LiveState
from mongomancy.schema.normalise import (
    NormIndex,
    changes_in_place,
    collation_matches,
    format_differences,
    format_value,
    index_differences,
    is_id_index,
    normalise_defined_index,
    normalise_live_index,
    same,
)

__all__ = [
    "CollectionConflict",
    "CreateCollection",
    "CreateIndex",
    "ExtraIndex",
    "IndexChange",
    "InsertDocument",
    "ModifyCollection",
    "Plan",
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
        return f"+ create index {self.collection}.{self.index.name} {format_value(spec)}"


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
        return f"~ modify index {self._label()} (collMod): {format_differences(self.differences)}"

    def describe_recreate(self) -> str:
        return (
            f"-/+ drop and re-create index {self._label()}: {format_differences(self.differences)}"
            " (needs allow_drop=True)"
        )


@attrs.frozen
class ExtraIndex:
    """An index on the server that no definition asks for.  Reported, never dropped."""

    collection: str
    name: str
    key: FrozenMap = attrs.field(converter=_to_frozen_map)

    def __str__(self) -> str:
        key = format_value(self.key)
        return f"? extra index {self.collection}.{self.name} {key} (not defined; left in place)"


@attrs.frozen
class InsertDocument:
    """Insert a missing default document (by an idempotent upsert)."""

    collection: str
    document: Document

    def __str__(self) -> str:
        return f"+ insert default document {self.collection} {format_value(self.document.unique_key)}"


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
    if definition.validator is not None and not same(definition.validator, options.get("validator", {})):
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
    if candidates:
        return candidates[0], index_differences(wanted, live_indexes[candidates[0]])
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
    live_indexes: list[NormIndex],
    inherited_collation: FrozenMap | None,
) -> _IndexPlan:
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
    # Pass 2: same key with other options, name clashes, and missing indexes.
    displaced: set[int] = set()
    for index, wanted in pending:
        position, differences = match_index(wanted, live_indexes, set(taken))
        if position is not None:
            taken[position] = index
            change = IndexChange(
                collection, live_indexes[position].name, index, differences, inherited_collation
            )
            (result.modifies if changes_in_place(differences) else result.recreates).append(change)
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
