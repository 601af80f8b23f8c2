"""``mongomancy sim``: the simulated replica set of :mod:`mongomancy.testing` in the foreground, from a shell.

Why: trying ``mongomancy-ping``, ``watch`` or one's own program against a failover should not need a
hand-written wrapper.  The first line on stdout is the connection URI (a test reads it from the pipe, a shell
from a file); with ``--step-down-every`` the primary switches periodically and each switch is one more line
(a reader that went away does not stop the set).  Ctrl-C or SIGTERM stops it within a second and stops the
backend process by PID (see :mod:`mongomancy.cli._shutdown`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import click

from mongomancy.cli import _shutdown
from mongomancy.cli._click import Command, UsageError


@click.command(cls=Command)
@click.option(
    "--members", type=click.IntRange(1, 7), default=3, show_default=True, help="Members of the set."
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    help="First member's port; the others follow (P, P+1, ...).  Default: free ports.",
)
@click.option("--set-name", default="rs0", show_default=True, help="The replica set's name.")
@click.option(
    "--step-down-every",
    type=click.FloatRange(min=0.1),
    default=None,
    metavar="SECONDS",
    help="Step the primary down this often (the next member is elected at once).",
)
@click.option("--json", "as_json", is_flag=True, default=False, help="One JSON object per line on stdout.")
def sim(members: int, port: int, set_name: str, step_down_every: float | None, as_json: bool) -> None:
    """Run a simulated replica set on loopback until Ctrl-C or SIGTERM.

    The first line on stdout is its connection URI (--json: {"event": "started", "uri": ...}); each
    step-down adds a line naming the new primary.  Needs the `sim` extra (nx-27017).  Exit 0 when stopped
    by a signal; the backend process is stopped too.
    """
    if port and port + members - 1 > 65535:
        raise UsageError(
            f"--port {port} leaves no room for {members} members (ports {port}..{port + members - 1})"
        )
    from mongomancy.errors import MongomancyError  # noqa: PLC0415
    from mongomancy.testing import SimulatedReplicaSet  # noqa: PLC0415

    ports = [port + i for i in range(members)] if port else None
    with _shutdown.StopSignals() as signals:
        try:
            cluster = SimulatedReplicaSet(members=members, set_name=set_name, ports=ports)
        except (MongomancyError, OSError, ValueError) as error:
            raise UsageError(f"cannot start the simulated replica set: {error}") from None
        backend = cluster.backend.pid

        def children() -> tuple[int, ...]:
            return () if backend is None else (backend,)

        try:
            _announce(cluster, as_json)
            while signals.received is None:
                if signals.wait(step_down_every) is not None or step_down_every is None:
                    break
                cluster.step_down()
                _line(as_json, {"event": "step_down", "primary": cluster.primary_address}, "primary is now")
        finally:
            _shutdown.exit_within(_shutdown.STOP_DEADLINE, 0, children)
            if signals.received is not None and _shutdown.hard_exit_enabled():
                discard_backend(cluster.backend)
                click.echo("simulated replica set stopped", err=True)
                _shutdown.exit_now(0)
            cluster.close()
    click.echo("simulated replica set stopped", err=True)


def discard_backend(backend: Any) -> None:
    """Kill the simulated set's backend process, reap it and remove its files, without a graceful stop: it
    holds throw-away data, and a process that is ending need not join every member thread first."""
    process = backend.process
    if process is not None and process.poll() is None:
        process.kill()
    backend.stop()


def _announce(cluster: Any, as_json: bool) -> None:
    addresses = [m.address for m in cluster.members]
    if as_json:
        doc = {
            "event": "started",
            "uri": cluster.uri,
            "set_name": cluster.set_name,
            "members": addresses,
            "primary": cluster.primary_address,
            "backend_pid": cluster.backend.pid,
            "at": time.time(),
        }
        click.echo(json.dumps(doc))
    else:
        click.echo(cluster.uri)
    sys.stdout.flush()
    click.echo(
        f"simulated replica set {cluster.set_name}: {len(addresses)} members ({', '.join(addresses)}), "
        f"primary {cluster.primary_address}; Ctrl-C to stop",
        err=True,
    )


def _line(as_json: bool, doc: dict[str, Any], text: str) -> None:
    doc["at"] = time.time()
    try:
        click.echo(json.dumps(doc) if as_json else f"{text} {doc['primary']}")
        sys.stdout.flush()
    except BrokenPipeError:
        # Whoever read our output went away (``| head -1``): keep serving, print nowhere from now on.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
