"""``Database`` and ``Collection``: the seed's data-definition layer, every operation through the engine.

Why a facade instead of handing out pymongo objects: a pymongo ``Collection`` is bound to one
``MongoClient`` for life.  When the engine replaces its client (``reconnect()``, or the
replace-on-failover policy) every pymongo object built on the old client points at a closed client.
mongomancy 0.1 kept such objects around, and its retry rebound a variable to a raw pymongo collection and
then looked an attribute up on it, so every retry after the first wrote into an auto-created stray
collection (``things.dialect_entity``).  Here:

* a :class:`Collection` is a :class:`~mongomancy.commands.CollectionTarget`: every call becomes a command
  the engine runs (inline when healthy, queued and retried through a failover), and every attempt asks
  the Collection for the handle of *that attempt's* client (:meth:`Collection.resolve`), so a retry never
  reuses a stale pymongo object;
* the :class:`Database` registers :meth:`Database.invalidate_cache_hook` on the engine; on every hook
  event (primary change, no primary, primary back, client replaced) it rebinds its pymongo database and
  all its collection handles to the engine's current client under one lock.  Each binding is one
  immutable ``(client, handle)`` tuple replaced by a single reference assignment, so a reader never sees
  a handle paired with the wrong client, and the hot path takes no lock.

Correctness never depends on the hook having run: :meth:`Collection.resolve` compares the cached
handle's client with the client of the attempt and builds a fresh handle when they differ.  The hook
only keeps that comparison true, so the hot path stays one attribute read and one ``is``.
"""

from __future__ import annotations

import logging
import threading
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs
import pymongo
from bson.codec_options import CodecOptions
from pymongo import MongoClient
from pymongo.collection import Collection as PyMongoCollection
from pymongo.database import Database as PyMongoDatabase
from pymongo.errors import PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.read_preferences import ReadPreference, _ServerMode
from pymongo.write_concern import WriteConcern

from mongomancy._forking import renew_after_fork
from mongomancy.commands import CollectionTarget, FunctionCommand, RetryClass
from mongomancy.engine import Engine
from mongomancy.errors import ConfigurationError, MongomancyError, UnknownCollectionError
from mongomancy.events import TopologyChange
from mongomancy.schema.apply import DEFAULT_BUILD_TIMEOUT, ApplyResult, BuildRunner, apply_plan
from mongomancy.schema.definitions import CollectionDefinition
from mongomancy.schema.live import read_live_state
from mongomancy.schema.plan import Plan, plan

if TYPE_CHECKING:
    from pymongo.command_cursor import CommandCursor
    from pymongo.results import (
        BulkWriteResult,
        DeleteResult,
        InsertManyResult,
        InsertOneResult,
        UpdateResult,
    )

    from mongomancy.cursor import ResumableAggregateCursor, ResumableCursor

__all__ = ["DEFAULT_DATABASE_NAME", "Collection", "Database"]

T = TypeVar("T")

#: The database a :class:`Database` uses when neither ``name`` nor the engine's URI names one.
DEFAULT_DATABASE_NAME: Final = "mongomancy"
#: Seconds :meth:`Database.ping` waits for an answer by default.
DEFAULT_PING_TIMEOUT: Final = 2.0

_INVALID_DATABASE_CHARACTERS: Final = frozenset('/\\. "$\0')
_MAX_DATABASE_NAME_BYTES: Final = 63

#: ``(client, handle)``: replaced as a whole, never mutated, so readers need no lock.
_Binding = tuple[MongoClient[Any], PyMongoCollection[Any]]
_DatabaseBinding = tuple[MongoClient[Any], PyMongoDatabase[Any]]


class Collection(CollectionTarget):
    """A collection of a :class:`Database`: the pymongo collection surface, every call through the engine.

    Each method takes the same arguments as the pymongo method of the same name and returns what pymongo
    returns, but runs as an engine command: inline while a primary is known, queued and retried per the
    engine's :class:`~mongomancy.retry.RetryPolicy` through a failover.  ``find`` returns a
    :class:`~mongomancy.cursor.ResumableCursor` that survives a failover mid-iteration.

    Get one from the database (``db["game"]``, ``db.get_collection("game")``, ``db.add_collection(...)``)
    or from :meth:`with_options`; do not build it yourself.

    It subclasses the ``CollectionTarget`` protocol explicitly so that the contract it fulfils for the
    engine (``full_name`` and ``resolve(client)``) is checked by mypy and visible to readers.
    """

    __slots__ = ("_binding", "_database", "_engine", "_full_name", "_name", "_options")

    def __init__(
        self,
        database: Database,
        name: str,
        binding: _DatabaseBinding,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self._database = database
        self._engine: Engine = database.engine
        self._name = name
        self._full_name = f"{database.name}.{name}"
        self._options: dict[str, Any] = dict(options or {})
        self._binding: _Binding = self._bind(binding)

    # ------------------------------------------------------------------------------------- binding
    def _bind(self, binding: _DatabaseBinding) -> _Binding:
        """The ``(client, handle)`` pair for the client of ``binding`` (built, not stored)."""
        client, database = binding
        return (client, database.get_collection(self._name, **self._options))

    def resolve(self, client: MongoClient[Any]) -> PyMongoCollection[Any]:
        """The pymongo collection of this collection on ``client``, which the engine gives each attempt.

        The hot path is one attribute read and one identity test.  A handle for another client (the
        engine replaced its client and the hook has not rebound us yet, or this attempt still runs on the
        previous client) is built afresh: a stale pymongo object is never used.
        """
        binding = self._binding
        if binding[0] is client:
            return binding[1]
        return self._database._rebind_collection(self, client)

    # ------------------------------------------------------------------------------------- properties
    @property
    def name(self) -> str:
        """The collection's name, e.g. ``"game"``."""
        return self._name

    @property
    def full_name(self) -> str:
        """``"<database>.<collection>"``, for messages and logs."""
        return self._full_name

    @property
    def database(self) -> Database:
        """The mongomancy :class:`Database` this collection belongs to."""
        return self._database

    @property
    def engine(self) -> Engine:
        """The engine every call of this collection goes through."""
        return self._engine

    @property
    def options(self) -> Mapping[str, Any]:
        """The options given to :meth:`with_options` (empty: the client's and database's defaults)."""
        return dict(self._options)

    @property
    def dialect_entity(self) -> PyMongoCollection[Any]:
        """The raw pymongo collection on the engine's *current* client: the documented escape hatch.

        Calls made on it are NOT queued or retried by the engine, and the object goes stale when the
        engine replaces its client (using it then raises ``InvalidOperation``).  Fetch it again for each
        use, and prefer the methods of this class, which do survive failovers.  (The name is the seed's.)
        """
        return self.resolve(self._engine.client)

    @property
    def pymongo_collection(self) -> PyMongoCollection[Any]:
        """mongomancy 0.1's name for :attr:`dialect_entity` (same caveats: not retried, goes stale)."""
        return self.dialect_entity

    # ------------------------------------------------------------------------------------- options
    def with_options(
        self,
        codec_options: CodecOptions[Any] | None = None,
        read_preference: _ServerMode | None = None,
        write_concern: WriteConcern | None = None,
        read_concern: ReadConcern | None = None,
    ) -> Collection:
        """A new mongomancy collection with these options (the others inherited from this one).

        Like pymongo's ``Collection.with_options``, but the result still runs through the engine and is
        still rebound by the database's hook when the client changes.
        """
        given = {
            "codec_options": (codec_options, CodecOptions),
            "read_preference": (read_preference, _ServerMode),
            "write_concern": (write_concern, WriteConcern),
            "read_concern": (read_concern, ReadConcern),
        }
        options = dict(self._options)
        for option, (value, kind) in given.items():
            if value is None:
                continue
            if not isinstance(value, kind):
                raise TypeError(f"{option} must be a {kind.__name__} or None, got {type(value).__name__}")
            options[option] = value
        return self._database._derive(self._name, options)

    # ------------------------------------------------------------------------------------- reads
    def find_one(self, *args: Any, **kwargs: Any) -> Any:
        """``pymongo.Collection.find_one``: the first matching document or None (retried as a read)."""
        return self._engine.find_one(self, *args, **kwargs)

    def find(self, *args: Any, **kwargs: Any) -> ResumableCursor:
        """``find(filter, projection, sort=..., limit=..., skip=..., batch_size=...)``.

        Returns a :class:`~mongomancy.cursor.ResumableCursor`, which resumes after the last document
        it yielded when a failover kills the server-side cursor mid-iteration.  The server receives the
        caller's sort unchanged; an unsorted query is sorted by ``_id`` (``resumable=False`` keeps the
        server's natural order, and cannot resume).
        """
        return self._engine.find(self, *args, **kwargs)

    def count_documents(self, *args: Any, **kwargs: Any) -> int:
        return self._engine.count_documents(self, *args, **kwargs)

    def estimated_document_count(self, *args: Any, **kwargs: Any) -> int:
        return self._engine.estimated_document_count(self, *args, **kwargs)

    def distinct(self, *args: Any, **kwargs: Any) -> list[Any]:
        return self._engine.distinct(self, *args, **kwargs)

    def aggregate(self, *args: Any, **kwargs: Any) -> ResumableAggregateCursor | CommandCursor[Any]:
        """``pymongo.Collection.aggregate``: a read pipeline gives a
        :class:`~mongomancy.cursor.ResumableAggregateCursor` (``$match``/``$sort`` pipelines resume after a
        failover mid-iteration); one ending in ``$out``/``$merge`` runs as a retried command."""
        cursor: ResumableAggregateCursor | CommandCursor[Any] = self._engine.aggregate(self, *args, **kwargs)
        return cursor

    def watch(self, *args: Any, **kwargs: Any) -> Any:
        """``pymongo.Collection.watch``: opening the stream is retried; the stream itself is pymongo's
        (it resumes across an election by itself, but not across a replaced client)."""
        return self._engine.watch(self, *args, **kwargs)

    def list_indexes(self, *args: Any, **kwargs: Any) -> CommandCursor[Any]:
        cursor: CommandCursor[Any] = self._engine.list_indexes(self, *args, **kwargs)
        return cursor

    def index_information(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self._engine.index_information(self, *args, **kwargs)

    # ------------------------------------------------------------------------------------- writes
    def insert_one(self, *args: Any, **kwargs: Any) -> InsertOneResult:
        """Insert one document; it gets its ``_id`` before the first attempt, so a replay is detectable."""
        result: InsertOneResult = self._engine.insert_one(self, *args, **kwargs)
        return result

    def insert_many(self, *args: Any, **kwargs: Any) -> InsertManyResult:
        result: InsertManyResult = self._engine.insert_many(self, *args, **kwargs)
        return result

    def update_one(self, *args: Any, **kwargs: Any) -> UpdateResult:
        result: UpdateResult = self._engine.update_one(self, *args, **kwargs)
        return result

    def update_many(self, *args: Any, **kwargs: Any) -> UpdateResult:
        result: UpdateResult = self._engine.update_many(self, *args, **kwargs)
        return result

    def replace_one(self, *args: Any, **kwargs: Any) -> UpdateResult:
        result: UpdateResult = self._engine.replace_one(self, *args, **kwargs)
        return result

    def delete_one(self, *args: Any, **kwargs: Any) -> DeleteResult:
        result: DeleteResult = self._engine.delete_one(self, *args, **kwargs)
        return result

    def delete_many(self, *args: Any, **kwargs: Any) -> DeleteResult:
        result: DeleteResult = self._engine.delete_many(self, *args, **kwargs)
        return result

    def find_one_and_update(self, *args: Any, **kwargs: Any) -> Any:
        return self._engine.find_one_and_update(self, *args, **kwargs)

    def find_one_and_replace(self, *args: Any, **kwargs: Any) -> Any:
        return self._engine.find_one_and_replace(self, *args, **kwargs)

    def find_one_and_delete(self, *args: Any, **kwargs: Any) -> Any:
        return self._engine.find_one_and_delete(self, *args, **kwargs)

    def bulk_write(self, *args: Any, **kwargs: Any) -> BulkWriteResult:
        result: BulkWriteResult = self._engine.bulk_write(self, *args, **kwargs)
        return result

    # ------------------------------------------------------------------------------------- indexes
    def create_index(self, *args: Any, **kwargs: Any) -> str:
        """Create an index now (prefer declaring it in the definition: ``create_all`` notices drift)."""
        return self._engine.create_index(self, *args, **kwargs)

    def create_indexes(self, *args: Any, **kwargs: Any) -> list[str]:
        return self._engine.create_indexes(self, *args, **kwargs)

    def drop_index(self, *args: Any, **kwargs: Any) -> None:
        self._engine.drop_index(self, *args, **kwargs)

    def drop_indexes(self, *args: Any, **kwargs: Any) -> None:
        self._engine.drop_indexes(self, *args, **kwargs)

    def drop(self, *args: Any, **kwargs: Any) -> None:
        """Drop the collection on the server; its definition stays, so ``create_all`` re-creates it."""
        self._engine.drop(self, *args, **kwargs)

    # ------------------------------------------------------------------------------------- dunder
    def __repr__(self) -> str:
        options = f" {sorted(self._options)}" if self._options else ""
        return f"<mongomancy.Collection {self._full_name}{options}>"


@attrs.frozen(eq=False)
class _PingCommand(FunctionCommand):
    """``ping`` may be answered by any member: it must not wait in the queue for a primary."""

    def runs_without_primary(self, client: MongoClient[Any]) -> bool:
        return True


class _PingFailed(MongomancyError):
    """Raised inside the ping function so the engine does not retry it for its whole budget."""


class Database:
    """A MongoDB database declared in code: collection definitions, and handles that survive failovers.

    ``Database(engine)`` uses the database named in the engine's URI
    (``mongodb://h1,h2/appdb?replicaSet=rs0`` -> ``"appdb"``, pymongo's ``get_default_database``
    semantics) or, when the URI names none (``Engine("localhost", 27017)`` as in the seed example),
    :data:`DEFAULT_DATABASE_NAME` (``"mongomancy"``): a name of its own rather than MongoDB's ``test``,
    so data never lands silently in a database shared with other tools.  Pass ``name`` to choose.

    Only *defined* collections are reachable: ``db["x"]`` for a name no definition declares raises
    :class:`~mongomancy.errors.UnknownCollectionError` (a ``KeyError``) listing the known names, so a
    typo fails loudly instead of creating a collection.  To use a new collection, define it:
    ``db.add_collection(CollectionDefinition(name="x"))`` returns its :class:`Collection`.

    The database registers :meth:`invalidate_cache_hook` on the engine; call :meth:`close` (or use it as
    a context manager) when you drop a database before its engine, so the engine stops calling it.
    """

    def __init__(
        self,
        engine: Engine,
        name: str | None = None,
        logger: logging.Logger | None = None,
        *definitions: CollectionDefinition,
    ) -> None:
        if isinstance(engine, str) and isinstance(logger, Engine):
            # mongomancy 0.1's positional order: Database(name, logger, engine, *definitions).
            warnings.warn(
                "Database(name, logger, engine) is mongomancy 0.1's argument order; "
                "write Database(engine, name, logger) or use keywords",
                DeprecationWarning,
                stacklevel=2,
            )
            engine, name, logger = logger, engine, name
        if not isinstance(engine, Engine):
            raise TypeError(f"engine must be a mongomancy Engine, got {type(engine).__name__}")
        if logger is not None and not isinstance(logger, (logging.Logger, logging.LoggerAdapter)):
            raise TypeError(f"logger must be a logging.Logger or None, got {type(logger).__name__}")
        if name is not None:
            _check_database_name(name)
        self._engine = engine
        self._logger: logging.Logger | logging.LoggerAdapter[Any] = logger or logging.getLogger(
            "mongomancy.schema"
        )
        client = engine.client
        if name is None:
            name = client.get_default_database(DEFAULT_DATABASE_NAME).name
        self._name: str = name
        # The lock serialises writers (definitions, derived collections, rebinding); readers never take it:
        # they read whole immutable values that writers replace by one reference assignment.
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock")  # a lock held by a parent thread at fork() would never be released
        self._definitions: Mapping[str, CollectionDefinition] = {}
        self._collections: Mapping[str, Collection] = {}
        self._derived: weakref.WeakSet[Collection] = weakref.WeakSet()
        self._binding: _DatabaseBinding = (client, client.get_database(self._name))
        self._closed = False
        engine.register_hook(self.invalidate_cache_hook)
        # A client replaced between reading engine.client and registering the hook would be missed.
        self._rebind(engine.topology().client)
        if definitions:
            self.extend(*definitions)

    # ------------------------------------------------------------------------------------- properties
    @property
    def name(self) -> str:
        return self._name

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def logger(self) -> logging.Logger | logging.LoggerAdapter[Any]:
        return self._logger

    @property
    def topology(self) -> list[CollectionDefinition]:
        """The collection definitions, in the order they were added (a copy)."""
        return list(self._definitions.values())

    @property
    def dialect_entity(self) -> PyMongoDatabase[Any]:
        """The raw pymongo database on the engine's current client: an escape hatch, NOT retried.

        It goes stale when the engine replaces its client; fetch it again for each use.
        """
        return self._database_for(self._engine.client)

    # ------------------------------------------------------------------------------------- definitions
    def add_collection(self, definition: CollectionDefinition) -> Collection:
        """Declare a collection and return its :class:`Collection`.

        Adding an identical definition again returns the existing collection; a *different* definition
        under a name already defined raises :class:`~mongomancy.errors.ConfigurationError`, because two
        parts of a program disagreeing about a collection is a bug that ``create_all`` could not settle.
        """
        return self.extend(definition)[0]

    def extend(self, *definitions: CollectionDefinition) -> list[Collection]:
        """Declare several collections at once: all are added, or (on an error) none."""
        for position, definition in enumerate(definitions):
            if not isinstance(definition, CollectionDefinition):
                raise TypeError(
                    f"definition #{position} must be a CollectionDefinition, got {type(definition).__name__}"
                )
        with self._lock:
            known = dict(self._definitions)
            collections = dict(self._collections)
            added: list[Collection] = []
            for definition in definitions:
                existing = known.get(definition.name)
                if existing is not None:
                    if existing != definition:
                        raise ConfigurationError(
                            f"collection {definition.name!r} is already defined in database {self._name!r} "
                            f"with different {', '.join(_differing_fields(existing, definition))}; "
                            "define each collection once"
                        )
                    added.append(collections[definition.name])
                    continue
                known[definition.name] = definition
                collection = Collection(self, definition.name, self._binding)
                collections[definition.name] = collection
                added.append(collection)
            self._definitions = known
            self._collections = collections
        return added

    def get_collection(self, name: str) -> Collection:
        """The collection defined as ``name``; :class:`~mongomancy.errors.UnknownCollectionError` if none."""
        try:
            return self._collections[name]
        except KeyError:
            raise self._unknown(name) from None
        except TypeError:
            raise TypeError(f"a collection name must be a str, got {type(name).__name__}") from None

    def __getitem__(self, name: str) -> Collection:
        return self.get_collection(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._collections

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._collections))

    def __len__(self) -> int:
        return len(self._collections)

    def _unknown(self, name: object) -> UnknownCollectionError:
        if not isinstance(name, str):
            raise TypeError(f"a collection name must be a str, got {type(name).__name__}")
        known = ", ".join(repr(n) for n in self._collections) or "none"
        return UnknownCollectionError(
            f"no collection {name!r} is defined in database {self._name!r}; known collections: {known} "
            "(declare it with add_collection)"
        )

    # ------------------------------------------------------------------------------------- handles
    def invalidate_cache_hook(self, engine: Any, change: TopologyChange) -> None:
        """Reconnect hook: rebind the pymongo database and every collection handle to the current client.

        Runs on the engine's supervisor thread for every hook event.  All rebinding happens under one
        lock, and each binding is replaced by a single reference assignment, so a worker reading a
        handle concurrently sees either the old pair or the new one, never a half-swapped state.
        """
        client = self._engine.topology().client
        if client is None:  # the engine is being disposed
            return
        self._rebind(client)
        self._logger.debug("database %s: handles rebound after %s", self._name, change.describe())

    def _rebind(self, client: MongoClient[Any] | None) -> None:
        if client is None:
            return
        with self._lock:
            binding: _DatabaseBinding = (client, client.get_database(self._name))
            self._binding = binding
            for collection in (*self._collections.values(), *self._derived):
                collection._binding = collection._bind(binding)

    def _rebind_collection(self, collection: Collection, client: MongoClient[Any]) -> PyMongoCollection[Any]:
        """Slow path of :meth:`Collection.resolve`: a handle for ``client``, cached if ``client`` is current.

        Storing it only while holding the lock and only when ``client`` is the engine's current client
        keeps a late attempt on an old client from overwriting the hook's fresh handle.
        """
        handle = self._database_for(client).get_collection(collection.name, **collection._options)
        with self._lock:
            if self._engine.topology().client is client:
                collection._binding = (client, handle)
        return handle

    def _database_for(self, client: MongoClient[Any]) -> PyMongoDatabase[Any]:
        binding = self._binding
        if binding[0] is client:
            return binding[1]
        return client.get_database(self._name)

    def _derive(self, name: str, options: Mapping[str, Any]) -> Collection:
        with self._lock:
            collection = Collection(self, name, self._binding, options)
            self._derived.add(collection)
        return collection

    # ------------------------------------------------------------------------------------- health
    def ping(self, timeout: float = DEFAULT_PING_TIMEOUT) -> bool:
        """True when a member of the cluster answers ``ping`` within ``timeout`` seconds.

        Runs through the engine (so a disposed engine answers False) but is not retried for the engine's
        whole budget: a health check must answer quickly.  Any member may answer, so a cluster in the
        middle of an election still counts as reachable.  A failure is logged with its cause.
        """
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout!r}")

        def ping(client: MongoClient[Any]) -> Any:
            try:
                with pymongo.timeout(timeout):
                    return client.admin.command("ping", read_preference=ReadPreference.PRIMARY_PREFERRED)
            except PyMongoError as error:
                raise _PingFailed(f"{type(error).__name__}: {error}") from error

        try:
            self._engine.execute(_PingCommand("ping", ping, RetryClass.READ))
        except MongomancyError as error:
            self._logger.warning("ping of database %s failed: %s", self._name, error)
            return False
        return True

    # ------------------------------------------------------------------------------------- schema
    def plan(self, *, drop_undeclared: bool = False, keep: Iterable[str] = ()) -> Plan:
        """What :meth:`create_all` (``skip_existing=False``) would change: reads the live state through
        the engine, with retries, and compares it with the definitions.  Print it for a readable diff.

        ``drop_undeclared`` and ``keep`` as in :meth:`create_all`.
        """
        definitions = tuple(self._definitions.values())
        live = self._engine.run(
            f"read the live schema of database {self._name}",
            lambda client: read_live_state(self._database_for(client), definitions),
            retry_class=RetryClass.READ,
        )
        return plan(definitions, live, drop_undeclared=drop_undeclared, keep=keep)

    def create_all(
        self,
        skip_existing: bool = True,
        allow_drop: bool = False,
        *,
        drop_undeclared: bool = False,
        keep: Iterable[str] = (),
        build_timeout: float = DEFAULT_BUILD_TIMEOUT,
    ) -> ApplyResult:
        """Bring the live database in line with the definitions; safe to run from many processes at once.

        Always creates what is missing: collections, indexes (in new and existing collections alike) and
        default documents.  ``skip_existing=True`` (the default) leaves the options of existing objects
        alone (no ``collMod``, no index replacement) and logs each change it left at WARNING; ``False``
        makes them too.  A changed index is replaced, which needs ``allow_drop=True``: the new index is
        built beside the old one, which is dropped only once the new one exists.
        ``drop_undeclared=True`` also drops the indexes no definition declares, except those named in
        ``keep``.  Index builds wait up to ``build_timeout`` seconds, independently of the engine's retry
        budget.  Returns what it did (:class:`~mongomancy.schema.apply.ApplyResult`).
        """
        if not isinstance(skip_existing, bool):
            raise TypeError(f"skip_existing must be a bool, got {type(skip_existing).__name__}")
        if not isinstance(allow_drop, bool):
            raise TypeError(f"allow_drop must be a bool, got {type(allow_drop).__name__}")
        if not isinstance(drop_undeclared, bool):
            raise TypeError(f"drop_undeclared must be a bool, got {type(drop_undeclared).__name__}")
        if (
            isinstance(build_timeout, bool)
            or not isinstance(build_timeout, (int, float))
            or build_timeout <= 0
        ):
            raise ConfigurationError(
                f"build_timeout must be a positive number of seconds, got {build_timeout!r}"
            )
        keep = tuple(keep)
        full = self.plan(drop_undeclared=drop_undeclared, keep=keep)
        left: list[str] = []
        chosen = full
        if skip_existing:
            chosen = full.missing_only()
            left = full.changes_to_existing()
            for line in left:
                self._logger.warning("database %s: left unchanged (skip_existing=True): %s", self._name, line)
        for note in full.notes:
            self._logger.warning("database %s: %s", self._name, note)
        if full.is_empty:
            self._logger.info("database %s matches its definitions", self._name)
        elif not chosen.is_empty:
            self._logger.info("database %s: applying\n%s", self._name, chosen)
        build = BuildRunner(attempt=self._attempt_build, timeout=float(build_timeout))
        result = apply_plan(chosen, self._execute_ddl, allow_drop=allow_drop, build=build)
        result = attrs.evolve(result, left_unchanged=tuple(left))
        if result.changed:
            self._logger.info("database %s: %s", self._name, str(result).replace("\n", "; "))
        return result

    def _attempt_build(self, description: str, fn: Callable[[PyMongoDatabase[Any]], T], /) -> T:
        """One attempt of an index build: the engine waits for a primary (within its budget), then the
        build runs on that client *outside* the engine's ``pymongo.timeout(budget)``, under the build
        runner's own timeout: a build may take far longer than any other operation."""
        client = self._engine.run(
            f"wait for a primary to {description}", lambda client: client, retry_class=RetryClass.READ
        )
        return fn(self._database_for(client))

    def _execute_ddl(self, description: str, fn: Callable[[PyMongoDatabase[Any]], T], /) -> T:
        """How ``apply_plan`` runs each step: through the engine, on this database of the current client."""
        return self._engine.run(
            description,
            lambda client: fn(self._database_for(client)),
            retry_class=RetryClass.IDEMPOTENT_WRITE,
        )

    # ------------------------------------------------------------------------------------- 0.1 names
    def create_collection(self, definition: CollectionDefinition, skip_existing: bool = True) -> Collection:
        """mongomancy 0.1: declare one collection and create what it lacks now (collection, indexes, default
        documents; with ``skip_existing=False`` also in-place changes).  Prefer ``add_collection`` for every
        definition, then one ``create_all()``."""
        collection = self.add_collection(definition)
        live = self._engine.run(
            f"read the live schema of {self._name}.{definition.name}",
            lambda client: read_live_state(self._database_for(client), [definition]),
            retry_class=RetryClass.READ,
        )
        step = plan([definition], live)
        apply_plan(
            step.missing_only() if skip_existing else step,
            self._execute_ddl,
            build=BuildRunner(attempt=self._attempt_build),
        )
        return collection

    def list_collection_names(self) -> list[str]:
        """mongomancy 0.1: the names of the collections that exist on the server (defined or not)."""
        names: list[str] = self._engine.run(
            f"list the collections of {self._name}",
            lambda client: self._database_for(client).list_collection_names(),
            retry_class=RetryClass.READ,
        )
        return names

    def drop(self) -> None:
        """mongomancy 0.1: drop the whole database on the server (the definitions stay)."""
        self._engine.run(
            f"drop database {self._name}",
            lambda client: client.drop_database(self._name),
            retry_class=RetryClass.IDEMPOTENT_WRITE,
        )

    # ------------------------------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Unregister the hook from the engine (idempotent).  The engine itself stays up."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._engine.unregister_hook(self.invalidate_cache_hook)

    dispose = close

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<mongomancy.Database {self._name} collections={list(self._collections)}>"


def _check_database_name(name: object) -> None:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {type(name).__name__}")
    if not name:
        raise ConfigurationError("name must not be empty")
    bad = sorted(set(name) & _INVALID_DATABASE_CHARACTERS)
    if bad:
        raise ConfigurationError(f"database name {name!r} must not contain {', '.join(map(repr, bad))}")
    if len(name.encode()) > _MAX_DATABASE_NAME_BYTES:
        raise ConfigurationError(f"database name {name!r} is longer than {_MAX_DATABASE_NAME_BYTES} bytes")


def _differing_fields(old: CollectionDefinition, new: CollectionDefinition) -> Iterable[str]:
    fields = attrs.fields(CollectionDefinition)
    return [field.name for field in fields if getattr(old, field.name) != getattr(new, field.name)]
