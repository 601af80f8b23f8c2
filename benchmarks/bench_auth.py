"""Configuration errors no wait can cure: how long until the caller hears of them.

Run: ``python benchmarks/bench_auth.py``.  On a simulated 3-member set with a user (SCRAM-SHA-256, 15,000
iterations as mongod's default), prints one markdown table, median and max of 5 fresh engines each (a fresh
engine is the worst case: the first command arrives while discovery is still running):

- wrong password, one call: time to ``FatalConfigurationError`` (mongomancy, budget 60 s) and to
  ``OperationFailure`` (plain pymongo);
- wrong password, 16 threads calling at once: time until the last of them has its error;
- ``?replicaSet=`` naming a set no member has: mongomancy vs plain pymongo (serverSelectionTimeoutMS=5000);
- recovery: the password is set back on the server while an engine holds the error; time until that engine's
  next call succeeds (it re-checks every second; pymongo re-discovers the primary within a heartbeat, 100 ms
  here, 10 s by default).
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from collections.abc import Callable

from _common import markdown
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from mongomancy import Engine, FatalConfigurationError, RetryPolicy
from mongomancy.testing import SimulatedReplicaSet, fast_heartbeats, wait_for

ROUNDS = 5
USER, PASSWORD, WRONG = "ops", "s3cret-Pass", "not-the-Pass"


def uri(rs: SimulatedReplicaSet, password: str, set_name: str | None = None) -> str:
    hosts = ",".join(m.address for m in rs.members)
    return f"mongodb://{USER}:{password}@{hosts}/?replicaSet={set_name or rs.set_name}"


def engine_error_time(target: str, threads: int = 1) -> float:
    """Seconds from the calls until the last caller got FatalConfigurationError (fresh engine)."""
    engine = Engine(uri=target, heartbeatFrequencyMS=100, retry_policy=RetryPolicy(budget=60))
    got: list[float] = []
    barrier = threading.Barrier(threads + 1)

    def call() -> None:
        barrier.wait()
        try:
            engine.find_one(engine.client.db.things, {})
        except FatalConfigurationError:
            got.append(time.monotonic())

    workers = [threading.Thread(target=call) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.monotonic()
    for worker in workers:
        worker.join()
    engine.dispose()
    if len(got) != threads:
        raise AssertionError(f"only {len(got)} of {threads} callers got FatalConfigurationError")
    return max(got) - started


def pymongo_error_time(target: str) -> float:
    client: MongoClient[dict[str, object]] = MongoClient(target, serverSelectionTimeoutMS=5000)
    started = time.monotonic()
    try:
        client.db.things.find_one({})
    except PyMongoError:
        return time.monotonic() - started
    finally:
        client.close()
    raise AssertionError("plain pymongo did not fail")


def recovery_time(rs: SimulatedReplicaSet) -> float:
    rs.set_password(USER, "rotated-Pass")
    engine = Engine(uri=uri(rs, PASSWORD), heartbeatFrequencyMS=100, retry_policy=RetryPolicy(budget=60))
    try:
        with contextlib.suppress(FatalConfigurationError):
            engine.find_one(engine.client.db.things, {})
        rs.set_password(USER, PASSWORD)
        started = time.monotonic()

        def works() -> bool:
            try:
                engine.find_one(engine.client.db.things, {})
            except FatalConfigurationError:
                return False
            return True

        wait_for(works, 30, "recovery")
        return time.monotonic() - started
    finally:
        engine.dispose()


def row(label: str, measure: Callable[[], float]) -> tuple[str, str, str]:
    times = [measure() for _ in range(ROUNDS)]
    return label, f"{statistics.median(times) * 1e3:.0f}", f"{max(times) * 1e3:.0f}"


def main() -> None:
    with SimulatedReplicaSet(users={USER: PASSWORD}) as rs, fast_heartbeats():
        rows = [
            row("wrong password, 1 call: mongomancy", lambda: engine_error_time(uri(rs, WRONG))),
            row("wrong password, 1 call: plain pymongo", lambda: pymongo_error_time(uri(rs, WRONG))),
            row(
                "wrong password, 16 threads at once: mongomancy",
                lambda: engine_error_time(uri(rs, WRONG), 16),
            ),
            row("replicaSet=nope: mongomancy", lambda: engine_error_time(uri(rs, PASSWORD, "nope"))),
            row(
                "replicaSet=nope: plain pymongo (5 s selection timeout)",
                lambda: pymongo_error_time(uri(rs, PASSWORD, "nope")),
            ),
            row("password set back: old engine works again after", lambda: recovery_time(rs)),
        ]
    print(markdown(("case", "median ms", "max ms"), rows))


if __name__ == "__main__":
    main()
