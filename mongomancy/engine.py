"""``Engine``: runs every command inline when the cluster is healthy, and carries it through failovers.

The hot path is one attribute read (the supervisor's published ``TopologyState``), for writes one
``pymongo.timeout`` block, and the pymongo call: no lock, no queue, no thread hop.  Everything else (the retry
decision, waiting in the bounded queue, backoff, the budget) lives on the slow path, which only failing
commands take.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from pymongo import MongoClient, _csot
from pymongo.client_session import ClientSession
from pymongo.errors import ConfigurationError as PyMongoConfigurationError
from pymongo.errors import PyMongoError

from mongomancy._forking import renew_after_fork
from mongomancy._redact import redact_text, redact_uri, unencoded_userinfo
from mongomancy.commands import AnyCommand, CollectionLike, Command, FunctionCommand, RetryClass, as_target
from mongomancy.cursor import ResumableAggregateCursor, ResumableCursor
from mongomancy.errors import (
    ConfigurationError,
    EngineDisposedError,
    OutcomeUnknownError,
    QueueFullError,
    RetryBudgetExhaustedError,
    SupervisorError,
)
from mongomancy.events import TopologyChange
from mongomancy.executor import Executor
from mongomancy.fatal import Identity, seed_addresses
from mongomancy.inflight import InFlight
from mongomancy.retry import (
    Attempts,
    CommandKind,
    RetryPolicy,
    Verdict,
    at_deadline,
    decide,
    retryable_writes_unsupported,
)
from mongomancy.stats import Counters, EngineStats
from mongomancy.supervisor import (
    AnyHook,
    HookRegistry,
    RegisteredHook,
    Supervisor,
    TopologyEventListener,
    TopologyState,
)
from mongomancy.waitqueue import PrimaryWaitQueue

T = TypeVar("T")

_READ = CommandKind.READ

_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()
_SUPERVISOR_RESTART_LIMIT = 5
_SUPERVISOR_RESTART_WINDOW = 60.0


class Engine(Executor):
    """Owns a ``MongoClient`` (through its supervisor thread) and executes commands with a retry policy.

    ``Engine("localhost", 27017)``, ``Engine(uri="mongodb://h1,h2,h3/?replicaSet=rs0")`` or
    ``Engine("mongodb://...")``; with neither host nor URI, ``$MONGODB_URI`` when it is set (as
    ``mongomancy-ping`` and ``watch`` do), else ``localhost:27017``.  Any other keyword goes to
    ``MongoClient`` unchanged.  No credentials are assumed: give them in the URI or as
    ``username``/``password``.  Credentials the server refuses (and other configuration errors no wait can
    cure) raise :class:`~mongomancy.errors.FatalConfigurationError` at once.

    ``replace_client_on_failover`` (default False): the original mongomancy built a new client at every
    primary switch.  pymongo already re-discovers the new primary on its existing client, and a new client
    costs fresh connection pools and handshakes and kills in-flight work, so by default the engine keeps its
    client and only *announces* the change (see the README's measurements).

    Defaults for options you set neither as keywords nor in the URI (yours always win): ``appname``
    "mongomancy"; ``serverSelectionTimeoutMS`` and ``socketTimeoutMS`` = the budget (pymongo's retry of a
    write may wait a whole election; a read's single attempt is bounded); ``connectTimeoutMS`` = the budget
    when it is under 20 s; ``retryReads=False`` (mongomancy owns read retries, within the budget).
    """

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        uri: str | None = None,
        retry_policy: RetryPolicy | None = None,
        queue_capacity: int = 10_000,
        logger: logging.Logger | None = None,
        name: str | None = None,
        replace_client_on_failover: bool = False,
        poll_interval: float = 0.05,
        probe_timeout: float = 0.5,
        slow_hook_seconds: float = 1.0,
        **client_options: Any,
    ) -> None:
        if host is None and port is None and uri is None:
            uri = os.environ.get("MONGODB_URI") or None
        self._client_args, self._display_target = _client_arguments(host, port, uri)
        if retry_policy is not None and not isinstance(retry_policy, RetryPolicy):
            raise ConfigurationError(f"retry_policy must be a RetryPolicy, got {type(retry_policy).__name__}")
        if not isinstance(queue_capacity, int) or isinstance(queue_capacity, bool) or queue_capacity < 1:
            raise ConfigurationError(f"queue_capacity must be a positive int, got {queue_capacity!r}")
        for option, value in (("poll_interval", poll_interval), ("probe_timeout", probe_timeout)):
            if not isinstance(value, (int, float)) or value <= 0:
                raise ConfigurationError(f"{option} must be a positive number of seconds, got {value!r}")
        self._policy = retry_policy or RetryPolicy()
        self._queue_capacity = queue_capacity
        self._logger = logger or logging.getLogger("mongomancy.engine")
        self._name = name or f"mongomancy-supervisor-{id(self):x}"
        self._replace_on_failover = replace_client_on_failover
        self._poll_interval = poll_interval
        self._probe_timeout = probe_timeout
        self._slow_hook_seconds = slow_hook_seconds
        self._client_options = self._with_defaults(client_options)
        self._secrets = tuple(str(v) for k, v in client_options.items() if k.lower() == "password")
        self._identity = Identity.from_client_arguments(self._client_args, client_options)

        self._hooks = HookRegistry()
        self._counters = Counters()
        # Guards the lifecycle only (start, dispose, fork, supervisor restart): never taken on the hot path.
        self._lifecycle = threading.Lock()
        renew_after_fork(self, "_lifecycle")
        self._disposed = False
        #: Why the engine refuses work after its supervisor died for good (message, last crash).
        self._failure: tuple[str, BaseException] | None = None
        self._restarts: list[float] = []
        self._changed = threading.Event()
        self._state = TopologyState(client=None, generation=0)
        self._start()
        _ENGINES.add(self)
        self._logger.info("engine started for %s", self._display_target)

    # ------------------------------------------------------------------------------------- set-up
    def _with_defaults(self, options: dict[str, Any]) -> dict[str, Any]:
        """The engine's defaults for options the caller set neither as keywords nor in the URI."""
        chosen = {key.lower() for key in options} | _uri_option_names(self._client_args)
        defaults: dict[str, Any] = {"appname": "mongomancy"}
        budget_ms = int(self._policy.budget * 1000)
        if "serverselectiontimeoutms" not in chosen:
            # Let pymongo's own retry loop (under pymongo.timeout) wait as long as our budget allows, so a
            # retryable write keeps its transaction number across a long election.
            defaults["serverSelectionTimeoutMS"] = budget_ms
        if not chosen & {"sockettimeoutms", "timeoutms"}:
            # pymongo waits for a reply forever by default: a blackholed server would hang a worker for good.
            # Reads run without pymongo.timeout on the hot path, so this bounds their first attempt.
            defaults["socketTimeoutMS"] = budget_ms
        if not chosen & {"connecttimeoutms", "timeoutms"} and budget_ms < 20_000:
            defaults["connectTimeoutMS"] = budget_ms
        if "retryreads" not in chosen:
            # mongomancy owns the retries of reads (within the budget): pymongo's own extra attempt of a
            # hot-path read, which runs without pymongo.timeout, would double its worst case.
            defaults["retryReads"] = False
        return {**defaults, **options}

    def _make_client(self, listener: TopologyEventListener) -> MongoClient[Any]:
        options = dict(self._client_options)
        options["event_listeners"] = [*options.get("event_listeners", ()), listener]
        try:
            return MongoClient(*self._client_args, **options)
        except (PyMongoConfigurationError, TypeError, ValueError) as error:
            message = redact_text(str(error), self._secrets)
            raise ConfigurationError(
                f"invalid MongoClient option for {self._display_target}: {message}"
            ) from None

    def _start(self, generation: int = 1, announce_client: bool = False) -> None:
        self._pid = os.getpid()
        self._queue = PrimaryWaitQueue(self._queue_capacity)
        self._in_flight = InFlight()
        self._supervisor = Supervisor(
            name=self._name,
            client_factory=self._make_client,
            owner=self,
            hooks=self._hooks,
            wait_queue=self._queue,
            counters=self._counters,
            publish=self._publish,
            on_crash=self._on_supervisor_crash,
            logger=self._logger,
            poll_interval=self._poll_interval,
            probe_timeout=self._probe_timeout,
            slow_hook_seconds=self._slow_hook_seconds,
            replace_client_on_failover=self._replace_on_failover,
            identity=self._identity,
            secrets=self._secrets,
            seeds=seed_addresses(self._client_args),
            in_flight=self._in_flight_count,
            generation=generation,
            announce_client=announce_client,
        )
        self._supervisor.start()

    def _in_flight_count(self) -> int:
        """For the supervisor's waiting WARNING (read through the engine: ``_start`` replaces the counter)."""
        return self._in_flight.count

    def _publish(self, state: TopologyState) -> None:
        """Called by the supervisor: swap the state the hot path reads and wake backing-off workers."""
        self._state = state
        changed, self._changed = self._changed, threading.Event()
        changed.set()

    # ------------------------------------------------------------------------------------- properties
    @property
    def client(self) -> MongoClient[Any]:
        """The current client.  Fine for one-off calls; hold on to it and a replacement leaves you behind."""
        self._ensure_running()
        client = self._state.client
        if client is None:
            raise EngineDisposedError("the engine has been disposed")
        return client

    @property
    def retry_policy(self) -> RetryPolicy:
        return self._policy

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    @property
    def supervisor_thread(self) -> threading.Thread | None:
        """The supervisor's thread (for diagnostics and tests)."""
        return self._supervisor.thread

    @property
    def commands_in_flight(self) -> int:
        """Commands inside a pymongo call right now (while no primary is known, they count as waiting)."""
        return self._in_flight.count

    def topology(self) -> TopologyState:
        """The supervisor's latest view: writable, primary address, topology type, client generation."""
        return self._state

    def get_database(self, name: str, **options: Any) -> Any:
        """A pymongo database of the *current* client (not retried: use ``Database`` for that)."""
        return self.client.get_database(name, **options)

    def stats(self) -> EngineStats:
        counts, by_cause = self._counters.snapshot()
        state = self._state
        return EngineStats(
            retries_by_cause=by_cause,
            current_primary=state.primary,
            writable=state.writable,
            topology_type=state.topology_type,
            queue_length=len(self._queue),
            queue_high_water=self._queue.high_water,
            queue_capacity=self._queue.capacity,
            **counts,
        )

    # ------------------------------------------------------------------------------------- hooks
    def register_hook(self, hook: AnyHook) -> AnyHook:
        """Call ``hook(engine, change)`` on the supervisor thread, once per change (usable as a decorator).

        A hook that takes one positional argument is called as ``hook(engine)``, as the seed's hooks are;
        that is decided here, once, from its signature (a hook that fits neither raises ``TypeError`` now).
        Hooks run before queued commands are released, so a hook must not itself run a command that needs
        a primary: it would wait for the very release it is holding up (until the budget runs out).  A
        hook may call :meth:`reconnect`: the new client is made after the hooks return.
        """
        self._hooks.hooks.add(RegisteredHook.adapt(hook))
        return hook

    @property
    def hooks(self) -> tuple[AnyHook, ...]:
        """The registered hooks, in the order they run."""
        return tuple(registered.original for registered in self._hooks.hooks.callbacks)

    def unregister_hook(self, hook: AnyHook) -> None:
        self._hooks.hooks.remove(RegisteredHook(hook, hook))

    def add_topology_observer(self, observer: Callable[[TopologyChange], None]) -> None:
        """Call ``observer(change)`` for every change, member changes included (``mongomancy watch``)."""
        self._hooks.observers.add(observer)

    def remove_topology_observer(self, observer: Callable[[TopologyChange], None]) -> None:
        self._hooks.observers.remove(observer)

    # ------------------------------------------------------------------------------------- execution
    def execute(self, command: AnyCommand) -> Any:
        """Run ``command`` and return pymongo's result, or raise an honest error within the budget.

        The hot path: a primary is known, so the attempt runs at once on the caller's thread.  Writes run
        under ``pymongo.timeout(budget)`` (pymongo then owns their retries, with the same transaction number);
        reads run without it (CSOT bookkeeping is a measurable cost) and are bounded by the client's own
        timeouts, which the engine defaults to the budget.
        """
        state = self._state
        client = state.client
        if state.writable and client is not None:
            started = time.monotonic()
            in_flight = self._in_flight
            in_flight.enter()
            try:
                result = command.run(client, None if command.kind is _READ else self._policy.budget)
            except PyMongoError as error:
                in_flight.leave()
                return self._execute_slowly(command, started, error)
            except BaseException:
                in_flight.leave()
                raise
            in_flight.leave()
            self._counters.succeeded()
            return result
        return self._execute_slowly(command, time.monotonic(), None)

    def _execute_slowly(self, command: AnyCommand, started: float, error: PyMongoError | None) -> Any:
        """The one retry loop: ``retry.decide`` says what a failure means, this loop does the effects."""
        deadline, limit_is_callers = _effective_deadline(started + self._policy.budget)
        attempts = Attempts()
        try:
            while True:
                if error is not None:
                    attempts = self.recover(command, error, attempts, deadline, limit_is_callers)
                client = self._usable_client(command, attempts, started, deadline, limit_is_callers)
                remaining = deadline - time.monotonic()
                if remaining <= 0:  # no time for another attempt: never start one that cannot finish
                    self._raise_at_deadline(command, attempts, started, deadline, limit_is_callers)
                self._in_flight.enter()
                try:
                    result = command.run(client, remaining)
                except PyMongoError as failure:
                    error = failure
                    continue
                finally:
                    self._in_flight.leave()
                self._counters.succeeded()
                return result
        except BaseException:
            self._counters.failed()
            raise

    def recover(
        self,
        command: AnyCommand,
        error: PyMongoError,
        attempts: Attempts,
        deadline: float,
        limit_is_callers: bool = False,
    ) -> Attempts:
        """After ``error`` ended an attempt of ``command``: raise, or back off and return the new attempts.

        Public for the resumable cursor, which re-opens a query after a failed ``getMore`` the same way.
        ``deadline`` is a ``time.monotonic()`` instant.
        """
        fatal = self._supervisor.fatal_error(error)  # incurable (credentials, TLS...): raise it at once
        if fatal is not None:
            raise fatal
        if command.in_transaction:
            raise error  # pymongo's with_transaction owns the retries inside a transaction
        if retryable_writes_unsupported(error):
            self._disable_retryable_writes(error)
        decision = decide(
            self._kind_for(command),
            error,
            attempts,
            deadline - time.monotonic(),
            max_attempts=self._policy.max_attempts,
            limit_is_callers=limit_is_callers,
        )
        verdict = decision.verdict
        if verdict is Verdict.RAISE:
            raise error
        if verdict is Verdict.OUTCOME_UNKNOWN or verdict is Verdict.EXHAUSTED:
            raise self._final_error(command, decision.attempts, verdict, deadline)
        self._counters.retried(f"{type(error).__name__}:{decision.evidence.value}")
        if verdict is Verdict.WAIT_FOR_PRIMARY:
            self._supervisor.nudge()
        # Back off, but wake at once when the supervisor publishes a topology change.
        remaining = deadline - time.monotonic()
        self._changed.wait(max(0.0, min(remaining, self._policy.backoff(decision.attempts.count))))
        return decision.attempts

    def _kind_for(self, command: AnyCommand) -> CommandKind:
        """The command's kind, given the client: without retryable writes pymongo makes one attempt only."""
        kind = command.kind
        if kind is CommandKind.DRIVER_RETRIED_WRITE:
            client = self._state.client
            if client is not None and not client.options.retry_writes:
                return CommandKind.WRITE
        return kind

    def _usable_client(
        self,
        command: AnyCommand,
        attempts: Attempts,
        started: float,
        deadline: float,
        limit_is_callers: bool,
    ) -> MongoClient[Any]:
        """Wait until the command can run (a primary, or a server its read preference accepts)."""
        while True:
            self._ensure_running()
            state = self._state
            client = state.client
            if client is not None and (state.writable or command.runs_without_primary(client)):
                return client
            if time.monotonic() >= deadline:
                self._raise_at_deadline(command, attempts, started, deadline, limit_is_callers)
            try:
                self._queue.wait(deadline, busy=self._in_flight.count)
            except QueueFullError as full:
                if not attempts.maybe_applied:
                    raise
                raise self._final_error(
                    command, attempts, Verdict.OUTCOME_UNKNOWN, deadline, started=started
                ) from full

    def _raise_at_deadline(
        self,
        command: AnyCommand,
        attempts: Attempts,
        started: float,
        deadline: float,
        limit_is_callers: bool,
    ) -> NoReturn:
        verdict = at_deadline(attempts, limit_is_callers=limit_is_callers)
        if verdict is Verdict.RAISE and attempts.last_error is not None:
            raise attempts.last_error
        raise self._final_error(command, attempts, verdict, deadline, started=started)

    def _final_error(
        self,
        command: AnyCommand,
        attempts: Attempts,
        verdict: Verdict,
        deadline: float,
        *,
        started: float | None = None,
    ) -> OutcomeUnknownError | RetryBudgetExhaustedError:
        """The error that ends a command: it names the servers and carries the last error as its cause."""
        addresses, topology_error = self._diagnosis()
        cause = attempts.last_error or topology_error
        where = f" (servers: {', '.join(addresses)})" if addresses else ""
        why = f": {type(cause).__name__}: {cause}" if cause is not None else ""
        if verdict is Verdict.OUTCOME_UNKNOWN:
            self._counters.bump("outcome_unknown")
            return OutcomeUnknownError(
                f"{command.describe()} failed after {attempts.count} attempt(s), at least one of which may "
                f"have been applied; it was not replayed{where}{why}",
                command=command,
                cause=cause,
                attempts=attempts.count,
                addresses=addresses,
            )
        self._counters.bump("budget_exhausted")
        elapsed = time.monotonic() - (started if started is not None else deadline - self._policy.budget)
        reason = "no usable primary became available" if attempts.count == 0 else "nothing was applied"
        return RetryBudgetExhaustedError(
            f"{command.describe()} gave up after {attempts.count} attempt(s) in {elapsed:.2f} s, {reason}"
            f"{where}{why}",
            command=command,
            cause=cause,
            attempts=attempts.count,
            elapsed=elapsed,
            addresses=addresses,
        )

    def _diagnosis(self) -> tuple[tuple[str, ...], BaseException | None]:
        """The servers the client knows and the last error one of them reported (for messages)."""
        client = self._state.client
        if client is None:
            return (), None
        addresses: list[str] = []
        error: BaseException | None = None
        for (host, port), description in client.topology_description.server_descriptions().items():
            addresses.append(f"{host}:{port}")
            if description.error is not None:
                error = description.error
        return tuple(addresses), error

    def run(
        self,
        description: str,
        function: Callable[[MongoClient[Any]], T],
        *,
        retry_class: RetryClass = RetryClass.NON_IDEMPOTENT_WRITE,
    ) -> T:
        """Run ``function(client)`` with the retry policy, waiting for a primary like any command.

        ``retry_class`` is your promise about ``function``.  The default, NON_IDEMPOTENT_WRITE, never replays
        it once it may have applied (an ambiguous failure raises ``OutcomeUnknownError``): an error in its
        last operation says nothing about the earlier ones.  IDEMPOTENT_WRITE or READ let the engine run it
        again.
        Its operations all run under one ``pymongo.timeout`` (the time left in the budget).
        """
        result: T = self.execute(FunctionCommand(description, function, retry_class))
        return result

    def find(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> ResumableCursor:
        return ResumableCursor(self, as_target(collection), *args, **kwargs)

    def aggregate(self, collection: CollectionLike, *args: Any, **kwargs: Any) -> Any:
        """A read pipeline gives a :class:`~mongomancy.cursor.ResumableAggregateCursor` (a
        ``$match``/``$sort`` pipeline survives a failover mid-iteration); ``$out``/``$merge`` is a command.
        """
        target = as_target(collection)
        if not Command.build("aggregate", target, args, kwargs).is_read:
            return self.run_operation("aggregate", target, args, kwargs)
        return ResumableAggregateCursor(self, target, *args, **kwargs)

    # ------------------------------------------------------------------------------------- sessions
    def start_session(self, **kwargs: Any) -> ClientSession:
        """A session on the current client; once the client is replaced, using it raises StaleSessionError."""
        return self.client.start_session(**kwargs)

    def with_transaction(self, callback: Callable[[ClientSession], T], **kwargs: Any) -> T:
        """Run ``callback(session)`` in a transaction; pymongo retries transient transaction errors.

        Inside the callback pass ``session=session`` to every operation.  The engine does not replay
        single operations inside a transaction: pymongo's ``with_transaction`` retries the whole callback.
        """
        with self.start_session() as session:
            result: T = session.with_transaction(callback, **kwargs)
            return result

    # ------------------------------------------------------------------------------------- lifecycle
    def reconnect(self) -> None:
        """Replace the client once, however many threads ask at the same moment; run the hooks.

        From a hook it returns at once and the replacement follows when the hooks of the current change
        have returned (a hook cannot wait for the thread it runs on).
        """
        self._ensure_running()
        self._supervisor.request_replacement(self._state.generation, timeout=self._policy.budget)

    def dispose(self, timeout: float = 10.0) -> None:
        """Final and idempotent: wake queued commands with EngineDisposedError, stop the supervisor, close."""
        with self._lifecycle:
            if self._disposed:
                return
            self._disposed = True
        self._queue.shut(
            lambda: EngineDisposedError("the engine was disposed while this command waited for a primary")
        )
        try:
            if self._pid == os.getpid():
                self._supervisor.stop(timeout)
        finally:
            self._publish(TopologyState(client=None, generation=self._state.generation))
            self._logger.info("engine for %s disposed", self._display_target)

    close = dispose

    @property
    def disposed(self) -> bool:
        return self._disposed

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.dispose()

    def __repr__(self) -> str:
        state = self._state
        return f"<Engine {self._display_target} primary={state.primary} generation={state.generation}>"

    def _ensure_running(self) -> None:
        """Slow-path check: disposed, failed, or forked since the last use."""
        if self._disposed:
            raise EngineDisposedError("the engine has been disposed")
        if self._failure is not None:
            raise self._failure_error()
        if self._pid != os.getpid():
            with self._lifecycle:
                if self._pid != os.getpid():
                    generation = self._supervisor.state.generation
                    self._supervisor.abandon_after_fork()
                    # The hooks hear of the child's client (CLIENT_REPLACED) before any command runs on it.
                    self._start(generation=generation + 1, announce_client=True)
                    self._logger.info("forked child %d: new client and supervisor", self._pid)

    def _failure_error(self) -> SupervisorError:
        """A fresh error per call: one instance raised again and again would grow its traceback for ever."""
        assert self._failure is not None
        message, crash = self._failure
        error = SupervisorError(message)
        error.__cause__ = crash
        return error

    def _after_fork_in_child(self) -> None:
        """Runs in a forked child: parent threads are gone and locks may be held; start afresh lazily.

        Locks registered with ``renew_after_fork`` (the engine's, its counters', its hook lists', a
        Database's) are already fresh; the supervisor and its queue are made anew on first use.
        """
        self._changed = threading.Event()
        self._state = TopologyState(client=None, generation=self._state.generation)

    def _disable_retryable_writes(self, error: PyMongoError) -> None:
        """The server does not support retryable writes: use a client without them (once), not fail.

        Single-document non-idempotent writes then lose pymongo's exactly-once retry; an ambiguous failure
        of one becomes an OutcomeUnknownError, as for any non-idempotent write.
        """
        with self._lifecycle:
            if self._client_options.get("retryWrites") is False:
                return
            self._client_options = {
                k: v for k, v in self._client_options.items() if k.lower() != "retrywrites"
            }
            self._client_options["retryWrites"] = False
        self._logger.warning(
            "the server does not support retryable writes (%s); reconnecting without them", error
        )
        self.reconnect()

    def _on_supervisor_crash(self, crash: BaseException) -> None:
        now = time.monotonic()
        with self._lifecycle:
            if self._disposed:
                return
            self._restarts = [t for t in self._restarts if now - t < _SUPERVISOR_RESTART_WINDOW]
            if len(self._restarts) < _SUPERVISOR_RESTART_LIMIT:
                self._restarts.append(now)
                self._counters.bump("supervisor_restarts")
                self._logger.error("restarting the supervisor after: %r", crash)
                self._supervisor.start()
                return
            self._failure = (
                f"the supervisor died {_SUPERVISOR_RESTART_LIMIT} times within "
                f"{_SUPERVISOR_RESTART_WINDOW:.0f} s; the engine refuses work (last crash: {crash!r})",
                crash,
            )
        self._queue.shut(self._failure_error)
        self._publish(TopologyState(client=None, generation=self._state.generation))


def _effective_deadline(budget_deadline: float) -> tuple[float, bool]:
    """The sooner of the budget's deadline and an enclosing ``pymongo.timeout`` the caller set, and whether
    it is the caller's.  pymongo keeps that deadline in a context variable with no public getter."""
    if _csot.get_timeout() is None:
        return budget_deadline, False
    callers = _csot.get_deadline()
    if callers < budget_deadline:
        return callers, True
    return budget_deadline, False


def _uri_option_names(client_args: tuple[Any, ...]) -> set[str]:
    """The (lower-cased) option names in a connection string's query: they beat the engine's defaults."""
    if not client_args or not isinstance(client_args[0], str) or "?" not in client_args[0]:
        return set()
    query = client_args[0].split("?", 1)[1]
    return {name.lower() for name in urllib.parse.parse_qs(query, keep_blank_values=True)}


def _client_arguments(host: str | None, port: int | None, uri: str | None) -> tuple[tuple[Any, ...], str]:
    """Positional arguments for MongoClient, and a credential-free description for logs."""
    if host is not None and not isinstance(host, str):
        raise ConfigurationError(f"host must be a string, got {type(host).__name__}")
    if uri is not None and not isinstance(uri, str):
        raise ConfigurationError(f"uri must be a string, got {type(uri).__name__}")
    if host is not None and host.startswith(("mongodb://", "mongodb+srv://")):
        if uri is not None:
            raise ConfigurationError("give the connection string either as host or as uri=, not both")
        uri, host = host, None
    if uri is not None:
        if host is not None or port is not None:
            raise ConfigurationError("give either uri= or host/port, not both")
        if not uri.startswith(("mongodb://", "mongodb+srv://")):
            raise ConfigurationError(
                f"uri must start with mongodb:// or mongodb+srv://, got {redact_uri(uri)[:40]!r}"
            )
        problem = unencoded_userinfo(uri)  # pymongo would misread it, or quote parts of the password
        if problem is not None:
            raise ConfigurationError(f"{problem}: {redact_uri(uri)}")
        return (uri,), redact_uri(uri)
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536):
        raise ConfigurationError(f"port must be an int between 1 and 65535, got {port!r}")
    host = host or "localhost"
    return (host, port or 27017), f"{host}:{port or 27017}"


def _reinit_engines_in_child() -> None:
    for engine in list(_ENGINES):
        engine._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_engines_in_child)
