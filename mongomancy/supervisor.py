"""The supervisor thread: owns the ``MongoClient``, watches the topology, announces changes, runs hooks.

Why one thread owns the client: creating, replacing and closing a client from whichever worker happened
to fail is how the original mongomancy made N clients for N failing threads and leaked the old ones.  Here
workers only *ask* (``request_replacement``) and read the published ``TopologyState``; the supervisor alone
acts, once per change.

Why it polls ``client.topology_description`` instead of trusting monitoring events alone: pymongo delivers
SDAM events from a queue drained about once a second, which is far too late to release waiting commands
within milliseconds.  The listeners therefore only wake the supervisor (they run on pymongo's threads and
must never block); the supervisor reads pymongo's current view.  While there is no writable server it
blocks inside pymongo's own server selection (a ``ping``), which returns the instant pymongo discovers a
primary, and which also makes pymongo re-check every member at once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import attrs
import pymongo
from pymongo import MongoClient, monitoring
from pymongo.errors import PyMongoError, ServerSelectionTimeoutError
from pymongo.topology_description import TopologyDescription

from mongomancy.errors import SupervisorError
from mongomancy.events import HOOK_KINDS, ChangeKind, TopologyChange
from mongomancy.stats import Counters
from mongomancy.waitqueue import PrimaryWaitQueue

Hook = Callable[[Any, TopologyChange], None]
"""A reconnect hook: called as ``hook(engine, change)`` on the supervisor thread, once per change."""
Observer = Callable[[TopologyChange], None]
"""A topology observer: called as ``observer(change)`` for every change, member changes included."""
F = TypeVar("F", bound=Callable[..., None])


@attrs.frozen
class TopologyState:
    """What the workers' hot path reads: one immutable value, replaced (never mutated) by the supervisor."""

    client: MongoClient[Any] | None
    generation: int
    writable: bool = False
    primary: str | None = None
    topology_type: str = "Unknown"
    set_name: str | None = None


class TopologyEventListener(
    monitoring.ServerHeartbeatListener, monitoring.ServerListener, monitoring.TopologyListener
):
    """Registered on every client the supervisor makes.  Runs on pymongo's threads: it only enqueues."""

    def __init__(self, wake: threading.Event, events: queue.SimpleQueue[tuple[str, str]]) -> None:
        self._wake = wake
        self._events = events

    def _note(self, kind: str, address: Any = None) -> None:
        self._events.put((kind, f"{address[0]}:{address[1]}" if address else ""))
        self._wake.set()

    def started(self, event: Any) -> None:
        """Heartbeat starts are too frequent to be news."""

    def succeeded(self, event: Any) -> None:
        self._wake.set()

    def failed(self, event: Any) -> None:
        self._note("heartbeat_failed", getattr(event, "connection_id", None))

    def description_changed(self, event: Any) -> None:
        self._note("description_changed", getattr(event, "server_address", None))

    def opened(self, event: Any) -> None:
        self._wake.set()

    def closed(self, event: Any) -> None:
        self._wake.set()


def _address(address: tuple[str, int | None]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def primary_of(description: TopologyDescription) -> str | None:
    """The primary's address; for a standalone its own address; for mongos (no primary) None."""
    for address, server in description.server_descriptions().items():
        if server.server_type_name in ("RSPrimary", "Standalone"):
            return _address(address)
    return None


class CallbackList(Generic[F]):
    """Callbacks stored as an immutable tuple, replaced under a lock: running them needs no lock at all."""

    def __init__(self, kind: str, signature: str) -> None:
        self._kind = kind
        self._signature = signature
        self._lock = threading.Lock()
        self.callbacks: tuple[F, ...] = ()

    def after_fork(self) -> None:
        """In a forked child: the parent may have held the lock at fork time; a fresh one is free."""
        self._lock = threading.Lock()

    def add(self, callback: F) -> None:
        if not callable(callback):
            raise TypeError(f"a {self._kind} must be callable as {self._signature}, got {callback!r}")
        with self._lock:
            self.callbacks = (*self.callbacks, callback)

    def remove(self, callback: F) -> None:
        with self._lock:
            if callback not in self.callbacks:
                raise ValueError(f"{self._kind} {callback!r} is not registered on this engine")
            callbacks = list(self.callbacks)
            callbacks.remove(callback)
            self.callbacks = tuple(callbacks)


class HookRegistry:
    """The engine's reconnect hooks (failover changes) and topology observers (every change)."""

    def __init__(self) -> None:
        self.hooks: CallbackList[Hook] = CallbackList("hook", "hook(engine, change)")
        self.observers: CallbackList[Observer] = CallbackList("observer", "observer(change)")

    def after_fork(self) -> None:
        self.hooks.after_fork()
        self.observers.after_fork()


class Supervisor:
    """One per engine (per process): the only code that creates, replaces and closes the client."""

    def __init__(
        self,
        *,
        name: str,
        client_factory: Callable[[TopologyEventListener], MongoClient[Any]],
        owner: Any,
        hooks: HookRegistry,
        wait_queue: PrimaryWaitQueue,
        counters: Counters,
        publish: Callable[[TopologyState], None],
        on_crash: Callable[[BaseException], None],
        logger: logging.Logger,
        poll_interval: float,
        probe_timeout: float,
        slow_hook_seconds: float,
        replace_client_on_failover: bool,
    ) -> None:
        self._name = name
        self._client_factory = client_factory
        self._owner = owner
        self._hooks = hooks
        self._queue = wait_queue
        self._counters = counters
        self._publish_to_engine = publish
        self._on_crash = on_crash
        self._logger = logger
        self._poll_interval = poll_interval
        self._probe_timeout = probe_timeout
        self._slow_hook_seconds = slow_hook_seconds
        self._replace_on_failover = replace_client_on_failover

        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._listener_events: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._listener = TopologyEventListener(self._wake, self._listener_events)
        # Guards the replacement bookkeeping that worker threads wait on (reconnect()).
        self._replacement = threading.Condition()
        self._replacement_wanted = False
        #: The generation of the last replacement that is complete: hooks run, old client closed.
        self._completed_generation = 1
        self._thread: threading.Thread | None = None

        # Owned by the supervisor thread alone after start().
        self._client = client_factory(self._listener)
        self._state = TopologyState(client=self._client, generation=1)
        self._last_primary: str | None = None
        self._fresh_client = True
        self._roles: dict[str, str] = {}
        self._publish_to_engine(self._state)

    # ----------------------------------------------------------------------------------------- control
    @property
    def state(self) -> TopologyState:
        return self._state

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def start(self) -> None:
        """Start (or, after a crash, restart) the thread; the client and the state carry over."""
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def nudge(self) -> None:
        """A worker saw an error that may mean a topology change: look now rather than at the next poll."""
        self._wake.set()

    def request_replacement(self, seen_generation: int, timeout: float) -> int:
        """Ask for a new client unless one newer than ``seen_generation`` exists already; wait for it.

        Single-flight: every caller that saw the same generation shares the one replacement.
        """
        deadline = time.monotonic() + timeout
        with self._replacement:
            if self._state.generation <= seen_generation:
                self._replacement_wanted = True
                self._wake.set()
            while self._completed_generation <= seen_generation:
                if self._stopping.is_set() or not self.is_alive():
                    raise SupervisorError("the supervisor stopped before the client was replaced")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SupervisorError(f"the client was not replaced within {timeout:.1f} s")
                self._replacement.wait(min(remaining, 0.1))
            return self._completed_generation

    def stop(self, timeout: float) -> None:
        """Stop the thread (joined) and close the client.  Idempotent."""
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                raise SupervisorError(f"supervisor thread {self._name} did not stop within {timeout:.1f} s")
        with self._replacement:
            self._replacement.notify_all()
        self._close(self._client)

    def abandon_after_fork(self) -> None:
        """In a forked child: forget the parent's client without closing it (its sockets are the parent's)."""
        self._stopping.set()
        self._thread = None

    # ----------------------------------------------------------------------------------------- the loop
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as crash:
            if self._stopping.is_set():
                return
            self._logger.critical("supervisor thread %s died", self._name, exc_info=crash)
            self._on_crash(crash)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            self._serve_replacement_request()
            self._drain_listener_events()
            self._observe()
            if self._stopping.is_set():
                return
            if self._state.writable:
                self._wake.wait(self._poll_interval)
            else:
                self._await_writable()

    def _drain_listener_events(self) -> None:
        while True:
            try:
                kind, address = self._listener_events.get_nowait()
            except queue.Empty:
                return
            if kind == "heartbeat_failed":
                self._counters.bump("heartbeat_failures")
                self._logger.debug("heartbeat to %s failed", address)

    def _await_writable(self) -> None:
        """Block in pymongo's server selection until a writable server is known (or a short timeout)."""
        try:
            with pymongo.timeout(self._probe_timeout):
                self._client.admin.command("ping")
        except ServerSelectionTimeoutError:
            pass
        except PyMongoError as error:
            self._logger.debug("probe while waiting for a primary failed: %s", error)
            self._wake.wait(min(self._poll_interval, self._probe_timeout))

    def _observe(self) -> None:
        description = self._client.topology_description
        self._note_member_changes(description)
        writable = description.has_writable_server()
        primary = primary_of(description) if writable else None
        previous = self._state
        if (writable, primary, description.topology_type_name) == (
            previous.writable,
            previous.primary,
            previous.topology_type,
        ):
            return
        state = attrs.evolve(
            previous,
            writable=writable,
            primary=primary,
            topology_type=description.topology_type_name,
            set_name=description.replica_set_name,
        )
        change = self._change_between(previous, state)
        if not writable:
            self._queue.close()
        self._publish(state)
        if change is not None and change.kind is ChangeKind.PRIMARY_CHANGED and self._replace_on_failover:
            self._announce(change)
            self._replace_client()
            return
        if change is not None:
            self._announce(change)
        if writable:
            self._queue.open()

    def _change_between(self, previous: TopologyState, state: TopologyState) -> TopologyChange | None:
        fresh = self._fresh_client
        if state.writable:
            self._fresh_client = False
        change = None
        if not state.writable:
            if previous.writable:
                change = self._change(ChangeKind.NO_PRIMARY, old_primary=self._last_primary)
        elif state.primary is not None and self._last_primary is not None:
            if state.primary != self._last_primary:
                self._counters.bump("failovers")
                change = self._change(
                    ChangeKind.PRIMARY_CHANGED, old_primary=self._last_primary, new_primary=state.primary
                )
            elif not previous.writable and not fresh:
                change = self._change(ChangeKind.PRIMARY_BACK, new_primary=state.primary)
        if state.primary is not None:
            self._last_primary = state.primary
        return change

    def _note_member_changes(self, description: TopologyDescription) -> None:
        roles = {
            _address(address): server.server_type_name
            for address, server in description.server_descriptions().items()
        }
        if roles == self._roles:
            return
        for member in sorted(set(roles) | set(self._roles)):
            old, new = self._roles.get(member), roles.get(member)
            if old != new:
                self._notify_observers(
                    self._change(ChangeKind.MEMBER_CHANGED, member=member, old_role=old, new_role=new)
                )
        self._roles = roles

    def _change(self, kind: ChangeKind, **fields: Any) -> TopologyChange:
        return TopologyChange(
            kind=kind,
            topology_type=self._state.topology_type,
            set_name=self._state.set_name,
            client_generation=self._state.generation,
            **fields,
        )

    def _publish(self, state: TopologyState) -> None:
        self._state = state
        self._publish_to_engine(state)

    # ----------------------------------------------------------------------------------------- changes
    def _announce(self, change: TopologyChange) -> None:
        """Log the change, tell observers, and run every hook once (each isolated from the others)."""
        level = logging.INFO if change.kind is ChangeKind.PRIMARY_BACK else logging.WARNING
        self._logger.log(level, "topology: %s", change.describe())
        self._notify_observers(change)
        if change.kind not in HOOK_KINDS:
            return
        for hook in self._hooks.hooks.callbacks:
            started = time.monotonic()
            try:
                hook(self._owner, change)
            except Exception:
                self._counters.bump("hook_failures")
                self._logger.exception("reconnect hook %r failed on %s", hook, change.describe())
            finally:
                self._counters.bump("hook_runs")
                took = time.monotonic() - started
                if took >= self._slow_hook_seconds:
                    self._logger.warning("reconnect hook %r took %.3f s on %s", hook, took, change.describe())

    def _notify_observers(self, change: TopologyChange) -> None:
        for observer in self._hooks.observers.callbacks:
            try:
                observer(change)
            except Exception:
                self._logger.exception("topology observer %r failed on %s", observer, change.describe())

    def _serve_replacement_request(self) -> None:
        with self._replacement:
            wanted, self._replacement_wanted = self._replacement_wanted, False
        if wanted:
            self._replace_client()

    def _replace_client(self) -> None:
        """Make a new client, publish it, run the hooks, then close the old one (never leaked)."""
        old = self._client
        self._queue.close()
        self._client = self._client_factory(self._listener)
        self._fresh_client = True
        self._roles = {}
        with self._replacement:
            self._publish(TopologyState(client=self._client, generation=self._state.generation + 1))
        self._counters.bump("client_replacements")
        self._announce(self._change(ChangeKind.CLIENT_REPLACED, old_primary=self._last_primary))
        self._close(old)
        with self._replacement:
            self._completed_generation = self._state.generation
            self._replacement.notify_all()

    def _close(self, client: MongoClient[Any]) -> None:
        """Close a client without waiting long: ``close()`` ends server sessions first, which would wait
        for a reachable server for up to ``serverSelectionTimeoutMS`` when every member is down."""
        with pymongo.timeout(self._probe_timeout):
            client.close()
