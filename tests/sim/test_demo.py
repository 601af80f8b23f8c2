"""``mongomancy demo`` runs to the end on the embedded cluster; zero errors reach the workers."""

from __future__ import annotations

import io
import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mongomancy.cli import cli
from mongomancy.cli._workload import StatusLine
from mongomancy.cli.demo import RunReport, explanation, fault_schedule, summary_table
from tests.helpers import child_process, process_exists

#: The demo exits within 0.8 s of the signal; the margin is for a loaded machine's process teardown.
STOPPED_WITHIN = 5.0


def test_demo_short_run_is_clean() -> None:
    result = CliRunner().invoke(cli, ["demo", "--duration", "6", "--threads", "4", "--seed", "3", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output.strip().splitlines()[-1])
    ours, plain = doc["runs"]
    assert ours["name"] == "mongomancy" and plain["name"] == "plain pymongo"
    assert ours["worker_errors"] == 0 and ours["error_types"] == {}
    assert ours["duplicates"] == 0 and ours["lost"] == 0 and ours["counter_mismatches"] == 0
    assert ours["clean"] is True and doc["exit_code"] == 0
    assert ours["inserts_acked"] > 0 and ours["incs_acked"] > 0 and ours["reads"] > 0
    assert ours["failovers"] >= 2  # the engine saw the step-downs
    assert plain["failovers"] >= 2  # measured from pymongo's own topology events, not the schedule
    assert len(doc["step_downs"]) >= 2


def test_fault_schedule_is_seeded_and_inside_the_run() -> None:
    one = fault_schedule(15, random.Random(7))
    assert one == fault_schedule(15, random.Random(7))
    assert 2 <= len(one) <= 6
    assert all(0 < f.at < 15 for f in one)
    assert {f.election_seconds for f in one} >= {0.0, 1.0}
    assert any(f.hang_up for f in one)


def test_summary_table_shows_both_runs() -> None:
    ours = RunReport("mongomancy", seconds=2, operations=10, failovers=2, retries=1)
    plain = RunReport(
        "plain pymongo", seconds=2, operations=9, worker_errors=2, error_types={"AutoReconnect": 2}
    )
    text = summary_table([ours, plain])
    assert "errors reaching workers" in text and "plain pymongo errors: AutoReconnect x2" in text
    assert ours.clean and not plain.clean


def _children(pid: int) -> set[int]:
    """The child processes of ``pid`` (Linux /proc), e.g. the simulated cluster's backend."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text()
        found.update(int(child) for child in text.split())
    return found


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_the_demo_within_a_second_and_says_what_ran(stop_signal: signal.Signals) -> None:
    with child_process(
        [sys.executable, "-m", "mongomancy.cli", "demo", "--duration", "60", "--threads", "4", "--seed", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stderr is not None and proc.stdout is not None
        for line in proc.stderr:  # wait until the mongomancy run is going (not a sleep: its own line)
            if line.strip() == "mongomancy ...":
                break
        backend = _children(proc.pid)
        assert backend, "the demo's simulated cluster has no backend process"
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=STOPPED_WITHIN) == 128 + stop_signal
        report = proc.stderr.read()
        assert f"interrupted by {stop_signal.name}" in report
        assert "mongomancy:" in report and "operations in" in report and "not checked" in report
        assert not [pid for pid in backend if process_exists(pid)], "a backend process was left running"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("columns", [40, 80, 120])
def test_status_line_fits_the_terminal(columns: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    out = _Terminal()
    status = "ops 123456 | failovers 3 | retries 17 | errors 0 | queue 12 | primary 127.0.0.1:45678"
    line = StatusLine(out, f"{'plain pymongo':>13}", 15.0, lambda: status)
    line.draw()
    line.draw()
    line.finish()
    drawn = out.getvalue().rstrip("\n").split("\r")[1:]
    assert len(drawn) == 3
    assert all(len(text) == columns - 1 for text in drawn)  # never wider: no wrapped redraws


def test_explanation_and_table_speak_plainly() -> None:
    ours = RunReport("mongomancy", seconds=2, operations=10, failovers=3, retries=1)
    plain = RunReport(
        "plain pymongo", seconds=2, operations=15, failovers=3, worker_errors=4, applied_despite_error=1
    )
    text = " ".join(explanation([ours, plain]).split())  # wrapped to the terminal: compare words
    assert "waited for the new primary" in text and "no error reached them" in text
    assert "5 more operations" in text and "4 errors in 3 failovers" in text
    assert "stored anyway" in text
    assert "applied despite" not in summary_table([ours, plain])
