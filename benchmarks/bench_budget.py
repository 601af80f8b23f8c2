"""The budget binds: how long a call takes when the primary holds every request, and what it says.

Run: ``python benchmarks/bench_budget.py [--budget 1.5] [--repeats 3]``.  Prints one markdown table.

For each fault (``blackhole``: the primary reads requests and never answers, handshakes included;
``delay``: it answers three budgets late) and each kind of call (a read, a write pymongo retries, a claim by
``find_one_and_update``, a write the server cannot retry, an ``Engine.run`` function), a fresh engine with
``RetryPolicy(budget=...)`` makes the call ``--repeats`` times on a fresh simulated replica set; the table
shows the slowest elapsed time, how far past the budget that is, and the exception (a read: nothing applied,
``RetryBudgetExhaustedError``; a write: it may have landed, ``OutcomeUnknownError``).  The promise: every
call returns or raises within the budget plus 0.5 s.
"""

from __future__ import annotations

import argparse
import collections
import time
from collections.abc import Callable
from typing import Any

from _common import markdown

from mongomancy import Engine, RetryPolicy
from mongomancy.testing import SimulatedReplicaSet, fast_heartbeats, wait_for

CALLS: dict[str, Callable[[Engine], Any]] = {
    "find_one": lambda e: e.find_one(e.client.db.things, {"_id": 0}),
    "insert_one": lambda e: e.insert_one(e.client.db.things, {"late": True}),
    "find_one_and_update": lambda e: e.find_one_and_update(
        e.client.db.things, {"state": "free"}, {"$set": {"state": "taken"}}
    ),
    "update_many": lambda e: e.update_many(e.client.db.things, {}, {"$inc": {"n": 1}}),
    "Engine.run": lambda e: e.run("inc", lambda c: c.db.things.update_one({"_id": 0}, {"$inc": {"n": 1}})),
}


def one_call(fault: str, call: Callable[[Engine], Any], budget: float) -> tuple[float, str]:
    with fast_heartbeats(), SimulatedReplicaSet() as rs:
        engine = Engine(uri=rs.uri, heartbeatFrequencyMS=100, retry_policy=RetryPolicy(budget=budget))
        try:
            wait_for(lambda: engine.topology().writable, 10, "a primary")
            engine.insert_many(
                engine.client.db.things, [{"_id": i, "n": 0, "state": "free"} for i in range(3)]
            )
            primary = rs.primary
            assert primary is not None
            if fault == "blackhole":
                rs.blackhole(primary)
            else:
                rs.delay(primary, budget * 3)
            started = time.monotonic()
            try:
                call(engine)
                outcome = "returned"
            except Exception as error:  # the table reports what the caller got
                outcome = type(error).__name__
            elapsed = time.monotonic() - started
            rs.clear_faults()
            return elapsed, outcome
        finally:
            engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--budget", type=float, default=1.5, help="RetryPolicy budget, seconds")
    parser.add_argument("--repeats", type=int, default=3, help="calls per cell (the slowest is shown)")
    args = parser.parse_args()
    rows = []
    for fault in ("blackhole", "delay"):
        for name, call in CALLS.items():
            runs = [one_call(fault, call, args.budget) for _ in range(args.repeats)]
            slowest = max(elapsed for elapsed, _ in runs)
            outcomes = collections.Counter(outcome for _, outcome in runs)
            rows.append(
                (
                    fault,
                    name,
                    f"{slowest:.2f}",
                    f"{slowest - args.budget:+.2f}",
                    ", ".join(f"{k} x{v}" for k, v in outcomes.most_common()),
                )
            )
    print(f"A primary holding every request; RetryPolicy(budget={args.budget}); slowest of {args.repeats}\n")
    print(markdown(("fault", "call", "slowest s", "past the budget s", "what the caller got"), rows))


if __name__ == "__main__":
    main()
