"""Cost per operation: mongomancy against raw pymongo on the same simulated replica set.

Run: ``python benchmarks/bench_overhead.py [--rounds 31] [--profile]``.  Prints three markdown tables:

1. ``find_one`` by ``_id``, ``insert_one`` and ``update_one`` (``$inc`` by ``_id``) through the simulated
   primary, with 1 and 16 threads: plain pymongo, pymongo under ``pymongo.timeout(60)``, ``Engine`` executor
   methods (``engine.find_one(coll, ...)``) and ``Database``/``Collection`` methods, and plain pymongo again
   as an A/A control (its distance from 1.000 is the noise floor).  The variants run interleaved (their order
   rotates every round) against the same member; each ratio is the median of the per-round ratios (paired
   rounds, so a noisy neighbour hits both sides alike), for wall time and for the CPU of the whole process
   (every thread: pymongo's, the engine's and the in-process simulator's).  Reads are compared with plain
   pymongo; writes with pymongo under ``pymongo.timeout``, which the engine runs every write under (pymongo
   then retries with the same transaction number): a separate column says what that timeout costs next to
   plain pymongo.
2. Python function calls per operation counted by cProfile (deterministic).
3. The pure wrapper cost in microseconds, without any network: the same mongomancy call paths against a
   fake collection whose methods return at once, minus the cost of calling that fake directly.

``--profile`` adds a cProfile of the wrapper hot path (``engine.find_one`` and ``update_one`` against the
fake collection), sorted by own time, to see what costs what.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import pymongo
from _common import markdown
from pymongo import MongoClient, WriteConcern
from pymongo.collection import Collection as PyMongoCollection

from mongomancy import Database, Engine
from mongomancy.commands import CollectionTarget
from mongomancy.testing import SimulatedReplicaSet, wait_for
from mongomancy.types import CollectionDefinition

OPS = ("find_one", "insert_one", "update_one")
N_DOCS = 100


def op_call(op: str, target: Any, call: Callable[..., Any]) -> Callable[[int], Any]:
    """A function of the iteration number that performs one ``op`` through ``call(target, ...)``."""
    if op == "find_one":
        return lambda i: call(target, "find_one", {"_id": i % N_DOCS})
    if op == "insert_one":
        return lambda i: call(target, "insert_one", {"i": i, "payload": "x" * 64})
    return lambda i: call(target, "update_one", {"_id": i % N_DOCS}, {"$inc": {"n": 1}})


def raw_call(collection: Any, op: str, *args: Any) -> Any:
    return getattr(collection, op)(*args)


def timeout_call(collection: Any, op: str, *args: Any) -> Any:
    """Raw pymongo under a client-side operation timeout, as the engine runs ``$inc`` updates."""
    with pymongo.timeout(60):
        return getattr(collection, op)(*args)


def make_engine_call(engine: Engine) -> Callable[..., Any]:
    def engine_call(collection: Any, op: str, *args: Any) -> Any:
        return getattr(engine, op)(collection, *args)

    return engine_call


def timed_batch(fn: Callable[[int], Any], threads: int, per_thread: int) -> tuple[float, float]:
    """Wall seconds and process CPU seconds (every thread of the process) per operation, for ``threads``
    threads each running ``fn`` ``per_thread`` times."""
    if threads == 1:
        c0, t0 = time.process_time(), time.perf_counter()
        for i in range(per_thread):
            fn(i)
        return (time.perf_counter() - t0) / per_thread, (time.process_time() - c0) / per_thread
    barrier = threading.Barrier(threads + 1)

    def work(offset: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            fn(offset + i)

    pool = [threading.Thread(target=work, args=(k * per_thread,)) for k in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    c0, t0 = time.process_time(), time.perf_counter()
    for t in pool:
        t.join()
    ops = threads * per_thread
    return (time.perf_counter() - t0) / ops, (time.process_time() - c0) / ops


def calls_per_op(fn: Callable[[int], Any], n: int = 1_000) -> float:
    """Python function calls per operation under cProfile: deterministic, whatever the machine's load."""
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(n):
        fn(i)
    profiler.disable()
    return pstats.Stats(profiler).total_calls / n  # type: ignore[attr-defined, no-any-return]


#: The variants, in the order of the table.  Reads are compared with plain pymongo; writes with pymongo under
#: ``pymongo.timeout`` (the engine runs every write under it: pymongo then retries with the same txnNumber).
PLAIN, TIMEOUT, ENGINE, COLLECTION, CONTROL = (
    "pymongo",
    "pymongo under pymongo.timeout(60)",
    "Engine executor",
    "Database/Collection",
    "pymongo again (A/A control)",
)


def _paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    return statistics.median(n / d for n, d in zip(numerator, denominator, strict=True))


def network_table(rounds: int) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    rows: list[tuple[str, ...]] = []
    calls_rows: list[tuple[str, ...]] = []
    with SimulatedReplicaSet() as rs:
        raw_client: MongoClient[dict[str, Any]] = MongoClient(rs.uri, maxPoolSize=32)
        engine = Engine(uri=rs.uri, maxPoolSize=32)
        try:
            wait_for(lambda: engine.topology().writable and raw_client.primary is not None, 10, "a primary")
            db = Database(engine, "bench")
            (mm_collection,) = db.extend(CollectionDefinition(name="bench"))
            raw_coll = raw_client.bench.bench
            raw_coll.insert_many([{"_id": i, "n": 0} for i in range(N_DOCS)])
            engine_coll = engine.client.bench.bench
            variants: dict[str, tuple[Any, Callable[..., Any]]] = {
                PLAIN: (raw_coll, raw_call),
                TIMEOUT: (raw_coll, timeout_call),
                ENGINE: (engine_coll, make_engine_call(engine)),
                COLLECTION: (mm_collection, raw_call),
                CONTROL: (raw_coll, raw_call),
            }
            for threads, per_thread in ((1, 100), (16, 8)):
                for op in OPS:
                    fns = {name: op_call(op, target, call) for name, (target, call) in variants.items()}
                    for fn in fns.values():  # warm up pools and code paths
                        timed_batch(fn, threads, per_thread * 4)
                    wall: dict[str, list[float]] = {name: [] for name in fns}
                    cpu: dict[str, list[float]] = {name: [] for name in fns}
                    names = list(fns)
                    for r in range(rounds):
                        order = names[r % len(names) :] + names[: r % len(names)]
                        for name in order:
                            seconds, cpu_seconds = timed_batch(fns[name], threads, per_thread)
                            wall[name].append(seconds)
                            cpu[name].append(cpu_seconds)
                    base = PLAIN if op == "find_one" else TIMEOUT
                    label = "pymongo.timeout" if base == TIMEOUT else "pymongo"
                    cells = [op, str(threads), f"{statistics.median(wall[PLAIN]) * 1e6:.0f}", label]
                    for name in (ENGINE, COLLECTION):
                        cells += [
                            f"{_paired_ratio(wall[name], wall[base]):.3f}",
                            f"{_paired_ratio(cpu[name], cpu[base]):.3f}",
                        ]
                    cells += [
                        f"{_paired_ratio(wall[TIMEOUT], wall[PLAIN]):.3f}",
                        f"{_paired_ratio(cpu[TIMEOUT], cpu[PLAIN]):.3f}",
                        f"{_paired_ratio(wall[CONTROL], wall[PLAIN]):.3f}",
                        f"{_paired_ratio(cpu[CONTROL], cpu[PLAIN]):.3f}",
                    ]
                    rows.append(tuple(cells))
                    if threads == 1:
                        counted = (PLAIN, TIMEOUT, ENGINE, COLLECTION)
                        calls_rows.append((op, *(f"{calls_per_op(fns[name]):.0f}" for name in counted)))
        finally:
            engine.dispose()
            raw_client.close()
    return rows, calls_rows


# ---------------------------------------------------------------------------------------------- no network
class FakeCollection:
    """Answers at once: the cost of calling it is the floor every path pays."""

    read_preference = None
    write_concern = WriteConcern()
    full_name = "bench.fake"

    def find_one(self, *args: Any, **kwargs: Any) -> Any:
        return {"_id": 1}

    def insert_one(self, document: Any, *args: Any, **kwargs: Any) -> Any:
        return document

    def update_one(self, *args: Any, **kwargs: Any) -> Any:
        return None


class FakeTarget(CollectionTarget):
    """A ``CollectionTarget`` that resolves to the fake, whatever the client."""

    def __init__(self, fake: FakeCollection) -> None:
        self.fake = fake

    @property
    def full_name(self) -> str:
        return "bench.fake"

    def resolve(self, client: MongoClient[Any]) -> PyMongoCollection[Any]:
        return self.fake  # type: ignore[return-value]


def per_call(fn: Callable[[int], Any], n: int, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)
        samples.append((time.perf_counter() - t0) / n)
    return statistics.median(samples)


def wrapper_table(rounds: int, profile: bool) -> tuple[list[tuple[str, ...]], str]:
    rows: list[tuple[str, ...]] = []
    report = ""
    with SimulatedReplicaSet() as rs:
        engine = Engine(uri=rs.uri)
        try:
            wait_for(lambda: engine.topology().writable, 10, "a primary")
            db = Database(engine, "bench")
            (mm_collection,) = db.extend(CollectionDefinition(name="fake"))
            fake = FakeCollection()
            mm_collection._binding = (engine.topology().client, fake)  # type: ignore[assignment]
            target = FakeTarget(fake)
            engine_call = make_engine_call(engine)
            n = 20_000
            for op in OPS:
                base = per_call(op_call(op, fake, raw_call), n, rounds)
                via_engine = per_call(op_call(op, target, engine_call), n, rounds)
                via_collection = per_call(op_call(op, mm_collection, raw_call), n, rounds)
                rows.append(
                    (
                        op,
                        f"{base * 1e6:.2f}",
                        f"{(via_engine - base) * 1e6:.1f}",
                        f"{(via_collection - base) * 1e6:.1f}",
                    )
                )
            if profile:
                profiler = cProfile.Profile()
                find_fn = op_call("find_one", target, engine_call)
                update_fn = op_call("update_one", target, engine_call)
                profiler.enable()
                for i in range(50_000):
                    find_fn(i)
                    update_fn(i)
                profiler.disable()
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
                report = out.getvalue()
        finally:
            engine.dispose()
    return rows, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=31, help="interleaved rounds (median over them)")
    parser.add_argument("--profile", action="store_true", help="cProfile the wrapper hot path")
    args = parser.parse_args()

    rows, calls_rows = network_table(args.rounds)
    print(
        f"Through the simulated primary: median of {args.rounds} interleaved rounds; ratios are medians of "
        "per-round ratios (wall, and process CPU of every thread); reads against plain pymongo, writes "
        "against pymongo under pymongo.timeout\n"
    )
    print(
        markdown(
            (
                "operation",
                "threads",
                "pymongo µs",
                "baseline",
                "Engine / baseline wall",
                "Engine / baseline CPU",
                "Collection / baseline wall",
                "Collection / baseline CPU",
                "pymongo.timeout / pymongo wall",
                "pymongo.timeout / pymongo CPU",
                "A/A wall",
                "A/A CPU",
            ),
            rows,
        )
    )
    print("\nPython function calls per operation (cProfile, 1 thread: deterministic)\n")
    print(markdown(("operation", "pymongo", "pymongo.timeout", "Engine", "Collection"), calls_rows))
    wrapper_rows, report = wrapper_table(args.rounds, args.profile)
    print("\nWrapper cost without network (fake collection; µs per call, 1 thread)\n")
    print(
        markdown(
            ("operation", "fake call µs", "+ Engine executor µs", "+ Database/Collection µs"),
            wrapper_rows,
        )
    )
    if report:
        print("\ncProfile of engine.find_one + engine.update_one ($inc) on the fake, 50,000 each\n")
        print("```\n" + report.strip() + "\n```")


if __name__ == "__main__":
    main()
