"""``Executor``: the abstract interface the seed design gives the engine.

Every collection operation takes the collection container as its first argument and becomes a ``Command``;
how a command is run (inline, queued, retried) is the concrete executor's business.  Keeping the
operations here, written once in terms of ``execute``, means a test double or another engine only has to
implement ``execute``, ``find``, ``reconnect`` and the hook registration.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from mongomancy.commands import AnyCommand, CollectionLike, Command
from mongomancy.events import TopologyChange

if TYPE_CHECKING:
    from mongomancy.cursor import ResumableCursor

ReconnectHook = Callable[[Any, TopologyChange], None]


class Executor(abc.ABC):
    """Runs collection operations against a cluster whose primary may change under it."""

    @abc.abstractmethod
    def execute(self, command: AnyCommand) -> Any:
        """Run ``command`` to completion (retrying as the policy allows) and return pymongo's result."""

    @abc.abstractmethod
    def find(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> ResumableCursor:
        """A cursor that survives a failover mid-iteration (see ``ResumableCursor``)."""

    @abc.abstractmethod
    def reconnect(self) -> None:
        """Replace the client (single-flight), close the old one and run the hooks."""

    @abc.abstractmethod
    def register_hook(self, hook: ReconnectHook) -> ReconnectHook:
        """Call ``hook(executor, change)`` once per primary change or client replacement."""

    @abc.abstractmethod
    def unregister_hook(self, hook: ReconnectHook) -> None:
        """Stop calling ``hook``; a ``ValueError`` if it was not registered."""

    def run_operation(
        self, operation: str, collection: CollectionLike, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> Any:
        """Build the command for ``collection.<operation>(*args, **kwargs)`` and execute it."""
        return self.execute(Command.build(operation, collection, args, kwargs))

    # Reads -------------------------------------------------------------------------------------------
    def find_one(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> Any:
        return self.run_operation("find_one", collection, args, kwargs)

    def count_documents(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> int:
        return int(self.run_operation("count_documents", collection, args, kwargs))

    def estimated_document_count(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> int:
        return int(self.run_operation("estimated_document_count", collection, args, kwargs))

    def distinct(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> list[Any]:
        return list(self.run_operation("distinct", collection, args, kwargs))

    def aggregate(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> Any:
        return self.run_operation("aggregate", collection, args, kwargs)

    def watch(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> Any:
        return self.run_operation("watch", collection, args, kwargs)

    def list_indexes(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> Any:
        return self.run_operation("list_indexes", collection, args, kwargs)

    def index_information(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return dict(self.run_operation("index_information", collection, args, kwargs))

    # Writes ------------------------------------------------------------------------------------------
    def insert_one(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> Any:
        return self.run_operation("insert_one", collection, args, kwargs)

    def insert_many(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> Any:
        return self.run_operation("insert_many", collection, args, kwargs)

    def update_one(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> Any:
        return self.run_operation("update_one", collection, args, kwargs)

    def update_many(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> Any:
        return self.run_operation("update_many", collection, args, kwargs)

    def replace_one(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> Any:
        return self.run_operation("replace_one", collection, args, kwargs)

    def delete_one(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> Any:
        return self.run_operation("delete_one", collection, args, kwargs)

    def delete_many(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> Any:
        return self.run_operation("delete_many", collection, args, kwargs)

    def find_one_and_update(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> Any:
        return self.run_operation("find_one_and_update", collection, args, kwargs)

    def find_one_and_replace(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> Any:
        return self.run_operation("find_one_and_replace", collection, args, kwargs)

    def find_one_and_delete(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> Any:
        return self.run_operation("find_one_and_delete", collection, args, kwargs)

    def bulk_write(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> Any:
        return self.run_operation("bulk_write", collection, args, kwargs)

    # Indexes and collections -------------------------------------------------------------------------
    def create_index(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> str:
        return str(self.run_operation("create_index", collection, args, kwargs))

    def create_indexes(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> list[str]:
        return list(self.run_operation("create_indexes", collection, args, kwargs))

    def drop_index(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> None:
        self.run_operation("drop_index", collection, args, kwargs)

    def drop_indexes(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> None:
        self.run_operation("drop_indexes", collection, args, kwargs)

    def drop(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> None:
        self.run_operation("drop", collection, args, kwargs)
