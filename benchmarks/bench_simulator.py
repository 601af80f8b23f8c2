"""Benchmark of the simulated replica set: start/stop, failover detection, and the cost of the member hop.

Run: ``python benchmarks/bench_simulator.py``.  Prints one markdown table:

(a) the backend start (process start to its first answer) on the pinned SQLite and on the platform's, and
    the cluster start and stop times;
(b) with ``heartbeatFrequencyMS=500``: time from ``step_down()`` to pymongo's topology showing the new
    primary, median/min/max of 10, with awaitable (streaming) hellos and with plain polling;
(c) ``find_one`` by ``_id`` through a member vs straight to the backend, interleaved in one run, as a ratio;
(d) the backend's own CPU time per ``find_one`` (from /proc, so other load on the machine does not count)
    with its default WARNING logging and with INFO (a log line per command).
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from _common import markdown
from pymongo import MongoClient

from mongomancy.testing import NxBackend, SimulatedReplicaSet
from mongomancy.testing.nx_launcher import LOG_ENV

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


def backend_start(sqlite: str, n: int = 7) -> tuple[float, str]:
    """Median seconds from launching the backend to its first answer, and the SQLite version it runs."""
    starts, version = [], ""
    for _ in range(n):
        backend = NxBackend(sqlite=sqlite)
        t0 = time.perf_counter()
        backend.start()
        starts.append(time.perf_counter() - t0)
        assert backend.runtime is not None
        version = backend.runtime.sqlite_version
        backend.stop()
    return statistics.median(starts), version


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_cpu_per_find_one(log_level: str, n: int = 3000) -> float:
    """The backend process's CPU seconds per ``find_one`` by ``_id`` (Linux /proc)."""
    saved = os.environ.get(LOG_ENV)
    os.environ[LOG_ENV] = log_level
    try:
        with NxBackend() as backend, MongoClient(backend.uri) as client:
            assert backend.pid is not None
            client.bench.c.insert_one({"_id": 1, "x": "y" * 100})
            for _ in range(100):
                client.bench.c.find_one({"_id": 1})
            before = _cpu_seconds(backend.pid)
            for _ in range(n):
                client.bench.c.find_one({"_id": 1})
            return (_cpu_seconds(backend.pid) - before) / n
    finally:
        if saved is None:
            os.environ.pop(LOG_ENV, None)
        else:
            os.environ[LOG_ENV] = saved


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
    rows = []
    for sqlite in ("pinned", "platform"):
        seconds, version = backend_start(sqlite)
        rows.append((f"backend start, {sqlite} SQLite {version} (median of 7)", f"{seconds * 1000:.0f} ms"))
    start, stop = start_stop()
    rows += [
        ("cluster start: 3 members + backend (median of 5)", f"{start * 1000:.0f} ms"),
        ("cluster stop", f"{stop * 1000:.0f} ms"),
    ]
    for streaming in (True, False):
        t = failover(streaming)
        label = "awaitable hello" if streaming else "polling"
        rows.append(
            (
                f"step_down -> pymongo sees new primary ({label}, hb 500 ms)",
                f"median {statistics.median(t) * 1e3:.1f} ms, min {min(t) * 1e3:.1f}, max {max(t) * 1e3:.1f}",
            )
        )
    member, backend = hop_ratio()
    rows.append(("find_one via member", f"{member * 1e6:.0f} us"))
    rows.append(("find_one direct to backend", f"{backend * 1e6:.0f} us"))
    rows.append(("member hop ratio", f"{member / backend:.2f}x"))
    for level in ("WARNING", "INFO"):
        rows.append(
            (
                f"backend CPU per find_one, log level {level}",
                f"{backend_cpu_per_find_one(level) * 1e6:.0f} us",
            )
        )
    print(markdown(("measure", "value"), rows))


if __name__ == "__main__":
    main()
