"""Hook cost: the ``Database`` reconnect hook rebinding the handles of 10, 100 and 1,000 collections.

Run: ``python benchmarks/bench_hooks.py``.  Prints one markdown table: for each size, the time of one
``Database.invalidate_cache_hook`` call (what the supervisor runs once per change; here called directly
with a CLIENT_REPLACED change after a real ``engine.reconnect()``, median of 20), and the latency of a
worker's ``find_one`` on one of those collections measured while the hook swaps handles back to back,
against the same worker with no swap going on (median and p99; readers never take the database's lock,
so the difference is only the GIL the two threads share).
"""

from __future__ import annotations

import statistics
import threading
import time

from mongomancy import Database, Engine
from mongomancy.events import ChangeKind, TopologyChange
from mongomancy.testing import SimulatedReplicaSet, wait_for
from mongomancy.types import CollectionDefinition

SIZES = (10, 100, 1_000)


def reader_latencies(collection, seconds: float) -> list[float]:
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        collection.find_one({"_id": 1})
        samples.append(time.perf_counter() - t0)
    return samples


def p99(samples: list[float]) -> float:
    return sorted(samples)[int(len(samples) * 0.99)]


def main() -> None:
    rows = []
    with SimulatedReplicaSet() as rs:
        engine = Engine(uri=rs.uri)
        try:
            wait_for(lambda: engine.topology().writable, 10, "a primary")
            for size in SIZES:
                db = Database(engine, f"hooks{size}")
                collections = db.extend(*(CollectionDefinition(name=f"c{i}") for i in range(size)))
                target = collections[0]
                target.insert_one({"_id": 1})
                engine.reconnect()  # a real new client, so the swap really rebuilds every handle
                change = TopologyChange(kind=ChangeKind.CLIENT_REPLACED)
                swaps = []
                for _ in range(20):
                    t0 = time.perf_counter()
                    db.invalidate_cache_hook(engine, change)
                    swaps.append(time.perf_counter() - t0)
                quiet = reader_latencies(target, 1.0)
                stop = threading.Event()
                swapped = [0]

                def swap_forever(db=db, change=change, stop=stop, swapped=swapped) -> None:
                    while not stop.is_set():
                        db.invalidate_cache_hook(engine, change)
                        swapped[0] += 1

                swapper = threading.Thread(target=swap_forever)
                swapper.start()
                busy = reader_latencies(target, 1.0)
                stop.set()
                swapper.join()
                db.close()
                swap = statistics.median(swaps)
                rows.append(
                    (
                        str(size),
                        f"{swap * 1e3:.2f}",
                        f"{swap / size * 1e6:.1f}",
                        f"{statistics.median(quiet) * 1e6:.0f} / {p99(quiet) * 1e6:.0f}",
                        f"{statistics.median(busy) * 1e6:.0f} / {p99(busy) * 1e6:.0f}",
                        str(swapped[0]),
                    )
                )
        finally:
            engine.dispose()
    header = (
        "collections",
        "one swap ms (median of 20)",
        "µs per handle",
        "reader find_one µs, no swap (median / p99)",
        "reader find_one µs, swaps back to back (median / p99)",
        "swaps during the 1 s reader run",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
