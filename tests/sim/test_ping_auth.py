"""``mongomancy-ping`` against a simulated cluster that requires authentication (SCRAM-SHA-256): a refused
password is exit 4 ``AUTH FAILED`` with the password shown as ``***``; the right one is exit 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mongomancy.testing import SimulatedReplicaSet

ROOT = Path(__file__).resolve().parents[2]
USER, PASSWORD, WRONG = "ops", "s3cret-Pass", "not-the-Pass"


@pytest.fixture
def cluster() -> Iterator[SimulatedReplicaSet]:
    with SimulatedReplicaSet(users={USER: PASSWORD}) as cluster:
        yield cluster


def ping(cluster: SimulatedReplicaSet, password: str) -> subprocess.CompletedProcess[str]:
    hosts = ",".join(member.address for member in cluster.members)
    target = f"mongodb://{USER}:{password}@{hosts}/?replicaSet={cluster.set_name}"
    return subprocess.run(
        [sys.executable, "-m", "mongomancy.cli", "ping", target, "--json", "--timeout", "10"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_a_refused_password_is_exit_4_auth_failed_without_the_password(cluster):
    done = ping(cluster, WRONG)
    assert done.returncode == 4, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "auth_failed"
    assert "Authentication failed" in report["error"]
    assert WRONG not in done.stdout + done.stderr
    assert f"{USER}:***@" in report["target"]


def test_the_right_password_is_exit_0(cluster):
    done = ping(cluster, PASSWORD)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "ok"
    assert report["primary"] == cluster.primary_address
    assert PASSWORD not in done.stdout + done.stderr
