"""One simulated replica-set member: a loopback TCP server in front of the shared backend.

Why threads and blocking sockets: tests run drivers on threads too, a member carries a handful of connections,
and a thread per connection keeps the per-operation path to a read, a dict lookup and a forward, which is what
keeps the hop cheap next to the backend's own cost.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import logging
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import bson
from bson import ObjectId
from bson.int64 import Int64
from bson.timestamp import Timestamp

from mongomancy.errors import PortInUseError
from mongomancy.testing import corrections, indexes, wire
from mongomancy.testing.auth import UserStore
from mongomancy.testing.backend import Backend
from mongomancy.testing.faults import FailPoint, FaultTable, code_name
from mongomancy.testing.records import CommandRecord, Outcome, RecordLog, lsid_uuid

logger = logging.getLogger("mongomancy.testing")

#: The wire version members advertise: MongoDB 7.0, inside what pymongo 4.x accepts (it needs >= 8 or 9).
MAX_WIRE_VERSION = 21

HANDSHAKES = frozenset({"hello", "isMaster", "ismaster"})

#: Commands a secondary refuses with NotWritablePrimary (10107).
WRITE_COMMANDS = frozenset(
    {
        "insert",
        "update",
        "delete",
        "findAndModify",
        "findandmodify",
        "bulkWrite",
        "createIndexes",
        "dropIndexes",
        "deleteIndexes",
        "drop",
        "dropDatabase",
        "create",
        "collMod",
        "renameCollection",
        "convertToCapped",
        "cloneCollectionAsCapped",
        "emptycapped",
        "applyOps",
        "commitTransaction",
        "abortTransaction",
        "createUser",
        "updateUser",
        "dropUser",
        "dropAllUsersFromDatabase",
        "createRole",
        "dropRole",
    }
)

#: Commands a secondary refuses with NotPrimaryNoSecondaryOk (13435) unless the client allows secondary reads.
READ_COMMANDS = frozenset(
    {
        "find",
        "aggregate",
        "count",
        "distinct",
        "listCollections",
        "listIndexes",
        "listDatabases",
        "dbStats",
        "collStats",
        "dataSize",
        "explain",
        "mapReduce",
    }
)

_STRIP_ON_FORWARD = wire.FLAG_MORE_TO_COME | wire.FLAG_EXHAUST_ALLOWED
_DEDUP_WAIT = 30.0
_CURSOR_OPENERS = frozenset({"find", "aggregate", "getMore"})


def is_write(name: str, body: Mapping[str, Any]) -> bool:
    if name in WRITE_COMMANDS:
        return True
    if name == "aggregate":
        pipeline = body.get("pipeline") or ()
        return any(isinstance(st, Mapping) and ("$out" in st or "$merge" in st) for st in pipeline)
    return False


def election_id_for(term: int) -> ObjectId:
    """mongod's form: a constant prefix and the term, so ids grow with every election."""
    return ObjectId(f"7fffffff{term:016x}")


class DedupTable:
    """Replies of retryable writes by (lsid, txnNumber), shared by all members like mongod's
    ``config.transactions``: it survives step-downs, kills and restarts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: dict[tuple[uuid.UUID, int], bytes] = {}
        self._inflight: dict[tuple[uuid.UUID, int], threading.Event] = {}

    def begin(self, key: tuple[uuid.UUID, int]) -> bytes | None:
        """The stored reply, or None after marking ``key`` in flight (the caller must call :meth:`finish`).

        A retry that arrives while its first execution is still at the backend waits for it, as mongod does.
        """
        deadline = time.monotonic() + _DEDUP_WAIT
        while True:
            with self._lock:
                stored = self._done.get(key)
                if stored is not None:
                    return stored
                event = self._inflight.get(key)
                if event is None:
                    self._inflight[key] = threading.Event()
                    return None
            if not event.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"retryable write {key} still in flight after {_DEDUP_WAIT} s")

    def finish(self, key: tuple[uuid.UUID, int], reply_body: bytes | None) -> None:
        with self._lock:
            if reply_body is not None:
                self._done[key] = reply_body
            event = self._inflight.pop(key, None)
        if event is not None:
            event.set()

    def clear(self) -> None:
        with self._lock:
            self._done.clear()


class ClusterState:
    """Everything members share; guarded by ``lock``; ``changed`` wakes awaitable hellos."""

    def __init__(self, set_name: str, backend: Backend, streaming: bool) -> None:
        self.set_name = set_name
        self.backend = backend
        self.streaming = streaming
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.members: list[Member] = []
        self.primary: int | None = None
        self.term = 0
        self.set_version = 1
        self.hangup_on_step_down = False
        self.records = RecordLog()
        self.faults = FaultTable()
        self.dedup = DedupTable()
        #: How MongoDB would list the indexes created through the members (the backend renames them).
        self.catalogue = indexes.Catalogue()
        #: Cursors the backend dropped with the connection that opened them (``nx_27017`` ties a cursor to
        #: its connection; mongod does not).  A getMore for one gets CursorNotFound, as from mongod, instead
        #: of the backend's ``{ok: 1, cursor: {id: 0, nextBatch: []}}``, which ends an iteration silently.
        self.lost_cursors: set[int] = set()
        self.connection_ids = itertools.count(1)
        self.started = time.monotonic()
        #: Called (on the member's thread) for ``replSetStepDown``; set by the controller.
        self.on_step_down_command: Callable[[int], None] | None = None
        #: The users when the cluster requires authentication (SCRAM-SHA-256, see ``testing/auth.py``).
        self.users: UserStore | None = None
        #: When set, members speak TLS only (mongod's ``requireTLS``): each connection's first act is the
        #: server side of the handshake, and a client that does not complete it is disconnected.
        self.tls: ssl.SSLContext | None = None

    @property
    def election_id(self) -> ObjectId | None:
        return election_id_for(self.term) if self.term else None

    @property
    def hosts(self) -> list[str]:
        return [m.address for m in self.members]

    def bump(self) -> None:
        """Note a topology change on every member (call with ``lock`` held) and wake awaiting hellos."""
        for m in self.members:
            m.topology_counter += 1
        self.changed.notify_all()


class _Connection:
    def __init__(self, sock: socket.socket, conn_id: int) -> None:
        self.sock = sock
        self.conn_id = conn_id
        self.backend: socket.socket | None = None
        #: Cursor ids opened through this connection's backend socket (dropped with it by the backend).
        self.cursors: set[int] = set()
        self.closed = threading.Event()
        self.thread: threading.Thread | None = None

    def shutdown(self) -> None:
        """Wake the connection's thread from a blocking client read; the thread itself closes the sockets.

        The backend socket is left alone: a command already forwarded finishes at the backend and its
        retryable-write reply is recorded in the dedup table (as mongod commits a write and its
        ``config.transactions`` entry together) before the thread finds the client gone.  Shutting the
        backend socket too made a write applied-but-unrecorded, so the driver's retry applied it twice.
        """
        self.closed.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closed.set()
        for s in (self.sock, self.backend):
            if s is not None:
                with contextlib.suppress(OSError):
                    s.close()


class _HangUp(Exception):
    """Close this client connection instead of answering."""


class Member:
    """A member endpoint.  Controlled through :class:`~mongomancy.testing.SimulatedReplicaSet`."""

    def __init__(self, state: ClusterState, index: int, port: int = 0) -> None:
        self.state = state
        self.index = index
        self.port = port
        self.alive = False
        self.delay = 0.0
        self.blackhole = False
        self.lag = 0.0
        self.process_id = ObjectId()
        self.topology_counter = 0
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._conns: set[_Connection] = set()
        self._conns_lock = threading.Lock()
        self._finished_threads: list[threading.Thread] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- lifecycle -------------------------------------------------------------------------------------------

    def listen(self) -> None:
        """Bind (the same port again after a kill) and start accepting."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self.port))
        except OSError as exc:
            sock.close()
            raise PortInUseError(f"port {self.port} on 127.0.0.1 is already in use ({exc.strerror})") from exc
        sock.listen(128)
        self.port = sock.getsockname()[1]
        self._listener = sock
        with self.state.lock:
            self.process_id = ObjectId()
            self.topology_counter = 0
            self.alive = True
            self.state.bump()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, args=(sock,), name=f"mongomancy-sim-accept-{self.index}", daemon=True
        )
        self._accept_thread.start()

    def hang_up(self) -> None:
        """Close every live client connection (the listener stays open)."""
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            c.shutdown()

    def stop(self, timeout: float) -> list[str]:
        """Close the listener and all connections; join their threads.  Returns the names of stuck threads."""
        with self.state.lock:
            self.alive = False
            self.state.bump()
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self.hang_up()
        deadline = time.monotonic() + timeout
        stuck: list[str] = []
        threads: list[threading.Thread] = []
        if self._accept_thread is not None:
            threads.append(self._accept_thread)
        with self._conns_lock:
            threads.extend(c.thread for c in self._conns if c.thread is not None)
            threads.extend(self._finished_threads)
            self._finished_threads.clear()
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                stuck.append(t.name)
        self._accept_thread = None
        return stuck

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _peer = listener.accept()
            except OSError:
                return
            if not self.alive:
                sock.close()
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(sock, next(self.state.connection_ids))
            conn.thread = threading.Thread(
                target=self._serve,
                args=(conn,),
                name=f"mongomancy-sim-conn-{self.index}-{conn.conn_id}",
                daemon=True,
            )
            with self._conns_lock:
                # Reap threads of closed connections so a long test does not accumulate them.
                self._finished_threads = [t for t in self._finished_threads if t.is_alive()]
                self._conns.add(conn)
            conn.thread.start()

    # -- one connection --------------------------------------------------------------------------------------

    def _serve(self, conn: _Connection) -> None:
        try:
            if self.state.tls is not None:
                conn.sock = self.state.tls.wrap_socket(conn.sock, server_side=True)
            while True:
                raw = wire.read_raw(conn.sock)
                if self.blackhole:
                    continue
                message = wire.parse(raw)
                reply = self._handle(conn, message)
                if reply is not None and not message.more_to_come and not self.blackhole:
                    conn.sock.sendall(reply)
        except (OSError, wire.WireError, _HangUp):
            pass
        except Exception:  # a bug here must not kill the test silently: log it, drop the connection
            logger.exception("member %d: unexpected error on connection %d", self.index, conn.conn_id)
        finally:
            if conn.cursors:  # before the backend socket closes: a getMore racing with it must see the loss
                with self.state.lock:
                    self.state.lost_cursors |= conn.cursors
            conn.close()
            with self._conns_lock:
                self._conns.discard(conn)
                if conn.thread is not None:
                    self._finished_threads.append(conn.thread)

    def _record(  # noqa: PLR0917 - private, called from one place each time with the same shape
        self,
        name: str,
        db: str,
        outcome: Outcome,
        write: bool,
        body: Mapping[str, Any],
        code: int | None = None,
    ) -> None:
        lsid = body.get("lsid")
        txn = body.get("txnNumber")
        self.state.records.add(
            CommandRecord(
                member=self.index,
                command=name,
                db=db,
                outcome=outcome,
                is_write=write,
                lsid=lsid_uuid(lsid) if isinstance(lsid, Mapping) else None,
                txn_number=int(txn) if txn is not None else None,
                error_code=code,
                body=body,
            )
        )

    def _error(self, message: wire.Message, code: int, errmsg: str, labels: tuple[str, ...] = ()) -> bytes:
        doc: dict[str, Any] = {"ok": 0.0, "errmsg": errmsg, "code": code, "codeName": code_name(code)}
        if labels:
            doc["errorLabels"] = list(labels)
        return wire.reply_to(message, doc)

    def _handle(self, conn: _Connection, message: wire.Message) -> bytes | None:
        body = message.body
        name = next(iter(body), "")
        point = self.state.faults.match(name, self.index)
        if name in HANDSHAKES:
            if point is not None:
                return self._inject(conn, message, point, name, "admin", False)
            hello = self._hello(conn, message)
            if self.state.users is not None:
                self.state.users.decorate_hello(conn, body, hello)
            return wire.reply_to(message, hello)
        db = body.get("$db") or message.collection.partition(".")[0]
        write = is_write(name, body)
        if point is not None and not point.after_forward:
            return self._inject(conn, message, point, name, db, write)
        if self.state.users is not None:
            answer = self.state.users.screen(conn, name, body)
            if answer is not None:
                code = answer.get("code")
                self._record(name, db, Outcome.REFUSED if code else Outcome.ANSWERED, write, body, code)
                return wire.reply_to(message, answer)
        if db == "admin" and name in ("replSetGetStatus", "replSetStepDown"):
            return self._admin(message, name, db, write)

        with self.state.lock:
            is_primary = self.state.primary == self.index and self.alive
        if not is_primary:
            if write:
                self._record(name, db, Outcome.REFUSED, write, body, 10107)
                if message.more_to_come:
                    raise _HangUp  # mongod closes the connection for an unacknowledged write it refuses
                # mongod labels the errors of retryable writes only (those carrying a txnNumber).
                labels = ("RetryableWriteError",) if "txnNumber" in body else ()
                return self._error(message, 10107, "not primary", labels)
            if name in READ_COMMANDS and not self._secondary_ok(message):
                self._record(name, db, Outcome.REFUSED, write, body, 13435)
                return self._error(message, 13435, "not primary and secondaryOk=false")

        if name == "getMore" and body.get("getMore") in self.state.lost_cursors:
            self._record(name, db, Outcome.REFUSED, write, body, 43)
            return self._error(message, 43, f"cursor id {body.get('getMore')} not found")

        key: tuple[uuid.UUID, int] | None = None
        txn = body.get("txnNumber")
        lsid = body.get("lsid")
        if write and txn is not None and isinstance(lsid, Mapping) and "autocommit" not in body:
            sid = lsid_uuid(lsid)
            if sid is not None:
                key = (sid, int(txn))
                stored = self.state.dedup.begin(key)
                if stored is not None:
                    self._record(name, db, Outcome.DEDUPLICATED, write, body)
                    return self._finish(conn, message, wire.op_msg_reply(message.request_id, stored))

        reply_body: bytes | None = None
        try:
            reply = self._forward(conn, message)
            if key is not None:
                body_bytes = wire.reply_body(reply)
                if bson.decode(body_bytes).get("ok"):
                    reply_body = body_bytes
        except (OSError, wire.WireError):
            self._record(name, db, Outcome.FAILED, write, body)
            raise
        finally:
            if key is not None:
                self.state.dedup.finish(key, reply_body)
        self._record(name, db, Outcome.FORWARDED, write, body)
        if (
            name in _CURSOR_OPENERS
            and message.op_code == wire.OP_MSG
            and self._track_cursor(conn, name, body, reply)
        ):
            return self._error(message, 43, f"cursor id {body.get('getMore')} not found")
        if point is not None:  # an after_forward fail point: applied, but the client never learns it
            return self._inject(conn, message, point, name, db, write)
        return self._finish(conn, message, reply)

    def _track_cursor(self, conn: _Connection, name: str, body: Mapping[str, Any], reply: bytes) -> bool:
        """Note cursors opened on this connection; True when a getMore's empty end means "dropped"."""
        cursor = bson.decode(wire.reply_body(reply)).get("cursor")
        if not isinstance(cursor, Mapping):
            return False
        cursor_id = cursor.get("id")
        if name != "getMore" and cursor_id:
            conn.cursors.add(int(cursor_id))
        elif name == "getMore" and cursor_id == 0:
            requested = body.get("getMore")
            conn.cursors.discard(requested)
            if not cursor.get("nextBatch"):
                with self.state.lock:
                    return requested in self.state.lost_cursors
        return False

    def _finish(self, conn: _Connection, message: wire.Message, reply: bytes) -> bytes | None:
        delay = self.delay
        if delay > 0 and conn.closed.wait(delay):
            raise _HangUp
        return None if message.more_to_come else reply

    def _inject(  # noqa: PLR0917
        self, conn: _Connection, message: wire.Message, point: FailPoint, name: str, db: str, write: bool
    ) -> bytes | None:
        code = None if point.close_connection else point.code
        self._record(name, db, Outcome.INJECTED, write, message.body, code)
        logger.debug("member %d: injected %r into %s", self.index, point, name)
        if point.close_connection:
            raise _HangUp
        return wire.reply_to(message, point.error_reply())

    @staticmethod
    def _secondary_ok(message: wire.Message) -> bool:
        if message.op_code == wire.OP_QUERY:
            return bool(message.flags & wire.QUERY_FLAG_SECONDARY_OK)
        pref = message.body.get("$readPreference")
        return isinstance(pref, Mapping) and pref.get("mode", "primary") != "primary"

    def _forward(self, conn: _Connection, message: wire.Message) -> bytes:
        if conn.backend is None:
            backend = socket.create_connection(self.state.backend.address, timeout=None)
            backend.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.backend = backend
            if conn.closed.is_set():  # raced with a hang-up
                raise _HangUp
        server = self.state.backend
        strip = server.strip_fields
        is_msg = message.op_code == wire.OP_MSG
        name = next(iter(message.body), "")
        if server.corrected and is_msg and name in indexes.DDL_COMMANDS:
            return self._ddl(conn.backend, message, name)
        corrected = (
            corrections.correct_request(name, message.body, message.sequences)
            if server.corrected and is_msg
            else None
        )
        if corrected is not None or (strip and is_msg and not strip.isdisjoint(message.body)):
            body, sequences = corrected or (message.body, message.sequences)
            body = {k: v for k, v in body.items() if k not in strip}
            raw = wire.rewrite_op_msg(message, body, _STRIP_ON_FORWARD, sequences)
        elif message.op_code == wire.OP_MSG:
            raw = wire.clear_op_msg_flags(message.raw, _STRIP_ON_FORWARD)
        else:
            raw = message.raw
        conn.backend.sendall(raw)
        reply = wire.read_raw(conn.backend)
        if server.corrected and is_msg and corrections.DUPLICATE_MARK in reply:
            return self._name_duplicate_keys(conn.backend, message, reply)
        return reply

    def _ddl(self, backend: socket.socket, message: wire.Message, name: str) -> bytes:
        """Index and collection DDL through the cluster's catalogue (see ``testing/indexes.py``)."""

        def send(command: Mapping[str, Any]) -> dict[str, Any]:
            backend.sendall(wire.op_msg_reply(0, command))
            return bson.decode(wire.reply_body(wire.read_raw(backend)))

        reply = indexes.IndexDdl(self.state.catalogue, send).handle(name, message.body)
        return wire.op_msg_reply(message.request_id, reply)

    def _name_duplicate_keys(self, backend: socket.socket, message: wire.Message, reply: bytes) -> bytes:
        """Add ``keyPattern``/``keyValue`` to the backend's duplicate-key errors (see ``corrections``)."""
        name = next(iter(message.body), "")
        field = {"insert": "documents", "update": "updates"}.get(name)
        collection = message.body.get(name)
        db = message.body.get("$db")
        if field is None or not isinstance(collection, str) or not isinstance(db, str):
            return reply
        statements = message.body.get(field)
        if not isinstance(statements, list):
            statements = []
            for section in message.sequences:
                identifier, documents = wire.decode_sequence(section)
                if identifier == field:
                    statements.extend(documents)
        backend.sendall(wire.op_msg_reply(0, {"listIndexes": collection, "$db": db}))
        listed = bson.decode(wire.reply_body(wire.read_raw(backend)))
        cursor = listed.get("cursor")
        indexes = cursor.get("firstBatch", []) if isinstance(cursor, Mapping) else []
        namespace = f"{db}.{collection}"
        listed = {str(i.get("name")): self.state.catalogue.listed(namespace, i) for i in indexes}
        corrected = corrections.name_duplicate_keys(
            name, namespace, statements, bson.decode(wire.reply_body(reply)), indexes, listed=listed
        )
        return reply if corrected is None else wire.op_msg_reply(message.request_id, corrected)

    # -- answered by the member itself ---------------------------------------------------------------------

    def last_write(self, now: datetime.datetime) -> tuple[dict[str, Any], datetime.datetime]:
        """This member's lastWrite: the primary's is "now" (mongod writes a periodic no-op), others lag."""
        when = now - datetime.timedelta(seconds=self.lag) if self.lag else now
        when = when.replace(microsecond=when.microsecond // 1000 * 1000)
        op_time = {"ts": Timestamp(int(when.timestamp()), 1), "t": Int64(self.state.term)}
        return op_time, when

    def _topology_version(self) -> dict[str, Any]:
        return {"processId": self.process_id, "counter": Int64(self.topology_counter)}

    def _hello(self, conn: _Connection, message: wire.Message) -> dict[str, Any]:
        body = message.body
        state = self.state
        awaited = body.get("topologyVersion")
        max_await = body.get("maxAwaitTimeMS")
        if state.streaming and isinstance(awaited, Mapping) and max_await is not None:
            # Awaitable hello: answer as soon as our topology changes, or after maxAwaitTimeMS.
            def changed() -> bool:
                return (
                    conn.closed.is_set()
                    or not self.alive
                    or awaited.get("processId") != self.process_id
                    or awaited.get("counter") != self.topology_counter
                )

            with state.lock:
                state.changed.wait_for(changed, float(max_await) / 1000.0)
            if conn.closed.is_set():
                raise _HangUp
        with state.lock:
            primary = state.primary
            is_primary = primary == self.index
            primary_alive = primary is not None and state.members[primary].alive
            doc: dict[str, Any] = {}
            if next(iter(body)) == "hello":
                doc["isWritablePrimary"] = is_primary
            else:
                doc["ismaster"] = is_primary
            doc["secondary"] = not is_primary
            doc["setName"] = state.set_name
            doc["setVersion"] = state.set_version
            doc["hosts"] = state.hosts
            doc["me"] = self.address
            if primary_alive and primary is not None:
                doc["primary"] = state.members[primary].address
            if is_primary:
                doc["electionId"] = state.election_id
            if state.streaming:
                doc["topologyVersion"] = self._topology_version()
            term_time, when = self.last_write(datetime.datetime.now(datetime.timezone.utc))
        doc["lastWrite"] = {
            "opTime": term_time,
            "lastWriteDate": when,
            "majorityOpTime": term_time,
            "majorityWriteDate": when,
        }
        doc.update(
            maxBsonObjectSize=16 * 1024 * 1024,
            maxMessageSizeBytes=48_000_000,
            maxWriteBatchSize=100_000,
            localTime=datetime.datetime.now(datetime.timezone.utc),
            logicalSessionTimeoutMinutes=30,
            connectionId=conn.conn_id,
            minWireVersion=0,
            maxWireVersion=MAX_WIRE_VERSION,
            readOnly=False,
            ok=1.0,
        )
        if body.get("helloOk"):
            doc["helloOk"] = True
        return doc

    def _admin(self, message: wire.Message, name: str, db: str, write: bool) -> bytes:
        state = self.state
        if name == "replSetStepDown":
            with state.lock:
                is_primary = state.primary == self.index
            if not is_primary:
                self._record(name, db, Outcome.REFUSED, write, message.body, 10107)
                return self._error(message, 10107, "not primary so can't step down")
            self._record(name, db, Outcome.ANSWERED, write, message.body)
            if state.on_step_down_command is not None:
                state.on_step_down_command(self.index)
            return wire.reply_to(message, {"ok": 1.0})
        now = datetime.datetime.now(datetime.timezone.utc)
        members = []
        with state.lock:
            for m in state.members:
                op_time, when = m.last_write(now)
                if not m.alive:
                    health, st, st_str = 0.0, 8, "(not reachable/healthy)"
                elif state.primary == m.index:
                    health, st, st_str = 1.0, 1, "PRIMARY"
                else:
                    health, st, st_str = 1.0, 2, "SECONDARY"
                entry: dict[str, Any] = {
                    "_id": m.index,
                    "name": m.address,
                    "health": health,
                    "state": st,
                    "stateStr": st_str,
                    "uptime": int(time.monotonic() - state.started),
                    "optime": op_time,
                    "optimeDate": when,
                    "self": m is self,
                }
                if m is not self:
                    entry["lastHeartbeat"] = now
                members.append(entry)
            my_state = 1 if state.primary == self.index else 2
            doc = {
                "set": state.set_name,
                "date": now,
                "myState": my_state,
                "term": Int64(state.term),
                "members": members,
                "ok": 1.0,
            }
        self._record(name, db, Outcome.ANSWERED, write, message.body)
        return wire.reply_to(message, doc)
