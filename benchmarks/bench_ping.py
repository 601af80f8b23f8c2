"""Wall time of ``mongomancy-ping`` from process start to exit against a local member, beside a minimal
``python -c`` pymongo ping.  Median of 10 runs each; target <= 0.3 s.

    python benchmarks/bench_ping.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from mongomancy.testing import SimulatedReplicaSet

ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.3


def wall(cmd: list[str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, cwd=ROOT, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]} exited {proc.returncode}: {proc.stdout!r} {proc.stderr!r}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    script = shutil.which("mongomancy-ping") or str(Path(sys.executable).parent / "mongomancy-ping")
    with SimulatedReplicaSet(members=1) as cluster:
        address = cluster.members[0].address
        minimal = (
            f"import pymongo; c = pymongo.MongoClient('mongodb://{address}/', directConnection=True); "
            "c.admin.command('ping'); c.close()"
        )
        cases = {
            "python -c (pymongo ping)": [sys.executable, "-c", minimal],
            "mongomancy-ping --direct": [script, address, "--direct", "--quiet"],
            "mongomancy-ping (replica set)": [script, cluster.uri, "--quiet"],
            "bin/mongomancy-ping --direct": [
                sys.executable,
                str(ROOT / "bin/mongomancy-ping"),
                address,
                "--direct",
            ],
        }
        for cmd in cases.values():  # warm the page cache and .pyc files
            wall(cmd)
        results = {name: [wall(cmd) for _ in range(args.runs)] for name, cmd in cases.items()}
    print(
        f"{'command':32} {'median s':>9} {'min s':>7} {'max s':>7}"
        f"   (runs={args.runs}, cpus={os.cpu_count()})"
    )
    for name, times in results.items():
        print(f"{name:32} {statistics.median(times):9.3f} {min(times):7.3f} {max(times):7.3f}")
    ours = statistics.median(results["mongomancy-ping --direct"])
    print(f"target <= {TARGET} s: {'met' if ours <= TARGET else 'NOT met'} ({ours:.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
