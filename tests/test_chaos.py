"""Chaos: seeded random faults under 16-thread mixed load; nothing lost, nothing doubled, nothing stuck.

The workload and its invariants live in ``tests/chaos.py`` (shared with ``benchmarks/bench_soak.py``).
Each run uses a fresh random seed and prints it; replay a failure with ``MONGOMANCY_CHAOS_SEED=<seed>``.
``MONGOMANCY_CHAOS_DURATION`` changes the fault phase (default 20 s, about 22 s in all).
"""

from __future__ import annotations

import os
import time

import pytest
from chaos import SEED_ENV, run_chaos, seed_from_env

from mongomancy import Engine
from mongomancy.testing import wait_for

DURATION_ENV = "MONGOMANCY_CHAOS_DURATION"


def test_chaos_nothing_lost_nothing_doubled_nothing_stuck():
    seed = seed_from_env()
    duration = float(os.environ.get(DURATION_ENV, "20"))
    print(f"chaos seed {seed} (replay with {SEED_ENV}={seed})")
    started = time.monotonic()
    report = run_chaos(seed, duration, join_timeout=20.0)
    print(report.summary())
    if not report.ok:
        pytest.fail(f"chaos invariants broken; replay with {SEED_ENV}={seed}\n{report.summary()}")
    assert report.faults, "the controller injected no fault"
    assert sum(report.ops.values()) > 1000, "the workers barely ran"
    assert time.monotonic() - started < 60 + duration - 20


@pytest.mark.xfail(
    strict=True,
    reason="known bug (found by the chaos run, seed 17): pymongo's hidden first attempt of a retryable "
    "insert landed, its own retry was refused (10107, NOT_APPLIED), so the engine's replay meets the _id and "
    "raises DuplicateKeyError; see RetryRun.failed in mongomancy/attempts.py",
)
def test_an_insert_whose_hidden_first_attempt_landed_is_not_reported_as_a_duplicate(
    sim_cluster, fast_heartbeats
):
    with Engine(uri=sim_cluster.uri, heartbeatFrequencyMS=100) as engine:
        wait_for(lambda: engine.topology().writable, 10, "a primary")
        things = engine.client.db.things
        sim_cluster.fail_command("insert", close_connection=True, after_forward=True)  # applied, reply lost
        sim_cluster.fail_command(
            "insert", code=10107, labels=["RetryableWriteError"]
        )  # pymongo's retry refused
        result = engine.insert_one(things, {"_id": "x"})
        assert result.inserted_id == "x"
        assert engine.count_documents(things, {"_id": "x"}) == 1
