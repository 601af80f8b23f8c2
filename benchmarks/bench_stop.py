"""Signal to exit: how long ``mongomancy watch``, ``sim`` and ``demo`` take to stop on SIGINT / SIGTERM.

Each run starts ``python -m mongomancy.cli watch URI --json`` against one simulated replica set, waits for its
"watching" line on stderr, sends the signal and times the exit (a run that takes more than ``--hang`` seconds
counts as a hang and is killed).  Cases: SIGINT to a process started with SIGINT ignored (how a background job
of a non-interactive shell, and the CI test of issue 14, start it), SIGINT with the default disposition, and
SIGTERM.  ``--load N`` keeps N busy-looping processes running meanwhile, like a parallel test suite on a
small machine.  The child imports mongomancy like this script does (``PYTHONPATH=/a/checkout`` measures that
checkout).

``sim`` is timed from process start to its URI line too (target <= 1 s), and from the signal to the exit
with its backend process gone; ``demo`` (fewer runs: each starts a cluster and a workload) from the signal,
sent once its mongomancy run is going, to the exit.

    python benchmarks/bench_stop.py [--runs 50] [--load 2] [--hang 5] [--only watch|sim|demo]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from _common import markdown

# Appended, not prepended: tests.helpers comes from this checkout, mongomancy still from PYTHONPATH if set.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from mongomancy.testing import SimulatedReplicaSet
from tests.helpers import child_process, process_exists

#: Starts the command with SIGINT ignored (the disposition survives exec), as a non-interactive shell does.
_SIGINT_IGNORED = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "os.execv(sys.executable, sys.argv[1:])"
)


def signal_to_exit(
    proc: subprocess.Popen[str], stop_signal: signal.Signals, hang: float
) -> tuple[int, float] | None:
    """Send ``stop_signal``; (exit code, seconds to the exit), or None when still running after ``hang``."""
    sent = time.perf_counter()
    proc.send_signal(stop_signal)
    try:
        code = proc.wait(hang)
    except subprocess.TimeoutExpired:
        return None
    return code, time.perf_counter() - sent


def stop_once(uri: str, stop_signal: signal.Signals, sigint_ignored: bool, hang: float) -> float | None:
    """Seconds from the signal to the exit, or None when the process was still running after ``hang``."""
    command = [sys.executable, "-m", "mongomancy.cli", "watch", uri, "--json"]
    if sigint_ignored:
        command = [sys.executable, "-c", _SIGINT_IGNORED, *command]
    with child_process(command, cwd=None, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        if not line.startswith("watching "):
            raise SystemExit(f"watch did not start: {line!r}")
        stopped = signal_to_exit(proc, stop_signal, hang)
        if stopped is None:
            return None
        code, seconds = stopped
        if code != 0:
            raise SystemExit(f"watch exited {code} after {stop_signal.name}")
        return seconds


def sim_once(stop_signal: signal.Signals, hang: float) -> tuple[float, float | None]:
    """(start to URI line, signal to exit or None for a hang) of ``mongomancy sim --json``."""
    started = time.perf_counter()
    with child_process(
        [sys.executable, "-m", "mongomancy.cli", "sim", "--json"],
        cwd=None,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as proc:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        to_uri = time.perf_counter() - started
        stopped = signal_to_exit(proc, stop_signal, hang)
        if stopped is None:
            return to_uri, None
        code, seconds = stopped
        if code != 0 or process_exists(first["backend_pid"]):
            raise SystemExit(f"sim exited {code}; backend gone: {not process_exists(first['backend_pid'])}")
        return to_uri, seconds


def demo_once(stop_signal: signal.Signals, hang: float) -> float | None:
    """Signal to exit of ``mongomancy demo`` interrupted during its mongomancy run."""
    with child_process(
        [sys.executable, "-m", "mongomancy.cli", "demo", "--duration", "60", "--threads", "4"],
        cwd=None,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.strip() == "mongomancy ...":
                break
        time.sleep(1.0)  # into the run: workers busy, step-downs coming
        stopped = signal_to_exit(proc, stop_signal, hang)
        if stopped is None:
            return None
        code, seconds = stopped
        if code != 128 + stop_signal:
            raise SystemExit(f"demo exited {code} after {stop_signal.name}")
        return seconds


def row(name: str, times: list[float | None]) -> tuple[str, ...]:
    stopped = sorted(t for t in times if t is not None)
    return (
        name,
        str(len(times)),
        str(len(times) - len(stopped)),
        str(sum(1 for t in stopped if t > 1.0)),
        f"{statistics.median(stopped):.3f}" if stopped else "-",
        f"{stopped[math.ceil(0.95 * len(stopped)) - 1]:.3f}" if stopped else "-",  # nearest rank
        f"{stopped[-1]:.3f}" if stopped else "-",
    )


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
    parser.add_argument("--only", choices=("watch", "sim", "demo"), default=None)
    args = parser.parse_args()
    header = ("case", "runs", f"hangs > {args.hang:g} s", "> 1 s", "median s", "p95 s", "max s")
    rows = []
    starts: list[float] = []
    with busy_processes(args.load):
        if args.only in (None, "watch"):
            cases = [
                ("watch: SIGINT, started with SIGINT ignored", signal.SIGINT, True),
                ("watch: SIGINT", signal.SIGINT, False),
                ("watch: SIGTERM", signal.SIGTERM, False),
            ]
            with SimulatedReplicaSet(members=3) as cluster:
                for name, stop_signal, ignored in cases:
                    times = [
                        stop_once(cluster.uri, stop_signal, ignored, args.hang) for _ in range(args.runs)
                    ]
                    rows.append(row(name, times))
        if args.only in (None, "sim"):
            for stop_signal in (signal.SIGINT, signal.SIGTERM):
                runs = [sim_once(stop_signal, args.hang) for _ in range(max(1, args.runs // 2))]
                starts += [to_uri for to_uri, _ in runs]
                rows.append(row(f"sim: {stop_signal.name} (backend gone)", [t for _, t in runs]))
        if args.only in (None, "demo"):
            for stop_signal in (signal.SIGINT, signal.SIGTERM):
                times = [demo_once(stop_signal, args.hang) for _ in range(max(1, args.runs // 10))]
                rows.append(row(f"demo: {stop_signal.name}", times))
    print(f"Signal to exit (load: {args.load} busy processes, cpus={os.cpu_count()})\n")
    print(markdown(header, rows))
    if starts:
        starts.sort()
        print(
            f"\n`mongomancy sim` process start to URI line: median {statistics.median(starts):.3f} s, "
            f"max {starts[-1]:.3f} s over {len(starts)} runs (target <= 1 s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
