"""Apply a :class:`~mongomancy.schema.plan.Plan`: every step idempotent, safe from many processes at once,
and no step that leaves a collection without an index it had, except where the server gives no other way.

Why there is no lock collection: every step is idempotent and converges when several processes run it at
once, so mutual exclusion buys nothing and a lock only adds failure modes (mongomancy 0.1's lock had no
owner or expiry: a crashed process left it held, and the forced unlock after 55 s broke the exclusion it
was meant to give anyway).  Concretely:

* ``create`` of an existing collection fails with NamespaceExists (48), which is taken as success;
* ``createIndexes`` with a spec that already exists is a no-op, and one whose build is in progress joins
  that build; a conflict (68/85/86) is re-read and re-planned, and only a real difference is raised;
* a changed index is *built beside* the old one (MongoDB 5.0+ holds two indexes on one key when unique,
  sparse, partial filter or collation differ) and the old one is dropped only after the new one is
  listed, so a failed build (duplicates under a new ``unique``) leaves the old index in place;
* nothing is ever dropped because an index looked "missing": ``listIndexes`` omits builds in progress,
  and since 4.4 a ``dropIndexes`` aborts them (manual, dropIndexes);
* ``collMod`` sets absolute values, so running it twice is the same as once;
* a default document is written by an upsert with ``$setOnInsert`` only, matching its unique key *or*
  its deterministic ``_id`` (:meth:`~mongomancy.schema.definitions.Document.document_id`): exactly one copy.

Index builds go through a separate runner (:class:`Build`) with a timeout of their own: a build can
take far longer than the engine's retry budget, and when it times out the error says it may still run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol, TypeVar

import attrs
import pymongo
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

from mongomancy.errors import (
    IndexConflictError,
    MongomancyError,
    OutcomeUnknownError,
    QueueFullError,
    RetryBudgetExhaustedError,
    SchemaError,
)
from mongomancy.retry import CommandKind, Evidence, assess
from mongomancy.schema.definitions import Document, Index, thaw
from mongomancy.schema.errors import (
    DuplicateValuesError,
    IndexBuildError,
    IndexBuildTimeoutError,
    SchemaStepError,
)
from mongomancy.schema.live import document_filter, read_index_builds
from mongomancy.schema.normalise import (
    buildable_beside,
    format_differences,
    index_differences,
    is_id_index,
    normalise_defined_index,
    normalise_live_index,
    only_stricter,
    plain_differences,
)
from mongomancy.schema.plan import (
    JSON_SCHEMA_VERSION,
    CreateIndex,
    ExtraIndex,
    IndexChange,
    Plan,
    alternate_index_name,
    is_building,
    match_index,
)

__all__ = [
    "DEFAULT_BUILD_TIMEOUT",
    "ApplyResult",
    "Build",
    "BuildPending",
    "BuildRunner",
    "Execute",
    "apply_plan",
    "find_duplicates",
]

T = TypeVar("T")

NAMESPACE_EXISTS: Final = 48
INDEX_NOT_FOUND: Final = 27
INDEX_ALREADY_EXISTS: Final = 68
INDEX_OPTIONS_CONFLICT: Final = 85
INDEX_KEY_SPECS_CONFLICT: Final = 86
DUPLICATE_KEY: Final = 11000
_INDEX_CONFLICT_CODES: Final = frozenset(
    {INDEX_ALREADY_EXISTS, INDEX_OPTIONS_CONFLICT, INDEX_KEY_SPECS_CONFLICT}
)
_UPSERT_ATTEMPTS: Final = 3
#: Seconds an index build may take by default before create_all gives up waiting (not the build).
DEFAULT_BUILD_TIMEOUT: Final = 3600.0
_DUPLICATE_EXAMPLES: Final = 3
_IDS_PER_EXAMPLE: Final = 5


class Execute(Protocol):
    """How :func:`apply_plan` runs each short step: ``execute(description, fn) -> fn(database)``.

    The engine passes its retry-wrapped runner; tests pass ``lambda description, fn: fn(raw_db)``.
    Every ``fn`` is idempotent, so running it again after an ambiguous failure is safe.
    """

    def __call__(self, description: str, fn: Callable[[Database[Any]], T], /) -> T: ...


class Build(Protocol):
    """How :func:`apply_plan` runs an index build: like :class:`Execute`, with a deadline of its own.

    ``fn`` raises :class:`BuildPending` to be run again after a pause (a conflicting build of another
    process is still running).  See :class:`BuildRunner`.
    """

    def __call__(self, description: str, fn: Callable[[Database[Any]], T], /) -> T: ...


class _NeedsReplacement(Exception):
    def __init__(self, change: IndexChange) -> None:
        super().__init__(change.describe_recreate())
        self.change = change


class BuildPending(Exception):
    """Raised by a build step: another build holds the way; run me again after a pause."""


@attrs.define
class BuildRunner:
    """Runs index builds with their own deadline, independent of the engine's retry budget.

    Each attempt goes through ``attempt`` (the engine's runner, which waits for a primary and retries
    transient errors within its budget) inside ``pymongo.timeout(remaining build time)``: under the
    client-side operation timeout the socket timeout is the remaining time, not ``socketTimeoutMS``
    (CSOT spec: "socketTimeoutMS ... MUST be ignored" when a timeout is set).  An attempt that fails
    with a driver or retry error is run again until the deadline: ``createIndexes`` is idempotent (an
    identical spec is a no-op, or joins the build in progress).  Past the deadline it raises
    :class:`~mongomancy.schema.errors.IndexBuildTimeoutError`, saying the build may still be running.
    """

    attempt: Callable[[str, Callable[[Database[Any]], Any]], Any]
    timeout: float = DEFAULT_BUILD_TIMEOUT
    pause: float = 0.25
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def __call__(self, description: str, fn: Callable[[Database[Any]], T], /) -> T:
        deadline = self.clock() + self.timeout
        last: BaseException | None = None
        pause = self.pause
        while True:
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise _timeout(description, self.timeout, last)

            def timed(db: Database[Any], remaining: float = remaining) -> T:
                with pymongo.timeout(remaining):
                    return fn(db)

            try:
                result: T = self.attempt(description, timed)
                return result
            except BuildPending as pending:
                last = pending
            except (PyMongoError, MongomancyError) as error:
                if isinstance(error, SchemaError) or not _transient(error):
                    raise
                last = error
            self.sleep(min(pause, max(0.0, deadline - self.clock())))
            pause = min(pause * 2, 5.0)


def _transient(error: BaseException) -> bool:
    """Errors after which a build attempt is worth repeating: the connection, the primary, the budget.

    The engine already retried the attempt within its budget; these say only that the budget (or the
    queue) ran out, which bounds the engine's operations, not a build.
    """
    if isinstance(error, (RetryBudgetExhaustedError, OutcomeUnknownError, QueueFullError)):
        return True
    return isinstance(error, PyMongoError) and (
        error.timeout or assess(CommandKind.IDEMPOTENT, error) is not Evidence.FINAL
    )


def _timeout(description: str, timeout: float, last: BaseException | None) -> IndexBuildTimeoutError:
    collection, _, index = description.rpartition(" ")[2].partition(".")
    cause = f" (last: {type(last).__name__}: {last})" if last is not None else ""
    return IndexBuildTimeoutError(
        f"{description}: not finished after {timeout:g} s; the build may still be running on the server "
        f"(check db.currentOp() for createIndexes){cause}",
        collection=collection,
        index=index or None,
        step=description,
        cause=last,
    )


# --------------------------------------------------------------------------------------------------


@attrs.frozen
class ApplyResult:
    """What :func:`apply_plan` did.  Names are ``collection`` or ``collection.index``.

    The ``*_already`` fields list work another process (or an earlier run) had done in the meantime,
    which is normal when several processes apply the same definitions at once.  ``left_unchanged`` lists
    the changes to existing objects that were not made (``skip_existing=True``), ``notes`` what the plan
    noted without acting (an index stricter than declared).
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
    dropped_indexes: tuple[str, ...] = ()
    left_unchanged: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

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
            or self.dropped_indexes
        )

    def to_json(self) -> dict[str, Any]:
        """The versioned JSON form (``schema_version`` 1): every key always present."""
        fields = {name: list(values) for name, values in attrs.asdict(self, recurse=False).items()}
        return {
            "schema_version": JSON_SCHEMA_VERSION,
            "kind": "apply_result",
            "changed": self.changed,
            **fields,
        }

    def __str__(self) -> str:
        parts = [
            f"{label}: {', '.join(values)}"
            for label, values in attrs.asdict(self, recurse=False).items()
            if values and label not in ("left_unchanged", "notes")
        ]
        parts.extend(f"left unchanged: {line}" for line in self.left_unchanged)
        parts.extend(f"note: {line}" for line in self.notes)
        return "\n".join(parts) if parts else "nothing to do"


def _step(
    runner: Execute | Build,
    description: str,
    fn: Callable[[Database[Any]], T],
    *,
    collection: str,
    index: str | None = None,
) -> T:
    """Run one step; a failure becomes a :class:`SchemaStepError` naming the step, the driver error its
    cause.  Errors of our own schema family pass unchanged (they name their step already)."""
    try:
        return runner(description, fn)
    except IndexBuildTimeoutError as timeout:
        timeout.collection, timeout.index = collection, index  # the runner only knew the description
        raise
    except SchemaError:
        raise
    except (PyMongoError, MongomancyError) as exc:
        raise SchemaStepError(
            f"{description}: failed: {type(exc).__name__}: {exc}",
            collection=collection,
            index=index,
            step=description,
            cause=exc,
        ) from exc


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


def _live_state_of(db: Database[Any], collection: str) -> list[Any]:
    return [
        index for index in map(normalise_live_index, db[collection].list_indexes()) if not is_id_index(index)
    ]


def _reread_index(
    db: Database[Any], action: CreateIndex | IndexChange
) -> tuple[str, str | None, dict[str, Any]]:
    """Re-plan one index against the server now: ``(verdict, live name, differences)``.

    verdict is ``"present"`` (same key and options, or stricter only), ``"differs"`` (same key, other
    options) or ``"missing"`` (which may be a build in progress: never a reason to drop anything).
    """
    live = _live_state_of(db, action.collection)
    wanted = normalise_defined_index(action.index, action.inherited_collation)
    position, differences = match_index(wanted, live, set())
    if position is None:
        return "missing", None, {}
    if not differences or only_stricter(differences):
        return "present", live[position].name, differences
    return "differs", live[position].name, differences


def _build_failure(
    db: Database[Any], create: CreateIndex, exc: OperationFailure, step: str, *, old_index_kept: bool | None
) -> IndexBuildError:
    """The error for a failed build: for a unique index over duplicates, with examples of them."""
    examples: list[dict[str, Any]] = []
    if create.index.unique:
        try:
            examples = find_duplicates(db, create.collection, create.index, create.inherited_collation)
        except PyMongoError:
            examples = []
    kept = ""
    if old_index_kept is True:
        kept = "; the index it was to replace is still in place"
    elif old_index_kept is False:
        kept = "; the index it replaces was dropped before (the server cannot hold both)"
    label = f"{create.collection}.{create.name}"
    if examples:
        shown = "; ".join(
            f"{thaw(e['key'])!r} in {e['count']} documents (_id {', '.join(map(repr, e['ids']))})"
            for e in examples
        )
        return DuplicateValuesError(
            f"{step}: cannot build unique index {label}: duplicate values exist, for example {shown}{kept} "
            f"(server: {exc})",
            collection=create.collection,
            index=create.name,
            step=step,
            cause=exc,
            old_index_kept=old_index_kept,
            examples=examples,
        )
    return IndexBuildError(
        f"{step}: the build of {label} failed: {exc}{kept}",
        collection=create.collection,
        index=create.name,
        step=step,
        cause=exc,
        old_index_kept=old_index_kept,
    )


def find_duplicates(
    db: Database[Any], collection: str, index: Index, inherited_collation: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Up to three keys of ``index`` that several documents share: ``{"key", "count", "ids"}`` each.

    Only documents the index would hold are grouped (its partial filter; for a sparse index, those with
    a key field), under the index's collation, so the examples are what a unique build refuses.
    """
    fields = [field for field, _ in index.fields.items()]
    pipeline: list[dict[str, Any]] = []
    if index.partial_filter_expression is not None:
        pipeline.append({"$match": index.partial_filter_expression.to_dict()})
    if index.sparse:
        pipeline.append({"$match": {"$or": [{field: {"$exists": True}} for field in fields]}})
    # One field groups by its value; several by a document of them (field paths may hold dots, which a
    # document key must not, hence k0, k1...).
    group_key: Any = f"${fields[0]}" if len(fields) == 1 else {f"k{i}": f"${f}" for i, f in enumerate(fields)}
    pipeline += [
        {"$group": {"_id": group_key, "count": {"$sum": 1}, "ids": {"$push": "$_id"}}},
        {"$match": {"count": {"$gt": 1}}},
        {"$limit": _DUPLICATE_EXAMPLES},
    ]
    collation = index.collation or inherited_collation
    options: dict[str, Any] = {"collation": thaw(collation)} if collation is not None else {}
    examples = []
    for group in db[collection].aggregate(pipeline, **options):
        if len(fields) == 1:
            key = {fields[0]: group["_id"]}
        else:
            key = {field: group["_id"].get(f"k{i}") for i, field in enumerate(fields)}
        examples.append(
            {"key": key, "count": int(group["count"]), "ids": list(group["ids"][:_IDS_PER_EXAMPLE])}
        )
    return examples


def _build_index(
    create: CreateIndex, step: str, *, allow_drop: bool, old_index_kept: bool | None
) -> Callable[[Database[Any]], bool]:
    """``createIndexes`` for one index; True when this call created it, False when it already existed."""
    spec = create.spec()
    collection = create.collection

    def run(db: Database[Any]) -> bool:
        try:
            reply = db.command("createIndexes", collection, indexes=[spec])
        except OperationFailure as exc:
            if exc.code in _INDEX_CONFLICT_CODES:
                return _after_conflict(
                    db, create, exc, step, allow_drop=allow_drop, old_index_kept=old_index_kept
                )
            if exc.timeout or assess(CommandKind.IDEMPOTENT, exc) is not Evidence.FINAL:
                raise  # transient: the engine's policy, then the build runner, try again
            raise _build_failure(db, create, exc, step, old_index_kept=old_index_kept) from exc
        before, after = reply.get("numIndexesBefore"), reply.get("numIndexesAfter")
        return not (before is not None and before == after)

    return run


def _after_conflict(
    db: Database[Any],
    create: CreateIndex,
    exc: OperationFailure,
    step: str,
    *,
    allow_drop: bool,
    old_index_kept: bool | None = None,
) -> bool:
    """A ``createIndexes`` refused because an index with that name or key exists: what is there now?"""
    verdict, live_name, differences = _reread_index(db, create)
    if verdict == "present":
        return False  # the same index (or a stricter one) under another name: nothing to do
    if verdict == "missing":
        live = _live_state_of(db, create.collection)
        holder = next((index for index in live if index.name == create.name), None)
        if holder is not None:
            # The name is held by an index with another key, which nobody declared here: leave it alone
            # and create ours under the name derived from its spec (every process derives the same).
            alternate = alternate_index_name(create.index)
            if create.name == alternate:
                raise IndexConflictError(
                    f"{step}: the names {create.index.name} and {alternate} are both held by other indexes",
                    collection=create.collection,
                    index=create.name,
                    differences={"key": (holder.key_dict, dict(create.index.fields.items()))},
                ) from exc
            return _build_index(
                attrs.evolve(create, name=alternate), step, allow_drop=allow_drop, old_index_kept=None
            )(db)
        # Not listed, yet in the way: a build of another process is in progress.  Wait for it.
        raise BuildPending(f"{step}: another build holds {create.collection}.{create.name}") from exc
    if old_index_kept is True:
        # Building a replacement beside the old index, and the server refuses a second index on this
        # key: MongoDB before 5.0 (whose index signature is the key and collation alone) does.
        raise IndexBuildError(
            f"{step}: the server refuses a second index on the key of {create.collection}.{live_name} "
            f"({exc}); the old index {live_name} was kept.  MongoDB 5.0+ holds both while the new one "
            "is built; on an older server this change needs a manual migration",
            collection=create.collection,
            index=create.name,
            step=step,
            cause=exc,
            old_index_kept=True,
        ) from exc
    if allow_drop and live_name is not None and buildable_beside(differences):
        # Another process (another version of the definitions) created this key with other options
        # between our plan and our build: replace it as the plan would have, beside it.
        raise _NeedsReplacement(
            IndexChange(
                create.collection,
                live_name,
                create.index,
                differences,
                create.inherited_collation,
                alternate_index_name(create.index),
            )
        ) from exc
    raise IndexConflictError(
        f"{step}: cannot create index {create.collection}.{create.name}: the existing index {live_name} "
        f"conflicts ({format_differences(differences) or exc.details}); "
        + ("re-run create_all to replace it" if allow_drop else "apply with allow_drop=True to replace it"),
        collection=create.collection,
        index=create.name,
        differences=plain_differences(differences),
    ) from exc


def _verify_built(change: IndexChange, step: str) -> Callable[[Database[Any]], None]:
    """Check that the replacement is listed (so complete) before anything is dropped."""

    def run(db: Database[Any]) -> None:
        verdict, _, _ = _reread_index(db, change.replacement())
        if verdict != "present":
            raise IndexBuildError(
                f"{step}: the server acknowledged the build of {change.collection}.{change.replacement_name} "
                f"but does not list it; the old index {change.live_name} was kept",
                collection=change.collection,
                index=change.replacement_name,
                step=step,
                old_index_kept=True,
            )

    return run


def _drop_replaced(change: IndexChange) -> Callable[[Database[Any]], bool]:
    """Drop the old index of a replacement, if it is still the one planned and the new one is listed."""

    def run(db: Database[Any]) -> bool:
        live = _live_state_of(db, change.collection)
        wanted = normalise_defined_index(change.index, change.inherited_collation)
        if not any(index.key == wanted.key and not index_differences(wanted, index) for index in live):
            return False  # the replacement is gone: never drop the last index on the key
        old = next((index for index in live if index.name == change.live_name), None)
        if old is None or old.key != wanted.key or not index_differences(wanted, old):
            return False  # already dropped, or now something else
        return _drop_index(db, change.collection, change.live_name)

    return run


def _drop_index(db: Database[Any], collection: str, name: str) -> bool:
    try:
        db.command("dropIndexes", collection, index=name)
    except OperationFailure as exc:
        if exc.code != INDEX_NOT_FOUND:
            raise
        return False
    return True


def _drop_before_rebuild(change: IndexChange) -> Callable[[Database[Any]], bool]:
    """The one path that leaves the key unindexed for a while: options a server cannot hold twice.

    Re-reads first: if the wanted index is listed, or a build of it is in progress (``$currentOp``),
    nothing is dropped (the first process did it; dropping now would abort its build).
    """

    def run(db: Database[Any]) -> bool:
        verdict, live_name, _ = _reread_index(db, change)
        if verdict == "present":
            return False
        wanted = normalise_defined_index(change.index, change.inherited_collation)
        if is_building(wanted, read_index_builds(db, change.collection)):
            return False
        if verdict == "missing" or live_name is None:
            return False  # never drop on a "missing" verdict
        return _drop_index(db, change.collection, live_name)

    return run


def _drop_undeclared(extra: ExtraIndex) -> Callable[[Database[Any]], bool]:
    def run(db: Database[Any]) -> bool:
        live = [normalise_live_index(index) for index in db[extra.collection].list_indexes()]
        found = next((index for index in live if index.name == extra.name), None)
        if found is None or found.key_dict != dict(extra.key) or is_id_index(found):
            return False
        return _drop_index(db, extra.collection, extra.name)

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
        raise SchemaStepError(
            f"insert default document {document.filter()!r} of {collection!r}: "
            f"a unique index refuses it and no document matches its unique key ({last_error})",
            collection=collection,
            step=f"insert default document {collection} {document.filter()!r}",
            cause=last_error,
        ) from last_error

    return run


def _direct_build(execute: Execute) -> Build:
    return BuildRunner(attempt=execute)


def apply_plan(
    plan: Plan,
    execute: Execute,
    *,
    allow_drop: bool = False,
    build: Build | None = None,
) -> ApplyResult:
    """Perform ``plan``; every step safe to run from several processes at once.

    Raises before changing anything when the plan contains a collection conflict
    (:class:`~mongomancy.errors.SchemaError`) or an index replacement while ``allow_drop`` is False
    (:class:`~mongomancy.errors.IndexConflictError`).  Extra indexes are dropped only when the plan was
    made with ``drop_undeclared=True``.  Index builds run through ``build`` (default: a
    :class:`BuildRunner` over ``execute``).  A failed step raises a
    :class:`~mongomancy.schema.errors.SchemaStepError` (or a subclass) naming it, the driver error as cause.
    """
    builder = build if build is not None else _direct_build(execute)
    if plan.collection_conflicts:
        first = plan.collection_conflicts[0]
        raise SchemaError(
            "the live collections cannot be brought in line without re-creating them (mongomancy never "
            f"drops a collection; {first.collection} first): "
            + "; ".join(str(c) for c in plan.collection_conflicts)
        )
    if plan.recreate_indexes and not allow_drop:
        first_change = plan.recreate_indexes[0]
        raise IndexConflictError(
            "these indexes can only change by replacing them (the old one is dropped); pass allow_drop=True "
            "to do so: " + "; ".join(change.describe_recreate() for change in plan.recreate_indexes),
            collection=first_change.collection,
            index=first_change.index.name,
            differences=plain_differences(first_change.differences),
        )

    created_collections: list[str] = []
    collections_already: list[str] = []
    for create in plan.create_collections:
        options = create.options.to_dict()
        created = _step(
            execute,
            f"create collection {create.collection}",
            _create_collection(create.collection, options),
            collection=create.collection,
        )
        (created_collections if created else collections_already).append(create.collection)

    modified_collections: list[str] = []
    for modify in plan.modify_collections:
        command = modify.command()
        _step(
            execute,
            f"modify collection {modify.collection} ({', '.join(command)})",
            _collmod(modify.collection, command),
            collection=modify.collection,
        )
        modified_collections.append(modify.collection)

    recreated: list[str] = []
    created_indexes: list[str] = []
    indexes_already: list[str] = []
    for change in plan.recreate_indexes:
        label = f"{change.collection}.{change.index.name}"
        if _replace_index(change, execute, builder):
            recreated.append(label)
        else:
            indexes_already.append(label)

    modified_indexes: list[str] = []
    for change in plan.modify_indexes:
        index_spec = change.collmod_index()
        _step(
            execute,
            f"modify index {change.collection}.{change.live_name}",
            _collmod(change.collection, {"index": index_spec}),
            collection=change.collection,
            index=change.live_name,
        )
        modified_indexes.append(f"{change.collection}.{change.index.name}")

    for create_index in plan.create_indexes:
        label = f"{create_index.collection}.{create_index.name}"
        step = f"create index {label}"
        try:
            created = _step(
                builder,
                step,
                _build_index(create_index, step, allow_drop=allow_drop, old_index_kept=None),
                collection=create_index.collection,
                index=create_index.name,
            )
        except _NeedsReplacement as needed:
            if _replace_index(needed.change, execute, builder):
                recreated.append(f"{create_index.collection}.{create_index.index.name}")
            else:
                indexes_already.append(label)
            continue
        (created_indexes if created else indexes_already).append(label)

    inserted: list[str] = []
    documents_already: list[str] = []
    for insert in plan.insert_documents:
        label = f"{insert.collection} {insert.document.filter()!r}"
        done = _step(
            execute,
            f"insert default document {label}",
            _upsert_document(insert.collection, insert.document),
            collection=insert.collection,
        )
        (inserted if done else documents_already).append(label)

    dropped: list[str] = []
    for extra in plan.drop_indexes:
        label = f"{extra.collection}.{extra.name}"
        if _step(
            execute,
            f"drop undeclared index {label}",
            _drop_undeclared(extra),
            collection=extra.collection,
            index=extra.name,
        ):
            dropped.append(label)

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
        dropped_indexes=tuple(dropped),
        notes=tuple(str(note) for note in plan.notes),
    )


def _replace_index(change: IndexChange, execute: Execute, builder: Build) -> bool:
    """Replace one index; True when this call built the replacement, False when it was already done."""
    label = f"{change.collection}.{change.index.name}"
    replacement = change.replacement()
    if change.beside:
        step = f"build {change.collection}.{change.replacement_name} beside {change.live_name}"
        built = _step(
            builder,
            step,
            _build_index(replacement, step, allow_drop=True, old_index_kept=True),
            collection=change.collection,
            index=change.replacement_name,
        )
        verify = f"check {change.collection}.{change.replacement_name} is built"
        _step(
            execute,
            verify,
            _verify_built(change, verify),
            collection=change.collection,
            index=change.replacement_name,
        )
        _step(
            execute,
            f"drop the replaced index {change.collection}.{change.live_name}",
            _drop_replaced(change),
            collection=change.collection,
            index=change.live_name,
        )
        return bool(built)
    dropped = _step(
        execute,
        f"drop index {change.collection}.{change.live_name} to re-create it",
        _drop_before_rebuild(change),
        collection=change.collection,
        index=change.live_name,
    )
    step = f"re-create index {label}"
    built = _step(
        builder,
        step,
        _build_index(replacement, step, allow_drop=True, old_index_kept=False if dropped else None),
        collection=change.collection,
        index=change.index.name,
    )
    return bool(built)
