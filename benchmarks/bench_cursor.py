"""Iterating a 100,000-document ``find()``: mongomancy's resumable cursor against a raw pymongo cursor.

Run: ``python benchmarks/bench_cursor.py [--documents 100000] [--rounds 9]``.  Prints one markdown table.

The collection holds ``--documents`` small documents (``_id``, an int, a 32-byte string).  Each round
iterates the whole collection once per variant, in an order that rotates every round:

- ``pymongo``: ``collection.find({}, sort=[("_id", 1)])`` on a raw ``MongoClient`` (the same query the
  resumable cursor sends for an unsorted ``find``, so the server does the same work for both);
- ``Engine.find``: ``engine.find(collection, {})`` (the ``_id`` sort added, resume bookkeeping per batch);
- ``Collection.find``: ``db["bench"].find({})`` through the ``Database`` facade;
- ``pymongo (A/A)``: raw pymongo again, as a control: its distance from 1.000 is the noise floor of the run.

Cells are the median over the rounds of the time per document; ratios are the median of the per-round ratios
variant / pymongo (paired rounds, so a noisy neighbour hits both sides of a ratio alike).  The CPU column is
the iterating thread's CPU per document (``time.thread_time``), less dependent on the machine's load; the
last column counts the Python function calls per document with cProfile (deterministic).  By default the
clients talk straight to the simulator's backend process: the members' forwarding threads run in this
process and would add GIL contention to both sides (``--through-members`` keeps them).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any

from _common import markdown
from pymongo import MongoClient

from mongomancy import Database, Engine
from mongomancy.schema import CollectionDefinition
from mongomancy.testing import SimulatedReplicaSet, wait_for


def timed(iterate: Callable[[], Iterable[Any]], expected: int) -> tuple[float, float]:
    """(wall seconds, thread CPU seconds) to iterate once; checks every document arrived."""
    wall, cpu = time.perf_counter(), time.thread_time()
    count = 0
    for _document in iterate():
        count += 1
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    if count != expected:
        raise SystemExit(f"iterated {count} documents, expected {expected}")
    return wall, cpu


def python_calls(iterate: Callable[[], Iterable[Any]]) -> int:
    """Python function calls to iterate once (cProfile: deterministic, unlike time on a shared machine)."""
    profile = cProfile.Profile()
    profile.enable()
    for _document in iterate():
        pass
    profile.disable()
    return int(pstats.Stats(profile).total_calls)  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument(
        "--through-members",
        action="store_true",
        help="go through the simulated members (default: straight to their backend, so that the members' "
        "threads, which share this process's GIL, do not drown the client's cost)",
    )
    args = parser.parse_args()
    n = args.documents
    with SimulatedReplicaSet(members=3) as cluster:
        uri = cluster.uri if args.through_members else cluster.backend_uri
        client: MongoClient[Any] = MongoClient(uri)
        engine = Engine(uri=uri)
        try:
            wait_for(lambda: engine.topology().writable, 20, "a primary")
            raw = client.bench.bench
            raw.drop()
            for start in range(0, n, 10_000):
                raw.insert_many(
                    {"_id": i, "i": i, "payload": "x" * 32} for i in range(start, min(n, start + 10_000))
                )
            database = Database(engine, "bench")
            database.add_collection(CollectionDefinition(name="bench"))
            facade = database["bench"]
            engine_handle = engine.client.bench.bench
            variants: dict[str, Callable[[], Iterable[Any]]] = {
                "pymongo": lambda: raw.find({}, sort=[("_id", 1)]),
                "Engine.find": lambda: engine.find(engine_handle, {}),
                "Collection.find": lambda: facade.find({}),
                "pymongo (A/A)": lambda: raw.find({}, sort=[("_id", 1)]),
            }
            names = list(variants)
            for name in names:  # warm-up: connections, the backend's page cache
                timed(variants[name], n)
            walls: dict[str, list[float]] = {name: [] for name in names}
            cpus: dict[str, list[float]] = {name: [] for name in names}
            for round_number in range(args.rounds):
                order = names[round_number % len(names) :] + names[: round_number % len(names)]
                for name in order:
                    wall, cpu = timed(variants[name], n)
                    walls[name].append(wall)
                    cpus[name].append(cpu)
            calls = {name: python_calls(variants[name]) for name in names}
        finally:
            engine.dispose()
            client.close()
    rows = []
    for name in names:
        ratios = [w / p for w, p in zip(walls[name], walls["pymongo"], strict=True)]
        cpu_ratios = [c / p for c, p in zip(cpus[name], cpus["pymongo"], strict=True)]
        rows.append(
            (
                name,
                f"{statistics.median(walls[name]) / n * 1e6:.2f}",
                f"{statistics.median(ratios):.3f}",
                f"{statistics.median(cpus[name]) / n * 1e6:.2f}",
                f"{statistics.median(cpu_ratios):.3f}",
                f"{calls[name] / n:.2f}",
            )
        )
    print(f"Iterating {n:,} documents, median of {args.rounds} interleaved rounds\n")
    print(
        markdown(
            (
                "variant",
                "µs / document",
                "ratio to pymongo",
                "thread CPU µs / document",
                "CPU ratio",
                "Python calls / document",
            ),
            rows,
        )
    )


if __name__ == "__main__":
    main()
