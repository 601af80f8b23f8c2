"""Benchmark of the simulated replica set: start/stop, failover detection, and the cost of the member hop.

Run: ``python benchmarks/bench_simulator.py``.  Prints one table:

(a) with ``heartbeatFrequencyMS=500``: time from ``step_down()`` to pymongo's topology showing the new
    primary, median/min/max of 10, with awaitable (streaming) hellos and with plain polling;
(b) ``find_one`` by ``_id`` through a member vs straight to the backend, interleaved in one run, as a ratio;
plus the cluster start and stop times.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from pymongo import MongoClient

from mongomancy.testing import SimulatedReplicaSet

ROUNDS = 10


def start_stop(n: int = 5) -> tuple[float, float]:
    starts, stops = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        rs = SimulatedReplicaSet()
        t1 = time.perf_counter()
        rs.close()
        starts.append(t1 - t0)
        stops.append(time.perf_counter() - t1)
    return statistics.median(starts), statistics.median(stops)


def failover(streaming: bool) -> list[float]:
    times = []
    with SimulatedReplicaSet(streaming=streaming) as rs:
        client: MongoClient[dict[str, Any]] = MongoClient(rs.uri, heartbeatFrequencyMS=500)
        try:
            client.admin.command("ping")
            for _ in range(ROUNDS):
                t0 = time.perf_counter()
                new = rs.step_down()
                want = ("127.0.0.1", rs.members[new].port)
                deadline = t0 + 10
                while client.primary != want and time.perf_counter() < deadline:
                    time.sleep(0.0005)
                times.append(time.perf_counter() - t0)
                time.sleep(0.6)  # let monitors settle into their steady state before the next round
        finally:
            client.close()
    return times


def hop_ratio(batches: int = 20, per_batch: int = 200) -> tuple[float, float]:
    with SimulatedReplicaSet() as rs:
        via: MongoClient[dict[str, Any]] = MongoClient(rs.uri)
        direct: MongoClient[dict[str, Any]] = MongoClient(rs.backend_uri)
        try:
            via.bench.c.insert_one({"_id": 1, "x": "y" * 100})
            member_t, backend_t = [], []
            for c in (via, direct):  # warm up
                for _ in range(50):
                    c.bench.c.find_one({"_id": 1})
            for _ in range(batches):
                for c, out in ((via, member_t), (direct, backend_t)):
                    t0 = time.perf_counter()
                    for _ in range(per_batch):
                        c.bench.c.find_one({"_id": 1})
                    out.append((time.perf_counter() - t0) / per_batch)
        finally:
            via.close()
            direct.close()
    return statistics.median(member_t), statistics.median(backend_t)


def main() -> None:
    start, stop = start_stop()
    rows = [
        ("cluster start (median of 5)", f"{start * 1000:.0f} ms"),
        ("cluster stop", f"{stop * 1000:.0f} ms"),
    ]
    for streaming in (True, False):
        t = failover(streaming)
        label = "awaitable hello" if streaming else "polling"
        rows.append(
            (
                f"step_down -> pymongo sees new primary ({label}, hb 500 ms)",
                f"median {statistics.median(t) * 1e3:.1f} ms  min {min(t) * 1e3:.1f}  max {max(t) * 1e3:.1f}",
            )
        )
    member, backend = hop_ratio()
    rows.append(("find_one via member", f"{member * 1e6:.0f} us"))
    rows.append(("find_one direct to backend", f"{backend * 1e6:.0f} us"))
    rows.append(("member hop ratio", f"{member / backend:.2f}x"))
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
