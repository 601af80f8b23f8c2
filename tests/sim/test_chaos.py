"""Chaos: seeded random faults under 16-thread mixed load; every call's result checked against the data.

The workload and its invariants live in ``tests/sim/chaos.py`` (shared with ``benchmarks/bench_soak.py``):
nothing lost, nothing doubled, nothing stuck, and what each call *returned* (claimed jobs, optimistic
versions, upserts, deletions) is what is stored.  CI runs a fixed seed (reproducible);
``MONGOMANCY_CHAOS_SEED=<seed>`` runs another one, ``MONGOMANCY_CHAOS_SEED=random`` a fresh one (printed).
``MONGOMANCY_CHAOS_DURATION`` changes the fault phase (default 20 s, about 22 s in all).
"""

from __future__ import annotations

import os
import time

import pytest

from tests.sim.chaos import SEED_ENV, run_chaos, seed_from_env

DURATION_ENV = "MONGOMANCY_CHAOS_DURATION"
CI_SEED = 20261127


def test_chaos_nothing_lost_nothing_doubled_nothing_stuck_and_every_result_true():
    seed = seed_from_env() if os.environ.get(SEED_ENV) else CI_SEED
    duration = float(os.environ.get(DURATION_ENV, "20"))
    print(f"chaos seed {seed} (replay with {SEED_ENV}={seed})")
    started = time.monotonic()
    report = run_chaos(seed, duration, join_timeout=20.0)
    print(report.summary())
    if not report.ok:
        pytest.fail(f"chaos invariants broken; replay with {SEED_ENV}={seed}\n{report.summary()}")
    assert report.faults, "the controller injected no fault"
    # A liveness floor, not a throughput claim: 3,000-14,000 operations alone, ~400 under a full parallel
    # suite on a 2-core machine at load 25.
    assert sum(report.ops.values()) > 300, "the workers barely ran"
    assert time.monotonic() - started < 60 + duration - 20
