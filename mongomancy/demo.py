"""``mongomancy demo``: a multithreaded batch job on a simulated replica set while its primary steps down.

What it shows, with numbers: the same workload (inserts with a known count, ``$inc`` counters, reads) runs
twice on an embedded :class:`~mongomancy.testing.SimulatedReplicaSet` under the same seeded fault schedule
(step-downs with an instant election, a ~1 s election, and one that hangs up the old primary's
connections): first through mongomancy's ``Database``/``Collection``, then through plain pymongo with
retryable writes on.  Afterwards every acknowledged insert must be present exactly once and every counter
must equal the number of acknowledged ``$inc``; the data is read straight from the backend, past the
simulated members, so the check does not depend on the code under test.
"""

from __future__ import annotations

import collections
import contextlib
import json
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import click

#: How often workers re-read the clock/stop flag, and the status line refreshes.
_STATUS_PERIOD = 0.25
_COUNTERS = 8
_HEARTBEAT_MS = 100


@dataclass(frozen=True)
class DemoConfig:
    threads: int = 8
    duration: float = 15.0
    seed: int | None = None
    compare: bool = True
    members: int = 3


@dataclass(frozen=True)
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


@dataclass
class WorkerTally:
    """What the workers of one run saw and had acknowledged (merged from every thread)."""

    inserts_acked: list[str] = field(default_factory=list)
    inserts_failed: list[str] = field(default_factory=list)
    incs_acked: collections.Counter[str] = field(default_factory=collections.Counter)
    incs_failed: collections.Counter[str] = field(default_factory=collections.Counter)
    reads: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    live_ops: int = 0
    live_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def operations(self) -> int:
        return (
            len(self.inserts_acked)
            + len(self.inserts_failed)
            + sum(self.incs_acked.values())
            + sum(self.incs_failed.values())
            + self.reads
        )


@dataclass
class RunReport:
    """One run's verdict (the columns of the summary table)."""

    name: str
    seconds: float = 0.0
    operations: int = 0
    inserts_acked: int = 0
    incs_acked: int = 0
    reads: int = 0
    failovers: int | None = None
    retries: int | None = None
    worker_errors: int = 0
    error_types: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    lost: int = 0
    applied_despite_error: int = 0
    counter_mismatches: int = 0

    @property
    def clean(self) -> bool:
        return not (self.worker_errors or self.duplicates or self.lost or self.counter_mismatches)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seconds": round(self.seconds, 2),
            "operations": self.operations,
            "inserts_acked": self.inserts_acked,
            "incs_acked": self.incs_acked,
            "reads": self.reads,
            "failovers": self.failovers,
            "retries": self.retries,
            "worker_errors": self.worker_errors,
            "error_types": self.error_types,
            "duplicates": self.duplicates,
            "lost": self.lost,
            "applied_despite_error": self.applied_despite_error,
            "counter_mismatches": self.counter_mismatches,
            "clean": self.clean,
        }


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
                counter = f"c{rng.randrange(_COUNTERS)}"
                try:
                    counters.update_one({"_id": counter}, {"$inc": {"n": 1}})
                except errors:
                    incs_failed[counter] += 1
                    raise
                incs[counter] += 1
            elif roll < 0.87:
                counters.find_one({"_id": f"c{rng.randrange(_COUNTERS)}"})
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


def _verify(backend_uri: str, database: str, tally: WorkerTally, report: RunReport) -> None:
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
    report.duplicates = sum(n - 1 for n in present.values() if n > 1)
    report.lost = sum(1 for token in acked if present[token] == 0)
    report.applied_despite_error = sum(1 for token in tally.inserts_failed if present[token] > 0)
    for i in range(_COUNTERS):
        name = f"c{i}"
        acked_incs, failed_incs = tally.incs_acked[name], tally.incs_failed[name]
        value = values.get(name, 0)
        # Below the acknowledged count: an $inc was lost; above acknowledged + failed: one counted twice.
        if not acked_incs <= value <= acked_incs + failed_incs:
            report.counter_mismatches += 1
        report.applied_despite_error += min(max(0, value - acked_incs), failed_incs)
    report.inserts_acked = len(acked)
    report.incs_acked = sum(tally.incs_acked.values())
    report.reads = tally.reads
    report.operations = tally.operations
    report.worker_errors = sum(tally.errors.values())
    report.error_types = dict(tally.errors)


class _Faults:
    """Runs the fault schedule on a thread; counts the step-downs it made."""

    def __init__(self, cluster: Any, schedule: list[Fault], stop: threading.Event) -> None:
        self._cluster = cluster
        self._schedule = schedule
        self._stop = stop
        self.done = 0
        self._thread = threading.Thread(target=self._run, name="mongomancy-demo-faults", daemon=True)

    def start(self) -> _Faults:
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

    def join(self) -> None:
        self._thread.join()


def _status_printer(
    status: Callable[[], str], duration: float, stop: threading.Event, out: TextIO, label: str
) -> None:
    """A click progress bar with the live status line as its item; plain lines when not on a terminal."""
    started = time.monotonic()
    ticks = max(1, int(duration / _STATUS_PERIOD))
    if out.isatty():
        with click.progressbar(
            length=ticks,
            label=label,
            file=out,
            item_show_func=lambda item: item,
            show_eta=False,
            width=24,
        ) as bar:
            done = 0
            while not stop.wait(_STATUS_PERIOD) and done < ticks:
                target = min(ticks, int((time.monotonic() - started) / _STATUS_PERIOD))
                bar.update(target - done, status())
                done = target
            bar.update(ticks - done, status())
        return
    last = started
    click.echo(f"{label} ...", file=out)
    while not stop.wait(_STATUS_PERIOD):
        if time.monotonic() - last >= 2.0:
            last = time.monotonic()
            click.echo(f"  {time.monotonic() - started:4.1f}s  {status()}", file=out)


def _run_workload(
    name: str,
    config: DemoConfig,
    cluster: Any,
    *,
    items: Coll,
    counters: Coll,
    schedule: list[Fault],
    errors: tuple[type[BaseException], ...],
    status: Callable[[WorkerTally, _Faults], str],
    out: TextIO,
) -> tuple[WorkerTally, float]:
    tally = WorkerTally()
    stop = threading.Event()
    seed = config.seed or 0
    workers = [
        threading.Thread(
            target=_worker,
            args=(w,),
            kwargs={
                "items": items,
                "counters": counters,
                "tally": tally,
                "stop": stop,
                "seed": seed * 1000 + w,
                "errors": errors,
            },
            name=f"mongomancy-demo-{name}-{w}",
            daemon=True,
        )
        for w in range(config.threads)
    ]
    faults = _Faults(cluster, schedule, stop)
    started = time.monotonic()
    for thread in workers:
        thread.start()
    faults.start()
    printer_stop = threading.Event()
    timer = threading.Timer(config.duration, stop.set)
    timer.daemon = True
    timer.start()
    printer = threading.Thread(
        target=_status_printer,
        args=(lambda: status(tally, faults), config.duration, printer_stop, out, f"{name:>13}"),
        daemon=True,
    )
    printer.start()
    try:
        stop.wait()
    finally:
        stop.set()
        timer.cancel()
        for thread in workers:
            thread.join()
        faults.join()
        printer_stop.set()
        printer.join()
    return tally, time.monotonic() - started


def _wait_for_primary(cluster: Any) -> None:
    from mongomancy.testing import wait_for  # noqa: PLC0415

    if cluster.primary is None:
        cluster.elect(wait=True)
    wait_for(lambda: cluster.primary is not None, 10.0, "a primary")


def run_mongomancy(config: DemoConfig, cluster: Any, schedule: list[Fault], out: TextIO) -> RunReport:
    """The job through ``Database``/``Collection`` on an ``Engine``."""
    from pymongo.errors import PyMongoError  # noqa: PLC0415

    from mongomancy.engine import Engine  # noqa: PLC0415
    from mongomancy.errors import MongomancyError  # noqa: PLC0415
    from mongomancy.schema import Database  # noqa: PLC0415
    from mongomancy.types import CollectionDefinition, Document, Index  # noqa: PLC0415

    report = RunReport("mongomancy")
    engine = Engine(uri=cluster.uri, heartbeatFrequencyMS=_HEARTBEAT_MS)
    try:
        db = Database(engine, name="demo_mongomancy")
        db.add_collection(CollectionDefinition(name="items", indices=[Index(fields={"token": 1})]))
        db.add_collection(
            CollectionDefinition(
                name="counters",
                default_docs=[
                    Document(unique_key={"_id": f"c{i}"}, data={"_id": f"c{i}", "n": 0})
                    for i in range(_COUNTERS)
                ],
            )
        )
        db.create_all()

        def status(tally: WorkerTally, faults: _Faults) -> str:
            stats = engine.stats()
            with tally.lock:
                errors = tally.live_errors
            return (
                f"ops {stats.operations:6d} | failovers {stats.failovers} | retries {stats.retries} | "
                f"primary {stats.current_primary or '-':>15} | queue {stats.queue_length} | errors {errors}"
            )

        tally, seconds = _run_workload(
            "mongomancy",
            config,
            cluster,
            items=db["items"],
            counters=db["counters"],
            schedule=schedule,
            errors=(MongomancyError, PyMongoError),
            status=status,
            out=out,
        )
        stats = engine.stats()
        report.failovers = stats.failovers
        report.retries = stats.retries
    finally:
        engine.dispose()
    report.seconds = seconds
    _wait_for_primary(cluster)
    _verify(cluster.backend_uri, "demo_mongomancy", tally, report)
    return report


def run_pymongo(config: DemoConfig, cluster: Any, schedule: list[Fault], out: TextIO) -> RunReport:
    """The same job on a plain ``MongoClient`` (retryable reads and writes on, pymongo's defaults)."""
    from pymongo import MongoClient  # noqa: PLC0415
    from pymongo.errors import PyMongoError  # noqa: PLC0415

    report = RunReport("plain pymongo")
    client: MongoClient[dict[str, Any]] = MongoClient(
        cluster.uri, heartbeatFrequencyMS=_HEARTBEAT_MS, retryWrites=True, retryReads=True
    )
    try:
        db = client["demo_pymongo"]
        db["items"].create_index([("token", 1)])
        db["counters"].insert_many([{"_id": f"c{i}", "n": 0} for i in range(_COUNTERS)])

        def status(tally: WorkerTally, faults: _Faults) -> str:
            with tally.lock:
                ops, errors = tally.live_ops, tally.live_errors
            return f"ops {ops:6d} | step-downs {faults.done} | errors {errors}"

        tally, seconds = _run_workload(
            "plain pymongo",
            config,
            cluster,
            items=db["items"],
            counters=db["counters"],
            schedule=schedule,
            errors=(PyMongoError,),
            status=status,
            out=out,
        )
    finally:
        client.close()
    report.seconds = seconds
    report.failovers = sum(1 if f.flap_after is None else 2 for f in schedule)
    _wait_for_primary(cluster)
    _verify(cluster.backend_uri, "demo_pymongo", tally, report)
    return report


@contextlib.contextmanager
def _quiet_loggers() -> Iterator[None]:
    """The engine logs each failover as a warning: right for a service, noise under the progress bar."""
    import logging  # noqa: PLC0415

    logger = logging.getLogger("mongomancy")
    saved = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(saved)


def run_demo(config: DemoConfig, *, as_json: bool = False, out: TextIO | None = None) -> int:
    """Run the demo and print its summary; 0 when mongomancy's workers saw no error and nothing was
    duplicated or lost, 1 otherwise."""
    from mongomancy.testing import SimulatedReplicaSet, fast_heartbeats  # noqa: PLC0415

    stream = out or sys.stderr
    seed = config.seed if config.seed is not None else random.SystemRandom().randrange(1, 10_000)
    config = DemoConfig(config.threads, config.duration, seed, config.compare, config.members)
    schedule = fault_schedule(config.duration, random.Random(seed))
    reports: list[RunReport] = []
    started = time.monotonic()
    with _quiet_loggers(), fast_heartbeats(0.05), SimulatedReplicaSet(members=config.members) as cluster:
        if not as_json:
            click.echo(
                f"mongomancy demo: {config.members}-member simulated replica set {cluster.set_name}, "
                f"{config.threads} threads, {config.duration:g} s per run, seed {seed}",
                file=stream,
            )
            click.echo("step-downs: " + ", ".join(f.describe() for f in schedule), file=stream)
        reports.append(run_mongomancy(config, cluster, schedule, stream))
        if config.compare:
            reports.append(run_pymongo(config, cluster, schedule, stream))
    elapsed = time.monotonic() - started
    ours = reports[0]
    code = 0 if ours.clean else 1
    if as_json:
        click.echo(
            json.dumps(
                {
                    "seed": seed,
                    "threads": config.threads,
                    "duration": config.duration,
                    "step_downs": [f.describe() for f in schedule],
                    "runs": [r.to_json() for r in reports],
                    "elapsed_seconds": round(elapsed, 2),
                    "exit_code": code,
                }
            )
        )
    else:
        click.echo(summary_table(reports))
        verdict = (
            "OK: no error reached mongomancy's workers; every acknowledged write is there exactly once"
            if ours.clean
            else "FAILED: mongomancy let errors through or lost/duplicated writes (see above)"
        )
        click.echo(f"{verdict} ({elapsed:.1f} s in all)")
    return code


def summary_table(reports: list[RunReport]) -> str:
    rows: list[tuple[str, Callable[[RunReport], object]]] = [
        ("operations", lambda r: r.operations),
        ("  inserts acknowledged", lambda r: r.inserts_acked),
        ("  $inc acknowledged", lambda r: r.incs_acked),
        ("  reads", lambda r: r.reads),
        ("ops/s", lambda r: f"{r.operations / r.seconds:.0f}" if r.seconds else "-"),
        ("failovers", lambda r: r.failovers if r.failovers is not None else "-"),
        ("retries (engine)", lambda r: r.retries if r.retries is not None else "-"),
        ("errors reaching workers", lambda r: r.worker_errors),
        ("duplicates", lambda r: r.duplicates),
        ("lost acknowledged writes", lambda r: r.lost),
        ("counter mismatches", lambda r: r.counter_mismatches),
        ("applied despite an error", lambda r: r.applied_despite_error),
    ]
    width = 26
    lines = ["", f"{'':{width}}" + "".join(f"{r.name:>16}" for r in reports)]
    lines += [f"{label:{width}}" + "".join(f"{value(r)!s:>16}" for r in reports) for label, value in rows]
    for report in reports:
        if report.error_types:
            kinds = ", ".join(f"{name} x{n}" for name, n in sorted(report.error_types.items()))
            lines.append(f"{report.name} errors: {kinds}")
    return "\n".join(lines)
