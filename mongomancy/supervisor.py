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

The supervisor also tells the user what is going on: one WARNING as soon as commands wait for a primary
(every member and what it said), a reminder every 30 s while that lasts and one INFO line when it is over;
and it
holds the *fatal condition* (see ``mongomancy/fatal.py``): a configuration error no wait can cure, which
wakes waiting commands with its error, is logged once at ERROR and is re-checked every
``fatal_recheck_seconds`` so the engine recovers by itself once the cause is fixed.
"""

from __future__ import annotations

import inspect
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
from pymongo.server_description import ServerDescription
from pymongo.topology_description import TopologyDescription

from mongomancy._forking import renew_after_fork
from mongomancy._redact import address_text
from mongomancy.errors import FatalConfigurationError, SupervisorError
from mongomancy.events import HOOK_KINDS, ChangeKind, TopologyChange
from mongomancy.fatal import (
    FatalCondition,
    FatalReason,
    Identity,
    condition_from_description,
    condition_from_error,
    foreign_role,
    reason_of,
)
from mongomancy.members import why_no_primary
from mongomancy.stats import Counters
from mongomancy.waitqueue import PrimaryWaitQueue

_AWAIT_SLICE = 0.1
#: While no seed belongs to the named replica set, a new client looks at the seeds again this often.
_REDISCOVERY_SECONDS = 10.0

Hook = Callable[[Any, TopologyChange], None]
"""A reconnect hook as the supervisor calls it: ``hook(engine, change)`` on the supervisor thread."""
AnyHook = Callable[..., None]
"""What ``register_hook`` accepts: ``hook(engine, change)``, or the seed's one-argument ``hook(engine)``."""
Observer = Callable[[TopologyChange], None]
"""A topology observer: called as ``observer(change)`` for every change, member changes included."""
F = TypeVar("F")


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

    def __init__(
        self,
        wake: threading.Event,
        events: queue.SimpleQueue[tuple[str, str]],
        descriptions: queue.SimpleQueue[ServerDescription] | None = None,
    ) -> None:
        self._wake = wake
        self._events = events
        #: Every new server description: how a seed of another replica set is seen before pymongo drops it.
        self._descriptions = descriptions

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
        new = getattr(event, "new_description", None)
        if self._descriptions is not None and isinstance(new, ServerDescription):
            self._descriptions.put(new)
        self._note("description_changed", getattr(event, "server_address", None))

    def opened(self, event: Any) -> None:
        self._wake.set()

    def closed(self, event: Any) -> None:
        self._wake.set()


_address = address_text


def primary_of(description: TopologyDescription) -> str | None:
    """The primary's address; for a standalone its own address; for mongos (no primary) None."""
    for address, server in description.server_descriptions().items():
        if server.server_type_name in ("RSPrimary", "Standalone"):
            return _address(address)
    return None


@attrs.frozen
class RegisteredHook:
    """A hook as registered (``original``, what equality and ``unregister_hook`` use) and how it is called.

    The calling convention is decided once, at registration, from the signature: a hook that accepts two
    positional arguments gets ``(engine, change)``; one that accepts exactly one gets ``(engine)``, as the
    seed's hooks (``invalidate_cache_hook(source)``) expect.
    """

    original: AnyHook
    call: Hook = attrs.field(eq=False, repr=False)

    @classmethod
    def adapt(cls, hook: AnyHook) -> RegisteredHook:
        if not callable(hook):
            raise TypeError(f"a hook must be callable as hook(engine, change) or hook(engine), got {hook!r}")
        positional = _positional_arity(hook)
        if positional is None or positional[1] >= 2:
            if positional is not None and positional[0] > 2:
                raise TypeError(
                    f"hook {hook!r} needs {positional[0]} positional arguments; a hook is called as "
                    "hook(engine, change) or hook(engine)"
                )
            return cls(hook, hook)
        if positional[1] == 1:

            def call_with_engine(engine: Any, change: TopologyChange) -> None:
                hook(engine)

            return cls(hook, call_with_engine)
        raise TypeError(
            f"hook {hook!r} takes no positional argument; "
            "a hook is called as hook(engine, change) or hook(engine)"
        )


def _positional_arity(function: AnyHook) -> tuple[int, float] | None:
    """(required, accepted) positional arguments of ``function``; None when its signature is unknown."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None
    required, accepted = 0, 0.0
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            accepted = float("inf")
        elif parameter.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            accepted += 1
            if parameter.default is inspect.Parameter.empty:
                required += 1
    return required, accepted


class CallbackList(Generic[F]):
    """Callbacks stored as an immutable tuple, replaced under a lock: running them needs no lock at all."""

    def __init__(self, kind: str, signature: str) -> None:
        self._kind = kind
        self._signature = signature
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock")
        self.callbacks: tuple[F, ...] = ()

    def add(self, callback: F) -> None:
        if not callable(callback) and not isinstance(callback, RegisteredHook):
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
        self.hooks: CallbackList[RegisteredHook] = CallbackList("hook", "hook(engine, change)")
        self.observers: CallbackList[Observer] = CallbackList("observer", "observer(change)")


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
        identity: Identity | None = None,
        secrets: tuple[str, ...] = (),
        seeds: tuple[str, ...] = (),
        in_flight: Callable[[], int] | None = None,
        generation: int = 1,
        announce_client: bool = False,
        fatal_recheck_seconds: float = 1.0,
        wait_reminder_seconds: float = 30.0,
    ) -> None:
        """``generation``/``announce_client``: a supervisor started in a forked child continues the parent's
        numbering and announces its new client (CLIENT_REPLACED) to the hooks before anything else."""
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
        self._identity = identity or Identity()
        self._secrets = secrets
        self._seeds = seeds
        #: Commands inside a pymongo call now (the engine's count): without a primary, they wait in
        #: pymongo's server selection, where the queue cannot see them.
        self._in_flight = in_flight or (lambda: 0)
        self._fatal_recheck = fatal_recheck_seconds
        self._wait_reminder = wait_reminder_seconds

        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._listener_events: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._descriptions: queue.SimpleQueue[ServerDescription] = queue.SimpleQueue()
        self._listener = TopologyEventListener(self._wake, self._listener_events, self._descriptions)
        # Guards the replacement bookkeeping that worker threads wait on (reconnect()).
        self._replacement = threading.Condition()
        self._replacement_wanted = False
        #: The generation of the last replacement that is complete: hooks run, old client closed.
        self._completed_generation = generation
        self._thread: threading.Thread | None = None
        # Guards the fatal condition, which worker threads declare (a command met it) and the supervisor
        # clears; never held while logging or calling out.
        self._fatal_lock = threading.Lock()
        self._fatal: FatalCondition | None = None
        self._next_fatal_check = 0.0
        self._next_rediscovery = time.monotonic() + _REDISCOVERY_SECONDS
        #: The change whose hooks are running now (a hook's reconnect() must not wait for itself).
        self._announcing: TopologyChange | None = None
        self._running_hook: AnyHook | None = None

        # Owned by the supervisor thread alone after start().
        self._client = client_factory(self._listener)
        self._state = TopologyState(client=self._client, generation=generation)
        self._announce_client = announce_client
        self._last_primary: str | None = None
        self._fresh_client = True
        self._roles: dict[str, str] = {}
        #: Seeds that answered as something that cannot be a member of the named set: address -> what.
        self._foreign: dict[str, str] = {}
        #: Since when commands have waited for a primary (the WARNING was logged), and the last reminder.
        self._waiting_episode: float | None = None
        self._no_primary_since: float | None = None
        self._last_reminder = 0.0
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

        Single-flight: every caller that saw the same generation shares the one replacement.  Called from
        a hook (on this thread) it cannot wait for itself: the replacement is scheduled and made after the
        hooks of the current change return (none when that change *is* a fresh client).
        """
        if threading.current_thread() is self._thread:
            return self._replacement_from_hook(seen_generation)
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

    def _replacement_from_hook(self, seen_generation: int) -> int:
        change = self._announcing
        if change is not None and change.kind is ChangeKind.CLIENT_REPLACED:
            self._logger.info(
                "reconnect() from hook %r ignored: the client was just replaced (generation %d)",
                self._running_hook,
                change.client_generation,
            )
            return self._state.generation
        with self._replacement:
            if self._state.generation <= seen_generation:
                self._replacement_wanted = True
        self._logger.info(
            "reconnect() from hook %r: the client is replaced once the hooks return", self._running_hook
        )
        return self._state.generation

    def stop(self, timeout: float) -> None:
        """Stop the thread and close the client, always: a hook still running after ``timeout`` is logged
        and left to finish (the thread then closes any client it made and ends).  Idempotent."""
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                self._logger.warning(
                    "supervisor thread %s did not stop within %.1f s (hook %r still running); "
                    "closing the client anyway",
                    self._name,
                    timeout,
                    self._running_hook,
                )
        with self._replacement:
            self._replacement.notify_all()
        self._close(self._client)

    # ----------------------------------------------------------------------------------------- fatal
    @property
    def fatal_condition(self) -> FatalCondition | None:
        """The configuration error no wait can cure that holds now, if any."""
        return self._fatal

    def fatal_error(self, error: BaseException) -> FatalConfigurationError | None:
        """For the engine's retry loop: a fresh ``FatalConfigurationError`` if ``error`` is incurable.

        It is also declared (waiting commands are woken with it, it is logged once) so that the other
        threads learn it without meeting it themselves.
        """
        if reason_of(error) is None:
            return None  # the common case, decided without copying the topology
        client = self._state.client
        description = client.topology_description if client is not None else None
        condition = condition_from_error(error, self._identity, description, self._secrets)
        if condition is None:
            return None
        self._declare(condition)
        return condition.error()

    def _declare(self, condition: FatalCondition) -> None:
        with self._fatal_lock:
            previous, self._fatal = self._fatal, condition
            self._next_fatal_check = time.monotonic() + self._fatal_recheck
        self._queue.fail(condition.error)
        if threading.current_thread() is not self._thread:
            self._wake.set()  # the supervisor publishes "no usable primary" now, not at its next poll
        if previous is None or previous.key != condition.key:
            self._counters.bump("fatal_errors")
            self._logger.error("%s", condition.message)

    def _clear_fatal(self, why: str) -> None:
        with self._fatal_lock:
            condition, self._fatal = self._fatal, None
        if condition is None:
            return
        self._queue.clear_failure()
        self._logger.info("%s error cleared: %s", condition.reason.value, why)
        if self._state.writable:
            self._queue.open()

    def _check_fatal(self, description: TopologyDescription) -> None:
        """Declare what the topology shows; clear what it no longer shows; re-check authentication."""
        self._note_foreign_members()
        shown = condition_from_description(
            description, self._identity, self._foreign, self._secrets, self._seeds
        )
        current = self._fatal
        if shown is not None:
            if current is None or current.key != shown.key or current.message != shown.message:
                self._declare(shown)
            now = time.monotonic()
            if shown.reason is FatalReason.REPLICA_SET_NAME and now >= self._next_rediscovery:
                # pymongo never re-adds seeds it removed: only a new client looks at them again.
                self._next_rediscovery = now + _REDISCOVERY_SECONDS
                self._replace_client()
            return
        if current is None:
            return
        if current.reason is not FatalReason.AUTHENTICATION:
            if description.has_known_servers:
                self._clear_fatal("the members answer again")
            return
        if self._fatal_check_due():
            self._recheck_authentication()

    def _fatal_check_due(self) -> bool:
        now = time.monotonic()
        with self._fatal_lock:
            if now < self._next_fatal_check:
                return False
            self._next_fatal_check = now + self._fatal_recheck
            return True

    def _recheck_authentication(self) -> None:
        """Try to authenticate again (pymongo cleared the pool, so a ping opens a new connection)."""
        try:
            with pymongo.timeout(self._probe_timeout):
                self._client.admin.command("ping")
        except PyMongoError as error:
            condition = condition_from_error(
                error, self._identity, self._client.topology_description, self._secrets
            )
            if condition is not None:
                self._declare(condition)
            return
        self._clear_fatal("authentication succeeded")

    def _note_foreign_members(self) -> None:
        expected = self._client.options.replica_set_name
        while True:
            try:
                server = self._descriptions.get_nowait()
            except queue.Empty:
                return
            address = _address(server.address)
            role = foreign_role(expected, server.replica_set_name, server.server_type_name)
            if role is not None:
                self._foreign[address] = role
            elif server.server_type_name != "Unknown":
                self._foreign.pop(address, None)

    # ----------------------------------------------------------------------------------------- waiting
    def _report_waiting(self, description: TopologyDescription) -> None:
        """One WARNING when commands wait for a primary, reminders while that lasts, one INFO when it ends.

        Waiting commands are those in the engine's queue and those inside pymongo while there is no
        primary (a retryable write's own retry waits in pymongo's server selection).
        """
        now = time.monotonic()
        if self._state.writable:
            self._no_primary_since = None
            if self._waiting_episode is not None:
                self._logger.info(
                    "primary %s available after %.1f s without one; waiting commands released",
                    self._state.primary,
                    now - self._waiting_episode,
                )
                self._waiting_episode = None
            return
        if self._no_primary_since is None:
            self._no_primary_since = now
        if self._fatal is not None:
            return  # its ERROR says more than "no primary"
        waiting = len(self._queue) + self._in_flight()
        name = self._state.set_name or description.replica_set_name
        of_set = f" of replica set {name!r}" if name else ""
        if self._waiting_episode is None:
            if waiting == 0:
                return
            self._waiting_episode = self._no_primary_since
            self._last_reminder = now
            self._logger.warning(
                "no primary%s for %.1f s, %d commands waiting for one (each up to its budget): %s",
                of_set,
                now - self._waiting_episode,
                waiting,
                why_no_primary(description, self._foreign),
            )
        elif now - self._last_reminder >= self._wait_reminder:
            self._last_reminder = now
            self._logger.warning(
                "still no primary%s after %.0f s, %d commands waiting: %s",
                of_set,
                now - self._waiting_episode,
                waiting,
                why_no_primary(description, self._foreign),
            )

    def abandon_after_fork(self) -> None:
        """In a forked child: forget the parent's client without closing it (its sockets are the parent's)."""
        self._stopping.set()
        self._thread = None

    # ----------------------------------------------------------------------------------------- the loop
    def _run(self) -> None:
        try:
            if self._announce_client:
                self._announce_client = False
                self._announce(self._change(ChangeKind.CLIENT_REPLACED))
            self._loop()
        except BaseException as crash:
            if self._stopping.is_set():
                return
            self._logger.critical("supervisor thread %s died", self._name, exc_info=crash)
            self._on_crash(crash)
        finally:
            if self._stopping.is_set():
                # stop() may have given up waiting for a slow hook; whatever client this thread holds
                # now (maybe one it made after stop() closed the last) is closed here.
                self._close(self._client)

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
            elif self._fatal is not None:
                self._wake.wait(min(self._poll_interval * 4, self._fatal_recheck))
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
        """Block in pymongo's server selection until a writable server is known (or a short timeout).

        At most 0.1 s at a time: what pymongo learns meanwhile without finding a primary (a member that
        refuses the connection, every seed dropped for another set name) must reach the log and the fatal
        check without waiting for a longer probe to end.
        """
        try:
            with pymongo.timeout(min(self._probe_timeout, _AWAIT_SLICE)):
                self._client.admin.command("ping")
        except ServerSelectionTimeoutError:
            pass
        except PyMongoError as error:
            condition = condition_from_error(
                error, self._identity, self._client.topology_description, self._secrets
            )
            if condition is not None:
                self._declare(condition)
                return
            self._logger.debug("probe while waiting for a primary failed: %s", error)
            self._wake.wait(min(self._poll_interval, self._probe_timeout))

    def _observe(self) -> None:
        description = self._client.topology_description
        self._note_member_changes(description)
        self._check_fatal(description)
        self._observe_primary(description)
        self._report_waiting(description)

    def _observe_primary(self, description: TopologyDescription) -> None:
        # While a fatal condition holds the engine does not count a primary as usable: commands take the
        # slow path, where the wait queue answers them with the condition's error at once, instead of
        # entering pymongo, which holds them in server selection while it has the primary marked Unknown.
        writable = description.has_writable_server() and self._fatal is None
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
        self._announcing = change
        try:
            for hook in self._hooks.hooks.callbacks:
                self._run_hook(hook, change)
        finally:
            self._announcing = None
            self._running_hook = None

    def _run_hook(self, hook: RegisteredHook, change: TopologyChange) -> None:
        started = time.monotonic()
        self._running_hook = hook.original
        try:
            hook.call(self._owner, change)
        except Exception:
            self._counters.bump("hook_failures")
            self._logger.exception("reconnect hook %r failed on %s", hook.original, change.describe())
        finally:
            self._counters.bump("hook_runs")
            took = time.monotonic() - started
            if took >= self._slow_hook_seconds:
                self._logger.warning(
                    "reconnect hook %r took %.3f s on %s", hook.original, took, change.describe()
                )

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
        self._foreign = {}
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
