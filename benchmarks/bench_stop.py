"""Signal to exit: how long ``mongomancy watch`` takes to stop on SIGINT / SIGTERM, over many runs.

Each run starts ``python -m mongomancy.cli watch URI --json`` against one simulated replica set, waits for its
"watching" line on stderr, sends the signal and times the exit (a run that takes more than ``--hang`` seconds
counts as a hang and is killed).  Cases: SIGINT to a process started with SIGINT ignored (how a background job
of a non-interactive shell, and the CI test of issue 14, start it), SIGINT with the default disposition, and
SIGTERM.  ``--load N`` keeps N busy-looping processes running meanwhile, like a parallel test suite on a
small machine.  The child imports mongomancy like this script does (``PYTHONPATH=/a/checkout`` measures that
checkout).

    python benchmarks/bench_stop.py [--runs 50] [--load 2] [--hang 5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

from _common import markdown

from mongomancy.testing import SimulatedReplicaSet

#: Starts the command with SIGINT ignored (the disposition survives exec), as a non-interactive shell does.
_SIGINT_IGNORED = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "os.execv(sys.executable, sys.argv[1:])"
)


def stop_once(uri: str, stop_signal: signal.Signals, sigint_ignored: bool, hang: float) -> float | None:
    """Seconds from the signal to the exit, or None when the process was still running after ``hang``."""
    command = [sys.executable, "-m", "mongomancy.cli", "watch", uri, "--json"]
    if sigint_ignored:
        command = [sys.executable, "-c", _SIGINT_IGNORED, *command]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        if not line.startswith("watching "):
            raise SystemExit(f"watch did not start: {line!r}")
        sent = time.perf_counter()
        proc.send_signal(stop_signal)
        try:
            code = proc.wait(hang)
        except subprocess.TimeoutExpired:
            return None
        if code != 0:
            raise SystemExit(f"watch exited {code} after {stop_signal.name}")
        return time.perf_counter() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


@contextlib.contextmanager
def busy_processes(count: int) -> Iterator[None]:
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--load", type=int, default=2, help="busy-looping processes meanwhile")
    parser.add_argument("--hang", type=float, default=5.0, help="seconds after which a run counts as a hang")
    args = parser.parse_args()
    cases = [
        ("SIGINT, started with SIGINT ignored", signal.SIGINT, True),
        ("SIGINT", signal.SIGINT, False),
        ("SIGTERM", signal.SIGTERM, False),
    ]
    rows = []
    with SimulatedReplicaSet(members=3) as cluster, busy_processes(args.load):
        for name, stop_signal, ignored in cases:
            times = [stop_once(cluster.uri, stop_signal, ignored, args.hang) for _ in range(args.runs)]
            stopped = sorted(t for t in times if t is not None)
            hangs = len(times) - len(stopped)
            over_1s = sum(1 for t in stopped if t > 1.0)
            rows.append(
                (
                    name,
                    str(args.runs),
                    str(hangs),
                    str(over_1s),
                    f"{statistics.median(stopped):.3f}" if stopped else "-",
                    f"{stopped[int(0.95 * (len(stopped) - 1))]:.3f}" if stopped else "-",
                    f"{stopped[-1]:.3f}" if stopped else "-",
                )
            )
    header = ("case", "runs", f"hangs > {args.hang:g} s", "> 1 s", "median s", "p95 s", "max s")
    print(f"`mongomancy watch` signal to exit (load: {args.load} busy processes, cpus={os.cpu_count()})\n")
    print(markdown(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
