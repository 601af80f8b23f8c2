"""16 worker threads, mixed reads and writes, while the primary is stepped down 5 times.

Elections of 0 s and 2 s, with refusals (the old primary answers NotWritablePrimary) and hang-ups (it closes
its connections mid-command).  Nothing but an honest ``OutcomeUnknownError`` (a write the server cannot retry,
cut off after sending) may reach a worker, nothing may be lost or applied twice, and the hooks must run
exactly once per primary change.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from bson import ObjectId

from mongomancy import ChangeKind, Engine, OutcomeUnknownError, RetryPolicy
from mongomancy.testing import wait_for

WORKERS = 16
COUNTERS = 8
STEP_DOWNS = [  # (election seconds, hang up)
    (0.0, False),
    (2.0, True),
    (0.0, True),
    (2.0, False),
    (0.0, False),
]


class Worker(threading.Thread):
    def __init__(self, index: int, engine: Engine, stop: threading.Event) -> None:
        super().__init__(name=f"load-worker-{index}")
        self.index = index
        self.engine = engine
        self.stop_event = stop
        self.acked_inserts: list[ObjectId] = []
        self.acked_incs: Counter[int] = Counter()
        self.unknown_incs: Counter[int] = Counter()
        self.errors: list[BaseException] = []
        self.unknown_multi_updates = 0
        self.operations = 0

    def run(self) -> None:
        things = self.engine.client.db.things
        counters = self.engine.client.db.counters
        step = 0
        try:
            while not self.stop_event.is_set():
                step += 1
                kind = (self.index + step) % 4
                if kind == 0:
                    document = {"worker": self.index, "step": step}
                    self.acked_inserts.append(self.engine.insert_one(things, document).inserted_id)
                elif kind == 1:
                    counter = (self.index + step) % COUNTERS
                    try:
                        self.engine.update_one(counters, {"_id": counter}, {"$inc": {"n": 1}})
                        self.acked_incs[counter] += 1
                    except OutcomeUnknownError:
                        self.unknown_incs[counter] += 1  # reported, never replayed
                elif kind == 2:
                    self.engine.find_one(things, {"worker": self.index})
                else:
                    try:
                        self.engine.update_many(things, {"worker": self.index}, {"$set": {"touched": step}})
                    except OutcomeUnknownError:
                        self.unknown_multi_updates += 1  # the server cannot retry it: reported, not replayed
                self.operations += 1
        except BaseException as error:  # collected: the assertion below names it
            self.errors.append(error)


@pytest.mark.slow
def test_sixteen_workers_through_five_step_downs(sim_cluster, fast_heartbeats):
    changes: list = []
    lock = threading.Lock()

    def hook(engine, change) -> None:
        with lock:
            changes.append(change)

    def primary_changes() -> int:
        with lock:
            return sum(change.kind is ChangeKind.PRIMARY_CHANGED for change in changes)

    engine = Engine(uri=sim_cluster.uri, heartbeatFrequencyMS=100, retry_policy=RetryPolicy(budget=30))
    engine.register_hook(hook)
    try:
        counters = engine.client.db.counters
        engine.insert_many(counters, [{"_id": i, "n": 0} for i in range(COUNTERS)])
        stop = threading.Event()
        workers = [Worker(i, engine, stop) for i in range(WORKERS)]
        for worker in workers:
            worker.start()

        def total_operations() -> int:
            return sum(worker.operations for worker in workers)

        for number, (election_seconds, hang_up) in enumerate(STEP_DOWNS, 1):
            before = total_operations()
            wait_for(lambda b=before: total_operations() >= b + 200, 30, "traffic before the step-down")
            sim_cluster.step_down(election_seconds=election_seconds, hang_up=hang_up)
            wait_for(lambda n=number: primary_changes() == n, 30, f"primary change {number}")
        before = total_operations()
        wait_for(lambda: total_operations() >= before + 200, 30, "traffic after the last step-down")
        stop.set()
        for worker in workers:
            worker.join(60)
        assert not any(worker.is_alive() for worker in workers), "a worker is stuck"

        errors = [error for worker in workers for error in worker.errors]
        assert errors == [], f"exceptions reached the workers: {errors[:3]!r}"

        acked = [oid for worker in workers for oid in worker.acked_inserts]
        stored = Counter(
            doc["_id"] for doc in engine.find(engine.client.db.things, {}, projection={"_id": True})
        )
        assert len(acked) > 0
        assert all(stored[oid] == 1 for oid in acked), "an acknowledged insert is missing or duplicated"
        assert sum(stored.values()) == len(acked)  # nothing inserted that a worker did not see acknowledged

        acked_incs: Counter[int] = sum((worker.acked_incs for worker in workers), Counter())
        unknown: Counter[int] = sum((worker.unknown_incs for worker in workers), Counter())
        for document in engine.find(counters, {}):
            counter = document["_id"]
            assert acked_incs[counter] <= document["n"] <= acked_incs[counter] + unknown[counter], counter

        stats = engine.stats()
        assert primary_changes() == len(STEP_DOWNS) == stats.failovers  # hooks: once per change
        assert stats.hook_failures == 0 and stats.queue_length == 0
    finally:
        engine.dispose()
