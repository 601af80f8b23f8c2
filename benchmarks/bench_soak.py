"""Soak: the chaos workload of ``tests/sim/test_chaos.py`` for a chosen duration (not run by CI).

Run: ``python benchmarks/bench_soak.py --duration 600 [--seed N] [--threads 16]``.  The workload, its
faults and its invariants are ``tests/sim/chaos.py`` (shared with the CI test, no copy here).  Prints a
markdown table of the result and the list of problems, if any; the exit status is 1 when an invariant
broke.  Replay a failure with ``--seed`` (or ``MONGOMANCY_CHAOS_SEED``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.sim.chaos import run_chaos, seed_from_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of faults")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    seed = args.seed if args.seed is not None else seed_from_env()
    report = run_chaos(seed, args.duration, threads=args.threads, join_timeout=60.0, progress=print)
    stats = report.engine_stats
    faults = report.fault_counts()
    rows = [
        ("seed", str(seed)),
        ("fault phase / whole run", f"{report.duration:.0f} s / {report.elapsed:.0f} s"),
        ("worker threads", str(args.threads)),
        (
            "operations",
            f"{sum(report.ops.values())} ({', '.join(f'{k} {v}' for k, v in sorted(report.ops.items()))})",
        ),
        (
            "faults injected",
            f"{len(report.faults)} ({', '.join(f'{k} {v}' for k, v in sorted(faults.items()))})",
        ),
        ("failovers seen by the engine", str(stats.failovers if stats else "?")),
        ("engine retries", str(stats.retries if stats else "?")),
        ("outcome-unknown reported to workers", str(report.outcome_unknown)),
        ("slowest single operation", f"{report.max_latency:.2f} s ({report.slowest_op})"),
        ("invariant violations", str(len(report.problems))),
    ]
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    for problem in report.problems:
        print(f"\nPROBLEM: {problem}")
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
