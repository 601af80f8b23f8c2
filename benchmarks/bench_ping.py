"""``mongomancy-ping`` from process start to exit: healthy, refused, and ``--wait`` across an election.

Cases (median, min and max of ``--runs`` rounds, each round running every case once in a rotating order,
after one warm-up run):

- healthy: ``--direct`` to one member and the whole replica set, the installed script and ``bin/`` from the
  checkout, beside a minimal ``python -c`` pymongo ping; target <= 0.3 s;
- refused: one closed port, and a three-seed replica-set URI whose seeds all refuse; target <= 1 s;
- ``--require-primary --wait 30`` while no primary exists: the test elects one and times from the moment the
  simulator elected it to the probe's exit (pymongo's own heartbeat is 10 s; target about 1 s).

    python benchmarks/bench_ping.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import markdown

# Appended, not prepended: tests.helpers comes from this checkout, mongomancy still from PYTHONPATH if set.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from mongomancy.testing import SimulatedReplicaSet, wait_for
from tests.helpers import child_process

ROOT = Path(__file__).resolve().parent.parent


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wall(cmd: list[str], expect: int) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != expect:
        raise SystemExit(f"{cmd} exited {proc.returncode}, not {expect}: {proc.stdout!r} {proc.stderr!r}")
    return elapsed


def election_to_exit(cluster: SimulatedReplicaSet, script: str) -> float:
    """Seconds from the election to the exit of a probe waiting for a primary."""
    cluster.step_down(election_seconds=120)  # no primary until elected below
    before = cluster.count("ping")
    with child_process(
        [script, cluster.uri, "--require-primary", "--wait", "30", "--quiet"],
        cwd=None,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as proc:
        wait_for(lambda: cluster.count("ping") > before, 30, "the probe's first ping")
        time.sleep(0.3)  # let the probe settle into waiting for a primary (scenario, not synchronisation)
        cluster.elect(wait=True)
        elected = time.perf_counter()
        code = proc.wait(30)
        took = time.perf_counter() - elected
    if code != 0:
        raise SystemExit(f"the waiting probe exited {code}")
    return took


def summary(times: list[float]) -> tuple[str, str, str]:
    return f"{statistics.median(times):.3f}", f"{min(times):.3f}", f"{max(times):.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    script = shutil.which("mongomancy-ping") or str(Path(sys.executable).parent / "mongomancy-ping")
    rows = []
    with SimulatedReplicaSet(members=3) as cluster:
        address = cluster.members[0].address
        minimal = (
            f"import pymongo; c = pymongo.MongoClient('mongodb://{address}/', directConnection=True); "
            "c.admin.command('ping'); c.close()"
        )
        refused_set = ",".join(f"127.0.0.1:{closed_port()}" for _ in range(3))
        cases: list[tuple[str, list[str], int, str]] = [
            ("python -c (pymongo ping), healthy", [sys.executable, "-c", minimal], 0, "-"),
            ("mongomancy-ping --direct, healthy", [script, address, "--direct", "--quiet"], 0, "0.3"),
            ("mongomancy-ping replica set, healthy", [script, cluster.uri, "--quiet"], 0, "0.3"),
            (
                "bin/mongomancy-ping --direct, healthy",
                [sys.executable, str(ROOT / "bin/mongomancy-ping"), address, "--direct", "--quiet"],
                0,
                "0.3",
            ),
            ("mongomancy-ping, 1 seed refused", [script, f"127.0.0.1:{closed_port()}", "--quiet"], 2, "1"),
            (
                "mongomancy-ping, 3 seeds refused",
                [script, f"mongodb://{refused_set}/?replicaSet=rs0", "--quiet"],
                2,
                "1",
            ),
        ]
        for _name, cmd, expect, _target in cases:  # warm the page cache and .pyc files
            wall(cmd, expect)
        times: dict[str, list[float]] = {name: [] for name, *_ in cases}
        for round_number in range(args.runs):  # interleaved, in a rotating order: load changes hit all alike
            shift = round_number % len(cases)
            for name, cmd, expect, _target in cases[shift:] + cases[:shift]:
                times[name].append(wall(cmd, expect))
        rows += [(name, *summary(times[name]), target) for name, _cmd, _expect, target in cases]
        elections = [election_to_exit(cluster, script) for _ in range(max(3, args.runs // 2))]
        rows.append(("--require-primary --wait: election to exit", *summary(elections), "~1"))
    print(f"`mongomancy-ping` wall time, process start to exit (runs={args.runs}, cpus={os.cpu_count()})\n")
    print(markdown(("case", "median s", "min s", "max s", "target s"), rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
