"""An in-memory model of how a MongoDB 5.0+ primary answers the index commands create_all uses.

Why a model and not the simulated cluster: the simulator's backend keeps one index per key, rewrites names
and ignores most options (listed in the report to the simulator engineer), so the index lifecycle create_all
relies on cannot be shown there.  Each rule below is the server's, as the manual states it:

* ``createIndexes``: an identical spec (name, key and options) is a no-op; the same name with another
  spec is IndexKeySpecsConflict (86); the same key and signature (unique, sparse, partialFilterExpression,
  collation; SERVER-47657) under another name is IndexOptionsConflict (85); a unique build over
  duplicate keys fails with DuplicateKey (11000).  A build takes time, during which it is in progress:
* ``listIndexes`` omits builds in progress; ``$currentOp`` shows them under ``command.createIndexes``;
* ``dropIndexes`` of a ready index removes it; of a build in progress, aborts it (4.4+), and that build's
  ``createIndexes`` fails with IndexBuildAborted (276); of nothing, IndexNotFound (27).

``on_change`` is called under the lock after every change, so a test can check an invariant at every
state the server passes through, not only at the end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bson import ObjectId
from pymongo.errors import OperationFailure

_SIGNATURE = ("unique", "sparse", "partialFilterExpression", "collation")
BUILD_SECONDS = 0.002  # how long the model's builds stay "in progress": lets threads interleave


def _signature(spec: Mapping[str, Any]) -> tuple[Any, ...]:
    return (tuple(spec["key"].items()), *(repr(spec.get(option) or None) for option in _SIGNATURE))


def _same_spec(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    def plain(spec: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in spec.items() if k != "v" and v not in (None, False)}

    return plain(a) == plain(b)


class IndexServer:
    def __init__(self, on_change: Callable[[IndexServer], None] | None = None) -> None:
        self.lock = threading.RLock()
        self.collections: dict[str, dict[str, Any]] = {}
        self.builds: list[tuple[str, dict[str, Any], threading.Event]] = []  # (collection, spec, aborted)
        self.commands: list[str] = []
        self.on_change = on_change or (lambda server: None)

    # -- state helpers --------------------------------------------------------------------------------
    def collection(self, name: str) -> dict[str, Any]:
        return self.collections.setdefault(
            name, {"docs": [], "indexes": [{"v": 2, "key": {"_id": 1}, "name": "_id_"}]}
        )

    def ready(self, collection: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(spec) for spec in self.collection(collection)["indexes"]]

    def database(self, name: str = "db") -> FakeDatabase:
        return FakeDatabase(self, name)

    # -- commands ---------------------------------------------------------------------------------------
    def create_indexes(self, collection: str, specs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        (spec,) = [dict(spec) for spec in specs]
        with self.lock:
            self.commands.append(f"createIndexes {collection} {spec['name']}")
            state = self.collection(collection)
            before = len(state["indexes"])
            for live in state["indexes"]:
                if live["name"] == spec["name"]:
                    if _same_spec(live, spec):
                        return {"ok": 1, "numIndexesBefore": before, "numIndexesAfter": before}
                    raise OperationFailure("An existing index has the same name as the requested index", 86)
                if _signature(live) == _signature(spec):
                    raise OperationFailure(f"Index already exists with a different name: {live['name']}", 85)
            joined = next(
                (b for b in self.builds if b[0] == collection and b[1]["name"] == spec["name"]), None
            )
            if joined is not None and not _same_spec(joined[1], spec):
                raise OperationFailure("An existing index has the same name as the requested index", 86)
            if joined is None:
                joined = (collection, spec, threading.Event())
                self.builds.append(joined)
        time.sleep(BUILD_SECONDS)  # the build runs; other commands interleave
        with self.lock:
            if joined[2].is_set():
                raise OperationFailure("Index build aborted: dropIndexes", 276)
            if joined in self.builds:
                self.builds.remove(joined)
                if spec.get("unique"):
                    seen: dict[Any, Any] = {}
                    for doc in state["docs"]:
                        key = tuple(repr(doc.get(field)) for field in spec["key"])
                        if key in seen:
                            raise OperationFailure(
                                f"E11000 duplicate key error collection: db.{collection} "
                                f"index: {spec['name']} dup key: {dict(zip(spec['key'], key, strict=True))}",
                                11000,
                            )
                        seen[key] = doc["_id"]
                state["indexes"].append({"v": 2, **spec})
                self.on_change(self)
            return {"ok": 1, "numIndexesBefore": before, "numIndexesAfter": len(state["indexes"])}

    def drop_index(self, collection: str, name: str) -> dict[str, Any]:
        with self.lock:
            self.commands.append(f"dropIndexes {collection} {name}")
            state = self.collection(collection)
            for build in list(self.builds):
                if build[0] == collection and build[1]["name"] == name:
                    build[2].set()
                    self.builds.remove(build)
                    return {"ok": 1}
            for live in state["indexes"]:
                if live["name"] == name:
                    state["indexes"].remove(live)
                    self.on_change(self)
                    return {"ok": 1, "nIndexesWas": len(state["indexes"]) + 1}
            raise OperationFailure(f"index not found with name [{name}]", 27)

    def current_op(self, db: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {
                    "op": "command",
                    "ns": f"{db}.{c}",
                    "command": {"createIndexes": c, "indexes": [s], "$db": db},
                }
                for c, s, _ in self.builds
            ]


class FakeDatabase:
    """The slice of ``pymongo.database.Database`` that the schema code uses."""

    def __init__(self, server: IndexServer, name: str) -> None:
        self.server = server
        self.name = name
        self.client = _FakeClient(self)

    def command(self, name: str, collection: str, **arguments: Any) -> dict[str, Any]:
        if name == "createIndexes":
            return self.server.create_indexes(collection, arguments["indexes"])
        if name == "dropIndexes":
            return self.server.drop_index(collection, arguments["index"])
        if name == "create":
            with self.server.lock:
                if collection in self.server.collections:
                    raise OperationFailure("Collection already exists", 48)
                self.server.collection(collection)
            return {"ok": 1}
        raise AssertionError(f"the model does not answer {name}")

    def list_collections(self, filter: Mapping[str, Any]) -> list[dict[str, Any]]:
        names = filter["name"]["$in"]
        with self.server.lock:
            return [
                {"name": name, "type": "collection", "options": {}}
                for name in self.server.collections
                if name in names
            ]

    def __getitem__(self, name: str) -> _FakeCollection:
        return _FakeCollection(self.server, name)


class _FakeClient:
    def __init__(self, database: FakeDatabase) -> None:
        self.admin = _FakeAdmin(database)


class _FakeAdmin:
    def __init__(self, database: FakeDatabase) -> None:
        self.database = database

    def aggregate(self, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
        wanted = pipeline[1]["$match"]["command.createIndexes"]
        return [
            op
            for op in self.database.server.current_op(self.database.name)
            if op["command"]["createIndexes"] == wanted
        ]


class _FakeCollection:
    def __init__(self, server: IndexServer, name: str) -> None:
        self.server = server
        self.name = name

    def list_indexes(self) -> list[dict[str, Any]]:
        return self.server.ready(self.name)

    def insert_many(self, documents: Iterable[dict[str, Any]]) -> None:
        with self.server.lock:
            for document in documents:
                self.server.collection(self.name)["docs"].append({"_id": ObjectId(), **document})

    def aggregate(self, pipeline: list[dict[str, Any]], **options: Any) -> list[dict[str, Any]]:
        """The duplicate-finding pipeline only: ``$group`` by key fields, ``$match`` count > 1, ``$limit``."""
        (group,) = [stage["$group"] for stage in pipeline if "$group" in stage]
        limit = next(stage["$limit"] for stage in pipeline if "$limit" in stage)
        single = isinstance(group["_id"], str)
        paths = {"": group["_id"]} if single else group["_id"]
        fields = {name: path.lstrip("$") for name, path in paths.items()}
        groups: dict[str, dict[str, Any]] = {}
        with self.server.lock:
            for doc in self.server.collection(self.name)["docs"]:
                values = {name: doc.get(field) for name, field in fields.items()}
                key: Any = values[""] if single else values
                entry = groups.setdefault(repr(key), {"_id": key, "count": 0, "ids": []})
                entry["count"] += 1
                entry["ids"].append(doc["_id"])
        return [entry for entry in groups.values() if entry["count"] > 1][:limit]
