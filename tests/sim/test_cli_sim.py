"""``mongomancy sim``: the URI on the first line, a usable replica set, step-downs on a timer, and a stop
within a second of Ctrl-C or SIGTERM that leaves no process behind (checked by PID)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from mongomancy.cli import cli
from tests.helpers import child_process, process_exists

#: The command exits within 0.8 s of the signal; the margin is for a loaded machine's process teardown.
STOPPED_WITHIN = 5.0


@pytest.fixture
def sim_process() -> Iterator[subprocess.Popen[str]]:
    with child_process(
        [sys.executable, "-m", "mongomancy.cli", "sim", "--json", "--step-down-every", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        yield proc


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_sim_serves_a_replica_set_until_a_signal(
    sim_process: subprocess.Popen[str], stop_signal: signal.Signals
) -> None:
    assert sim_process.stdout is not None and sim_process.stderr is not None
    started = json.loads(sim_process.stdout.readline())
    assert started["event"] == "started" and started["uri"].endswith("/?replicaSet=rs0")
    assert len(started["members"]) == 3 and started["primary"] == started["members"][0]
    backend = started["backend_pid"]
    assert process_exists(backend)
    ping = CliRunner().invoke(cli, ["ping", started["uri"], "--require-primary", "--json"])
    assert ping.exit_code == 0, ping.output
    assert json.loads(ping.output)["set_name"] == "rs0"
    switched = json.loads(sim_process.stdout.readline())  # --step-down-every 0.5
    assert switched["event"] == "step_down" and switched["primary"] == started["members"][1]
    sim_process.send_signal(stop_signal)
    assert sim_process.wait(timeout=STOPPED_WITHIN) == 0
    assert not process_exists(backend), f"backend {backend} left running"
    assert "simulated replica set stopped" in sim_process.stderr.read()


def test_sim_text_output_is_the_uri_first(tmp_path: Path) -> None:
    with child_process(
        [sys.executable, "-m", "mongomancy.cli", "sim", "--members", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as proc:
        assert proc.stdout is not None
        uri = proc.stdout.readline().strip()
        assert uri.startswith("mongodb://127.0.0.1:") and uri.endswith("/?replicaSet=rs0") and "," not in uri
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=STOPPED_WITHIN) == 0


def test_sim_usage_errors() -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["sim", "--members", "0"]).exit_code == 3
    too_high = runner.invoke(cli, ["sim", "--port", "65535", "--members", "3"])
    assert too_high.exit_code == 3 and "leaves no room" in too_high.output
