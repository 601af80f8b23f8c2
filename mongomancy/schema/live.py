"""Read the live state of a database: the collections, indexes and default documents definitions name.

Why separate from the planner: reading is the only part of planning that does I/O; keeping it apart
lets :func:`~mongomancy.schema.plan.plan` be a pure function tested on recorded server answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from pymongo.database import Database
from pymongo.errors import OperationFailure

from mongomancy.schema.definitions import CollectionDefinition, Document, FrozenMap

__all__ = ["LiveCollection", "LiveState", "document_filter", "read_index_builds", "read_live_state"]

# --------------------------------------------------------------------------------------------------


def _to_frozen_map(value: Mapping[str, Any]) -> FrozenMap:
    return FrozenMap(value)


def _to_frozen_maps(values: Iterable[Mapping[str, Any]]) -> tuple[FrozenMap, ...]:
    return tuple(FrozenMap(value) for value in values)


def _to_optional_frozen_maps(values: Iterable[Mapping[str, Any]] | None) -> tuple[FrozenMap, ...] | None:
    return None if values is None else _to_frozen_maps(values)


@attrs.frozen
class LiveCollection:
    """One existing collection as the server describes it.

    ``options`` is the ``options`` field of its ``listCollections`` entry, ``type`` its ``type``
    (``"collection"``, ``"timeseries"`` or ``"view"``), ``indexes`` the raw ``listIndexes`` documents.
    ``builds`` are the index specs a ``createIndexes`` in progress is building (``listIndexes`` omits
    them), or None when the server would not say (``$currentOp`` not permitted or not supported).
    """

    name: str
    options: FrozenMap = attrs.field(factory=FrozenMap, converter=_to_frozen_map)
    indexes: tuple[FrozenMap, ...] = attrs.field(default=(), converter=_to_frozen_maps)
    type: str = "collection"
    builds: tuple[FrozenMap, ...] | None = attrs.field(default=(), converter=_to_optional_frozen_maps)

    @classmethod
    def from_server(
        cls,
        collection_info: Mapping[str, Any],
        indexes: Iterable[Mapping[str, Any]],
        builds: Iterable[Mapping[str, Any]] | None = (),
    ) -> LiveCollection:
        """Build from a ``listCollections`` entry, the collection's ``listIndexes`` documents and the
        index specs being built (see :func:`read_index_builds`)."""
        return cls(
            name=str(collection_info["name"]),
            options=collection_info.get("options", {}),
            indexes=indexes,
            type=str(collection_info.get("type", "collection")),
            builds=builds,
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


def document_filter(collection: str, document: Document) -> dict[str, Any]:
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
        is_view = info.get("type") == "view"
        indexes = [] if is_view else list(db[definition.name].list_indexes())
        builds = () if is_view else read_index_builds(db, definition.name)
        collections.append(LiveCollection.from_server(info, indexes, builds))
        for document in definition.default_docs:
            query = document_filter(definition.name, document)
            if db[definition.name].find_one(query, projection={"_id": 1}) is not None:
                present.append((definition.name, document.unique_key))
    return LiveState(collections=collections, present_documents=present)


def read_index_builds(db: Database[Any], collection: str) -> list[dict[str, Any]] | None:
    """The index specs ``createIndexes`` commands in progress are building on ``collection``.

    ``listIndexes`` omits builds in progress (manual, listIndexes: "does not return information on
    in-progress index builds"), so without this a second process would see such an index as missing.
    The manual's way to see them is ``$currentOp`` filtered on ``command.createIndexes``.  Returns None
    when the server refuses (no ``inprog`` privilege, or a server without ``$currentOp``): unknown, which
    callers must not read as "none".
    """
    pipeline: list[dict[str, Any]] = [
        {"$currentOp": {"allUsers": True, "idleConnections": False}},
        {"$match": {"command.createIndexes": collection}},
    ]
    try:
        operations = list(db.client.admin.aggregate(pipeline))
    except OperationFailure:
        return None
    specs: list[dict[str, Any]] = []
    for operation in operations:
        command = operation.get("command") or {}
        namespace = str(operation.get("ns", ""))
        if command.get("$db", namespace.partition(".")[0]) != db.name:
            continue
        specs.extend(dict(spec) for spec in command.get("indexes", ()) if isinstance(spec, Mapping))
    return specs
