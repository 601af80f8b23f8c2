"""The chaos workload: seeded random faults on a simulated replica set under 16-thread mixed load.

Shared by ``tests/sim/test_chaos.py`` (a bounded CI run) and ``benchmarks/bench_soak.py`` (a run of any
length).
One :func:`run_chaos` call starts its own simulated cluster, engine and ``Database``, runs the workers and the
fault controller for ``duration`` seconds, lets the cluster settle, stops the workers, checks every invariant
against the backend (bypassing the members and their faults), disposes everything and checks that nothing is
left running.  It returns a :class:`ChaosReport` whose ``problems`` list is empty when every invariant held.

Invariants:

- every acknowledged insert is present exactly once (by ``_id`` for the inserts that carry one, by a unique
  ``marker`` field for the inserts that let mongomancy assign the ``_id``); no document appears that no
  worker tried to insert;
- each counter's value ``n`` lies in ``[acked $inc, acked $inc + outcome-unknown $inc]``: only the operations
  reported to the worker as :class:`~mongomancy.errors.OutcomeUnknownError` may be missing or applied;
- ``update_many`` ``$set``: every document of a worker's group carries a token that worker wrote;
- job claims (``find_one_and_update`` of a free job): each job is claimed at most once, and a job a worker's
  call returned is stored as claimed by that very call; a job claimed by no returned call was claimed by a
  call that reported outcome-unknown;
- optimistic concurrency (``update_one({_id, v}, {$set: v+1, $push: log})``): the versions reported
  successful are exactly the transitions stored (each reported token is in the stored log once, at its
  version; a token reported as "matched 0" is not there; every stored token was reported successful or
  outcome-unknown);
- upsert-replace (``replace_one(..., upsert=True)`` on a worker's own keys): one document per key, holding
  the last acknowledged revision or a later outcome-unknown one;
- ``delete_one`` and ``find_one_and_delete``: each document reported removed exactly once (by one call), and
  it is gone; a document still stored was never reported removed;
- a read of an acknowledged insert finds it; a full cursor scan yields every item exactly once, in order;
- no worker sees any exception other than ``OutcomeUnknownError``;
- every worker finishes (a watchdog turns a deadlock into a failure listing every thread's stack);
- after ``dispose()`` and the cluster's ``close()``: no supervisor thread, no simulator thread, no other
  thread the run started, and the backend process is gone.

The seed fixes the fault schedule and each worker's operation mix; thread timing still varies between runs,
so a replayed seed reproduces the same faults in the same order, not the same interleaving.
"""

from __future__ import annotations

import collections
import faulthandler
import os
import random
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import attrs
from pymongo import MongoClient

from mongomancy import Database, Engine, OutcomeUnknownError, RetryPolicy
from mongomancy.testing import SimulatedReplicaSet, fast_heartbeats, wait_for
from mongomancy.types import CollectionDefinition

SEED_ENV = "MONGOMANCY_CHAOS_SEED"
N_COUNTERS = 8
N_ITEMS = 1_000
ITEM_BATCH = 50


def item_id(i: int) -> str:
    """Zero-padded string ids: the ``nx_27017`` backend sorts integers as strings (10 before 2) but compares
    them as numbers in ``$gt``, which would make a resumed scan skip documents that mongod would not."""
    return f"item-{i:05d}"


ITEM_IDS = [item_id(i) for i in range(N_ITEMS)]
#: Relative weights of the workers' operations.
OPERATIONS = {
    "insert_id": 20,
    "insert_marker": 15,
    "inc": 20,
    "inc_many": 5,
    "set_many": 10,
    "read": 25,
    "scan": 3,
    "claim": 8,
    "occ": 8,
    "upsert": 6,
    "delete_one": 5,
    "find_delete": 5,
}
N_JOBS = 3_000
N_DOOMED = 3_000
N_VERSIONED = 4
UPSERT_KEYS = 3
#: Relative weights of the fault controller's moves.
FAULTS = {
    "step_down": 4,
    "step_down_gap": 4,
    "step_down_hang_up": 3,
    "kill_primary": 2,
    "kill_secondary": 1,
    "hang_up": 3,
    "fail_refused": 3,
    "fail_interrupted": 3,
    "fail_close_after_forward": 3,
    "fail_close_before": 2,
    "fail_applied_then_refused": 3,
    "fail_getmore": 2,
    "delay": 2,
}


def seed_from_env() -> int:
    """The seed to replay (``$MONGOMANCY_CHAOS_SEED``) or, unset or ``random``, a fresh random one."""
    value = os.environ.get(SEED_ENV)
    return int(value) if value and value != "random" else random.SystemRandom().randrange(1, 2**31)


@attrs.define
class WorkerTally:
    """What one worker did and saw; merged after the run (no sharing while it runs)."""

    index: int
    ops: collections.Counter[str] = attrs.field(factory=collections.Counter)
    acked_ids: list[str] = attrs.field(factory=list)
    unknown_ids: list[str] = attrs.field(factory=list)
    acked_markers: list[str] = attrs.field(factory=list)
    unknown_markers: list[str] = attrs.field(factory=list)
    #: Inserts (ids or markers) that raised an unexpected exception (already a problem on their own).
    errored: list[str] = attrs.field(factory=list)
    inc_acked: collections.Counter[int] = attrs.field(factory=collections.Counter)
    inc_unknown: collections.Counter[int] = attrs.field(factory=collections.Counter)
    set_tokens: set[int] = attrs.field(factory=set)
    outcome_unknown: int = 0
    unexpected: list[str] = attrs.field(factory=list)
    problems: list[str] = attrs.field(factory=list)
    max_latency: float = 0.0
    slowest_op: str = ""
    #: job id -> claim token, for the claims a call returned.
    claims_returned: dict[int, str] = attrs.field(factory=dict)
    claims_unknown: set[str] = attrs.field(factory=set)
    #: (key, new version, token) for optimistic updates reported successful.
    occ_acked: list[tuple[int, int, str]] = attrs.field(factory=list)
    occ_refused: set[str] = attrs.field(factory=set)
    occ_unknown: set[str] = attrs.field(factory=set)
    #: upsert key -> revisions in call order, each (token, acknowledged?)
    upserts: dict[str, list[tuple[int, bool]]] = attrs.field(factory=dict)
    #: ids reported removed (delete_one deleted_count 1, or returned by find_one_and_delete).
    removed: list[int] = attrs.field(factory=list)


@attrs.define
class ChaosReport:
    seed: int
    duration: float
    elapsed: float = 0.0
    faults: list[str] = attrs.field(factory=list)
    ops: collections.Counter[str] = attrs.field(factory=collections.Counter)
    outcome_unknown: int = 0
    max_latency: float = 0.0
    slowest_op: str = ""
    engine_stats: Any = None
    problems: list[str] = attrs.field(factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def fault_counts(self) -> collections.Counter[str]:
        return collections.Counter(f.split(" ", 1)[0] for f in self.faults)

    def summary(self) -> str:
        stats = self.engine_stats
        lines = [
            f"chaos seed={self.seed} duration={self.duration:.0f}s elapsed={self.elapsed:.1f}s "
            f"ok={self.ok} (replay: {SEED_ENV}={self.seed})",
            f"  operations: {sum(self.ops.values())} {dict(sorted(self.ops.items()))}",
            f"  faults: {len(self.faults)} {dict(sorted(self.fault_counts().items()))}",
            f"  outcome-unknown reported: {self.outcome_unknown}; "
            f"slowest operation {self.max_latency:.2f} s ({self.slowest_op})",
        ]
        if stats is not None:
            lines.append(
                f"  engine: retries={stats.retries} failovers={stats.failovers} failed={stats.failed} "
                f"budget_exhausted={stats.budget_exhausted} queue_high_water={stats.queue_high_water}"
            )
        if self.problems:
            lines.append("  fault timeline: " + "; ".join(self.faults))
        lines += [f"  PROBLEM: {p}" for p in self.problems[:50]]
        if len(self.problems) > 50:
            lines.append(f"  ... and {len(self.problems) - 50} more problems")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- workers
class _Worker:
    def __init__(self, index: int, seed: int, db: Database, engine: Engine, stop: threading.Event) -> None:
        self.tally = WorkerTally(index)
        self.rng = random.Random(f"{seed}-worker-{index}")
        self.db = db
        self.engine = engine
        self.stop = stop
        self.serial = 0
        self.epoch = time.monotonic()
        names, weights = zip(*OPERATIONS.items(), strict=True)
        self.names: tuple[str, ...] = names
        self.weights: tuple[int, ...] = weights

    def run(self) -> None:
        tally = self.tally
        while not self.stop.is_set():
            name = self.rng.choices(self.names, self.weights)[0]
            started = time.monotonic()
            try:
                getattr(self, f"op_{name}")()
            except OutcomeUnknownError:
                tally.outcome_unknown += 1
            except Exception as error:
                tally.unexpected.append(
                    f"worker {tally.index} {name}: {type(error).__name__}: {error}\n"
                    + "".join(traceback.format_exception(error))
                )
            tally.ops[name] += 1
            latency = time.monotonic() - started
            if latency > tally.max_latency:
                tally.max_latency, tally.slowest_op = latency, name

    def _next(self) -> str:
        self.serial += 1
        return f"w{self.tally.index}-{self.serial}"

    def op_insert_id(self) -> None:
        key = self._next()
        try:
            self.db["inserts"].insert_one({"_id": key, "by": self.tally.index})
        except OutcomeUnknownError:
            self.tally.unknown_ids.append(key)
            raise
        except Exception:
            self.tally.errored.append(key)
            raise
        self.tally.acked_ids.append(key)

    def op_insert_marker(self) -> None:
        marker = self._next()
        try:
            self.db["marked"].insert_one({"marker": marker, "by": self.tally.index})
        except OutcomeUnknownError:
            self.tally.unknown_markers.append(marker)
            raise
        except Exception:
            self.tally.errored.append(marker)
            raise
        self.tally.acked_markers.append(marker)

    def op_inc(self) -> None:
        counter = self.rng.randrange(N_COUNTERS)
        try:
            self.db["counters"].update_one({"_id": counter}, {"$inc": {"n": 1}})
        except OutcomeUnknownError:
            self.tally.inc_unknown[counter] += 1
            raise
        self.tally.inc_acked[counter] += 1

    def op_inc_many(self) -> None:
        """``$inc`` through ``update_many``: pymongo never retries it, so an ambiguous failure is reported."""
        counter = self.rng.randrange(N_COUNTERS)
        try:
            self.db["counters"].update_many({"_id": counter}, {"$inc": {"n": 1}})
        except OutcomeUnknownError:
            self.tally.inc_unknown[counter] += 1
            raise
        self.tally.inc_acked[counter] += 1

    def op_set_many(self) -> None:
        self.serial += 1
        token = self.serial
        self.tally.set_tokens.add(token)  # before the call: an unknown outcome may still have landed
        result = self.db["flags"].update_many({"group": self.tally.index}, {"$set": {"v": token}})
        if result.matched_count != 4:
            self.tally.problems.append(
                f"worker {self.tally.index}: update_many matched {result.matched_count} of 4 flags"
            )

    def op_read(self) -> None:
        tally = self.tally
        if tally.acked_ids and self.rng.random() < 0.5:
            key = self.rng.choice(tally.acked_ids)
            if self.db["inserts"].find_one({"_id": key}) is None:
                tally.problems.append(f"worker {tally.index}: acknowledged insert {key} not found by a read")
            return
        counter = self.rng.randrange(N_COUNTERS)
        if self.db["counters"].find_one({"_id": counter}) is None:
            tally.problems.append(f"worker {tally.index}: counter {counter} not found by a read")

    def op_claim(self) -> None:
        """Claim a free job; the call's return value names the job this worker now owns."""
        token = self._next()
        try:
            job = self.db["jobs"].find_one_and_update(
                {"state": "free"}, {"$set": {"state": "taken", "claim": token}}
            )
        except OutcomeUnknownError:
            self.tally.claims_unknown.add(token)
            raise
        if job is not None:
            if job.get("state") != "free":
                self.tally.problems.append(
                    f"worker {self.tally.index}: claim {token} returned a taken job {job}"
                )
            self.tally.claims_returned[job["_id"]] = token

    def op_occ(self) -> None:
        """Optimistic concurrency: read the version, write version + 1 only if it is unchanged."""
        key = self.rng.randrange(N_VERSIONED)
        current = self.db["versioned"].find_one({"_id": key})
        if current is None:
            self.tally.problems.append(f"worker {self.tally.index}: versioned document {key} not found")
            return
        token = self._next()
        version = current["v"]
        try:
            result = self.db["versioned"].update_one(
                {"_id": key, "v": version}, {"$set": {"v": version + 1}, "$push": {"log": token}}
            )
        except OutcomeUnknownError:
            self.tally.occ_unknown.add(token)
            raise
        if result.modified_count == 1:
            self.tally.occ_acked.append((key, version + 1, token))
        else:
            self.tally.occ_refused.add(token)

    def op_upsert(self) -> None:
        key = f"w{self.tally.index}-k{self.rng.randrange(UPSERT_KEYS)}"
        self.serial += 1
        revision = self.serial
        history = self.tally.upserts.setdefault(key, [])
        try:
            self.db["upserted"].replace_one({"name": key}, {"name": key, "rev": revision}, upsert=True)
        except OutcomeUnknownError:
            history.append((revision, False))
            raise
        history.append((revision, True))

    def op_delete_one(self) -> None:
        doomed = self.rng.randrange(N_DOOMED)
        result = self.db["doomed"].delete_one({"_id": doomed})
        if result.deleted_count == 1:
            self.tally.removed.append(doomed)

    def op_find_delete(self) -> None:
        document = self.db["doomed"].find_one_and_delete({"_id": {"$gte": self.rng.randrange(N_DOOMED)}})
        if document is not None:
            self.tally.removed.append(document["_id"])

    def op_scan(self) -> None:
        started = time.monotonic()
        cursor = self.db["items"].find({}, batch_size=ITEM_BATCH)
        seen = [doc["_id"] for doc in cursor]
        if seen != ITEM_IDS:
            dupes = len(seen) - len(set(seen))
            self.tally.problems.append(
                f"worker {self.tally.index}: a cursor scan yielded {len(seen)} items ({dupes} duplicates), "
                f"expected {N_ITEMS} in order (resumes={cursor.resumes}, "
                f"t={started - self.epoch:.2f}..{time.monotonic() - self.epoch:.2f})"
            )


# ---------------------------------------------------------------------------------------------- faults
class _FaultController:
    """Injects one seeded fault every 0.2-1.0 s; restarts killed members and lifts delays on schedule."""

    def __init__(self, rs: SimulatedReplicaSet, seed: int, log: list[str]) -> None:
        self.rs = rs
        self.rng = random.Random(f"{seed}-faults")
        self.started = time.monotonic()
        self.log = log
        self.dead: dict[int, float] = {}  # member -> when to restart it
        self.delayed: dict[int, float] = {}  # member -> when to lift its delay
        names, weights = zip(*FAULTS.items(), strict=True)
        self.names: tuple[str, ...] = names
        self.weights: tuple[int, ...] = weights

    def run(self, until: float, stop: threading.Event) -> None:
        while not stop.is_set() and time.monotonic() < until:
            self._housekeeping(time.monotonic())
            name = self.rng.choices(self.names, self.weights)[0]
            getattr(self, f"fault_{name}")()
            stop.wait(self.rng.uniform(0.2, 1.0))
        self.settle()

    def _note(self, text: str) -> None:
        self.log.append(f"{text} t={time.monotonic() - self.started:.2f}")

    def _housekeeping(self, now: float) -> None:
        for member, when in list(self.dead.items()):
            if now >= when:
                self.rs.restart(member)
                del self.dead[member]
                self._note(f"restart member={member}")
        for member, when in list(self.delayed.items()):
            if now >= when:
                self.rs.delay(member, 0)
                del self.delayed[member]

    def settle(self) -> None:
        """Lift every fault and make sure a primary exists, so the workers can finish."""
        self.rs.clear_faults()
        self.delayed.clear()
        for member in list(self.dead):
            self.rs.restart(member)
            del self.dead[member]
        if self.rs.primary is None:
            self.rs.elect(wait=True)

    def _gap(self) -> float:
        return round(self.rng.uniform(0.1, 2.0), 2)

    def fault_step_down(self) -> None:
        self._note(f"step_down new={self.rs.step_down()}")

    def fault_step_down_gap(self) -> None:
        gap = self._gap()
        self._note(f"step_down_gap new={self.rs.step_down(election_seconds=gap)} gap={gap}")

    def fault_step_down_hang_up(self) -> None:
        gap = self.rng.choice([0.0, self._gap()])
        self._note(f"step_down_hang_up new={self.rs.step_down(election_seconds=gap, hang_up=True)} gap={gap}")

    def fault_kill_primary(self) -> None:
        primary = self.rs.primary
        if primary is None or self.dead:
            return self.fault_step_down_gap()
        gap = self._gap()
        self.rs.kill(primary, election_seconds=gap)
        self.dead[primary] = time.monotonic() + self.rng.uniform(0.5, 3.0)
        self._note(f"kill_primary member={primary} gap={gap}")
        return None

    def fault_kill_secondary(self) -> None:
        primary = self.rs.primary
        live = [m.index for m in self.rs.members if self.rs.is_alive(m.index) and m.index != primary]
        if primary is None or self.dead or not live:
            return self.fault_hang_up()
        member = self.rng.choice(live)
        self.rs.kill(member)
        self.dead[member] = time.monotonic() + self.rng.uniform(0.5, 3.0)
        self._note(f"kill_secondary member={member}")
        return None

    def fault_hang_up(self) -> None:
        primary = self.rs.primary
        if primary is not None:
            self.rs.hang_up(primary)
        self._note(f"hang_up member={primary}")

    def _commands(self) -> list[str]:
        return self.rng.sample(
            ["insert", "update", "find", "findAndModify", "delete"], self.rng.randint(1, 2)
        )

    def fault_fail_refused(self) -> None:
        commands, times = self._commands(), self.rng.randint(1, 3)
        self.rs.fail_command(commands, times, code=10107, labels=["RetryableWriteError"])
        self._note(f"fail_refused {commands} x{times}")

    def fault_fail_interrupted(self) -> None:
        commands, times = self._commands(), self.rng.randint(1, 3)
        code = self.rng.choice([11602, 189, 91])
        self.rs.fail_command(commands, times, code=code, labels=["RetryableWriteError"])
        self._note(f"fail_interrupted {commands} code={code} x{times}")

    def fault_fail_close_after_forward(self) -> None:
        commands, times = self._commands(), self.rng.randint(1, 3)
        self.rs.fail_command(commands, times, close_connection=True, after_forward=True)
        self._note(f"fail_close_after_forward {commands} x{times}")

    def fault_fail_applied_then_refused(self) -> None:
        """The ordinary shape of a step-down: applied and reply lost, then the retry meets a non-primary."""
        commands = self._commands()
        self.rs.fail_command(commands, 1, close_connection=True, after_forward=True)
        self.rs.fail_command(commands, 1, code=10107, labels=["RetryableWriteError"])
        self._note(f"fail_applied_then_refused {commands}")

    def fault_fail_close_before(self) -> None:
        commands, times = self._commands(), self.rng.randint(1, 3)
        self.rs.fail_command(commands, times, close_connection=True)
        self._note(f"fail_close_before {commands} x{times}")

    def fault_fail_getmore(self) -> None:
        self.rs.fail_command("getMore", 1, close_connection=True)
        self._note("fail_getmore")

    def fault_delay(self) -> None:
        member = self.rng.randrange(len(self.rs.members))
        seconds = round(self.rng.uniform(0.02, 0.3), 3)
        self.rs.delay(member, seconds)
        self.delayed[member] = time.monotonic() + self.rng.uniform(0.5, 2.0)
        self._note(f"delay member={member} s={seconds}")


# ---------------------------------------------------------------------------------------------- the run
def thread_stacks() -> str:
    """Every live thread's name and stack (what a watchdog prints for a deadlock)."""
    names = {t.ident: t.name for t in threading.enumerate()}
    parts = []
    for ident, frame in sys._current_frames().items():
        parts.append(
            f"--- thread {names.get(ident, '?')} ({ident})\n" + "".join(traceback.format_stack(frame))
        )
    return "\n".join(parts)


def run_chaos(
    seed: int,
    duration: float,
    *,
    threads: int = 16,
    join_timeout: float = 30.0,
    progress: Callable[[str], None] | None = None,
) -> ChaosReport:
    """Run the workload for ``duration`` seconds of faults and return what happened (see the module doc)."""
    report = ChaosReport(seed=seed, duration=duration)
    started = time.monotonic()
    say = progress or (lambda _text: None)
    before = {t.ident for t in threading.enumerate()}
    # A last resort if the run itself (not a worker) hangs: every stack on stderr, the process goes on.
    faulthandler.dump_traceback_later(duration + join_timeout + 120, exit=False)
    try:
        with fast_heartbeats(), SimulatedReplicaSet(members=3) as rs:
            backend_pid = rs.backend.pid
            _run_in_cluster(rs, report, threads, join_timeout, say)
        _check_nothing_left(report, before, backend_pid)
    finally:
        faulthandler.cancel_dump_traceback_later()
    report.elapsed = time.monotonic() - started
    return report


def _run_in_cluster(
    rs: SimulatedReplicaSet,
    report: ChaosReport,
    threads: int,
    join_timeout: float,
    say: Callable[[str], None],
) -> None:
    engine = Engine(uri=rs.uri, retry_policy=RetryPolicy(cursor_fetch_timeout=1.0), heartbeatFrequencyMS=100)
    supervisor = engine.supervisor_thread
    workers: list[_Worker] = []
    try:
        wait_for(lambda: engine.topology().writable, 10, "a primary")
        db = Database(engine, "chaos")
        db.extend(
            *(
                CollectionDefinition(name=n)
                for n in ("inserts", "marked", "counters", "flags", "items", "jobs", "versioned", "upserted")
            ),
            CollectionDefinition(name="doomed"),
        )
        db["counters"].insert_many([{"_id": c, "n": 0} for c in range(N_COUNTERS)])
        db["flags"].insert_many([{"group": g, "v": 0} for g in range(threads) for _ in range(4)])
        db["items"].insert_many([{"_id": item_id(i)} for i in range(N_ITEMS)])
        db["jobs"].insert_many([{"_id": j, "state": "free"} for j in range(N_JOBS)])
        db["versioned"].insert_many([{"_id": k, "v": 0, "log": []} for k in range(N_VERSIONED)])
        db["doomed"].insert_many([{"_id": d} for d in range(N_DOOMED)])

        stop = threading.Event()
        workers = [_Worker(i, report.seed, db, engine, stop) for i in range(threads)]
        pool = [threading.Thread(target=w.run, name=f"chaos-worker-{w.tally.index}") for w in workers]
        for t in pool:
            t.daemon = True
            t.start()
        say(f"seed {report.seed}: {threads} workers, faults for {report.duration:.0f} s")
        controller = _FaultController(rs, report.seed, report.faults)
        controller.run(time.monotonic() + report.duration, threading.Event())
        wait_for(lambda: engine.topology().writable, 20, "a primary after the faults")
        time.sleep(1.0)  # calm: every worker completes operations on a healthy cluster before stopping
        stop.set()
        deadline = time.monotonic() + join_timeout
        for t in pool:
            t.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in pool if t.is_alive()]
        if stuck:
            report.problems.append(
                f"watchdog: {len(stuck)} worker(s) did not finish within {join_timeout:.0f} s of the stop: "
                f"{stuck}\n{thread_stacks()}"
            )
        _merge(report, workers)
        if not stuck:
            _verify(rs, report, workers)
        report.engine_stats = engine.stats()
    finally:
        engine.dispose()
    if supervisor is not None and supervisor.is_alive():
        report.problems.append(f"supervisor thread {supervisor.name} alive after dispose()")


def _merge(report: ChaosReport, workers: list[_Worker]) -> None:
    for w in workers:
        t = w.tally
        report.ops.update(t.ops)
        report.outcome_unknown += t.outcome_unknown
        if t.max_latency > report.max_latency:
            report.max_latency, report.slowest_op = t.max_latency, t.slowest_op
        report.problems += t.unexpected
        report.problems += t.problems


def _verify(rs: SimulatedReplicaSet, report: ChaosReport, workers: list[_Worker]) -> None:
    """Check the invariants against the backend itself (no member, no fault in the way)."""
    client: MongoClient[dict[str, Any]] = MongoClient(rs.backend_uri, directConnection=True)
    try:
        db = client["chaos"]
        acked = [k for w in workers for k in w.tally.acked_ids]
        unknown = {k for w in workers for k in w.tally.unknown_ids}
        present = collections.Counter(d["_id"] for d in db.inserts.find({}, {"_id": 1}))
        report.problems += [f"acknowledged insert {k} missing" for k in acked if present[k] != 1]
        errored = {k for w in workers for k in w.tally.errored}
        tried = set(acked) | unknown
        for k in present:
            if k in errored:
                report.problems.append(f"insert {k} landed although its worker got an exception (above)")
            elif k not in tried:
                report.problems.append(f"insert {k} present but never attempted")

        acked_m = [m for w in workers for m in w.tally.acked_markers]
        unknown_m = {m for w in workers for m in w.tally.unknown_markers}
        markers = collections.Counter(d["marker"] for d in db.marked.find({}, {"marker": 1}))
        for m in acked_m:
            if markers[m] != 1:
                report.problems.append(f"acknowledged insert with marker {m} present {markers[m]} times")
        for m in unknown_m:
            if markers[m] > 1:
                report.problems.append(f"outcome-unknown insert with marker {m} present {markers[m]} times")
        tried_m = set(acked_m) | unknown_m
        for m in markers:
            if m in errored:
                report.problems.append(f"marker {m} landed although its worker got an exception (above)")
            elif m not in tried_m:
                report.problems.append(f"marker {m} present but never attempted")

        counters = {d["_id"]: d["n"] for d in db.counters.find({})}
        for c in range(N_COUNTERS):
            ok = sum(w.tally.inc_acked[c] for w in workers)
            maybe = sum(w.tally.inc_unknown[c] for w in workers)
            n = counters.get(c)
            if n is None or not ok <= n <= ok + maybe:
                report.problems.append(
                    f"counter {c} = {n}, expected {ok} acknowledged $inc + up to {maybe} outcome-unknown"
                )

        for w in workers:
            for doc in db.flags.find({"group": w.tally.index}):
                if w.tally.set_tokens and doc["v"] not in w.tally.set_tokens:
                    report.problems.append(f"flag of worker {w.tally.index} has v={doc['v']}, never written")
        _verify_results(db, report, [w.tally for w in workers])
    finally:
        client.close()


def _check_nothing_left(report: ChaosReport, before: set[int | None], backend_pid: int | None) -> None:
    def extra() -> list[str]:
        return [t.name for t in threading.enumerate() if t.ident not in before and t.is_alive()]

    try:
        wait_for(lambda: not extra(), 10, "the run's threads to end")
    except TimeoutError:
        report.problems.append(f"threads left running after dispose() and close(): {extra()}")
    if backend_pid is not None:
        try:
            os.kill(backend_pid, 0)
        except ProcessLookupError:
            pass
        else:
            report.problems.append(f"simulator backend process {backend_pid} still running")


def _verify_results(db: Any, report: ChaosReport, tallies: list[WorkerTally]) -> None:
    """The result invariants: what each call *returned* against what is stored."""
    problems = report.problems
    # Job claims: each job claimed once, by the call that returned it.
    returned: dict[int, str] = {}
    for t in tallies:
        for job, token in t.claims_returned.items():
            if job in returned:
                problems.append(f"job {job} returned to two claims: {returned[job]} and {token}")
            returned[job] = token
    unknown_claims = set().union(*(t.claims_unknown for t in tallies))
    for job in db.jobs.find({"state": "taken"}):
        token = job.get("claim")
        if job["_id"] in returned:
            if token != returned[job["_id"]]:
                problems.append(
                    f"job {job['_id']} returned to claim {returned[job['_id']]} but stored {token}"
                )
        elif token not in unknown_claims:
            problems.append(f"job {job['_id']} claimed by {token}, which neither returned it nor was unknown")
    for job_id in returned:
        if db.jobs.find_one({"_id": job_id, "state": "taken"}) is None:
            problems.append(f"job {job_id} was returned to a claim but is not stored as taken")

    # Optimistic concurrency: reported versions == stored transitions.
    acked = {token: (key, version) for t in tallies for key, version, token in t.occ_acked}
    refused = set().union(*(t.occ_refused for t in tallies))
    unknown = set().union(*(t.occ_unknown for t in tallies))
    for document in db.versioned.find({}):
        log = document.get("log", [])
        if len(log) != document["v"] or len(set(log)) != len(log):
            problems.append(f"versioned {document['_id']}: v={document['v']} but log {log}")
        for position, token in enumerate(log, 1):
            if token in acked and acked[token] != (document["_id"], position):
                problems.append(
                    f"occ {token} reported {acked[token]}, stored ({document['_id']}, {position})"
                )
            elif token in refused:
                problems.append(f"occ {token} reported matched 0 but is stored at version {position}")
            elif token not in acked and token not in unknown:
                problems.append(f"occ {token} stored but never reported")
        stored = set(log)
        for token, (key, version) in acked.items():
            if key == document["_id"] and token not in stored:
                problems.append(f"occ {token} reported successful (v{version}) but not stored")

    # Upsert-replace: one document per key, with the last acknowledged revision or a later unknown one.
    stored_upserts = collections.defaultdict(list)
    for document in db.upserted.find({}):
        stored_upserts[document["name"]].append(document["rev"])
    for t in tallies:
        for key, history in t.upserts.items():
            revisions = stored_upserts.get(key, [])
            last_acked = max((i for i, (_, ok) in enumerate(history) if ok), default=None)
            allowed = {rev for i, (rev, ok) in enumerate(history) if last_acked is None or i >= last_acked}
            if len(revisions) > 1:
                problems.append(f"upsert key {key} has {len(revisions)} documents: {revisions}")
            elif last_acked is not None and (not revisions or revisions[0] not in allowed):
                problems.append(f"upsert key {key} stores {revisions}, expected one of {sorted(allowed)}")

    # delete_one / find_one_and_delete: each document reported removed exactly once, and gone.
    removed = collections.Counter(i for t in tallies for i in t.removed)
    twice = [i for i, n in removed.items() if n > 1]
    if twice:
        problems.append(f"documents reported removed more than once: {sorted(twice)[:20]}")
    still = [d["_id"] for d in db.doomed.find({"_id": {"$in": list(removed)}})]
    if still:
        problems.append(f"documents reported removed but still stored: {sorted(still)[:20]}")
