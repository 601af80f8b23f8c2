"""Hook cost: the ``Database`` reconnect hook rebinding the handles of 10, 100 and 1,000 collections.

Run: ``python benchmarks/bench_hooks.py``.  Prints one markdown table: for each size, the time of one
``Database.invalidate_cache_hook`` call (what the supervisor runs once per change; here called directly
with a CLIENT_REPLACED change after a real ``engine.reconnect()``, median of 20), and the latency of a
worker's ``find_one`` on one of those collections, 1 s each: with no swap going on; while another thread
swaps every 20 ms (far more often than any real failover); while another thread holds the database's swap
lock for the whole second (readers never take it, so they are not blocked); and while swaps run back to
back, a pure-Python loop that holds the GIL (that column measures GIL contention, not locking: each
``find_one`` needs the GIL several times, for its own thread and the simulator's member threads in the
same process, and waits up to the 5 ms switch interval each time).
"""

from __future__ import annotations

import statistics
import threading
import time

from _common import markdown

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


def with_swapper(db, engine, change, target, pause: float) -> tuple[list[float], int]:
    """Reader latencies for 1 s while another thread runs the hook, ``pause`` seconds apart."""
    stop = threading.Event()
    swapped = [0]

    def swap() -> None:
        while not stop.is_set():
            db.invalidate_cache_hook(engine, change)
            swapped[0] += 1
            if pause:
                stop.wait(pause)

    swapper = threading.Thread(target=swap)
    swapper.start()
    samples = reader_latencies(target, 1.0)
    stop.set()
    swapper.join()
    return samples, swapped[0]


def with_lock_held(db, target) -> list[float]:
    """Reader latencies while another thread holds the database's swap lock (as a very slow swap would)."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db._lock:
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    samples = reader_latencies(target, 1.0)
    release.set()
    holder.join()
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
                paced, paced_swaps = with_swapper(db, engine, change, target, pause=0.02)
                busy, busy_swaps = with_swapper(db, engine, change, target, pause=0.0)
                held = with_lock_held(db, target)
                db.close()
                swap = statistics.median(swaps)
                rows.append(
                    (
                        str(size),
                        f"{swap * 1e3:.2f}",
                        f"{swap / size * 1e6:.1f}",
                        f"{statistics.median(quiet) * 1e6:.0f} / {p99(quiet) * 1e6:.0f}",
                        f"{statistics.median(paced) * 1e6:.0f} / {p99(paced) * 1e6:.0f} ({paced_swaps})",
                        f"{max(held) * 1e6:.0f} ({len(held)} reads)",
                        f"{statistics.median(busy) * 1e6:.0f} / {p99(busy) * 1e6:.0f} ({busy_swaps})",
                    )
                )
        finally:
            engine.dispose()
    header = (
        "collections",
        "one swap ms (median of 20)",
        "µs per handle",
        "reader find_one µs, no swap (median / p99)",
        "reader µs, a swap every 20 ms (median / p99 (swaps))",
        "reader max µs while the lock is held 1 s",
        "reader µs, swaps back to back: GIL-bound worst case (median / p99 (swaps))",
    )
    print(markdown(header, rows))


if __name__ == "__main__":
    main()
