"""What ``create_all`` costs at every start-up, on the embedded simulated cluster: prints a markdown table.

Why measure it: create_all is meant to run at every start of every process, so the run that finds nothing to
do (read the live state, plan, log) is the one that matters; the first run (create everything) is paid once.
Each row: a database of N collections, each with 3 indexes and 2 default documents.

    python benchmarks/bench_create_all.py [--collections 1 10 30] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import markdown

from mongomancy import CollectionDefinition, Database, Document, Engine, Index
from mongomancy.testing import SimulatedReplicaSet


def definitions(count: int) -> list[CollectionDefinition]:
    return [
        CollectionDefinition(
            f"c{n}",
            indices=[
                Index({"a": 1}),
                Index({"b": 1}, unique=True),
                Index({"t": 1}, expire_after_seconds=3600),
            ],
            default_docs=[Document({"b": 0}, {"b": 0, "a": 0}), Document({"b": 1}, {"b": 1, "a": 1})],
        )
        for n in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--collections", type=int, nargs="+", default=[1, 10, 30])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with SimulatedReplicaSet() as cluster, Engine(uri=cluster.uri) as engine:
        for count in args.collections:
            with Database(engine, name=f"bench_create_all_{count}") as db:
                db.extend(*definitions(count))
                started = time.perf_counter()
                first = db.create_all()
                first_ms = (time.perf_counter() - started) * 1000
                assert len(first.created_indexes) == 3 * count, first
                again = []
                plans = []
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    result = db.create_all()
                    again.append((time.perf_counter() - started) * 1000)
                    assert not result.changed, result
                    started = time.perf_counter()
                    assert db.plan().is_empty
                    plans.append((time.perf_counter() - started) * 1000)
                engine.client.drop_database(db.name)
            rows.append(
                (
                    str(count),
                    f"{first_ms:.0f}",
                    f"{statistics.median(again):.0f}",
                    f"{statistics.median(plans):.0f}",
                )
            )
    print(
        markdown(
            (
                "collections",
                "first create_all (ms)",
                "create_all, nothing to do (ms, median)",
                "plan() (ms, median)",
            ),
            rows,
        )
    )


if __name__ == "__main__":
    main()
