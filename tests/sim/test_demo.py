"""``mongomancy demo`` runs to the end on the embedded cluster; zero errors reach the workers."""

from __future__ import annotations

import json
import random

from click.testing import CliRunner

from mongomancy.cli import cli
from mongomancy.demo import RunReport, fault_schedule, summary_table


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
