"""Command objects: one call a worker made, with everything needed to run it again on a fresh handle.

Why objects instead of closures: a retry must resolve the collection *afresh* (the client may have been
replaced, the handle swapped by a hook), and must know who owns its retries.  A frozen value that names the
operation, the target, the arguments and the kind of operation (``retry.CommandKind``) makes both explicit and
testable.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import attrs
import pymongo
from pymongo import DeleteOne, InsertOne, MongoClient, ReplaceOne, UpdateOne
from pymongo.collection import Collection as PyMongoCollection
from pymongo.errors import PyMongoError
from pymongo.read_preferences import ReadPreference

from mongomancy.errors import StaleSessionError
from mongomancy.retry import Attempts, CommandKind, RetryPolicy


class RetryClass(enum.Enum):
    """The caller's promise about an ``Engine.run`` function: may it run again after it may have applied?"""

    READ = "read"
    #: Running it twice leaves the same data *and* returns the same result as running it once.
    IDEMPOTENT_WRITE = "idempotent_write"
    #: Anything else (the default): never replayed once it may have applied.
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
#: Single-statement writes pymongo retries itself with the same transaction number (retryable-writes spec,
#: "Supported Write Operations"); ``insert_many`` is a batch of single-document inserts.
_DRIVER_RETRIED_WRITES = frozenset(
    {
        "insert_one",
        "insert_many",
        "update_one",
        "replace_one",
        "delete_one",
        "find_one_and_update",
        "find_one_and_replace",
        "find_one_and_delete",
    }
)
#: Applying these twice leaves the same data and returns the same result (pymongo's ``drop`` ignores a missing
#: collection; ``create_index`` answers with the index name whether or not it existed).
_IDEMPOTENT_OPERATIONS = frozenset({"create_index", "create_indexes", "drop"})

_SINGLE_STATEMENT_REQUESTS = (InsertOne, UpdateOne, ReplaceOne, DeleteOne)


def _argument(args: Sequence[Any], kwargs: Mapping[str, Any], index: int, name: str) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name)


def _aggregate_kind(pipeline: Any) -> CommandKind:
    if not isinstance(pipeline, Sequence) or not pipeline or not isinstance(pipeline[-1], Mapping):
        return CommandKind.READ
    last = pipeline[-1]
    if "$out" in last:
        return CommandKind.IDEMPOTENT  # replaces the target collection wholesale
    if "$merge" in last:
        return CommandKind.WRITE
    return CommandKind.READ


def command_kind(operation: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> CommandKind:
    """Who owns the retries of ``operation(*args, **kwargs)`` (see ``retry.CommandKind``)."""
    if operation in _READ_OPERATIONS:
        return CommandKind.READ
    if operation in _DRIVER_RETRIED_WRITES:
        return CommandKind.DRIVER_RETRIED_WRITE
    if operation == "bulk_write":
        requests = _argument(args, kwargs, 0, "requests") or ()
        if all(isinstance(request, _SINGLE_STATEMENT_REQUESTS) for request in requests):
            return CommandKind.DRIVER_RETRIED_WRITE
        # pymongo's bulk raises a later command's top-level error as is, the earlier commands' counts lost.
        return CommandKind.WRITE if len(requests) == 1 else CommandKind.MULTI_COMMAND_WRITE
    if operation == "aggregate":
        return _aggregate_kind(_argument(args, kwargs, 0, "pipeline"))
    if operation in _IDEMPOTENT_OPERATIONS:
        return CommandKind.IDEMPOTENT
    return CommandKind.WRITE  # update_many, delete_many, drop_index(es), anything unknown


def _function_kind(retry_class: RetryClass) -> CommandKind:
    if retry_class is RetryClass.READ:
        return CommandKind.READ
    if retry_class is RetryClass.IDEMPOTENT_WRITE:
        return CommandKind.IDEMPOTENT
    return CommandKind.FUNCTION


@attrs.frozen(eq=False)
class Command:
    """One collection operation, replayable on whatever client and handle are current at each attempt."""

    operation: str
    target: CollectionTarget
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    kind: CommandKind

    @classmethod
    def build(
        cls, operation: str, collection: CollectionLike, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> Command:
        """Classify the call and freeze it (an ``insert_many`` iterable is taken as a list, replayable)."""
        arguments = list(args)
        mutable_kwargs = dict(kwargs)
        if operation == "insert_many":
            _materialise_documents(arguments, mutable_kwargs)
        return cls(
            operation=operation,
            target=as_target(collection),
            args=tuple(arguments),
            kwargs=mutable_kwargs,
            kind=command_kind(operation, arguments, mutable_kwargs),
        )

    @property
    def is_read(self) -> bool:
        return self.kind is CommandKind.READ

    @property
    def in_transaction(self) -> bool:
        session = self.kwargs.get("session")
        return bool(session is not None and session.in_transaction)

    def run(self, client: MongoClient[Any], seconds: float | None = None) -> Any:
        """One attempt on ``client``: resolve the handle afresh, then call pymongo.

        With ``seconds``, the call runs under ``pymongo.timeout(seconds)`` unless the write concern names a
        ``wtimeout``: pymongo drops ``wtimeout`` under a client-side timeout (CSOT spec: drivers MUST NOT
        send it with ``timeoutMS``), so such a write keeps the caller's ``wtimeout`` and pymongo's single
        retry instead.
        """
        session = self.kwargs.get("session")
        if session is not None:
            if session.client is not client:
                raise StaleSessionError(
                    f"{self.operation} on {self.target.full_name}: the session belongs to a client the "
                    "engine has replaced; start a new session with engine.start_session()"
                )
            if session.in_transaction:
                seconds = None  # pymongo's with_transaction owns the retries and the time of a transaction
        collection = self.target.resolve(client)
        method = getattr(collection, self.operation)
        if seconds is None or (not self.is_read and "wtimeout" in collection.write_concern.document):
            return method(*self.args, **self.kwargs)
        with pymongo.timeout(max(seconds, 0.001)):
            return method(*self.args, **self.kwargs)

    def runs_without_primary(self, client: MongoClient[Any]) -> bool:
        """True for a read whose read preference accepts a secondary: it need not wait for a primary."""
        if not self.is_read:
            return False
        preference = self.kwargs.get("read_preference") or self.target.resolve(client).read_preference
        return bool(preference.mode != ReadPreference.PRIMARY.mode)

    def describe(self) -> str:
        """A short, credential-free description for messages and logs."""
        return f"{self.operation} on {self.target.full_name} ({self.kind.value})"

    def __repr__(self) -> str:
        return f"<Command {self.describe()}>"


@attrs.frozen(eq=False)
class FunctionCommand:
    """Any function of the client, run with the engine's retry policy (``Engine.run``).

    For work that is not one collection call (schema reconciliation, an admin command): the caller states the
    retry class, because only the caller knows whether its function is safe to run twice.  The default is
    NON_IDEMPOTENT_WRITE: such a function is never replayed once it may have applied.
    """

    description: str
    function: Callable[[MongoClient[Any]], Any]
    retry_class: RetryClass = RetryClass.NON_IDEMPOTENT_WRITE
    in_transaction: ClassVar[bool] = False

    @property
    def kind(self) -> CommandKind:
        return _function_kind(self.retry_class)

    @property
    def is_read(self) -> bool:
        return self.retry_class is RetryClass.READ

    def run(self, client: MongoClient[Any], seconds: float | None = None) -> Any:
        """Run the function, under ``pymongo.timeout(seconds)`` when given (one deadline for all of it)."""
        if seconds is None:
            return self.function(client)
        with pymongo.timeout(max(seconds, 0.001)):
            return self.function(client)

    def runs_without_primary(self, client: MongoClient[Any]) -> bool:
        return False

    def describe(self) -> str:
        return f"{self.description} ({self.retry_class.value})"


AnyCommand = Command | FunctionCommand


class CommandRunner(Protocol):
    """What a resumable cursor needs from the engine that runs it (``Engine`` implements it).

    A protocol rather than ``Engine`` itself, so the cursor module does not import the engine module that
    imports it (no import cycle, not even under ``TYPE_CHECKING``).
    """

    @property
    def client(self) -> MongoClient[Any]: ...

    @property
    def retry_policy(self) -> RetryPolicy: ...

    @property
    def logger(self) -> logging.Logger: ...

    def execute(self, command: AnyCommand) -> Any: ...

    def recover(
        self,
        command: AnyCommand,
        error: PyMongoError,
        attempts: Attempts,
        deadline: float,
        limit_is_callers: bool = False,
    ) -> Attempts: ...


def _materialise_documents(arguments: list[Any], kwargs: dict[str, Any]) -> None:
    """``insert_many`` accepts any iterable; a generator could not be replayed, so take it as a list."""
    if arguments:
        arguments[0] = list(arguments[0])
    elif "documents" in kwargs:
        kwargs["documents"] = list(kwargs["documents"])
