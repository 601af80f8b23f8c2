"""``mongomancy demo``: a multithreaded batch job on a simulated replica set while its primary steps down,
run through mongomancy and then through plain pymongo, with the numbers side by side.

Why the job runs on a thread of its own: the main thread waits for Ctrl-C or SIGTERM (see
:mod:`mongomancy.cli._shutdown`) and, on one, prints what ran so far and ends the process within a second,
however deep in an election the workers are.  The child process of the simulated cluster is killed by PID
if its graceful stop does not finish in time, so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import shutil
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import attrs
import click

from mongomancy.cli import _shutdown
from mongomancy.cli._click import Command
from mongomancy.cli._workload import (
    COUNTERS,
    HEARTBEAT_MS,
    DemoConfig,
    Fault,
    Interrupted,
    LiveRun,
    RunReport,
    WorkerTally,
    fault_schedule,
    run_workload,
    verify,
)
from mongomancy.cli.exit_codes import ExitCode, interrupted
from mongomancy.cli.sim import discard_backend

__all__ = ["DemoConfig", "RunReport", "demo", "fault_schedule", "run_demo", "summary_table"]

#: After Ctrl-C under a test runner (no hard exit): how long the job's own clean-up (engine, simulated
#: cluster) may take before the backend process is killed.
_CLEANUP_GRACE = 0.6
MIN_DURATION = 5.0


@click.command(cls=Command)
@click.option("--threads", type=click.IntRange(1, 64), default=8, show_default=True, help="Worker threads.")
@click.option(
    "--duration",
    type=click.FloatRange(MIN_DURATION, 600),
    default=15.0,
    show_default=True,
    help="Seconds of traffic per run (at least 5: shorter runs see too few elections to compare).",
)
@click.option("--seed", type=int, default=None, help="Random seed of the workload and the fault schedule.")
@click.option(
    "--compare/--no-compare", default=True, show_default=True, help="Run the same job with plain pymongo too."
)
@click.option(
    "--json", "as_json", is_flag=True, default=False, help="Print the summary as JSON instead of text."
)
def demo(threads: int, duration: float, seed: int | None, compare: bool, as_json: bool) -> None:
    """Run a multithreaded batch job on a simulated replica set while its primary is stepped down.

    Starts an embedded 3-member simulated replica set, runs inserts, $inc counters and reads through
    mongomancy's Database/Collection while the primary steps down several times (instant and ~1 s
    elections, one with hung-up connections), checks every acknowledged write is stored exactly once, then
    runs the same job with plain pymongo (retryable writes on).  About 2 x --duration + 5 s in all (35 s by
    default).  Exit 0 when mongomancy's workers saw no errors and nothing was duplicated or lost; Ctrl-C
    stops it within a second and prints what ran so far (exit 130).
    """
    config = DemoConfig(threads=threads, duration=duration, seed=seed, compare=compare)
    code = run_demo(config, as_json=as_json)
    if code:
        raise SystemExit(code)


@attrs.define
class _Progress:
    """What the job has done so far, shared by the job's thread and the main thread (under ``lock``)."""

    started: float = attrs.Factory(time.monotonic)
    interrupted: threading.Event = attrs.Factory(threading.Event)
    lock: threading.Lock = attrs.Factory(threading.Lock)
    runs: list[LiveRun] = attrs.Factory(list)
    reports: list[RunReport] = attrs.Factory(list)
    #: The simulated cluster's backend (a child process), once started.
    backend: Any = None

    def children(self) -> tuple[int, ...]:
        pid = None if self.backend is None else self.backend.pid
        return () if pid is None else (pid,)


def run_demo(config: DemoConfig, *, as_json: bool = False, out: TextIO | None = None) -> int:
    """Run the demo and print its summary; 0 when mongomancy's workers saw no error and nothing was
    duplicated or lost, 1 otherwise, ``128 + signal`` when interrupted."""
    stream = out or sys.stderr
    seed = config.seed if config.seed is not None else random.SystemRandom().randrange(1, 10_000)
    config = attrs.evolve(config, seed=seed)
    progress = _Progress()
    outcome: dict[str, Any] = {}
    with _shutdown.StopSignals() as signals:

        def job() -> None:
            try:
                outcome["code"] = _job(config, progress, as_json, stream)
            except Interrupted:
                pass
            except BaseException as error:  # handed to the main thread, raised there
                outcome["error"] = error
            finally:
                signals.release()

        thread = threading.Thread(target=job, name="mongomancy-demo", daemon=True)
        thread.start()
        signum = signals.wait()
        if signum is None:
            thread.join()
            if "error" in outcome:
                raise outcome["error"]
            return int(outcome["code"])
        code = interrupted(signum)
        _shutdown.exit_within(_shutdown.STOP_DEADLINE, code, progress.children)
        progress.interrupted.set()
        click.echo(_interruption_summary(progress, signum), file=stream)
        if _shutdown.hard_exit_enabled() and progress.backend is not None:
            # Nothing left to verify: the simulated cluster's data goes, no thread holds anything to save.
            discard_backend(progress.backend)
            _shutdown.exit_now(code)
        thread.join(_CLEANUP_GRACE)
        if thread.is_alive():  # the graceful stop overran: leave no process behind
            _shutdown.kill_children(progress.children())
        return code


def _job(config: DemoConfig, progress: _Progress, as_json: bool, stream: TextIO) -> int:
    from mongomancy.testing import SimulatedReplicaSet, fast_heartbeats  # noqa: PLC0415

    schedule = fault_schedule(config.duration, random.Random(config.seed))
    with _quiet_loggers(), fast_heartbeats(0.05), SimulatedReplicaSet(members=config.members) as cluster:
        progress.backend = cluster.backend
        if not as_json:
            click.echo(
                f"mongomancy demo: {config.members}-member simulated replica set {cluster.set_name}, "
                f"{config.threads} threads, {config.duration:g} s per run, seed {config.seed} "
                f"(about {_expected_seconds(config):.0f} s in all; Ctrl-C stops it)",
                file=stream,
            )
            click.echo("step-downs: " + ", ".join(f.describe() for f in schedule), file=stream)
        runs: list[Callable[..., RunReport]] = [run_mongomancy]
        if config.compare:
            runs.append(run_pymongo)
        for run in runs:
            report = run(config, cluster, schedule, stream, progress)
            with progress.lock:
                progress.reports.append(report)
    elapsed = time.monotonic() - progress.started
    ours = progress.reports[0]
    code = ExitCode.OK if ours.clean else ExitCode.CHECK_FAILED
    if as_json:
        click.echo(
            json.dumps(
                {
                    "seed": config.seed,
                    "threads": config.threads,
                    "duration": config.duration,
                    "step_downs": [f.describe() for f in schedule],
                    "runs": [r.to_json() for r in progress.reports],
                    "elapsed_seconds": round(elapsed, 2),
                    "exit_code": int(code),
                }
            )
        )
    else:
        click.echo(summary_table(progress.reports))
        click.echo(explanation(progress.reports))
        verdict = (
            "OK: no error reached mongomancy's workers; every acknowledged write is there exactly once"
            if ours.clean
            else "FAILED: mongomancy let errors through or lost/duplicated writes (see above)"
        )
        click.echo(f"{verdict} ({elapsed:.1f} s in all)")
    return int(code)


def _expected_seconds(config: DemoConfig) -> float:
    return config.duration * (2 if config.compare else 1) + 5


def _live(progress: _Progress, name: str, status: Callable[[WorkerTally], str]) -> LiveRun:
    tally = WorkerTally()
    run = LiveRun(name, time.monotonic(), tally, lambda: status(tally))
    with progress.lock:
        progress.runs.append(run)
    return run


def run_mongomancy(
    config: DemoConfig, cluster: Any, schedule: list[Fault], out: TextIO, progress: _Progress
) -> RunReport:
    """The job through ``Database``/``Collection`` on an ``Engine``."""
    from pymongo.errors import PyMongoError  # noqa: PLC0415

    from mongomancy.engine import Engine  # noqa: PLC0415
    from mongomancy.errors import MongomancyError  # noqa: PLC0415
    from mongomancy.schema import Database  # noqa: PLC0415
    from mongomancy.types import CollectionDefinition, Document, Index  # noqa: PLC0415

    engine = Engine(uri=cluster.uri, heartbeatFrequencyMS=HEARTBEAT_MS)
    try:
        db = Database(engine, name="demo_mongomancy")
        db.add_collection(CollectionDefinition(name="items", indices=[Index(fields={"token": 1})]))
        db.add_collection(
            CollectionDefinition(
                name="counters",
                default_docs=[
                    Document(unique_key={"_id": f"c{i}"}, data={"_id": f"c{i}", "n": 0})
                    for i in range(COUNTERS)
                ],
            )
        )
        db.create_all()

        def status(tally: WorkerTally) -> str:
            stats = engine.stats()
            _ops, errors = tally.live()
            return (
                f"ops {stats.operations} | failovers {stats.failovers} | retries {stats.retries} | "
                f"errors {errors} | queue {stats.queue_length} | primary {stats.current_primary or '-'}"
            )

        run = _live(progress, "mongomancy", status)
        seconds = run_workload(
            run,
            config,
            cluster,
            items=db["items"],
            counters=db["counters"],
            schedule=schedule,
            errors=(MongomancyError, PyMongoError),
            interrupted=progress.interrupted,
            out=out,
        )
        stats = engine.stats()
    finally:
        engine.dispose()
    _wait_for_primary(cluster)
    report = RunReport("mongomancy", seconds=seconds, failovers=stats.failovers, retries=stats.retries)
    return verify(cluster.backend_uri, "demo_mongomancy", run.tally, report)


class _PrimaryChanges:
    """Counts the primary changes a pymongo client saw (SDAM topology events), as the engine counts its own.

    pymongo delivers these events from its own thread, in batches, and all of them by ``close()``.
    """

    def __init__(self) -> None:
        from pymongo import monitoring  # noqa: PLC0415

        outer = self

        class Listener(monitoring.TopologyListener):
            def opened(self, event: Any) -> None:
                """Nothing to count."""

            def closed(self, event: Any) -> None:
                """Nothing to count."""

            def description_changed(self, event: Any) -> None:
                outer.note(event.new_description)

        self.listener = Listener()
        self._lock = threading.Lock()
        self._last: tuple[str, int | None] | None = None
        self.count = 0

    def note(self, description: Any) -> None:
        primaries = [
            a for a, s in description.server_descriptions().items() if s.server_type_name == "RSPrimary"
        ]
        if not primaries:
            return
        with self._lock:
            if self._last is not None and primaries[0] != self._last:
                self.count += 1
            self._last = primaries[0]


def run_pymongo(
    config: DemoConfig, cluster: Any, schedule: list[Fault], out: TextIO, progress: _Progress
) -> RunReport:
    """The same job on a plain ``MongoClient`` (retryable reads and writes on, pymongo's defaults)."""
    from pymongo import MongoClient  # noqa: PLC0415
    from pymongo.errors import PyMongoError  # noqa: PLC0415

    changes = _PrimaryChanges()
    client: MongoClient[dict[str, Any]] = MongoClient(
        cluster.uri,
        heartbeatFrequencyMS=HEARTBEAT_MS,
        retryWrites=True,
        retryReads=True,
        event_listeners=[changes.listener],
    )
    try:
        db = client["demo_pymongo"]
        db["items"].create_index([("token", 1)])
        db["counters"].insert_many([{"_id": f"c{i}", "n": 0} for i in range(COUNTERS)])

        def status(tally: WorkerTally) -> str:
            ops, errors = tally.live()
            return f"ops {ops} | failovers {changes.count} | errors {errors}"

        run = _live(progress, "plain pymongo", status)
        seconds = run_workload(
            run,
            config,
            cluster,
            items=db["items"],
            counters=db["counters"],
            schedule=schedule,
            errors=(PyMongoError,),
            interrupted=progress.interrupted,
            out=out,
        )
    finally:
        client.close()  # delivers the SDAM events still queued
    _wait_for_primary(cluster)
    report = RunReport("plain pymongo", seconds=seconds, failovers=changes.count)
    return verify(cluster.backend_uri, "demo_pymongo", run.tally, report)


def _wait_for_primary(cluster: Any) -> None:
    from mongomancy.testing import wait_for  # noqa: PLC0415

    if cluster.primary is None:
        cluster.elect(wait=True)
    wait_for(lambda: cluster.primary is not None, 10.0, "a primary")


def _interruption_summary(progress: _Progress, signum: int) -> str:
    """What ran before Ctrl-C: finished runs with their verdict, the run in progress with its live counts."""
    name = signal.Signals(signum).name
    lines = [f"\ninterrupted by {name} after {time.monotonic() - progress.started:.1f} s; so far:"]
    with progress.lock:
        reports = list(progress.reports)
        runs = list(progress.runs)
    finished = {r.name for r in reports}
    for report in reports:
        lines.append(
            f"  {report.name:>13}: {report.operations} operations in {report.seconds:.1f} s, "
            f"{report.worker_errors} errors reached the workers, {report.duplicates} duplicates, "
            f"{report.lost} lost (checked)"
        )
    for run in runs:
        if run.name in finished:
            continue
        ops, errors = run.tally.live()
        lines.append(
            f"  {run.name:>13}: {ops} operations in {time.monotonic() - run.started:.1f} s, "
            f"{errors} errors reached the workers (interrupted: not checked)"
        )
    if not runs:
        lines.append("  nothing ran yet (the simulated cluster was starting)")
    return "\n".join(lines)


def summary_table(reports: list[RunReport]) -> str:
    rows: list[tuple[str, Callable[[RunReport], object]]] = [
        ("operations", lambda r: r.operations),
        ("  inserts acknowledged", lambda r: r.inserts_acked),
        ("  $inc acknowledged", lambda r: r.incs_acked),
        ("  reads", lambda r: r.reads),
        ("ops/s", lambda r: f"{r.operations / r.seconds:.0f}" if r.seconds else "-"),
        ("failovers seen", lambda r: r.failovers if r.failovers is not None else "-"),
        ("retries (engine)", lambda r: r.retries if r.retries is not None else "-"),
        ("errors reaching workers", lambda r: r.worker_errors),
        ("duplicates", lambda r: r.duplicates),
        ("lost acknowledged writes", lambda r: r.lost),
        ("counter mismatches", lambda r: r.counter_mismatches),
        ("failed but stored anyway", lambda r: r.applied_despite_error),
    ]
    width = 26
    lines = ["", f"{'':{width}}" + "".join(f"{r.name:>16}" for r in reports)]
    lines += [f"{label:{width}}" + "".join(f"{value(r)!s:>16}" for r in reports) for label, value in rows]
    for report in reports:
        if report.error_types:
            kinds = ", ".join(f"{name} x{n}" for name, n in sorted(report.error_types.items()))
            lines.append(f"{report.name} errors: {kinds}")
    return "\n".join(lines)


def explanation(reports: list[RunReport]) -> str:
    """The table in plain words: why one side did fewer operations and the other saw errors."""
    ours = reports[0]
    reached = f"{ours.worker_errors} errors reached them" if ours.worker_errors else "no error reached them"
    text = [
        "",
        "What this means: while a new primary is being elected, no server accepts writes.",
        f"mongomancy's workers waited for the new primary each time ({ours.failovers} failovers seen) and "
        f"{reached}.",
    ]
    if len(reports) > 1:
        plain = reports[1]
        fewer = plain.operations - ours.operations
        text.append(
            f"Plain pymongo retried once and then handed the error to its workers ({plain.worker_errors} "
            f"errors in {plain.failovers} failovers seen); a worker that gives up on an error goes on at "
            "once, "
            + (
                f"which is why it completed {fewer} more operations than mongomancy's waiting workers."
                if fewer > 0
                else "yet here it did not complete more operations."
            )
        )
        stored = plain.applied_despite_error
        if stored:
            text.append(
                f"{stored} of pymongo's failed writes {'was' if stored == 1 else 'were'} stored anyway: "
                "a worker that retried on its own would have stored it twice."
            )
    width = min(100, shutil.get_terminal_size().columns - 1)
    return "\n".join(textwrap.fill(paragraph, width) if paragraph else "" for paragraph in text)


@contextlib.contextmanager
def _quiet_loggers() -> Iterator[None]:
    """The engine logs each failover as a warning: right for a service, noise under the status line."""
    logger = logging.getLogger("mongomancy")
    saved = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(saved)
