"""Command objects: one call a worker made, with everything needed to run it again on a fresh handle.

Why objects instead of closures: a retry must resolve the collection *afresh* (the client may have been
replaced, the handle swapped by a hook), and must know whether replaying the call is safe.  A frozen value
that names the operation, the target, the arguments and the retry class makes both explicit and testable.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import attrs
from bson import ObjectId
from pymongo import DeleteMany, DeleteOne, InsertOne, MongoClient, ReplaceOne, UpdateMany, UpdateOne
from pymongo.collection import Collection as PyMongoCollection
from pymongo.read_preferences import ReadPreference

from mongomancy.errors import StaleSessionError


class RetryClass(enum.Enum):
    """How safe it is to run an operation again when the first attempt may have been applied."""

    READ = "read"
    #: Applying it twice has the same effect as once (``$set``, a replace, an insert with a known ``_id``).
    IDEMPOTENT_WRITE = "idempotent_write"
    #: Applying it twice differs from once (``$inc``, ``$push``, a delete of "any one" matching document).
    NON_IDEMPOTENT_WRITE = "non_idempotent_write"


@runtime_checkable
class CollectionTarget(Protocol):
    """Anything that can hand out the *current* pymongo collection for a client.

    ``mongomancy.Collection`` implements it; a raw pymongo collection is wrapped in ``RawCollectionTarget``.
    """

    @property
    def full_name(self) -> str:
        """``database.collection``, for messages and logs."""

    def resolve(self, client: MongoClient[Any]) -> PyMongoCollection[Any]:
        """The pymongo collection bound to ``client`` (rebuilt if the cached one is for another client)."""


@attrs.frozen
class RawCollectionTarget:
    """Wraps a plain pymongo collection so that retries rebuild it on the engine's current client."""

    collection: PyMongoCollection[Any]

    @property
    def full_name(self) -> str:
        return self.collection.full_name

    def resolve(self, client: MongoClient[Any]) -> PyMongoCollection[Any]:
        collection = self.collection
        if collection.database.client is client:
            return collection
        return client.get_database(collection.database.name).get_collection(
            collection.name,
            codec_options=collection.codec_options,
            read_preference=collection.read_preference,
            write_concern=collection.write_concern,
            read_concern=collection.read_concern,
        )


CollectionLike = CollectionTarget | PyMongoCollection[Any]


def as_target(collection: CollectionLike) -> CollectionTarget:
    """Accept a ``mongomancy.Collection``, any ``CollectionTarget`` or a raw pymongo collection.

    Checked by attribute, not ``isinstance(..., CollectionTarget)``: a runtime protocol check costs ~8 µs,
    which this hot path cannot afford.
    """
    if isinstance(collection, PyMongoCollection):
        return RawCollectionTarget(collection)
    if callable(getattr(collection, "resolve", None)) and hasattr(collection, "full_name"):
        return collection
    raise TypeError(
        "collection must be a mongomancy Collection, a CollectionTarget or a pymongo Collection, "
        f"got {type(collection).__name__}"
    )


#: Update operators whose second application changes nothing.
IDEMPOTENT_UPDATE_OPERATORS = frozenset(
    {"$set", "$unset", "$setOnInsert", "$min", "$max", "$addToSet", "$pull", "$pullAll", "$currentDate"}
)

_READ_OPERATIONS = frozenset(
    {
        "find_one",
        "find",
        "count_documents",
        "estimated_document_count",
        "distinct",
        "list_indexes",
        "index_information",
        "options",
        "watch",
    }
)
_ALWAYS_IDEMPOTENT = frozenset(
    {
        "replace_one",
        "find_one_and_replace",
        "delete_many",
        "create_index",
        "create_indexes",
        "drop_index",
        "drop_indexes",
        "drop",
    }
)
#: Operations that return a cursor: running them under a client-side timeout would bound the whole
#: iteration (pymongo's ``cursorLifetime`` mode), so they get none.
_CURSOR_OPERATIONS = frozenset({"find", "aggregate", "watch", "list_indexes", "aggregate_raw_batches"})
_INSERT_OPERATIONS = frozenset({"insert_one", "insert_many"})


def is_idempotent_update(update: Any) -> bool:
    """True when ``update`` is a document made only of operators that are harmless to apply twice.

    An aggregation-pipeline update can compute from the old value (``{"$set": {"n": {"$add": ["$n", 1]}}}``),
    so it counts as not idempotent.
    """
    if not isinstance(update, Mapping) or not update:
        return False
    return all(operator in IDEMPOTENT_UPDATE_OPERATORS for operator in update)


def filters_on_single_id(filter_: Any) -> bool:
    """True when ``filter_`` pins one document by ``_id`` equality, so "delete one" means *that* one."""
    if not isinstance(filter_, Mapping) or "_id" not in filter_:
        return False
    value = filter_["_id"]
    return not (isinstance(value, Mapping) and any(str(key).startswith("$") for key in value))


def _argument(args: Sequence[Any], kwargs: Mapping[str, Any], index: int, name: str) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name)


def _ensure_id(document: Any, generated: set[Any] | None = None) -> bool:
    """Give ``document`` an ``_id`` now (as pymongo would at send time), so a replay carries the same one.

    The ``_id``s made here go into ``generated``: a duplicate of one of them can only be our own insert.
    """
    if isinstance(document, MutableMapping):
        if "_id" not in document:
            document["_id"] = ObjectId()
            if generated is not None:
                generated.add(document["_id"])
        return True
    return isinstance(document, Mapping) and "_id" in document


def _classify_bulk(requests: Iterable[Any]) -> tuple[RetryClass, bool]:
    """Retry class of a bulk write, and whether pymongo can retry it (no multi-document operation)."""
    idempotent = True
    single_statements = True
    for request in requests:
        if isinstance(request, InsertOne):
            idempotent &= _ensure_id(request._doc)
        elif isinstance(request, (UpdateOne, UpdateMany)):
            idempotent &= is_idempotent_update(request._doc)
            single_statements &= isinstance(request, UpdateOne)
        elif isinstance(request, ReplaceOne):
            pass
        elif isinstance(request, DeleteOne):
            idempotent &= filters_on_single_id(request._filter)
        elif isinstance(request, DeleteMany):
            single_statements = False
        else:
            idempotent = False
            single_statements = False
    return (RetryClass.IDEMPOTENT_WRITE if idempotent else RetryClass.NON_IDEMPOTENT_WRITE), single_statements


def _classify_aggregate(pipeline: Any) -> RetryClass:
    if not isinstance(pipeline, Sequence) or not pipeline or not isinstance(pipeline[-1], Mapping):
        return RetryClass.READ
    last = pipeline[-1]
    if "$out" in last:
        return RetryClass.IDEMPOTENT_WRITE  # replaces the target collection wholesale
    if "$merge" in last:
        spec = last["$merge"]
        when_matched = spec.get("whenMatched", "merge") if isinstance(spec, Mapping) else "merge"
        safe = isinstance(when_matched, str) and when_matched in {"replace", "keepExisting", "merge", "fail"}
        return RetryClass.IDEMPOTENT_WRITE if safe else RetryClass.NON_IDEMPOTENT_WRITE
    return RetryClass.READ


def classify(
    operation: str,
    args: Sequence[Any],
    kwargs: MutableMapping[str, Any],
    generated_ids: set[Any] | None = None,
) -> tuple[RetryClass, bool]:
    """The retry class of ``operation(*args, **kwargs)`` and whether pymongo itself can retry it.

    Side effect, on purpose: documents to insert without an ``_id`` get one here, exactly as pymongo would
    give them at send time, so that a replay carries the same ``_id`` and a duplicate-key answer proves
    the first attempt landed.  ``insert_many`` receives its documents as a list for the same reason.
    """
    if operation in _READ_OPERATIONS:
        return RetryClass.READ, True
    if operation == "aggregate":
        retry_class = _classify_aggregate(_argument(args, kwargs, 0, "pipeline"))
        return retry_class, retry_class is RetryClass.READ
    if operation == "insert_one":
        has_id = _ensure_id(_argument(args, kwargs, 0, "document"), generated_ids)
        return (RetryClass.IDEMPOTENT_WRITE if has_id else RetryClass.NON_IDEMPOTENT_WRITE), True
    if operation == "insert_many":
        documents = _argument(args, kwargs, 0, "documents")
        all_have_ids = documents is not None
        for document in documents or ():
            all_have_ids &= _ensure_id(document, generated_ids)  # each one gets its _id: no short-circuit
        return (RetryClass.IDEMPOTENT_WRITE if all_have_ids else RetryClass.NON_IDEMPOTENT_WRITE), True
    if operation in _ALWAYS_IDEMPOTENT:
        return RetryClass.IDEMPOTENT_WRITE, operation in {"replace_one", "find_one_and_replace"}
    if operation in {"update_one", "update_many", "find_one_and_update"}:
        update = _argument(args, kwargs, 1, "update")
        retry_class = (
            RetryClass.IDEMPOTENT_WRITE if is_idempotent_update(update) else RetryClass.NON_IDEMPOTENT_WRITE
        )
        return retry_class, operation != "update_many"
    if operation in {"delete_one", "find_one_and_delete"}:
        pinned = filters_on_single_id(_argument(args, kwargs, 0, "filter"))
        return (RetryClass.IDEMPOTENT_WRITE if pinned else RetryClass.NON_IDEMPOTENT_WRITE), True
    if operation == "bulk_write":
        return _classify_bulk(_argument(args, kwargs, 0, "requests") or ())
    return RetryClass.NON_IDEMPOTENT_WRITE, False


@attrs.frozen(eq=False)
class Command:
    """One collection operation, replayable on whatever client and handle are current at each attempt."""

    operation: str
    target: CollectionTarget
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    retry_class: RetryClass
    #: pymongo retries it itself (single-statement): under a client-side timeout, with the same txnNumber.
    driver_retryable: bool
    #: ``_id``s the engine gave to documents to insert (a duplicate of one can only be our own insert).
    generated_ids: frozenset[Any] = attrs.field(default=frozenset(), kw_only=True)
    #: Run attempts under ``pymongo.timeout``: only for non-idempotent writes pymongo can retry, the one
    #: case where pymongo's retries with the same txnNumber buy exactly-once.  Everything else skips it:
    #: its bookkeeping costs ~25 µs per operation, and our own retries are safe for those commands.
    client_timeout: bool

    @classmethod
    def build(
        cls, operation: str, collection: CollectionLike, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> Command:
        """Classify the call and freeze it; inserts get their ``_id`` now (see ``classify``)."""
        mutable_kwargs = dict(kwargs)
        arguments = list(args)
        if operation == "insert_many":
            _materialise_documents(arguments, mutable_kwargs)
        generated: set[Any] | None = set() if operation in _INSERT_OPERATIONS else None
        retry_class, driver_retryable = classify(operation, arguments, mutable_kwargs, generated)
        return cls(
            operation=operation,
            generated_ids=frozenset(generated or ()),
            target=as_target(collection),
            args=tuple(arguments),
            kwargs=mutable_kwargs,
            retry_class=retry_class,
            driver_retryable=driver_retryable,
            client_timeout=(
                driver_retryable
                and retry_class is RetryClass.NON_IDEMPOTENT_WRITE
                and operation not in _CURSOR_OPERATIONS
            ),
        )

    @property
    def is_read(self) -> bool:
        return self.retry_class is RetryClass.READ

    @property
    def is_insert(self) -> bool:
        return self.operation in _INSERT_OPERATIONS

    @property
    def in_transaction(self) -> bool:
        session = self.kwargs.get("session")
        return bool(session is not None and session.in_transaction)

    def run(self, client: MongoClient[Any]) -> Any:
        """One attempt on ``client``: resolve the handle afresh, then call pymongo."""
        session = self.kwargs.get("session")
        if session is not None and session.client is not client:
            raise StaleSessionError(
                f"{self.operation} on {self.target.full_name}: the session belongs to a client the engine "
                "has replaced; start a new session with engine.start_session()"
            )
        return getattr(self.target.resolve(client), self.operation)(*self.args, **self.kwargs)

    def runs_without_primary(self, client: MongoClient[Any]) -> bool:
        """True for a read whose read preference accepts a secondary: it need not wait for a primary."""
        if not self.is_read:
            return False
        preference = self.kwargs.get("read_preference") or self.target.resolve(client).read_preference
        return bool(preference.mode != ReadPreference.PRIMARY.mode)

    def describe(self) -> str:
        """A short, credential-free description for messages and logs."""
        return f"{self.operation} on {self.target.full_name} ({self.retry_class.value})"

    def __repr__(self) -> str:
        return f"<Command {self.describe()}>"


@attrs.frozen(eq=False)
class FunctionCommand:
    """Any function of the client, run with the engine's retry policy (``Engine.run``).

    For work that is not one collection call (schema reconciliation, an admin command): the caller
    states the retry class, because only the caller knows whether its function is safe to run twice.
    """

    description: str
    function: Callable[[MongoClient[Any]], Any]
    retry_class: RetryClass = RetryClass.IDEMPOTENT_WRITE
    client_timeout: bool = False
    driver_retryable: bool = False
    is_insert: ClassVar[bool] = False
    in_transaction: ClassVar[bool] = False

    @property
    def is_read(self) -> bool:
        return self.retry_class is RetryClass.READ

    def run(self, client: MongoClient[Any]) -> Any:
        return self.function(client)

    def runs_without_primary(self, client: MongoClient[Any]) -> bool:
        return False

    def describe(self) -> str:
        return f"{self.description} ({self.retry_class.value})"


AnyCommand = Command | FunctionCommand


def _materialise_documents(arguments: list[Any], kwargs: dict[str, Any]) -> None:
    """``insert_many`` accepts any iterable; a generator could not be replayed, so take it as a list."""
    if arguments:
        arguments[0] = list(arguments[0])
    elif "documents" in kwargs:
        kwargs["documents"] = list(kwargs["documents"])
