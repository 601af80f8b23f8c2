"""Cost per operation: mongomancy against raw pymongo on the same simulated replica set.

Run: ``python benchmarks/bench_overhead.py [--rounds 31] [--profile]``.  Prints three markdown tables:

1. ``find_one`` by ``_id``, ``insert_one`` and ``update_one`` (``$inc`` by ``_id``) through the simulated
   primary, with 1 and 16 threads: raw pymongo, ``Engine`` executor methods (``engine.find_one(coll, ...)``
   with a pymongo collection) and ``Database``/``Collection`` methods (``db["bench"].find_one(...)``).  The
   variants run interleaved (their order rotates every round) against the same member; each cell is the
   median over the rounds of the time per operation, and the ratio is the median of the per-round ratios
   mongomancy / pymongo (paired rounds, so a noisy neighbour hits both sides of a ratio alike).  A fourth
   variant, raw pymongo inside ``pymongo.timeout(60)``, shows what the client-side operation timeout costs
   by itself (the engine runs non-idempotent single-document writes such as ``$inc`` under it), and a fifth,
   raw pymongo again, is an A/A control: its distance from 1.000 is the noise floor of the run.
2. The CPU the calling thread spends per operation (``time.thread_time``, 1 thread), pymongo's and what each
   variant adds to it (less dependent on the machine's load than wall time, though not immune), and the
   Python function calls per operation counted by cProfile (deterministic).
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
from pymongo import MongoClient
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


def timed_batch(fn: Callable[[int], Any], threads: int, per_thread: int) -> float:
    """Seconds per operation for ``threads`` threads each running ``fn`` ``per_thread`` times."""
    if threads == 1:
        t0 = time.perf_counter()
        for i in range(per_thread):
            fn(i)
        return (time.perf_counter() - t0) / per_thread
    barrier = threading.Barrier(threads + 1)

    def work(offset: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            fn(offset + i)

    pool = [threading.Thread(target=work, args=(k * per_thread,)) for k in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    return (time.perf_counter() - t0) / (threads * per_thread)


def cpu_per_op(fn: Callable[[int], Any], n: int = 200) -> float:
    """CPU seconds the calling thread spends per operation (excludes waiting on the network)."""
    t0 = time.thread_time()
    for i in range(n):
        fn(i)
    return (time.thread_time() - t0) / n


def calls_per_op(fn: Callable[[int], Any], n: int = 1_000) -> float:
    """Python function calls per operation under cProfile: deterministic, whatever the machine's load."""
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(n):
        fn(i)
    profiler.disable()
    return pstats.Stats(profiler).total_calls / n  # type: ignore[attr-defined, no-any-return]


def network_table(rounds: int) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    rows: list[tuple[str, ...]] = []
    cpu_rows: list[tuple[str, ...]] = []
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
                "pymongo": (raw_coll, raw_call),
                "Engine executor": (engine_coll, make_engine_call(engine)),
                "Database/Collection": (mm_collection, raw_call),
                "pymongo under pymongo.timeout(60)": (raw_coll, timeout_call),
                "pymongo again (A/A control)": (raw_coll, raw_call),
            }
            for threads, per_thread in ((1, 60), (16, 6)):
                for op in OPS:
                    fns = {name: op_call(op, target, call) for name, (target, call) in variants.items()}
                    for fn in fns.values():  # warm up pools and code paths
                        timed_batch(fn, threads, per_thread * 4)
                    times: dict[str, list[float]] = {name: [] for name in fns}
                    names = list(fns)
                    for r in range(rounds):
                        order = names[r % len(names) :] + names[: r % len(names)]
                        for name in order:
                            times[name].append(timed_batch(fns[name], threads, per_thread))
                    base = times["pymongo"]
                    cells = [op, str(threads), f"{statistics.median(base) * 1e6:.0f}"]
                    for name in names[1:]:
                        ratio = statistics.median(t / b for t, b in zip(times[name], base, strict=True))
                        cells += [f"{statistics.median(times[name]) * 1e6:.0f}", f"{ratio:.3f}"]
                    rows.append(tuple(cells))
                    if threads == 1:
                        cpu = {name: [] for name in fns}
                        for _ in range(rounds):
                            for name in names:
                                cpu[name].append(cpu_per_op(fns[name]))
                        base_cpu = statistics.median(cpu["pymongo"])
                        cpu_cells = [op, f"{base_cpu * 1e6:.0f}"]
                        for name in names[1:]:
                            extra = statistics.median(cpu[name]) - base_cpu
                            cpu_cells.append(f"{extra * 1e6:+.1f}")
                        calls = {name: calls_per_op(fns[name]) for name in names}
                        cpu_cells += [f"{calls[name]:.0f}" for name in names[:-1]]
                        cpu_rows.append(tuple(cpu_cells))
        finally:
            engine.dispose()
            raw_client.close()
    return rows, cpu_rows


# ---------------------------------------------------------------------------------------------- no network
class FakeCollection:
    """Answers at once: the cost of calling it is the floor every path pays."""

    read_preference = None
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

    rows, cpu_rows = network_table(args.rounds)
    print(f"Through the simulated primary (median of {args.rounds} interleaved rounds, µs per operation)\n")
    print(
        markdown(
            (
                "operation",
                "threads",
                "pymongo µs",
                "Engine µs",
                "Engine / pymongo",
                "Collection µs",
                "Collection / pymongo",
                "pymongo+timeout µs",
                "pymongo+timeout / pymongo",
                "A/A control µs",
                "A/A / pymongo (noise floor)",
            ),
            rows,
        )
    )
    print(
        "\nCPU of the calling thread per operation (time.thread_time, 1 thread), and Python function calls"
        " per operation (cProfile: deterministic)\n"
    )
    print(
        markdown(
            (
                "operation",
                "pymongo µs CPU",
                "Engine: extra µs",
                "Collection: extra µs",
                "pymongo+timeout: extra µs",
                "A/A: extra µs",
                "Python calls/op: pymongo",
                "Engine",
                "Collection",
                "pymongo+timeout",
            ),
            cpu_rows,
        )
    )
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
