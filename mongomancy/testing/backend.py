"""The single storage process behind every simulated member.

Why one backend for all members: a replica set presents one data set, and the simulator's subject is
the *topology* (who is primary, who refuses, who hangs), not replication itself.  Every member forwards to
the same server, so a write acknowledged by one member is visible through all of them, as after replication.

Two kinds exist: ``nx_27017`` (a MongoDB wire-protocol server over SQLite, from the ``sim`` extra; the
default) and a real single-node ``mongod`` when ``MONGOMANCY_SIM_BACKEND=mongod`` and one is on ``PATH``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from types import TracebackType

import attrs
import bson

from mongomancy.errors import BackendNotInstalledError, SimulatorError
from mongomancy.testing import nx_launcher, wire

logger = logging.getLogger("mongomancy.testing")

#: Environment variable choosing the backend: ``nx`` (default) or ``mongod``.
BACKEND_ENV = "MONGOMANCY_SIM_BACKEND"

_START_TIMEOUT = 20.0
_STOP_TIMEOUT = 5.0


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (for a child process that must bind it itself)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@attrs.frozen
class BackendRuntime:
    """What an ``nx_27017`` backend process runs on, as reported by that process itself."""

    #: ``pinned`` (the project's bundled SQLite) or ``platform`` (the interpreter's own ``sqlite3``).
    sqlite: str
    sqlite_module: str
    sqlite_version: str
    nx_27017: str
    neosqlite: str

    @property
    def sqlite_version_info(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.sqlite_version.split("."))


class Backend:
    """A storage server in a child process, started and stopped by PID.

    Use :meth:`start` (or :func:`start_backend`) and :meth:`stop`; it is also a context manager.
    """

    #: Top-level command fields the backend rejects and members must remove before forwarding.
    strip_fields: frozenset[str] = frozenset()
    #: Members rewrite requests this backend would answer unlike MongoDB (see ``testing/corrections.py``).
    corrected = False
    #: Stop with SIGTERM (and SIGKILL only after a timeout); False: SIGKILL at once.
    graceful_stop = True
    kind = "abstract"

    def __init__(self) -> None:
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        #: PID of the last process stopped, so tests can check it is really gone.
        self.last_pid: int | None = None
        #: What the running process reported it runs on (``nx_27017`` only; None before start and for mongod).
        self.runtime: BackendRuntime | None = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def uri(self) -> str:
        """A URI that talks to the backend directly (no simulated member in between)."""
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def _command(self, port: int, tmpdir: str) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str] | None:
        """The child's environment (None: this process's)."""
        return None

    def start(self) -> Backend:
        """Start the child process and return once it answers (not after a fixed sleep)."""
        return self.launch().finish_start()

    def launch(self) -> Backend:
        """Start the child process without waiting for it; :meth:`finish_start` waits.

        Why two steps: a test suite can launch the next test's backend while the current test runs, so the
        process boots (about 0.15 s of interpreter start, more on a loaded machine) in the background.
        """
        if self.process is not None:
            raise SimulatorError("backend already started")
        self._tmpdir = tempfile.TemporaryDirectory(prefix="mongomancy-sim-")
        self._spawn()
        return self

    def _spawn(self) -> None:
        assert self._tmpdir is not None
        self.port = free_port()
        argv = self._command(self.port, self._tmpdir.name)
        logger.debug("starting %s backend: %s", self.kind, " ".join(argv))
        # stderr goes to a file, never to a pipe: nobody drains a pipe while tests run, and a full pipe
        # (64 KiB of the backend's log lines, about 600 requests) would freeze the backend mid-test.
        with open(self._stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                argv,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                cwd=self._tmpdir.name,
            )

    def finish_start(self) -> Backend:
        """Return once the launched process answers; on a failure (its free port was taken between probing
        and binding, for example) launch it again on another port, three attempts in all."""
        if self.process is None or self._tmpdir is None:
            raise SimulatorError("backend not launched")
        last_error: BaseException | None = None
        for attempt in range(3):
            if attempt:
                self._spawn()
            try:
                self._wait_ready()
                self._after_ready()
                assert self.process is not None
                logger.info("%s backend pid %d on port %d", self.kind, self.process.pid, self.port)
                return self
            except SimulatorError as exc:
                last_error = exc
                self._stop_process()
            except BaseException:
                self.stop()
                raise
        self._cleanup_tmp()
        raise SimulatorError(f"{self.kind} backend did not start: {last_error}") from last_error

    @property
    def _stderr_path(self) -> str:
        assert self._tmpdir is not None
        return os.path.join(self._tmpdir.name, "backend.stderr")

    def _after_ready(self) -> None:
        """Read back what the process reports about itself (nothing for a plain backend)."""

    def _exited(self, code: int) -> SimulatorError:
        with open(self._stderr_path, "rb") as stderr:
            err = stderr.read().decode(errors="replace")
        return SimulatorError(f"exited with code {code}: {err[-2000:]}")

    def _wait_ready(self) -> None:
        """Wait until *our* process answers on the port.

        ``serverStatus`` and not ``ping``: its ``pid`` proves the answer comes from our child.  The port was
        only free a moment ago, and under parallel test workers another worker's server can take it first;
        our child then fails to bind, and until it has exited a ping would be answered by the stranger.
        """
        assert self.process is not None
        deadline = time.monotonic() + _START_TIMEOUT
        # any OP_MSG frame is a valid request
        status = wire.op_msg_reply(0, {"serverStatus": 1, "$db": "admin"})
        while True:
            code = self.process.poll()
            if code is not None:
                raise self._exited(code)
            try:
                with socket.create_connection(self.address, timeout=1.0) as s:
                    s.sendall(status)
                    reply = bson.decode(wire.reply_body(wire.read_raw(s)))
                    if reply.get("ok") and reply.get("pid") == self.process.pid:
                        return
                    if reply.get("ok"):
                        stranger = reply.get("pid")
                        raise SimulatorError(
                            f"port {self.port} is answered by another process (pid {stranger})"
                        )
            except (OSError, wire.WireError):
                pass
            if time.monotonic() > deadline:
                raise SimulatorError(f"no answer on port {self.port} within {_START_TIMEOUT} s")
            time.sleep(0.005)  # polling a condition (the port answering), with a deadline

    def _stop_process(self) -> None:
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None and not self.graceful_stop:
            proc.kill()
            proc.wait(_STOP_TIMEOUT)
        elif proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                logger.warning("backend pid %d ignored SIGTERM; killing it", proc.pid)
                proc.kill()
                proc.wait(_STOP_TIMEOUT)
        self.last_pid = proc.pid

    def _cleanup_tmp(self) -> None:
        tmp, self._tmpdir = self._tmpdir, None
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.cleanup()

    def stop(self) -> None:
        """End the process (SIGTERM, SIGKILL after a timeout; SIGKILL at once unless :attr:`graceful_stop`),
        reap it and remove its files.  Idempotent."""
        self._stop_process()
        self._cleanup_tmp()

    def __enter__(self) -> Backend:
        if self.process is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class NxBackend(Backend):
    """``nx_27017`` with an in-memory SQLite database: starts in about 0.1 s and needs no files.

    It runs through :mod:`mongomancy.testing.nx_launcher` on the SQLite the project pins (``sqlite="pinned"``,
    the default) or the interpreter's own (``sqlite="platform"``); the default comes from
    ``$MONGOMANCY_SIM_SQLITE``.  After :meth:`start`, :attr:`runtime` says what the process really runs on.
    """

    kind = "nx_27017"
    corrected = True
    #: Its data lives in memory and is thrown away: SIGKILL ends it at once, where SIGTERM spends about 0.13 s
    #: in interpreter shutdown (measured), once per simulated cluster, i.e. once per test.
    graceful_stop = False

    def __init__(self, threaded: bool = True, sqlite: str | None = None) -> None:
        super().__init__()
        # Measured: the threaded server answers a find_one faster than the asyncio one (~420 vs ~560 us).
        self.threaded = threaded
        self.sqlite = nx_launcher.sqlite_choice({nx_launcher.SQLITE_ENV: sqlite} if sqlite else os.environ)
        try:
            if self.sqlite == "pinned":
                nx_launcher.pinned_sqlite()  # fail here, with the install hint, not in the child
        except nx_launcher.SQLiteChoiceError as exc:
            raise BackendNotInstalledError(str(exc)) from exc

    @property
    def _report_path(self) -> str:
        assert self._tmpdir is not None
        return os.path.join(self._tmpdir.name, "runtime.json")

    def _env(self) -> dict[str, str]:
        return {**os.environ, nx_launcher.SQLITE_ENV: self.sqlite}

    def _command(self, port: int, tmpdir: str) -> list[str]:
        argv = [
            sys.executable,
            nx_launcher.__file__,
            self._report_path,
            "--db",
            "memory",
            "--host",
            "127.0.0.1",
            "-p",
            str(port),
            "--log-file",
            os.path.join(tmpdir, "nx.log"),
            "--pid-file",
            os.path.join(tmpdir, "nx.pid"),
        ]
        if self.threaded:
            argv.append("--threaded")
        return argv

    def _after_ready(self) -> None:
        with open(self._report_path, encoding="utf-8") as report:
            self.runtime = BackendRuntime(**json.load(report))
        if self.runtime.sqlite != self.sqlite:
            raise SimulatorError(
                f"backend runs on the {self.runtime.sqlite} SQLite, not on the {self.sqlite}"
            )


class MongodBackend(Backend):
    """A real standalone ``mongod`` (dbpath in a temporary directory).

    A standalone refuses transaction numbers, so members strip them (de-duplication happens in the members
    anyway); multi-document transactions are not available with this backend.
    """

    kind = "mongod"
    strip_fields = frozenset({"txnNumber", "autocommit", "startTransaction", "$clusterTime"})

    def __init__(self, executable: str) -> None:
        super().__init__()
        self.executable = executable

    def _command(self, port: int, tmpdir: str) -> list[str]:
        dbpath = os.path.join(tmpdir, "db")
        os.makedirs(dbpath, exist_ok=True)
        return [
            self.executable,
            "--port",
            str(port),
            "--bind_ip",
            "127.0.0.1",
            "--dbpath",
            dbpath,
            "--nounixsocket",
            "--quiet",
            "--logpath",
            os.path.join(tmpdir, "mongod.log"),
        ]


def make_backend(kind: str | None = None) -> Backend:
    """Choose the backend: ``kind`` or ``$MONGOMANCY_SIM_BACKEND`` (``nx``, the default, or ``mongod``)."""
    kind = (kind or os.environ.get(BACKEND_ENV) or "nx").strip().lower()
    if kind == "mongod":
        exe = shutil.which("mongod")
        if exe is None:
            raise BackendNotInstalledError(f"{BACKEND_ENV}=mongod but no 'mongod' executable is on PATH")
        return MongodBackend(exe)
    if kind in ("nx", "nx_27017", "nx-27017"):
        if importlib.util.find_spec("nx_27017") is None:
            raise BackendNotInstalledError(
                'the simulated replica set needs the nx-27017 backend: pip install "mongomancy[sim]"'
            )
        return NxBackend()
    raise ValueError(f"backend must be 'nx' or 'mongod', not {kind!r}")


def start_backend(kind: str | None = None) -> Backend:
    """Create and start a backend (see :func:`make_backend`)."""
    return make_backend(kind).start()
