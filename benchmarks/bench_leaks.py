"""Leaks: 1,000 ``engine.reconnect()`` calls; threads and resident memory before and after.

Run: ``python benchmarks/bench_leaks.py [--reconnects 1000]``.  Prints one markdown table.  Each reconnect
makes a new ``MongoClient`` (with its monitor threads and pool), runs the hooks and closes the old client;
a ``Database`` with 10 collections is registered so its hook rebinds handles each time, and a ``find_one``
runs after every reconnect so each new client really connects.  "After" is measured once the old clients'
threads have ended (pymongo stops them asynchronously), and after a ``gc.collect()``.  Then ``--threads``
(5,000) short-lived threads each run one ``find_one``: the engine's per-thread success cells must not grow
with them (a dead thread's cell is folded into a total).
"""

from __future__ import annotations

import argparse
import gc
import threading
import time

from mongomancy import Database, Engine
from mongomancy.testing import SimulatedReplicaSet, fast_heartbeats, wait_for
from mongomancy.types import CollectionDefinition


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def app_threads() -> int:
    return sum(not t.name.startswith("mongomancy-sim-") for t in threading.enumerate())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reconnects", type=int, default=1_000)
    parser.add_argument("--threads", type=int, default=5_000)
    args = parser.parse_args()
    with fast_heartbeats(), SimulatedReplicaSet() as rs:
        engine = Engine(uri=rs.uri, heartbeatFrequencyMS=100)
        try:
            wait_for(lambda: engine.topology().writable, 10, "a primary")
            db = Database(engine, "leaks")
            collections = db.extend(*(CollectionDefinition(name=f"c{i}") for i in range(10)))
            collections[0].insert_one({"_id": 1})
            for _ in range(20):  # warm up: first clients, pools, caches
                engine.reconnect()
                collections[0].find_one({"_id": 1})
            time.sleep(1.0)
            gc.collect()
            threads_before, rss_before = app_threads(), rss_kib()
            t0 = time.monotonic()
            for _ in range(args.reconnects):
                engine.reconnect()
                collections[0].find_one({"_id": 1})
            took = time.monotonic() - t0
            wait_for(lambda: app_threads() <= threads_before, 30, "the old clients' threads to end")
            gc.collect()
            threads_after, rss_after = app_threads(), rss_kib()
            replacements = engine.stats().client_replacements
            succeeded_before = engine.stats().succeeded
            for start in range(0, args.threads, 50):
                wave = [
                    threading.Thread(target=collections[0].find_one, args=({"_id": 1},))
                    for _ in range(min(50, args.threads - start))
                ]
                for thread in wave:
                    thread.start()
                for thread in wave:
                    thread.join()
            counted = engine.stats().succeeded - succeeded_before
            cells = engine._counters.live_success_cells
        finally:
            engine.dispose()
    rows = [
        ("reconnects", f"{args.reconnects} (client replacements counted: {replacements})"),
        ("time per reconnect + find_one", f"{took / args.reconnects * 1e3:.1f} ms"),
        ("threads before / after", f"{threads_before} / {threads_after}"),
        ("VmRSS before / after", f"{rss_before / 1024:.1f} MiB / {rss_after / 1024:.1f} MiB"),
        ("VmRSS growth", f"{(rss_after - rss_before) / 1024:+.1f} MiB"),
        ("VmRSS growth per reconnect", f"{(rss_after - rss_before) / args.reconnects:+.2f} KiB"),
        (f"{args.threads} short-lived threads, one find_one each: successes counted", str(counted)),
        ("per-thread success cells kept afterwards", str(cells)),
    ]
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
