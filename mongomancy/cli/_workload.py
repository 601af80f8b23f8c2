"""The demo's workload: worker threads, the fault schedule, the status line, the check against the backend.

The same workload (inserts with a known token, ``$inc`` counters, reads) runs through mongomancy's
``Database``/``Collection`` and through plain pymongo, under the same seeded schedule of step-downs.
Afterwards every acknowledged insert must be present exactly once and every counter must equal the number
of acknowledged ``$inc``; the data is read straight from the backend, past the simulated members, so the
check does not depend on the code under test.
"""

from __future__ import annotations

import collections
import random
import shutil
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

import attrs
import click

#: How often the status line refreshes.
STATUS_PERIOD = 0.25
COUNTERS = 8
HEARTBEAT_MS = 100
#: After an interruption: how long to wait for a worker to notice (the rest are daemon threads).
_STOP_JOIN = 0.05


class Interrupted(Exception):
    """The user stopped the demo (Ctrl-C or SIGTERM) while a run was going on."""


@attrs.frozen
class DemoConfig:
    threads: int = 8
    duration: float = 15.0
    seed: int | None = None
    compare: bool = True
    members: int = 3


@attrs.frozen
class Fault:
    """One scheduled step-down: at ``at`` seconds into a run, with this election time and hang-up."""

    at: float
    election_seconds: float
    hang_up: bool
    #: Step the new primary down again this long after it was elected (a flapping election), or None.
    flap_after: float | None = None

    def describe(self) -> str:
        kind = "instant election" if self.election_seconds == 0 else f"{self.election_seconds:g} s election"
        flap = f" + again after {self.flap_after:g} s" if self.flap_after is not None else ""
        return f"t={self.at:.1f}s {kind}{' + hang-up' if self.hang_up else ''}{flap}"


def fault_schedule(duration: float, rng: random.Random) -> list[Fault]:
    """Several step-downs spread over the run: instant, ~1 s, and hang-up elections, in a seeded order."""
    count = max(2, min(6, int(duration / 2.5)))
    kinds: list[tuple[float, bool, float | None]] = [
        (0.0, False, None),
        (1.0, False, None),
        (0.5, True, None),
        (0.0, True, 0.2),
        (1.0, False, None),
        (0.0, False, 0.1),
    ][:count]
    rng.shuffle(kinds)
    spacing = duration / (count + 1)
    return [
        Fault(round(spacing * (i + 1) + rng.uniform(-0.2, 0.2) * spacing, 2), seconds, hang_up, flap)
        for i, (seconds, hang_up, flap) in enumerate(kinds)
    ]


@attrs.define
class WorkerTally:
    """What the workers of one run saw and had acknowledged (merged from every thread under ``lock``)."""

    inserts_acked: list[str] = attrs.Factory(list)
    inserts_failed: list[str] = attrs.Factory(list)
    incs_acked: collections.Counter[str] = attrs.Factory(collections.Counter)
    incs_failed: collections.Counter[str] = attrs.Factory(collections.Counter)
    reads: int = 0
    errors: collections.Counter[str] = attrs.Factory(collections.Counter)
    live_ops: int = 0
    live_errors: int = 0
    lock: threading.Lock = attrs.Factory(threading.Lock)

    @property
    def operations(self) -> int:
        return (
            len(self.inserts_acked)
            + len(self.inserts_failed)
            + sum(self.incs_acked.values())
            + sum(self.incs_failed.values())
            + self.reads
        )

    def live(self) -> tuple[int, int]:
        """(operations, errors) so far, while the workers run."""
        with self.lock:
            return self.live_ops, self.live_errors


@attrs.frozen
class RunReport:
    """One run's verdict (the columns of the summary table)."""

    name: str
    seconds: float = 0.0
    operations: int = 0
    inserts_acked: int = 0
    incs_acked: int = 0
    reads: int = 0
    #: Primary changes the client saw (mongomancy: its supervisor; pymongo: its SDAM events).
    failovers: int | None = None
    retries: int | None = None
    worker_errors: int = 0
    error_types: dict[str, int] = attrs.field(factory=dict, hash=False)
    duplicates: int = 0
    lost: int = 0
    #: Writes whose worker got an error although the write was stored.
    applied_despite_error: int = 0
    counter_mismatches: int = 0

    @property
    def clean(self) -> bool:
        return not (self.worker_errors or self.duplicates or self.lost or self.counter_mismatches)

    def to_json(self) -> dict[str, Any]:
        doc = attrs.asdict(self)
        doc["seconds"] = round(self.seconds, 2)
        doc["clean"] = self.clean
        return doc


@attrs.define
class LiveRun:
    """A run in progress, as the status line and an interruption summary read it."""

    name: str
    started: float
    tally: WorkerTally
    status: Callable[[], str]


# A collection the workload can use: mongomancy's Collection or a pymongo one (same method names).
Coll = Any


def _worker(
    wid: int,
    *,
    items: Coll,
    counters: Coll,
    tally: WorkerTally,
    stop: threading.Event,
    seed: int,
    errors: tuple[type[BaseException], ...],
) -> None:
    rng = random.Random(seed)
    seq = 0
    acked: list[str] = []
    failed: list[str] = []
    incs: collections.Counter[str] = collections.Counter()
    incs_failed: collections.Counter[str] = collections.Counter()
    reads = 0
    seen_errors: collections.Counter[str] = collections.Counter()
    while not stop.is_set():
        roll = rng.random()
        try:
            if roll < 0.45:
                token = f"{wid}-{seq}"
                seq += 1
                try:
                    items.insert_one({"token": token, "w": wid})
                except errors:
                    failed.append(token)
                    raise
                acked.append(token)
            elif roll < 0.8:
                counter = f"c{rng.randrange(COUNTERS)}"
                try:
                    counters.update_one({"_id": counter}, {"$inc": {"n": 1}})
                except errors:
                    incs_failed[counter] += 1
                    raise
                incs[counter] += 1
            elif roll < 0.87:
                counters.find_one({"_id": f"c{rng.randrange(COUNTERS)}"})
                reads += 1
            elif roll < 0.93:
                # A cursor over several batches: its getMores are not retried by pymongo.
                for _doc in items.find({"w": wid}, batch_size=8, limit=48):
                    pass
                reads += 1
            else:
                items.count_documents({"w": wid})
                reads += 1
        except errors as error:
            seen_errors[type(error).__name__] += 1
            with tally.lock:
                tally.live_errors += 1
        with tally.lock:
            tally.live_ops += 1
    with tally.lock:
        tally.inserts_acked += acked
        tally.inserts_failed += failed
        tally.incs_acked.update(incs)
        tally.incs_failed.update(incs_failed)
        tally.reads += reads
        tally.errors.update(seen_errors)


def verify(backend_uri: str, database: str, tally: WorkerTally, report: RunReport) -> RunReport:
    """Read the data straight from the backend and check every acknowledged write landed exactly once."""
    from pymongo import MongoClient  # noqa: PLC0415

    client: MongoClient[dict[str, Any]] = MongoClient(backend_uri, serverSelectionTimeoutMS=10_000)
    try:
        db = client[database]
        present = collections.Counter(doc["token"] for doc in db["items"].find({}, {"token": 1, "_id": 0}))
        values = {doc["_id"]: doc.get("n", 0) for doc in db["counters"].find({})}
    finally:
        client.close()
    acked = set(tally.inserts_acked)
    applied_despite_error = sum(1 for token in tally.inserts_failed if present[token] > 0)
    mismatches = 0
    for i in range(COUNTERS):
        name = f"c{i}"
        acked_incs, failed_incs = tally.incs_acked[name], tally.incs_failed[name]
        value = values.get(name, 0)
        # Below the acknowledged count: an $inc was lost; above acknowledged + failed: one counted twice.
        if not acked_incs <= value <= acked_incs + failed_incs:
            mismatches += 1
        applied_despite_error += min(max(0, value - acked_incs), failed_incs)
    return attrs.evolve(
        report,
        duplicates=sum(n - 1 for n in present.values() if n > 1),
        lost=sum(1 for token in acked if present[token] == 0),
        applied_despite_error=applied_despite_error,
        counter_mismatches=mismatches,
        inserts_acked=len(acked),
        incs_acked=sum(tally.incs_acked.values()),
        reads=tally.reads,
        operations=tally.operations,
        worker_errors=sum(tally.errors.values()),
        error_types=dict(tally.errors),
    )


class Faults:
    """Runs the fault schedule on a thread; counts the step-downs it made."""

    def __init__(self, cluster: Any, schedule: list[Fault], stop: threading.Event) -> None:
        self._cluster = cluster
        self._schedule = schedule
        self._stop = stop
        self.done = 0
        self._started = 0.0
        self._thread = threading.Thread(target=self._run, name="mongomancy-demo-faults", daemon=True)

    def start(self) -> Faults:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        for fault in self._schedule:
            if self._stop.wait(max(0.0, self._started + fault.at - time.monotonic())):
                return
            self._cluster.step_down(
                election_seconds=fault.election_seconds,
                hang_up=fault.hang_up,
                wait=fault.flap_after is not None,
            )
            self.done += 1
            if fault.flap_after is not None:
                if self._stop.wait(fault.flap_after):
                    return
                self._cluster.step_down(hang_up=fault.hang_up)
                self.done += 1

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width - 1`` columns (the last column would wrap on some terminals), padded so a
    redraw with ``\\r`` erases a longer previous line."""
    room = max(10, width - 1)
    return text[:room].ljust(room)


class StatusLine:
    """One line redrawn in place on a terminal (fitted to its width, read at each redraw: the window may be
    resized); a plain line every 2 s otherwise."""

    def __init__(self, out: TextIO, label: str, duration: float, status: Callable[[], str]) -> None:
        self._out = out
        self._label = label
        self._duration = duration
        self._status = status
        self._started = time.monotonic()
        self._tty = out.isatty()
        self._last_plain = self._started

    def line(self) -> str:
        elapsed = min(self._duration, time.monotonic() - self._started)
        return f"{self._label} {elapsed:4.1f}/{self._duration:g} s | {self._status()}"

    def draw(self) -> None:
        if self._tty:
            width = shutil.get_terminal_size().columns
            self._out.write("\r" + fit(self.line(), width))
            self._out.flush()
        elif time.monotonic() - self._last_plain >= 2.0:
            self._last_plain = time.monotonic()
            click.echo("  " + self.line(), file=self._out)

    def finish(self) -> None:
        if self._tty:
            self.draw()
            self._out.write("\n")
            self._out.flush()


def run_workload(
    run: LiveRun,
    config: DemoConfig,
    cluster: Any,
    *,
    items: Coll,
    counters: Coll,
    schedule: list[Fault],
    errors: tuple[type[BaseException], ...],
    interrupted: threading.Event,
    out: TextIO,
) -> float:
    """Run the workers and the fault schedule for ``config.duration``; the seconds it took.

    Raises :class:`Interrupted` when ``interrupted`` is set meanwhile (the workers are told to stop; those
    stuck in a call are daemon threads and do not hold the process).
    """
    stop = threading.Event()
    seed = config.seed or 0
    workers = [
        threading.Thread(
            target=_worker,
            args=(w,),
            kwargs={
                "items": items,
                "counters": counters,
                "tally": run.tally,
                "stop": stop,
                "seed": seed * 1000 + w,
                "errors": errors,
            },
            name=f"mongomancy-demo-{run.name}-{w}",
            daemon=True,
        )
        for w in range(config.threads)
    ]
    faults = Faults(cluster, schedule, stop)
    line = StatusLine(out, f"{run.name:>13}", config.duration, run.status)
    if not out.isatty():
        click.echo(f"{run.name:>13} ...", file=out)
    started = time.monotonic()
    for thread in workers:
        thread.start()
    faults.start()
    end = started + config.duration
    try:
        while time.monotonic() < end:
            if interrupted.wait(min(STATUS_PERIOD, max(0.0, end - time.monotonic()))):
                raise Interrupted(run.name)
            line.draw()
    finally:
        stop.set()
        join = _STOP_JOIN if interrupted.is_set() else None
        for thread in workers:
            thread.join(join)
        faults.join(join)
        if not interrupted.is_set():
            line.finish()
    return time.monotonic() - started
