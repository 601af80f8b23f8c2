"""``mongomancy ping``/``mongomancy-ping``: every exit code, JSON schema, --wait, deadline, no password.

In-process runs use click's CliRunner; the timing and entry-point tests run real processes (``python -m
mongomancy.cli``, ``bin/mongomancy-ping``, the installed ``mongomancy-ping``).  The simulator cannot refuse
authentication (pymongo's SCRAM handshake against it ends in ``KeyError('payload')``), so exit 4 is tested by
making the ``ping`` command raise ``OperationFailure(code=18)``, which is what pymongo raises for refused
credentials.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pymongo.database import Database as PyMongoDatabase
from pymongo.errors import OperationFailure

from mongomancy import ConfigurationError, Engine, __version__
from mongomancy.cli import cli
from mongomancy.cli._probe import run_ping
from mongomancy.cli._verdict import PingOptions
from mongomancy.cli.ping import ping
from mongomancy.testing import SimulatedReplicaSet, wait_for
from tests.helpers import ROOT, child_process

PASSWORD = "s3cr3tPass"

TOP_KEYS = {
    "schema_version": int,
    "status": str,
    "exit_code": int,
    "target": str,
    "elapsed_ms": float,
    "attempts": int,
    "topology_type": (str, type(None)),
    "set_name": (str, type(None)),
    "primary": (str, type(None)),
    "members": list,
    "max_lag_seconds": (float, type(None)),
    "checks": list,
    "error": (str, type(None)),
}
MEMBER_KEYS = {
    "address": str,
    "state": str,
    "round_trip_ms": (float, type(None)),
    "lag_seconds": (float, type(None)),
    "error": (str, type(None)),
}
STATES = {
    "PRIMARY",
    "SECONDARY",
    "ARBITER",
    "OTHER",
    "GHOST",
    "STANDALONE",
    "MONGOS",
    "LOAD_BALANCER",
    "UNKNOWN",
}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, ["ping", *args], env=env)


def run(
    *args: str, cmd: list[str] | None = None, env: dict[str, str] | None = None
) -> tuple[int, str, float]:
    started = time.monotonic()
    proc = subprocess.run(
        [*(cmd or [sys.executable, "-m", "mongomancy.cli", "ping"]), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


def check_schema(doc: dict[str, Any]) -> None:
    assert set(doc) == set(TOP_KEYS)
    for key, kind in TOP_KEYS.items():
        assert isinstance(doc[key], kind), (key, doc[key])
    assert doc["schema_version"] == 1
    for member in doc["members"]:
        assert set(member) == set(MEMBER_KEYS)
        for key, kind in MEMBER_KEYS.items():
            assert isinstance(member[key], kind), (key, member[key])
        assert member["state"] in STATES
    for check in doc["checks"]:
        assert set(check) == {"name", "ok", "detail"}
        assert check["name"] in {"ping", "primary", "max_lag", "replica_set"} and isinstance(
            check["ok"], bool
        )


# -- 0: healthy --------------------------------------------------------------------------------------------


def test_healthy_replica_set_json(sim_cluster: SimulatedReplicaSet) -> None:
    result = invoke(sim_cluster.uri, "--json", "--require-primary")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    check_schema(doc)
    assert doc["status"] == "ok" and doc["exit_code"] == 0
    assert doc["topology_type"] == "ReplicaSetWithPrimary" and doc["set_name"] == "rs0"
    assert doc["primary"] == sim_cluster.primary_address
    assert sorted(m["address"] for m in doc["members"]) == sorted(m.address for m in sim_cluster.members)
    assert sorted(m["state"] for m in doc["members"]) == ["PRIMARY", "SECONDARY", "SECONDARY"]
    assert all(m["round_trip_ms"] is not None for m in doc["members"])
    assert [c["name"] for c in doc["checks"]] == ["ping", "primary"]


def test_human_line(sim_cluster: SimulatedReplicaSet) -> None:
    result = invoke(sim_cluster.uri)
    assert result.exit_code == 0
    line = result.output.strip()
    assert "\n" not in line
    assert line.startswith("OK: ReplicaSetWithPrimary rs0, primary " + str(sim_cluster.primary_address))
    assert "PRIMARY" in line and "SECONDARY" in line and "ms" in line


def test_quiet_prints_nothing(sim_cluster: SimulatedReplicaSet) -> None:
    result = invoke(sim_cluster.uri, "--quiet")
    assert result.exit_code == 0 and result.output == ""


def test_target_from_environment_and_host_port(sim_cluster: SimulatedReplicaSet) -> None:
    assert invoke("--json", env={"MONGODB_URI": sim_cluster.uri}).exit_code == 0
    member = sim_cluster.members[1]
    result = invoke("--host", member.host, "--port", str(member.port), "--direct", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["topology_type"] == "Single" and [m["state"] for m in doc["members"]] == ["SECONDARY"]


# -- 1: a check failed -------------------------------------------------------------------------------------


def test_direct_secondary_is_not_a_primary(sim_cluster: SimulatedReplicaSet) -> None:
    result = invoke(sim_cluster.members[1].address, "--direct", "--require-primary", "--json")
    assert result.exit_code == 1
    doc = json.loads(result.output)
    check_schema(doc)
    assert doc["status"] == "check_failed"
    assert doc["checks"][-1] == {"name": "primary", "ok": False, "detail": "no writable primary"}


def test_no_primary_after_the_primary_is_killed(sim_cluster: SimulatedReplicaSet) -> None:
    sim_cluster.kill(0)  # no election_seconds: no primary until told
    result = invoke(sim_cluster.uri, "--require-primary", "--json", "--timeout", "3")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.output)
    assert doc["topology_type"] == "ReplicaSetNoPrimary" and doc["primary"] is None
    down = [m for m in doc["members"] if m["state"] == "UNKNOWN"]
    assert [m["address"] for m in down] == [sim_cluster.members[0].address] and down[0]["error"]
    assert invoke(sim_cluster.uri).exit_code == 0  # liveness alone still passes


def test_max_lag(sim_cluster: SimulatedReplicaSet) -> None:
    sim_cluster.set_lag(2, 12.0)
    result = invoke(sim_cluster.uri, "--max-lag", "5", "--json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.output)
    check_schema(doc)
    assert 11.5 <= doc["max_lag_seconds"] <= 12.5
    lagging = {m["address"]: m["lag_seconds"] for m in doc["members"]}
    assert 11.5 <= lagging[sim_cluster.members[2].address] <= 12.5
    assert doc["checks"][-1]["name"] == "max_lag" and not doc["checks"][-1]["ok"]
    assert invoke(sim_cluster.uri, "--max-lag", "20").exit_code == 0
    # --direct: only that node's lag counts
    assert invoke(sim_cluster.members[1].address, "--direct", "--max-lag", "5").exit_code == 0
    assert invoke(sim_cluster.members[2].address, "--direct", "--max-lag", "5").exit_code == 1


def test_wait_keeps_trying_until_a_check_passes(sim_cluster: SimulatedReplicaSet) -> None:
    sim_cluster.set_lag(1, 30.0)
    timer = threading.Timer(0.4, sim_cluster.set_lag, (1, 0.0))
    timer.start()
    try:
        result = invoke(sim_cluster.uri, "--max-lag", "5", "--wait", "10", "--json")
    finally:
        timer.cancel()
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["attempts"] > 1


def test_wait_gives_up_at_its_end(sim_cluster: SimulatedReplicaSet) -> None:
    sim_cluster.set_lag(1, 30.0)
    result = invoke(sim_cluster.uri, "--max-lag", "5", "--wait", "0.5", "--json")
    assert result.exit_code == 1
    doc = json.loads(result.output)
    # It gave up when the 0.5 s wait ended, not at the 5.5 s deadline (--wait + 5 s).
    assert doc["attempts"] > 1 and 500 <= doc["elapsed_ms"] < 4000


def test_wait_succeeds_once_a_killed_member_comes_back(sim_cluster: SimulatedReplicaSet) -> None:
    sim_cluster.kill(1)
    restarted = threading.Event()

    def restart() -> None:
        sim_cluster.restart(1)
        restarted.set()

    timer = threading.Timer(0.5, restart)
    timer.start()
    try:
        code, output, elapsed = run(sim_cluster.members[1].address, "--direct", "--wait", "10", "--json")
    finally:
        timer.cancel()
    assert restarted.is_set()
    assert code == 0, output
    assert json.loads(output)["status"] == "ok"
    assert elapsed < 9  # before the 10 s wait ended


# -- 2: unreachable / timed out ----------------------------------------------------------------------------


def test_unreachable_port_exits_2_within_the_timeout() -> None:
    port = closed_port()
    code, output, _ = run(f"127.0.0.1:{port}", "--timeout", "1", "--json")
    assert code == 2, output
    doc = json.loads(output)
    check_schema(doc)
    assert doc["status"] in ("unreachable", "timeout") and doc["members"][0]["state"] == "UNKNOWN"


def test_blackholed_member_exits_2_within_the_timeout(sim_cluster: SimulatedReplicaSet) -> None:
    sim_cluster.blackhole(1)  # accepts, never answers: the deadline must still hold
    code, output, _ = run(sim_cluster.members[1].address, "--direct", "--timeout", "1", "--json")
    assert code == 2, output
    doc = json.loads(output)
    # A silent server: the deadline ends it (how close to 1 s: benchmarks, not a timed test).
    assert doc["status"] == "timeout" and "deadline" in doc["error"]


def test_unreachable_in_process() -> None:
    result = invoke(f"127.0.0.1:{closed_port()}", "--timeout", "0.5")
    assert result.exit_code == 2
    assert result.output.startswith(("UNREACHABLE", "TIMEOUT"))


# -- 3: usage and configuration errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([f"mongodb://user:{PASSWORD}@h:99999/"], "Port must be an integer"),
        ([f"mongodb://user:{PASSWORD}@@h/"], "contains '@' unencoded"),
        ([f"http://user:{PASSWORD}@h/"], "must start with mongodb://"),
        (["not a host"], "neither a mongodb:// URI nor host[:port]"),
        (["--bogus"], "No such option"),
        (["--timeout", "abc"], "--timeout"),
        (["--timeout", "-1"], "--timeout must be"),
        (["--json", "--quiet"], "exclude each other"),
        (["h1", "--host", "h2"], "not both"),
        ([f"mongodb://user:{PASSWORD}@h1,h2/", "--direct"], "directConnection"),
    ],
)
def test_usage_errors_exit_3(args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 3, result.output
    assert message in result.output
    assert PASSWORD not in result.output


def test_usage_error_json_and_group_errors() -> None:
    result = invoke(f"mongodb://user:{PASSWORD}@h:99999/", "--json")
    assert result.exit_code == 3
    doc = json.loads(result.output)
    check_schema(doc)
    assert doc["status"] == "usage_error" and PASSWORD not in result.output
    assert CliRunner().invoke(cli, ["no-such-command"]).exit_code == 3


def test_usage_error_in_a_real_process() -> None:
    code, output, _ = run(f"mongodb://user:{PASSWORD}@h:99999/")
    assert code == 3 and "Port must be an integer" in output and PASSWORD not in output


# -- 4: authentication failed ------------------------------------------------------------------------------


def test_authentication_failure_exits_4(
    sim_cluster: SimulatedReplicaSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
        raise OperationFailure("Authentication failed.", code=18, details={"code": 18, "ok": 0})

    monkeypatch.setattr(PyMongoDatabase, "command", refuse)
    uri = sim_cluster.uri.replace("mongodb://", f"mongodb://user:{PASSWORD}@")
    result = invoke(uri, "--json")
    assert result.exit_code == 4, result.output
    doc = json.loads(result.output)
    check_schema(doc)
    assert doc["status"] == "auth_failed" and "Authentication failed" in doc["error"]
    assert PASSWORD not in result.output
    human = invoke(uri)
    assert human.exit_code == 4 and human.output.startswith("AUTH FAILED") and PASSWORD not in human.output


# -- passwords ---------------------------------------------------------------------------------------------


def test_password_never_printed(sim_cluster: SimulatedReplicaSet) -> None:
    secret_uris = [
        f"mongodb://user:{PASSWORD}@127.0.0.1:{closed_port()}/",
        sim_cluster.uri.replace("mongodb://", f"mongodb://user:{PASSWORD}@"),
        f"mongodb://user:{PASSWORD}@127.0.0.1:{closed_port()}/?authSource=admin&tlsCertificateKeyFilePassword={PASSWORD}",
    ]
    for uri in secret_uris:
        for flags in ([], ["--json"], ["--quiet"], ["--require-primary", "--max-lag", "1", "--json"]):
            code, output, _ = run(uri, "--timeout", "0.6", *flags)
            assert code in (2, 3), output
            assert PASSWORD not in output, output
        code, output, _ = run("--timeout", "0.6", env={"MONGODB_URI": uri})
        assert PASSWORD not in output


# -- entry points and speed --------------------------------------------------------------------------------


def test_bin_script_and_console_script(sim_cluster: SimulatedReplicaSet) -> None:
    code, output, _ = run(
        sim_cluster.uri, "--json", cmd=[sys.executable, str(ROOT / "bin" / "mongomancy-ping")]
    )
    assert code == 0, output
    assert json.loads(output)["status"] == "ok"
    installed = shutil.which("mongomancy-ping") or str(Path(sys.executable).parent / "mongomancy-ping")
    if not Path(installed).exists():
        pytest.skip("mongomancy-ping is not installed in this environment")
    code, output, _ = run(sim_cluster.uri, "--require-primary", cmd=[installed])
    assert code == 0 and output.startswith("OK: "), output


def test_help_lists_exit_codes() -> None:
    result = CliRunner().invoke(ping, ["--help"])
    assert result.exit_code == 0 and "4 authentication failed" in result.output


# -- first contact: fail fast, say what it is (issue 12) ---------------------------------------------------


def test_every_seed_refusing_is_an_answer_not_a_wait() -> None:
    uri = f"mongodb://127.0.0.1:{closed_port()},127.0.0.1:{closed_port()}/?replicaSet=rs0"
    code, output, elapsed = run(uri, "--timeout", "60", "--json")
    assert code == 2, output
    doc = json.loads(output)
    check_schema(doc)
    assert doc["status"] == "unreachable" and doc["error"] == "connection refused by every seed"
    assert [m["error"] for m in doc["members"]] == ["refused the connection"] * 2
    assert elapsed < 60  # not the deadline: benchmarks/bench_ping.py measures how fast


def test_refusals_seen_by_pymongo_answer_at_once_too() -> None:
    # In process (no socket pre-check): pymongo's heartbeats report the refusals; the probe does not wait
    # out its 60 s deadline for server selection.

    result = run_ping(PingOptions(target=f"127.0.0.1:{closed_port()}", timeout=60))
    assert result.status == "unreachable" and result.exit_code == 2
    assert result.error == "connection refused by the server"
    assert result.elapsed_ms < 60_000
    assert [m.error for m in result.members] == ["refused the connection"]


def test_refused_with_wait_keeps_trying_until_the_wait_ends() -> None:
    code, output, _ = run(f"127.0.0.1:{closed_port()}", "--wait", "0.5", "--json")
    assert code == 2, output
    doc = json.loads(output)
    assert doc["status"] == "unreachable" and doc["elapsed_ms"] >= 500


def test_wait_sees_the_new_primary_of_an_election(sim_cluster: SimulatedReplicaSet) -> None:
    sim_cluster.step_down(election_seconds=60)  # no primary until the test elects one
    command = ["ping", sim_cluster.uri, "--require-primary", "--wait", "30", "--json"]
    with child_process(
        [sys.executable, "-m", "mongomancy.cli", *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        # The probe's first ping (answered by a secondary) means it now looks for a primary.
        wait_for(lambda: sim_cluster.count("ping") > 0, 30, "the probe's first ping")
        assert proc.poll() is None, proc.communicate()
        sim_cluster.elect(2, wait=True)
        elected = time.monotonic()
        output, errors = proc.communicate(timeout=30)
        noticed = time.monotonic() - elected
    assert proc.returncode == 0, output + errors
    doc = json.loads(output)
    assert doc["status"] == "ok" and doc["primary"] == sim_cluster.members[2].address
    assert doc["checks"][-1] == {
        "name": "primary",
        "ok": True,
        "detail": f"writable primary {sim_cluster.members[2].address}",
    }
    # pymongo's default heartbeat is 10 s; the probe re-checks at once (bench_ping.py times it precisely)
    assert noticed < 8, noticed


def test_set_name_mismatch_is_named(sim_cluster: SimulatedReplicaSet) -> None:
    hosts = ",".join(m.address for m in sim_cluster.members)
    result = invoke(f"mongodb://{hosts}/?replicaSet=other", "--timeout", "60", "--json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.output)
    check_schema(doc)
    assert doc["status"] == "check_failed" and doc["set_name"] == "other"
    check = doc["checks"][-1]
    assert check["name"] == "replica_set" and not check["ok"]
    assert "is a member of replica set 'rs0'" in check["detail"]
    assert {m["address"] for m in doc["members"]} == {m.address for m in sim_cluster.members}
    assert "FAILED" in invoke(f"mongodb://{hosts}/?replicaSet=other").output


def test_standalone_reached_with_replica_set_is_reported_as_a_standalone(
    sim_cluster: SimulatedReplicaSet,
) -> None:
    standalone = f"{sim_cluster.backend.address[0]}:{sim_cluster.backend.address[1]}"
    result = invoke(f"mongodb://{standalone}/?replicaSet=rs0", "--timeout", "60", "--json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.output)
    assert [(m["address"], m["state"]) for m in doc["members"]] == [(standalone, "STANDALONE")]
    assert "is a standalone server, not a member of replica set 'rs0'" in doc["checks"][-1]["detail"]


UNENCODED = ["S3cr/tPW", "S3c@tPW", "S3c:tPW", "12/tPW", "p@ss/w:rd?x"]


@pytest.mark.parametrize("password", UNENCODED)
def test_unencoded_passwords_never_leak(password: str, sim_cluster: SimulatedReplicaSet) -> None:
    hosts = ",".join(m.address for m in sim_cluster.members)
    uri = f"mongodb://alice:{password}@{hosts}/?replicaSet=rs0"
    for flags in ([], ["--json"]):
        code, output, _ = run(uri, *flags)
        assert code == 3, output
        assert password not in output and "alice:***@" in output
        assert "unencoded" in output
    doc = json.loads(run(uri, "--json")[1])
    assert doc["target"] == f"mongodb://alice:***@{hosts}/?replicaSet=rs0"
    code, output, _ = run("--timeout", "1", env={"MONGODB_URI": uri})
    assert code == 3 and password not in output


@pytest.mark.parametrize("password", UNENCODED)
def test_unencoded_passwords_never_leak_from_library_errors(password: str) -> None:

    with pytest.raises(ConfigurationError) as raised:
        Engine(uri=f"mongodb://alice:{password}@127.0.0.1:{closed_port()}/")
    assert password not in str(raised.value) and "alice:***@" in str(raised.value)


def test_version_on_every_entry_point() -> None:

    for cmd in (
        [sys.executable, "-m", "mongomancy.cli"],
        [sys.executable, "-m", "mongomancy.cli", "ping"],
        [sys.executable, str(ROOT / "bin" / "mongomancy-ping")],
    ):
        code, output, _ = run("--version", cmd=cmd)
        assert code == 0 and output.strip().endswith(__version__), (cmd, output)


def test_quiet_silences_pymongo_warnings_too(sim_cluster: SimulatedReplicaSet) -> None:
    uri = sim_cluster.uri + "&noSuchOption=1"  # pymongo warns about an unknown option
    code, output, _ = run(uri, "--quiet")
    assert code == 0 and output == ""
    code, output, _ = run(uri)
    assert code == 0 and "UserWarning" in output  # without --quiet pymongo's warning is shown


def test_json_usage_error_names_the_real_target() -> None:
    result = invoke(f"mongodb://alice:{PASSWORD}@h:99999/", "--json")
    assert json.loads(result.output)["target"] == "mongodb://alice:***@h:99999/"
    result = invoke("--json", "--timeout", "-1", env={"MONGODB_URI": f"mongodb://alice:{PASSWORD}@h1/"})
    assert json.loads(result.output)["target"] == "mongodb://alice:***@h1/"


def test_bare_group_prints_help_once_and_exits_0() -> None:
    code, output, _ = run(cmd=[sys.executable, "-m", "mongomancy.cli"])
    assert code == 0
    assert output.count("Usage: ") == 1 and "Error" not in output and "ping" in output


def test_bin_script_without_dependencies_says_what_to_install() -> None:
    # -S: no site-packages, as in a checkout whose dependencies are not installed
    code, output, _ = run("--version", cmd=[sys.executable, "-S", str(ROOT / "bin" / "mongomancy-ping")])
    assert code == 3, output
    assert "pip install" in output and "Traceback" not in output
