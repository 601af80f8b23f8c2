"""Index and collection DDL as MongoDB answers it, in front of a backend that renames and forgets.

Why: ``nx_27017`` renames every index ``idx_<collection>_<fields>``, lists every key direction as 1, drops
options it cannot keep without a word, and answers ``collMod`` with ``ok: 1`` while changing nothing.  A
program tested against that would see its own DDL "succeed" and then read back something else.  The members
therefore keep a catalogue of the indexes created through them and answer as MongoDB does where that is
honest, and refuse loudly where it is not:

- kept exactly: the index name, ``unique`` and ``expireAfterSeconds`` (the backend enforces these two), key
  directions and ``hidden`` (listed as given: neither changes a query's results, only its plan);
- refused with CommandNotSupported (115), naming the option: every other index option (``sparse``,
  ``partialFilterExpression``, ``collation``, special key types...), any ``create`` option (validators,
  capped and time-series collections...), and ``collMod`` beyond an index's ``hidden`` or (non-unique)
  ``expireAfterSeconds``;
- conflicts as MongoDB reports them: an existing key under another name (85 IndexOptionsConflict), an
  existing name with another key or options (86 IndexKeySpecsConflict).

Every round trip goes through ``send`` (the member's own backend connection), so this module holds no socket.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from mongomancy.testing.faults import code_name

#: A backend round trip: a command document in, the reply document out.
Send = Callable[[Mapping[str, Any]], dict[str, Any]]

DDL_COMMANDS = frozenset(
    {
        "createIndexes",
        "listIndexes",
        "dropIndexes",
        "deleteIndexes",
        "collMod",
        "create",
        "drop",
        "dropDatabase",
    }
)
#: Fields any command may carry (sessions, write concern, API version...): never an option of the command.
GENERIC_FIELDS = frozenset(
    {
        "$db",
        "lsid",
        "txnNumber",
        "$clusterTime",
        "$readPreference",
        "writeConcern",
        "readConcern",
        "comment",
        "maxTimeMS",
        "apiVersion",
        "apiStrict",
        "apiDeprecationErrors",
        "autocommit",
        "startTransaction",
    }
)
#: Index options the simulated cluster keeps (``v`` and ``background`` are accepted and ignored by MongoDB).
KEPT_INDEX_OPTIONS = frozenset({"key", "name", "unique", "expireAfterSeconds", "hidden", "v", "background"})
NOT_SUPPORTED = 115
INDEX_OPTIONS_CONFLICT = 85
INDEX_KEY_SPECS_CONFLICT = 86
INDEX_NOT_FOUND = 27


class Refusal(Exception):
    """A DDL command answered with an error instead of being forwarded."""

    def __init__(self, code: int, errmsg: str) -> None:
        super().__init__(errmsg)
        self.code = code
        self.errmsg = errmsg

    def reply(self) -> dict[str, Any]:
        return {"ok": 0.0, "errmsg": self.errmsg, "code": self.code, "codeName": code_name(self.code)}


def _unsupported(what: str) -> Refusal:
    return Refusal(
        NOT_SUPPORTED,
        f"the simulated cluster cannot keep {what}: its nx_27017 backend would drop it silently "
        "(see 'Where the simulated cluster differs from MongoDB' in mongomancy's README)",
    )


def _fields(key: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(key)


def _direction(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value not in (1, -1):
        return None
    return int(value)


class Catalogue:
    """What the members know about indexes created through them, per namespace; thread-safe.

    Keyed by the indexed fields in order: the backend keeps one index per field list (directions lost), so
    the fields identify the backend's index, and the entry says how MongoDB would list it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._specs: dict[str, dict[tuple[str, ...], dict[str, Any]]] = {}

    def get(self, namespace: str, fields: tuple[str, ...]) -> dict[str, Any] | None:
        with self._lock:
            spec = self._specs.get(namespace, {}).get(fields)
            return dict(spec) if spec is not None else None

    def put(self, namespace: str, spec: Mapping[str, Any]) -> None:
        with self._lock:
            self._specs.setdefault(namespace, {})[_fields(spec["key"])] = dict(spec)

    def remove(self, namespace: str, fields: tuple[str, ...] | None = None) -> None:
        """Forget one index (by fields) or, with ``fields=None``, the whole namespace."""
        with self._lock:
            if fields is None:
                self._specs.pop(namespace, None)
            else:
                self._specs.get(namespace, {}).pop(fields, None)

    def listed(self, namespace: str, index: Mapping[str, Any]) -> dict[str, Any]:
        """How MongoDB lists a backend index: its own name, key directions and ``hidden`` if it was created
        through the members; the backend's ``unique`` and ``expireAfterSeconds`` (what it enforces)."""
        key = index.get("key")
        spec = self.get(namespace, _fields(key)) if isinstance(key, Mapping) else None
        if spec is None:
            return dict(index)
        listed: dict[str, Any] = {"v": index.get("v", 2), "key": spec["key"], "name": spec["name"]}
        for option in ("unique", "expireAfterSeconds"):
            if option in index:
                listed[option] = index[option]
        if spec.get("hidden"):
            listed["hidden"] = True
        return listed

    def remove_database(self, db: str) -> None:
        with self._lock:
            for namespace in [ns for ns in self._specs if ns.startswith(f"{db}.")]:
                del self._specs[namespace]


def _with_db(body: Mapping[str, Any], db: str, **fields: Any) -> dict[str, Any]:
    """A backend command: ``fields`` first, then the generic fields of ``body`` (session, $db...)."""
    command = dict(fields)
    command.update({k: v for k, v in body.items() if k in GENERIC_FIELDS})
    command["$db"] = db
    return command


class IndexDdl:
    """Answers the DDL commands of :data:`DDL_COMMANDS` for one member request."""

    def __init__(self, catalogue: Catalogue, send: Send) -> None:
        self.catalogue = catalogue
        self.send = send

    def handle(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """The reply MongoDB would give (forwarding to the backend what it can do)."""
        db = str(body.get("$db", "test"))
        try:
            if name == "createIndexes":
                return self._create_indexes(db, body)
            if name == "listIndexes":
                return self._list_indexes(db, body)
            if name in ("dropIndexes", "deleteIndexes"):
                return self._drop_indexes(db, body)
            if name == "collMod":
                return self._coll_mod(db, body)
            if name == "create":
                extra = sorted(k for k in body if k != "create" and k not in GENERIC_FIELDS)
                if extra:
                    raise _unsupported(f"collection option(s) {', '.join(extra)}")
                return self.send(body)
            reply = self.send(body)
            if reply.get("ok"):
                if name == "drop":
                    self.catalogue.remove(f"{db}.{body.get('drop')}")
                elif name == "dropDatabase":
                    self.catalogue.remove_database(db)
            return reply
        except Refusal as refusal:
            return refusal.reply()

    # -- listing ---------------------------------------------------------------------------------------------

    def _backend_indexes(self, db: str, body: Mapping[str, Any], collection: str) -> list[dict[str, Any]]:
        reply = self.send(_with_db(body, db, listIndexes=collection))
        cursor = reply.get("cursor")
        batch = cursor.get("firstBatch", []) if isinstance(cursor, Mapping) else []
        return [dict(index) for index in batch if isinstance(index, Mapping)]

    def _list_indexes(self, db: str, body: Mapping[str, Any]) -> dict[str, Any]:
        reply = self.send(body)
        cursor = reply.get("cursor")
        if not reply.get("ok") or not isinstance(cursor, Mapping):
            return reply
        namespace = f"{db}.{body.get('listIndexes')}"
        batch = [self.catalogue.listed(namespace, i) for i in cursor.get("firstBatch", [])]
        return {**reply, "cursor": {**cursor, "firstBatch": batch}}

    def _listed(self, db: str, body: Mapping[str, Any], collection: str) -> list[dict[str, Any]]:
        namespace = f"{db}.{collection}"
        return [self.catalogue.listed(namespace, i) for i in self._backend_indexes(db, body, collection)]

    # -- create ----------------------------------------------------------------------------------------------

    @staticmethod
    def _check_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
        extra = sorted(k for k in spec if k not in KEPT_INDEX_OPTIONS)
        if extra:
            raise _unsupported(f"index option(s) {', '.join(extra)}")
        key = spec.get("key")
        if not isinstance(key, Mapping) or not key:
            return dict(spec)  # malformed: the backend's own error says so
        for field, value in key.items():
            if _direction(value) is None:
                raise _unsupported(f"index key {field}: {value!r} (only 1 and -1)")
        return dict(spec)

    def _create_indexes(self, db: str, body: Mapping[str, Any]) -> dict[str, Any]:
        collection = str(body.get("createIndexes"))
        namespace = f"{db}.{collection}"
        specs = [self._check_spec(s) for s in body.get("indexes") or [] if isinstance(s, Mapping)]
        existing = self._listed(db, body, collection)
        new: list[dict[str, Any]] = []
        for spec in specs:
            if self._already_there(spec, existing):
                continue
            for other in new:
                if _fields(other["key"]) == _fields(spec["key"]):
                    raise _unsupported("two indexes on the same fields in one request")
            new.append(spec)
        backend_specs = [
            {**{k: v for k, v in s.items() if k != "hidden"}, "key": dict.fromkeys(s["key"], 1)} for s in new
        ]
        if backend_specs:
            reply = self.send({**body, "indexes": backend_specs})
            if not reply.get("ok"):
                return reply
        for spec in new:
            self.catalogue.put(namespace, {k: v for k, v in spec.items() if k not in ("v", "background")})
        return {
            "ok": 1.0,
            "createdCollectionAutomatically": False,
            "numIndexesBefore": len(existing),
            "numIndexesAfter": len(existing) + len(new),
            **({} if new else {"note": "all indexes already exist"}),
        }

    @staticmethod
    def _already_there(spec: Mapping[str, Any], existing: list[dict[str, Any]]) -> bool:
        """True for an identical index; MongoDB's conflict errors for a clashing one."""
        key = list(spec["key"].items())
        for index in existing:
            same_key = list(index["key"].items()) == key
            same_fields = _fields(index["key"]) == _fields(spec["key"])
            same_name = index.get("name") == spec.get("name")
            same_options = (
                bool(spec.get("unique")) == bool(index.get("unique"))
                and spec.get("expireAfterSeconds") == index.get("expireAfterSeconds")
                and bool(spec.get("hidden")) == bool(index.get("hidden"))
            )
            if same_key and same_name and same_options:
                return True
            if same_name:
                raise Refusal(
                    INDEX_KEY_SPECS_CONFLICT,
                    "An existing index has the same name as the requested index but different key or "
                    f"options: requested {dict(spec)}, existing {index}",
                )
            if same_key:
                raise Refusal(
                    INDEX_OPTIONS_CONFLICT,
                    f"Index already exists with a different name: {index.get('name')}",
                )
            if same_fields:
                raise _unsupported(
                    f"an index on {list(spec['key'])} with other directions than the existing "
                    f"{index.get('name')}"
                )
        return False

    # -- drop ------------------------------------------------------------------------------------------------

    def _find(self, existing: list[dict[str, Any]], which: Any) -> dict[str, Any]:
        for index in existing:
            if (isinstance(which, str) and index.get("name") == which) or (
                isinstance(which, Mapping) and list(index["key"].items()) == list(which.items())
            ):
                return index
        raise Refusal(
            INDEX_NOT_FOUND,
            f"index not found with name [{which}]"
            if isinstance(which, str)
            else (f"can't find index with key: {dict(which) if isinstance(which, Mapping) else which}"),
        )

    def _drop_indexes(self, db: str, body: Mapping[str, Any]) -> dict[str, Any]:
        name = "dropIndexes" if "dropIndexes" in body else "deleteIndexes"
        collection = str(body.get(name))
        namespace = f"{db}.{collection}"
        which = body.get("index", "*")
        if which == "*":
            reply = self.send(body)
            if reply.get("ok"):
                self.catalogue.remove(namespace)
            return reply
        existing = self._listed(db, body, collection)
        targets = [self._find(existing, w) for w in (which if isinstance(which, list) else [which])]
        if any(t.get("name") == "_id_" for t in targets):
            raise Refusal(72, "cannot drop _id index")
        backend_names = {_fields(i["key"]): i["name"] for i in self._backend_indexes(db, body, collection)}
        for target in targets:
            fields = _fields(target["key"])
            reply = self.send(_with_db(body, db, dropIndexes=collection, index=backend_names.get(fields)))
            if not reply.get("ok"):
                return reply
            self.catalogue.remove(namespace, fields)
        return {"ok": 1.0, "nIndexesWas": len(existing)}

    # -- collMod ---------------------------------------------------------------------------------------------

    def _coll_mod(self, db: str, body: Mapping[str, Any]) -> dict[str, Any]:
        collection = str(body.get("collMod"))
        namespace = f"{db}.{collection}"
        extra = sorted(k for k in body if k not in ("collMod", "index") and k not in GENERIC_FIELDS)
        if extra:
            raise _unsupported(f"collMod option(s) {', '.join(extra)}")
        change = body.get("index")
        if not isinstance(change, Mapping):
            return self.send(body)  # a collMod that changes nothing: the backend's own answer
        unknown = sorted(k for k in change if k not in ("keyPattern", "name", "expireAfterSeconds", "hidden"))
        if unknown:
            raise _unsupported(f"collMod index option(s) {', '.join(unknown)}")
        existing = self._listed(db, body, collection)
        which = change.get("name", change.get("keyPattern"))
        target = self._find(existing, which)
        spec = self.catalogue.get(namespace, _fields(target["key"])) or {
            k: v for k, v in target.items() if k in ("key", "name", "unique", "expireAfterSeconds")
        }
        reply: dict[str, Any] = {"ok": 1.0}
        if "expireAfterSeconds" in change:
            if target.get("unique"):
                raise _unsupported("a new expireAfterSeconds on a unique index (it would be rebuilt)")
            if "expireAfterSeconds" not in target:
                raise Refusal(72, "no expireAfterSeconds field to update")
            new_ttl = change["expireAfterSeconds"]
            self._rebuild(db, body, collection, target, new_ttl)
            reply.update(expireAfterSeconds_old=target["expireAfterSeconds"], expireAfterSeconds_new=new_ttl)
            spec["expireAfterSeconds"] = new_ttl
        if "hidden" in change:
            reply.update(hidden_old=bool(target.get("hidden")), hidden_new=bool(change["hidden"]))
            spec["hidden"] = bool(change["hidden"])
        self.catalogue.put(namespace, spec)
        return reply

    def _rebuild(
        self, db: str, body: Mapping[str, Any], collection: str, target: Mapping[str, Any], ttl: Any
    ) -> None:
        """Drop and re-create a non-unique index with a new TTL (the backend cannot change one in place)."""
        fields = _fields(target["key"])
        backend = {_fields(i["key"]): i for i in self._backend_indexes(db, body, collection)}[fields]
        dropped = self.send(_with_db(body, db, dropIndexes=collection, index=backend["name"]))
        if not dropped.get("ok"):
            raise Refusal(int(dropped.get("code", 8)), str(dropped.get("errmsg", "dropIndexes failed")))
        spec = {"key": dict.fromkeys(fields, 1), "name": backend["name"], "expireAfterSeconds": ttl}
        created = self.send(_with_db(body, db, createIndexes=collection, indexes=[spec]))
        if not created.get("ok"):
            raise Refusal(int(created.get("code", 8)), str(created.get("errmsg", "createIndexes failed")))
