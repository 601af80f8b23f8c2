"""The examples run against the simulated replica set: the batch job through a step-down, the daemon until
SIGTERM."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys

from mongomancy.testing import SimulatedReplicaSet
from tests.helpers import ROOT, child_process


def example(script: str, *args: str) -> contextlib.AbstractContextManager[subprocess.Popen[str]]:
    """``examples/<script>`` running, stdout and stderr on one pipe; killed if the test leaves it running."""
    return child_process(
        [sys.executable, f"examples/{script}", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def test_batch_job_survives_a_step_down(sim_cluster: SimulatedReplicaSet) -> None:
    with example("batch_job.py", sim_cluster.uri, "--threads", "4", "--jobs", "600") as proc:
        assert proc.stdout is not None
        started = proc.stdout.readline()
        assert started.startswith("started batch"), started
        sim_cluster.step_down(election_seconds=0.5)
        rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, rest
    assert "600/600 jobs stored, progress counter +600" in rest


def test_daemon_rides_a_failover_and_stops_on_sigterm(sim_cluster: SimulatedReplicaSet) -> None:
    with example("daemon.py", sim_cluster.uri, "--interval", "0.05", "--name", "t") as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("beat 1 ")
        sim_cluster.step_down(election_seconds=0.3)
        for line in proc.stdout:  # until the daemon saw the failover
            if "failovers=1" in line:
                break
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, rest
    assert "received SIGTERM, stopping" in rest and "stopped cleanly after" in rest


def test_batch_job_embedded_default() -> None:
    proc = subprocess.run(
        [sys.executable, "examples/batch_job.py", "--jobs", "200"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "200/200 jobs stored" in proc.stdout
