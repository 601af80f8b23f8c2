"""``mongomancy watch``: the starting topology, then every change (primary switches, members up and down) as
one line each, until Ctrl-C, SIGTERM or ``--duration``.

Why through an :class:`~mongomancy.engine.Engine`: the lines are the supervisor's own topology changes, the
ones a program's reconnect hooks and observers receive, so watching a cluster shows what mongomancy would do.
The engine's log lines about the same changes are muted while watching (each change is printed once).

Why its own heartbeat settings (unless the URI sets them): pymongo checks each member every 10 s and waits
20 s for a silent one by default; a watcher polls every 0.5 s and gives a check 2 s, so a primary that stops
answering (a "blackholed" host) is reported within about 2.5 s.  Polling rather than streaming hellos also
lets the process stop at once (a streaming monitor notices it is closed only every 0.5 s).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from mongomancy.cli import _shutdown
from mongomancy.cli._click import Command, UsageError
from mongomancy.cli.exit_codes import ExitCode
from mongomancy.cli.roles import role_name
from mongomancy.cli.target import TargetError, resolve_target

if TYPE_CHECKING:
    from mongomancy.engine import Engine
    from mongomancy.events import TopologyChange

#: MongoClient options of the watcher, each only when the URI does not set it.
WATCH_CLIENT_OPTIONS = {"heartbeatFrequencyMS": 500, "connectTimeoutMS": 2000, "serverMonitoringMode": "poll"}
DEFAULT_TIMEOUT = 5.0
_DISCOVERY_STEP = 0.02


@click.command(cls=Command)
@click.argument("target", required=False)
@click.option("--json", "as_json", is_flag=True, default=False, help="One JSON object per line.")
@click.option(
    "--duration",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Stop after this long (default: until Ctrl-C or SIGTERM).",
)
@click.option(
    "--timeout",
    type=float,
    default=DEFAULT_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="Give up (exit 2) when no member answered within this long.",
)
def watch(target: str | None, as_json: bool, duration: float | None, timeout: float) -> None:
    """Print the topology of TARGET, then every change of it, until interrupted.

    TARGET is a mongodb:// URI or host[:port] (default $MONGODB_URI, then localhost:27017).  The first line
    is the starting topology; each change is one line on stdout (--json: one object per line, with a "kind"
    of "topology", "primary_changed", "no_primary", "primary_back", "member_changed", "client_replaced",
    "unreachable").  Roles are named as `ping` names them (PRIMARY, SECONDARY, UNKNOWN...).  Ctrl-C or
    SIGTERM stops it within a second (exit 0); no member answering within --timeout exits 2.
    """
    for name, value in (("--duration", duration), ("--timeout", timeout)):
        if value is not None and not value >= 0:
            raise UsageError(f"{name} must be a number of seconds >= 0, got {value}")
    try:
        resolved = resolve_target(target)
    except TargetError as error:
        raise UsageError(str(error)) from None
    from mongomancy.engine import Engine  # noqa: PLC0415
    from mongomancy.errors import ConfigurationError  # noqa: PLC0415

    started = time.monotonic()
    code = ExitCode.OK
    # Signals are routed before the announcement: a signal right after the line must count.
    with _shutdown.fine_grained_pymongo_waits(), _shutdown.StopSignals() as signals, _engine_log_muted():
        try:
            engine = Engine(uri=resolved.uri, **_client_options(resolved.uri))
        except ConfigurationError as error:
            raise UsageError(str(error)) from None
        printer = _Printer(as_json)
        engine.add_topology_observer(printer.change)
        click.echo(f"watching {resolved.display} (Ctrl-C to stop)", err=True)
        try:
            answered = _first_answer(engine, signals, started + timeout)
            if signals.received is None:
                if answered:
                    printer.start(engine.client.topology_description)
                    if duration is None or time.monotonic() - started < duration:
                        signals.wait(None if duration is None else started + duration - time.monotonic())
                else:
                    printer.unreachable(engine.client.topology_description, resolved.display, timeout)
                    code = ExitCode.UNREACHABLE
        finally:
            _shutdown.exit_within(_shutdown.STOP_DEADLINE, code)
            engine.remove_topology_observer(printer.change)
            engine.dispose()
    if code:
        raise SystemExit(code)


def _client_options(uri: str) -> dict[str, Any]:
    query = uri.partition("?")[2].lower()
    return {key: value for key, value in WATCH_CLIENT_OPTIONS.items() if f"{key.lower()}=" not in query}


def _first_answer(engine: Engine, signals: _shutdown.StopSignals, until: float) -> bool:
    """Wait until every member pymongo knows was checked, one answered, and the engine's supervisor has
    taken in the same primary (its changes are the lines that follow: a change before it did would be lost)
    (True); or until ``until`` passes or a stop signal arrives (False)."""
    from mongomancy.supervisor import primary_of  # noqa: PLC0415

    while True:
        description = engine.client.topology_description
        servers = description.server_descriptions().values()
        checked = all(s.round_trip_time is not None or s.error is not None for s in servers)
        settled = engine.topology().primary == (
            primary_of(description) if description.has_writable_server() else None
        )
        if checked and settled and any(s.server_type_name != "Unknown" for s in servers):
            return True
        remaining = until - time.monotonic()
        if remaining <= 0 or signals.wait(min(_DISCOVERY_STEP, remaining)) is not None:
            return False


@contextlib.contextmanager
def _engine_log_muted() -> Iterator[None]:
    """The engine logs each change it announces; the watcher prints them itself, once."""
    logger = logging.getLogger("mongomancy")
    muted = logging.NullHandler()
    saved = logger.propagate
    logger.addHandler(muted)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(muted)
        logger.propagate = saved


def _clock(when: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(when)) + f".{int(when * 1000) % 1000:03d}"


class _Printer:
    """Prints on the supervisor thread (changes) and the main thread (start, unreachable), one line at a time.

    Changes seen before the starting topology is printed are folded into it (they are part of the start).
    """

    def __init__(self, as_json: bool) -> None:
        self._as_json = as_json
        self._lock = threading.Lock()
        self._started = False

    def _emit(self, line: str) -> None:
        click.echo(line)
        sys.stdout.flush()

    def start(self, description: Any) -> None:
        from mongomancy._redact import address_text  # noqa: PLC0415

        members = sorted(
            (address_text(address), role_name(server.server_type_name))
            for address, server in description.server_descriptions().items()
        )
        primary = next((a for a, role in members if role in ("PRIMARY", "STANDALONE")), None)
        now = time.time()
        with self._lock:
            if self._as_json:
                self._emit(
                    json.dumps(
                        {
                            "kind": "topology",
                            "topology_type": description.topology_type_name,
                            "set_name": description.replica_set_name,
                            "primary": primary,
                            "members": [{"address": a, "role": role} for a, role in members],
                            "observed_at": now,
                        }
                    )
                )
            else:
                name = f" {description.replica_set_name}" if description.replica_set_name else ""
                listed = ", ".join(f"{a} {role}" for a, role in members)
                self._emit(
                    f"{_clock(now)} topology {description.topology_type_name}{name}, "
                    f"primary {primary or 'none'}; members {listed}"
                )
            self._started = True

    def unreachable(self, description: Any, display: str, timeout: float) -> None:
        from mongomancy.members import why_no_primary  # noqa: PLC0415

        reason = why_no_primary(description)
        with self._lock:
            if self._as_json:
                doc = {"kind": "unreachable", "target": display, "error": reason, "observed_at": time.time()}
                self._emit(json.dumps(doc))
            else:
                self._emit(f"{_clock(time.time())} UNREACHABLE after {timeout:g} s: {reason}")

    def change(self, change: TopologyChange) -> None:
        with self._lock:
            if not self._started:
                return
            if self._as_json:
                doc = change.to_json()
                doc["old_role"] = role_name(change.old_role)
                doc["new_role"] = role_name(change.new_role)
                self._emit(json.dumps(doc))
            else:
                self._emit(f"{_clock(change.observed_at)} {_describe(change)}")


def _describe(change: TopologyChange) -> str:
    from mongomancy.events import ChangeKind  # noqa: PLC0415

    if change.kind is ChangeKind.MEMBER_CHANGED:
        old = role_name(change.old_role) or "absent"
        new = role_name(change.new_role) or "removed"
        return f"member {change.member}: {old} -> {new}"
    return change.describe()
