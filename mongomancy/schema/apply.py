"""Apply a :class:`~mongomancy.schema.plan.Plan`: every step idempotent, safe from many processes at once.

Why there is no lock collection: every step is idempotent and converges when several processes run it at
once, so mutual exclusion buys nothing and a lock only adds failure modes (mongomancy 0.1's lock had no
owner or expiry: a crashed process left it held, and the forced unlock after 55 s broke the exclusion it
was meant to give anyway).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol, TypeVar

import attrs
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, OperationFailure

from mongomancy.errors import IndexConflictError, SchemaError
from mongomancy.schema.definitions import Document
from mongomancy.schema.live import document_filter
from mongomancy.schema.normalise import (
    format_differences,
    is_id_index,
    normalise_defined_index,
    normalise_live_index,
    plain_differences,
)
from mongomancy.schema.plan import CreateIndex, IndexChange, Plan, match_index

__all__ = ["ApplyResult", "Execute", "apply_plan"]

T = TypeVar("T")

NAMESPACE_EXISTS: Final = 48
INDEX_NOT_FOUND: Final = 27
INDEX_ALREADY_EXISTS: Final = 68
INDEX_OPTIONS_CONFLICT: Final = 85
INDEX_KEY_SPECS_CONFLICT: Final = 86
_INDEX_CONFLICT_CODES: Final = frozenset(
    {INDEX_ALREADY_EXISTS, INDEX_OPTIONS_CONFLICT, INDEX_KEY_SPECS_CONFLICT}
)
_UPSERT_ATTEMPTS: Final = 3


class Execute(Protocol):
    """How :func:`apply_plan` runs each operation: ``execute(description, fn) -> fn(database)``.

    The engine passes its retry-wrapped runner; tests pass ``lambda description, fn: fn(raw_db)``.
    Every ``fn`` is idempotent, so running it again after an ambiguous failure is safe.
    """

    def __call__(self, description: str, fn: Callable[[Database[Any]], T], /) -> T: ...


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
        for index in map(normalise_live_index, db[action.collection].list_indexes())
        if not is_id_index(index)
    ]
    wanted = normalise_defined_index(action.index, action.inherited_collation)
    position, differences = match_index(wanted, live, set())
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
                f"({format_differences(differences) or exc.details}); "
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
    query = document_filter(collection, document)
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
            differences=plain_differences(first.differences),
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
