"""``mongomancy watch``: topology changes as (JSON) lines; clean stop on SIGINT/SIGTERM and --duration."""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import IO, Any

import pytest
from click.testing import CliRunner

from mongomancy.cli import cli
from mongomancy.testing import SimulatedReplicaSet
from tests.helpers import ROOT, child_process, stop_child

#: The command exits within 0.8 s of the signal (mongomancy.cli._shutdown.STOP_DEADLINE); the margin is for a
#: loaded machine's process teardown, not a hope (benchmarks/bench_stop.py measures the latency over 50 runs).
STOPPED_WITHIN = 5.0


def _pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def _until(lines: queue.Queue[str], predicate: object, timeout: float = 15.0) -> dict[str, object] | None:
    """The first JSON line matching ``predicate``, or None after ``timeout`` without one."""
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            return None
        event = json.loads(line)
        if callable(predicate) and predicate(event):
            return dict(event)


@contextlib.contextmanager
def _watch(uri: str, **popen_options: Any) -> Iterator[subprocess.Popen[str]]:
    """``mongomancy watch URI --json`` as a child process with stderr piped, yielded once it announced itself
    there ("watching mongodb://..."); stopped and reaped when the block ends."""
    with child_process(
        [sys.executable, "-m", "mongomancy.cli", "watch", uri, "--json"],
        stderr=subprocess.PIPE,
        **popen_options,
    ) as proc:
        assert proc.stderr is not None
        assert proc.stderr.readline().startswith("watching mongodb://")
        yield proc


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_watch_streams_primary_changes_and_stops_cleanly(
    sim_cluster: SimulatedReplicaSet, stop_signal: signal.Signals
) -> None:
    with _watch(sim_cluster.uri, stdout=subprocess.PIPE) as proc:
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
        reader.start()
        try:
            assert proc.stderr is not None
            errors = threading.Thread(target=proc.stderr.read, daemon=True)  # never let stderr fill its pipe
            errors.start()
            addresses = {m.address for m in sim_cluster.members}
            changed = None
            for _ in range(3):  # the engine may still be discovering the set at the first step-down
                new_index = sim_cluster.step_down(wait=True)
                changed = _until(lines, lambda e: e["kind"] == "primary_changed", timeout=5)
                if changed is not None:
                    break
            assert changed is not None, "no primary_changed line"
            assert changed["old_primary"] in addresses
            assert changed["new_primary"] == sim_cluster.members[new_index].address
            assert changed["set_name"] == "rs0"
            proc.send_signal(stop_signal)
            assert proc.wait(timeout=STOPPED_WITHIN) == 0
        finally:
            stop_child(proc)  # first: the reader ends at the end of the child's output
            reader.join(5)


def test_watch_human_lines_in_process(sim_cluster: SimulatedReplicaSet) -> None:
    timer = threading.Timer(0.8, sim_cluster.step_down)
    timer.start()
    try:
        result = CliRunner().invoke(cli, ["watch", sim_cluster.uri, "--duration", "2.5"])
    finally:
        timer.cancel()
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("watching mongodb://")
    assert " topology ReplicaSetWithPrimary rs0, primary " in lines[1]  # the starting state comes first
    assert "PRIMARY" in lines[1] and "SECONDARY" in lines[1]
    assert sum("primary changed: " in line for line in lines) == 1
    assert "RSPrimary" not in result.output and "RSSecondary" not in result.output


def test_watch_usage_errors() -> None:
    runner = CliRunner()
    bad = runner.invoke(cli, ["watch", "http://user:s3cr3tPass@h/"])
    assert bad.exit_code == 3 and "s3cr3tPass" not in bad.output
    assert runner.invoke(cli, ["watch", "h1", "--duration", "-1"]).exit_code == 3


def test_watch_stops_on_sigint_even_when_started_with_sigint_ignored(
    sim_cluster: SimulatedReplicaSet,
) -> None:
    # A background job of a non-interactive shell starts with SIGINT ignored; Python then never raises
    # KeyboardInterrupt, so the command must handle the signal itself.
    with _watch(
        sim_cluster.uri,
        stdout=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    ) as proc:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=STOPPED_WITHIN) == 0


def test_watch_stops_on_sigint_while_every_member_is_blackholed(sim_cluster: SimulatedReplicaSet) -> None:
    # pymongo's monitors are then stuck in reads that only time out; the exit must not wait for them.
    with _watch(sim_cluster.uri, stdout=subprocess.DEVNULL) as proc:
        for member in range(len(sim_cluster.members)):
            sim_cluster.blackhole(member)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=STOPPED_WITHIN) == 0


def _json_lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    return lines


def test_watch_starts_with_the_topology_and_prints_each_change_once(sim_cluster: SimulatedReplicaSet) -> None:
    with _watch(sim_cluster.uri, stdout=subprocess.PIPE) as proc:
        assert proc.stderr is not None
        lines = _json_lines(proc)
        first = json.loads(lines.get(timeout=15))
        assert first["kind"] == "topology" and first["set_name"] == "rs0"
        assert first["primary"] == sim_cluster.primary_address
        roles = {m["address"]: m["role"] for m in first["members"]}
        assert sorted(roles.values()) == ["PRIMARY", "SECONDARY", "SECONDARY"]
        new_index = sim_cluster.step_down(wait=True)
        new_primary = sim_cluster.members[new_index].address
        seen: list[dict[str, object]] = []

        def promoted(event: dict[str, object]) -> bool:
            seen.append(event)
            kinds = {(e["kind"], e.get("member"), e.get("new_role")) for e in seen}
            return {("primary_changed", None, None), ("member_changed", new_primary, "PRIMARY")} <= kinds

        assert _until(lines, promoted) is not None, seen
        changed = next(e for e in seen if e["kind"] == "primary_changed")
        assert changed["new_primary"] == new_primary
        member = next(e for e in seen if e.get("member") == new_primary)
        assert member["old_role"] == "SECONDARY"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOPPED_WITHIN) == 0
        # each change is printed once: nothing but the announcement went to stderr
        assert proc.stderr.read() == ""


def test_watch_reports_a_blackholed_primary(sim_cluster: SimulatedReplicaSet) -> None:
    with _watch(sim_cluster.uri, stdout=subprocess.PIPE) as proc:
        lines = _json_lines(proc)
        assert json.loads(lines.get(timeout=15))["kind"] == "topology"
        primary = sim_cluster.primary_address
        sim_cluster.blackhole(sim_cluster.primary)
        lost = _until(lines, lambda e: e.get("member") == primary and e.get("new_role") == "UNKNOWN")
        assert lost is not None, "no event for the blackholed primary"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=STOPPED_WITHIN) == 0


def test_watch_reports_an_unreachable_target_and_exits_2() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = subprocess.run(
        [sys.executable, "-m", "mongomancy.cli", "watch", f"127.0.0.1:{port}", "--timeout", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    event = json.loads(result.stdout.splitlines()[-1])
    assert event["kind"] == "unreachable" and f"127.0.0.1:{port} refused the connection" in event["error"]
    human = CliRunner().invoke(cli, ["watch", f"127.0.0.1:{port}", "--timeout", "0.5"])
    assert human.exit_code == 2 and "UNREACHABLE after 0.5 s" in human.output
