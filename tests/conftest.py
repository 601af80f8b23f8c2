"""Shared fixtures.

- ``sim_cluster``: a fresh :class:`~mongomancy.testing.SimulatedReplicaSet` (3 members, own backend) per test;
  its backend was launched during the previous test (``spare_backend``), never used before.
- ``fast_heartbeats``: lets pymongo clients use ``heartbeatFrequencyMS`` down to 50 ms during the test.
- ``engine``: an :class:`~mongomancy.Engine` on ``sim_cluster`` (100 ms heartbeats), disposed after the test;
  a module may define its own ``engine`` fixture instead (tests/sim/test_engine.py does).
- ``real_cluster_uri``: the URI of a real replica set; tests marked ``@pytest.mark.real_cluster`` run only
  when ``MONGOMANCY_TEST_URI`` is set and are skipped with a clear reason otherwise.
- ``no_leaked_sim_threads`` (autouse): fails a test that leaves a simulator thread running.
- ``known_deviations`` (autouse): a test marked ``@pytest.mark.deviation("<entry>")`` relies on a behaviour
  where the simulated cluster may differ from MongoDB (an entry of tests/sim/test_conformance.py); it is a
  strict xfail wherever that entry's deviation applies.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mongomancy import Engine
from mongomancy import testing as sim
from mongomancy.testing import nx_launcher
from tests.helpers import process_exists

REAL_CLUSTER_ENV = "MONGOMANCY_TEST_URI"
_SIM_THREAD_PREFIX = "mongomancy-sim-"


_SIM_DIR = Path(__file__).resolve().parent / "sim"


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """Workers for ``-n auto`` (set in setup.cfg): twice the cores when simulated-cluster tests run.

    Most sim tests spend their time waiting on the cluster (elections, heartbeats, child processes), so on
    2 cores 4 workers finish the suite far sooner than 2; the server-free tests are CPU-bound, and with
    ``-m "not sim"`` more workers than cores only add start-up cost.
    """
    cores = os.cpu_count() or 1
    if " ".join(str(config.getoption("markexpr", "") or "").split()) == "not sim":
        return cores
    return 2 * cores


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests under ``tests/sim/`` are marked ``sim`` (``-m "not sim"`` runs the server-free ones only)."""
    for item in items:
        if _SIM_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.sim)
    if os.environ.get(REAL_CLUSTER_ENV):
        return
    skip = pytest.mark.skip(reason=f"needs a real replica set: set {REAL_CLUSTER_ENV}=mongodb://...")
    for item in items:
        if "real_cluster" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def real_cluster_uri() -> str:
    uri = os.environ.get(REAL_CLUSTER_ENV)
    if not uri:
        pytest.skip(f"needs a real replica set: set {REAL_CLUSTER_ENV}=mongodb://...")
    return uri


@pytest.fixture
def fast_heartbeats() -> Iterator[None]:
    """pymongo clients created in the test may use heartbeatFrequencyMS down to 50 ms."""
    with sim.fast_heartbeats(0.05):
        yield


class SpareBackend:
    """The next test's backend, launched while the current test runs (one per test process).

    A fresh, empty backend per cluster is what keeps tests independent, but its process needs ~0.15 s of CPU
    to boot (interpreter and imports) and far longer on a loaded machine; most simulated-cluster tests spend
    their time waiting, so the boot overlaps with them.  A spare is never reused: each is taken once, and one
    launched under another environment (backend kind, SQLite choice, log level) is stopped, not taken.
    """

    _ENV = (sim.backend.BACKEND_ENV, nx_launcher.SQLITE_ENV, nx_launcher.LOG_ENV)

    def __init__(self) -> None:
        self._spare: sim.Backend | None = None
        self._env: tuple[str | None, ...] = ()

    def take(self) -> sim.Backend:
        """A started backend (the spare if it fits the environment), and the next spare launched."""
        env = tuple(os.environ.get(name) for name in self._ENV)
        spare, self._spare = self._spare, None
        if spare is not None and self._env != env:
            spare.stop()
            spare = None
        backend = spare.finish_start() if spare is not None else sim.make_backend().start()
        self._env = env
        self._spare = sim.make_backend().launch()
        return backend

    def stop(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            spare.stop()


@pytest.fixture(scope="session")
def spare_backend() -> Iterator[SpareBackend]:
    spares = SpareBackend()
    yield spares
    spares.stop()


@pytest.fixture
def sim_cluster(spare_backend: SpareBackend) -> Iterator[sim.SimulatedReplicaSet]:
    """A fresh simulated 3-member replica set with its own empty backend; member 0 is primary."""
    backend = spare_backend.take()
    try:
        with sim.SimulatedReplicaSet(members=3, backend=backend) as cluster:
            yield cluster
    finally:
        backend.stop()
    pid = backend.last_pid
    if pid is not None and process_exists(pid):
        pytest.fail(f"simulator backend process {pid} is still running after teardown")


@pytest.fixture
def engine(sim_cluster: sim.SimulatedReplicaSet, fast_heartbeats: None) -> Iterator[Engine]:
    """An engine on ``sim_cluster`` with 100 ms heartbeats, disposed after the test."""
    engine = Engine(uri=sim_cluster.uri, heartbeatFrequencyMS=100)
    try:
        yield engine
    finally:
        engine.dispose()


def _sim_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith(_SIM_THREAD_PREFIX)}


@pytest.fixture(autouse=True)
def no_leaked_sim_threads() -> Iterator[None]:
    """Every simulator thread a test started must be gone when its fixtures are torn down."""
    before = _sim_threads()
    yield
    leaked = _sim_threads() - before
    if leaked:
        pytest.fail(f"simulator threads left running: {sorted(leaked)}")


def _expected_sqlite_version(request: pytest.FixtureRequest) -> tuple[int, ...]:
    """The SQLite the test's backend runs on: as its cluster reports it, else as the environment chooses."""
    if "sim_cluster" in request.fixturenames:
        runtime = request.getfixturevalue("sim_cluster").backend.runtime
        if runtime is not None:
            return runtime.sqlite_version_info
    if nx_launcher.sqlite_choice(os.environ) == "pinned":
        version = nx_launcher.PINNED_SQLITE_VERSION
    else:
        version = sqlite3.sqlite_version
    return tuple(int(part) for part in version.split("."))


@pytest.fixture(autouse=True)
def known_deviations(request: pytest.FixtureRequest, no_leaked_sim_threads: None) -> None:
    """Strict xfail for a test marked ``deviation(entry)`` where the simulated cluster differs (see above).

    After ``no_leaked_sim_threads`` (a parameter for that order): the cluster it may start early must be
    stopped before that fixture looks for leftover threads.
    """
    marks = list(request.node.iter_markers("deviation"))
    if not marks:
        return
    from tests.sim.test_conformance import BEHAVIOURS  # noqa: PLC0415 - only for the few marked tests

    version = _expected_sqlite_version(request)
    for mark in marks:
        entry = mark.args[0]
        if entry not in BEHAVIOURS:
            pytest.fail(f"deviation({entry!r}) names no entry of tests/sim/test_conformance.py")
        deviation = BEHAVIOURS[entry].deviation
        if deviation is not None and deviation.applies(version):
            request.applymarker(pytest.mark.xfail(strict=True, reason=f"{entry}: {deviation.what}"))
