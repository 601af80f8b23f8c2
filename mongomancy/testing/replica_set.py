"""The public controller of the simulated replica set."""

from __future__ import annotations

import contextlib
import logging
import math
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType

import attrs
import pymongo.common
from bson import ObjectId

from mongomancy.errors import SimulatorError, UnknownMemberError
from mongomancy.testing.auth import UserStore
from mongomancy.testing.backend import Backend, make_backend
from mongomancy.testing.faults import FailPoint, normalise_commands
from mongomancy.testing.member import ClusterState, Member
from mongomancy.testing.records import CommandRecord, LsidLike, Outcome

logger = logging.getLogger("mongomancy.testing")

_JOIN_TIMEOUT = 5.0

MemberRef = int | str


@attrs.frozen
class MemberInfo:
    """Where a member listens.  ``address`` is the ``host:port`` string drivers report."""

    index: int
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _check_seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, not {value!r}")
    return float(value)


class SimulatedReplicaSet:
    """A replica set on loopback that pymongo discovers, uses and fails over like a real one.

    ``members`` endpoints (on free ports, or ``ports``) answer the handshake as replica-set members and
    forward every other command to one backend process (``backend``: ``"nx"``, ``"mongod"``, a started
    :class:`Backend` to share, or None for ``$MONGOMANCY_SIM_BACKEND``/``nx``).  Member 0 starts as primary.

    Every fault control is thread-safe and may be called from the test thread while traffic flows.  Use it as
    a context manager: leaving the block stops every thread, socket and the backend process (the latter only
    if the cluster started it), also when the block raised.

    ``users={"ops": "secret"}`` makes every member require authentication (SCRAM-SHA-256, code 18 for a wrong
    password, code 13 for a command without a user; see ``mongomancy/testing/auth.py``).  ``tls=context`` (a
    server-side ``ssl.SSLContext`` with a certificate loaded) makes every member require TLS, as mongod's
    ``requireTLS``: a client without TLS is disconnected during the handshake.

    Why a fresh backend per cluster and not a shared one: starting ``nx_27017`` costs about 0.1 s, and a fresh
    process is the only way to guarantee a test starts from empty data.
    """

    def __init__(
        self,
        members: int = 3,
        set_name: str = "rs0",
        backend: Backend | str | None = None,
        *,
        ports: Iterable[int] | None = None,
        streaming: bool = True,
        hang_up_on_step_down: bool = False,
        users: Mapping[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if isinstance(members, bool) or not isinstance(members, int) or members < 1:
            raise ValueError(f"members must be an int >= 1, not {members!r}")
        if not isinstance(set_name, str) or not set_name or "/" in set_name:
            raise ValueError(f"set_name must be a non-empty string without '/', not {set_name!r}")
        port_list = list(ports) if ports is not None else [0] * members
        if len(port_list) != members or not all(
            isinstance(p, int) and not isinstance(p, bool) and 0 <= p < 65536 for p in port_list
        ):
            raise ValueError(f"ports must be {members} port numbers (0 = any free port), not {ports!r}")
        if isinstance(backend, Backend):
            if backend.process is None:
                raise ValueError("backend must be started before it is shared (call backend.start())")
            self._backend, self._owns_backend = backend, False
        else:
            self._backend, self._owns_backend = make_backend(backend), True
        self._state = ClusterState(set_name, self._backend, streaming)
        self._state.hangup_on_step_down = hang_up_on_step_down
        if users is not None:  # every member then runs SCRAM-SHA-256 and refuses unauthenticated commands
            self._state.users = UserStore(users)
        self._state.tls = tls  # a server-side context: every member then requires TLS
        self._state.on_step_down_command = self._step_down_from_member
        self._state.members = [Member(self._state, i, p) for i, p in enumerate(port_list)]
        self._timers: list[threading.Timer] = []
        self._generation = 0
        self._elected = threading.Condition(self._state.lock)
        self._closed = False
        self._start()

    # -- lifecycle -------------------------------------------------------------------------------------------

    def _start(self) -> None:
        t0 = time.perf_counter()
        try:
            for m in self._state.members:
                m.listen()
            if self._owns_backend:
                self._backend.start()
            with self._state.lock:
                self._elect_now(0)
        except BaseException:
            self.close()  # release whatever did start (ports, threads, the backend process)
            raise
        logger.info(
            "simulated replica set %s up in %.3f s: %s", self.set_name, time.perf_counter() - t0, self.uri
        )

    def close(self) -> None:
        """Stop members (sockets and threads), cancel timers, stop an owned backend.  Idempotent.

        Raises SimulatorError if a thread did not stop within its timeout (after cleaning up everything else).
        """
        if self._closed:
            return
        self._closed = True
        with self._state.lock:
            self._generation += 1
            timers, self._timers = self._timers, []
        for t in timers:
            t.cancel()
        self._state.faults.clear()
        stuck: list[str] = []
        for m in self._state.members:
            stuck += m.stop(_JOIN_TIMEOUT)
        for t in timers:
            t.join(_JOIN_TIMEOUT)
            if t.is_alive():
                stuck.append(t.name)
        if self._owns_backend:
            self._backend.stop()
        if stuck:
            raise SimulatorError(f"threads did not stop within {_JOIN_TIMEOUT} s: {', '.join(stuck)}")
        logger.info("simulated replica set %s closed", self.set_name)

    def __enter__(self) -> SimulatedReplicaSet:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- description -----------------------------------------------------------------------------------------

    @property
    def set_name(self) -> str:
        return self._state.set_name

    @property
    def members(self) -> tuple[MemberInfo, ...]:
        return tuple(MemberInfo(m.index, "127.0.0.1", m.port) for m in self._state.members)

    @property
    def uri(self) -> str:
        """The seed list of every member with ``replicaSet=<set_name>``."""
        hosts = ",".join(m.address for m in self._state.members)
        return f"mongodb://{hosts}/?replicaSet={self.set_name}"

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def backend_uri(self) -> str:
        """Straight to the backend, bypassing the members (to inspect data without going through a fault)."""
        return self._backend.uri

    @property
    def primary(self) -> int | None:
        """Index of the current primary, None during an election window or after the primary was killed."""
        with self._state.lock:
            return self._state.primary

    @property
    def primary_address(self) -> str | None:
        p = self.primary
        return None if p is None else self._state.members[p].address

    @property
    def election_id(self) -> ObjectId | None:
        """The electionId of the latest election (it grows with every election)."""
        with self._state.lock:
            return self._state.election_id

    def is_alive(self, member: MemberRef) -> bool:
        return self._member(member).alive

    def member_index(self, member: MemberRef) -> int:
        """The index of a member given by index or ``"127.0.0.1:port"`` address."""
        return self._member(member).index

    def _member(self, ref: MemberRef) -> Member:
        members = self._state.members
        if isinstance(ref, int) and not isinstance(ref, bool) and 0 <= ref < len(members):
            return members[ref]
        if isinstance(ref, str):
            for m in members:
                if ref in (m.address, f"localhost:{m.port}"):
                    return m
        valid = ", ".join(f"{m.index} ({m.address})" for m in members)
        raise UnknownMemberError(f"unknown member {ref!r}; valid members: {valid}")

    # -- elections -------------------------------------------------------------------------------------------

    def _elect_now(self, index: int | None) -> None:
        """Make ``index`` (or the first live member) primary with a new term.  Call with the lock held."""
        state = self._state
        members = state.members
        if index is None or not members[index].alive:
            live = [m.index for m in members if m.alive]
            if not live:
                logger.info("election found no live member; no primary")
                return
            start = 0 if index is None else index
            index = min(live, key=lambda i: (i - start) % len(members))
        state.term += 1
        state.primary = index
        state.bump()
        self._elected.notify_all()
        logger.info("member %d elected primary (term %d)", index, state.term)

    def _schedule_election(self, index: int | None, seconds: float) -> None:
        """Elect after ``seconds`` unless another election supersedes it.  Call with the lock held."""
        self._generation += 1
        generation = self._generation
        if seconds == 0:
            self._elect_now(index)
            return

        def fire() -> None:
            with self._state.lock:
                if self._generation == generation and not self._closed:
                    self._elect_now(index)

        timer = threading.Timer(seconds, fire)
        timer.name = f"mongomancy-sim-election-{generation}"
        timer.daemon = True
        self._timers = [t for t in self._timers if t.is_alive()]
        self._timers.append(timer)
        timer.start()

    def _next_member(self, after: int) -> int:
        n = len(self._state.members)
        for k in range(1, n + 1):
            candidate = (after + k) % n
            if self._state.members[candidate].alive:
                return candidate
        return after

    def step_down(
        self,
        new_primary: MemberRef | None = None,
        election_seconds: float = 0.0,
        *,
        hang_up: bool | None = None,
        wait: bool = False,
    ) -> int:
        """The primary becomes a secondary; after ``election_seconds`` (no primary meanwhile) ``new_primary``
        (default: the next live member) wins an election with a grown electionId.

        ``hang_up`` (default: the ``hang_up_on_step_down`` setting) makes the old primary close its client
        connections, as mongod does for connections with operations in progress, instead of answering later
        writes with NotWritablePrimary.  The election runs on a timer thread; ``wait=True`` blocks until it
        happened.  Without a primary, this just runs the election.  Returns the index that will be elected.
        """
        seconds = _check_seconds("election_seconds", election_seconds)
        target = None if new_primary is None else self._member(new_primary).index
        with self._state.lock:
            if self._closed:
                raise SimulatorError("the simulated replica set is closed")
            old = self._state.primary
            if target is None:
                target = self._next_member(old if old is not None else -1)
            self._state.primary = None
            self._state.bump()
            logger.info("member %s stepped down; electing %d in %.3f s", old, target, seconds)
            do_hang_up = self._state.hangup_on_step_down if hang_up is None else hang_up
            self._schedule_election(target, seconds)
            generation = self._generation
        if do_hang_up and old is not None:
            self._state.members[old].hang_up()
        if wait:
            self._wait_election(generation, seconds + _JOIN_TIMEOUT)
        return target

    def elect(
        self, member: MemberRef | None = None, election_seconds: float = 0.0, *, wait: bool = False
    ) -> int:
        """Run an election without a step-down (e.g. after killing the primary); supersedes a pending one."""
        seconds = _check_seconds("election_seconds", election_seconds)
        target = None if member is None else self._member(member).index
        with self._state.lock:
            if target is None:
                current = self._state.primary
                target = current if current is not None else self._next_member(-1)
            self._schedule_election(target, seconds)
            generation = self._generation
        if wait:
            self._wait_election(generation, seconds + _JOIN_TIMEOUT)
        return target

    def _wait_election(self, generation: int, timeout: float) -> None:
        with self._state.lock:
            done = self._elected.wait_for(
                lambda: self._generation != generation or self._state.primary is not None or self._closed,
                timeout,
            )
        if not done:
            raise SimulatorError(f"no election within {timeout} s")

    def _step_down_from_member(self, index: int) -> None:
        # replSetStepDown arrives on the member's own connection thread: never join threads from here.
        with self._state.lock:
            if self._state.primary == index:
                self._state.primary = None
                self._state.bump()
                self._schedule_election(self._next_member(index), 0.0)

    def set_hang_up_on_step_down(self, enabled: bool = True) -> None:
        """Make every later step-down close the old primary's connections (see :meth:`step_down`)."""
        with self._state.lock:
            self._state.hangup_on_step_down = bool(enabled)

    # -- process faults --------------------------------------------------------------------------------------

    def kill(self, member: MemberRef, election_seconds: float | None = None) -> None:
        """Stop a member like a crashed process: close its listener and every connection, join its threads.

        Killing the primary leaves the set without a primary, deterministically, until :meth:`elect` or
        :meth:`step_down`; pass ``election_seconds`` to have the next live member elected after that delay,
        as a real set does after its election timeout.  The killed member keeps its place in ``hosts``.
        """
        seconds = None if election_seconds is None else _check_seconds("election_seconds", election_seconds)
        m = self._member(member)
        with self._state.lock:
            was_primary = self._state.primary == m.index
            if was_primary:
                self._state.primary = None
                self._generation += 1  # cancels a pending election that might pick this member
        stuck = m.stop(_JOIN_TIMEOUT)
        logger.info("member %d killed%s", m.index, " (was primary)" if was_primary else "")
        if was_primary and seconds is not None:
            with self._state.lock:
                self._schedule_election(self._next_member(m.index), seconds)
        if stuck:
            raise SimulatorError(f"threads of member {m.index} did not stop: {', '.join(stuck)}")

    def restart(self, member: MemberRef) -> None:
        """Listen again on the same port; the member comes back as a secondary with a new processId."""
        m = self._member(member)
        if m.alive:
            raise SimulatorError(f"member {m.index} is running; kill it first")
        m.listen()
        logger.info("member %d restarted on %s", m.index, m.address)

    def set_password(self, user: str, password: str) -> None:
        """Change (or create) a user's password while the cluster runs, as ``db.updateUser`` does on mongod:
        connections already authenticated keep working, every later SCRAM conversation needs the new one."""
        users = self._state.users
        if users is None:
            raise SimulatorError("this cluster has no users: start it with SimulatedReplicaSet(users={...})")
        users.set_password(user, password)

    def set_tls(self, context: ssl.SSLContext | None) -> None:
        """Serve new connections with another server-side TLS context (a renewed certificate), or None for
        plain TCP; connections already open keep theirs."""
        self._state.tls = context

    def hang_up(self, member: MemberRef) -> None:
        """Close every live client connection of ``member`` (it keeps accepting new ones)."""
        self._member(member).hang_up()

    # -- command faults --------------------------------------------------------------------------------------

    def fail_command(
        self,
        commands: str | Iterable[str],
        times: int = 1,
        *,
        code: int | None = None,
        labels: Iterable[str] = (),
        close_connection: bool = False,
        members: Iterable[MemberRef] | MemberRef | None = None,
        error_message: str = "failCommand fail point enabled",
        after_forward: bool = False,
    ) -> FailPoint:
        """Like MongoDB's ``failCommand`` fail point: the next ``times`` matching commands (by command name,
        e.g. ``"insert"``, ``"find"``, ``"hello"``) on ``members`` (default: all) fail with ``code`` and
        ``labels``, or by closing the connection (``close_connection=True``).

        ``after_forward=True`` first runs the command on the backend and only then fails it: the write is
        applied but the client cannot know, the situation retryable writes exist for.
        Returns a handle (``remaining``, ``triggered``, ``cancel()``); :meth:`clear_faults` removes all.
        """
        names = normalise_commands(commands)
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"times must be an int >= 1, not {times!r}")
        if close_connection and code is not None:
            raise ValueError("give either code or close_connection=True, not both")
        if not close_connection and (isinstance(code, bool) or not isinstance(code, int)):
            raise ValueError(f"code must be an int error code (or use close_connection=True), not {code!r}")
        if members is None:
            chosen = None
        elif isinstance(members, (int, str)):
            chosen = frozenset({self._member(members).index})
        else:
            chosen = frozenset(self._member(m).index for m in members)
        point = FailPoint(
            names,
            times,
            code=code,
            labels=tuple(labels),
            close_connection=close_connection,
            members=chosen,
            error_message=error_message,
            after_forward=after_forward,
        )
        self._state.faults.add(point)
        return point

    def delay(self, member: MemberRef, seconds: float) -> None:
        """Delay each reply of ``member`` (handshakes excepted) by ``seconds``; 0 clears."""
        self._member(member).delay = _check_seconds("seconds", seconds)

    def blackhole(self, member: MemberRef, enabled: bool = True) -> None:
        """``member`` keeps accepting and reading but never answers anything (handshakes included)."""
        self._member(member).blackhole = bool(enabled)

    def set_lag(self, member: MemberRef, seconds: float) -> None:
        """Report ``member``'s lastWrite (hello, replSetGetStatus) ``seconds`` behind the primary's.

        Only reported: reads on the member still see the backend's current data.
        """
        m = self._member(member)
        with self._state.lock:
            m.lag = _check_seconds("seconds", seconds)
            self._state.bump()

    def clear_faults(self) -> None:
        """Remove fail points, delays, blackholes and lag (kills and elections are not undone)."""
        self._state.faults.clear()
        with self._state.lock:
            for m in self._state.members:
                m.delay = 0.0
                m.blackhole = False
                m.lag = 0.0
            self._state.bump()

    # -- records ---------------------------------------------------------------------------------------------

    def records(
        self,
        member: MemberRef | None = None,
        command: str | Iterable[str] | None = None,
        outcome: Outcome | None = None,
    ) -> list[CommandRecord]:
        """What members saw (handshakes excepted), oldest first, optionally filtered."""
        index = None if member is None else self._member(member).index
        return self._state.records.select(member=index, command=command, outcome=outcome)

    def writes_with_txn(self, lsid: LsidLike, txn_number: int) -> list[CommandRecord]:
        """Every arrival of the retryable write (``session.session_id``, txnNumber), on any member."""
        return [r for r in self._state.records.select(lsid=lsid, txn_number=txn_number) if r.is_write]

    def count(
        self, command: str | Iterable[str], member: MemberRef | None = None, outcome: Outcome | None = None
    ) -> int:
        return len(self.records(member, command, outcome))

    def clear_records(self) -> None:
        self._state.records.clear()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"primary={self.primary}"
        return f"<SimulatedReplicaSet {self.uri} {state}>"


def wait_for(condition: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``condition`` every 2 ms until it is truthy; raise TimeoutError naming ``what`` after ``timeout``.

    Why: tests must wait for what they need (pymongo noticing a new primary, a record appearing), never for a
    fixed time that is too short on a loaded machine and wasted on a fast one.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.002)


@contextlib.contextmanager
def fast_heartbeats(min_interval: float = 0.05) -> Iterator[None]:
    """Let pymongo clients created inside the block use ``heartbeatFrequencyMS`` down to ``min_interval``.

    Why: pymongo refuses heartbeats under 500 ms and re-checks a server at most every 500 ms after an error,
    which makes every failover test wait half a second or more.  pymongo's own test-suite lowers
    ``pymongo.common.MIN_HEARTBEAT_INTERVAL`` the same way; this restores it afterwards.  It is
    process-global: do not use it concurrently from tests running in parallel threads.
    """
    _check_seconds("min_interval", min_interval)
    saved = pymongo.common.MIN_HEARTBEAT_INTERVAL
    pymongo.common.MIN_HEARTBEAT_INTERVAL = min_interval
    try:
        yield
    finally:
        pymongo.common.MIN_HEARTBEAT_INTERVAL = saved
