"""``mongomancy ping`` / ``mongomancy-ping``: a probe-grade health check with a hard wall-clock deadline.

Why the imports are lazy: a probe is run by container runtimes and cron every few seconds, so this module
imports click alone; the probe (plain pymongo, :mod:`mongomancy.cli._probe`) is imported when it runs.

JSON output (``--json``), ``schema_version`` 1: one object on one line.  Keys are always present (``null``
when unknown); new keys or values may be added within a schema version, none are removed or change type
without bumping ``schema_version``::

    {
      "schema_version": 1,                  # int
      "status": "ok",                       # "ok" | "check_failed" | "unreachable" | "timeout"
                                            #   | "usage_error" | "auth_failed"
      "exit_code": 0,                       # int, the process exit code (mongomancy.cli.exit_codes)
      "target": "mongodb://u:***@h1,h2/",   # str, the target as given, with passwords replaced by ***
      "elapsed_ms": 12.3,                   # float, from the start of the process
      "attempts": 1,                        # int, attempts (> 1 only with --wait)
      "topology_type": "ReplicaSetWithPrimary",  # str | null, pymongo's topology type name
      "set_name": "rs0",                    # str | null
      "primary": "h1:27017",                # str | null, the writable member ("host:port")
      "members": [                          # list, sorted by address
        {"address": "h1:27017",             # str
         "state": "PRIMARY",                # PRIMARY | SECONDARY | ARBITER | OTHER | GHOST | STANDALONE
                                            #   | MONGOS | LOAD_BALANCER | UNKNOWN (not reached)
         "round_trip_ms": 0.4,              # float | null
         "lag_seconds": null,               # float | null, only measured with --max-lag
         "error": null}                     # str | null, why the member was not reached or does not fit
      ],
      "max_lag_seconds": null,              # float | null, the largest secondary lag (with --max-lag)
      "checks": [                           # list, in the order run
        {"name": "ping", "ok": true, "detail": "..."}   # "ping" | "primary" | "max_lag" | "replica_set"
      ],
      "error": null                         # str | null, the failure in one line (no password)
    }
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import click

from mongomancy._version import __version__
from mongomancy.cli import _shutdown
from mongomancy.cli._click import Command, UsageError
from mongomancy.cli._refused import refusing_seeds
from mongomancy.cli._verdict import (
    MemberStatus,
    PingOptions,
    PingResult,
    PingUsageError,
    target_of,
    validate_options,
)
from mongomancy.cli.exit_codes import ExitCode
from mongomancy.cli.target import DEFAULT_TARGET, shown


def process_started() -> float:
    """``time.monotonic()`` at process start (Linux), so ``--timeout`` counts the interpreter start too."""
    now = time.monotonic()
    try:
        with open("/proc/self/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - int(fields[19]) / ticks
    except (OSError, ValueError, IndexError, AttributeError):
        return now
    return now - age if 0 <= age < 60 else now


PROCESS_STARTED = process_started()


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="mongomancy-ping", message="%(prog)s %(version)s")
@click.argument("target", required=False)
@click.option("--host", help="Host to probe (instead of TARGET or $MONGODB_URI).")
@click.option("--port", type=int, help="Port to probe (default 27017).")
@click.option("--tls", is_flag=True, default=False, help="Connect with TLS.")
@click.option("--tls-ca-file", type=click.Path(dir_okay=False), help="CA bundle to verify the server with.")
@click.option(
    "--tls-certificate-key-file", type=click.Path(dir_okay=False), help="Client certificate and key (PEM)."
)
@click.option(
    "--tls-allow-invalid-certificates",
    is_flag=True,
    default=False,
    help="Do not verify the server certificate.",
)
@click.option(
    "--timeout",
    type=float,
    default=None,
    help="Hard deadline for the whole command, seconds [5; --wait + 5 with --wait].",
)
@click.option(
    "--require-primary", is_flag=True, default=False, help="Fail (exit 1) unless a writable primary exists."
)
@click.option("--direct", is_flag=True, default=False, help="Probe this one node only (directConnection).")
@click.option(
    "--max-lag",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Fail (exit 1) if a secondary lags more than this.",
)
@click.option(
    "--wait",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Keep trying until healthy for up to this long (a refused connection is then not final).",
)
@click.option(
    "--json", "as_json", is_flag=True, default=False, help="Print one JSON object (schema_version 1)."
)
@click.option(
    "--quiet", "-q", is_flag=True, default=False, help="Print nothing at all: the exit code is the answer."
)
def ping(  # noqa: PLR0917 - one parameter per documented option
    target: str | None,
    host: str | None,
    port: int | None,
    tls: bool,
    tls_ca_file: str | None,
    tls_certificate_key_file: str | None,
    tls_allow_invalid_certificates: bool,
    timeout: float | None,
    require_primary: bool,
    direct: bool,
    max_lag: float | None,
    wait: float | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Probe TARGET (a mongodb:// URI or host[:port]; default $MONGODB_URI, then localhost:27017).

    A connection refused by every seed is an answer (exit 2 at once) unless --wait is given.

    \b
    Exit codes: 0 healthy, 1 reachable but a check failed, 2 unreachable or
    timed out, 3 usage or configuration error, 4 authentication failed.
    """
    started = PROCESS_STARTED if _shutdown.hard_exit_enabled() else time.monotonic()
    if as_json and quiet:
        raise UsageError("--json and --quiet exclude each other")
    options = PingOptions(
        target=target,
        host=host,
        port=port,
        tls=tls,
        tls_ca_file=tls_ca_file,
        tls_certificate_key_file=tls_certificate_key_file,
        tls_allow_invalid_certificates=tls_allow_invalid_certificates,
        timeout=timeout,
        require_primary=require_primary,
        direct=direct,
        max_lag=max_lag,
        wait=wait,
    )

    def emit(result: PingResult) -> None:
        if not quiet:
            click.echo(json.dumps(result.to_json()) if as_json else result.describe())

    watchdog = _Watchdog()
    try:
        validate_options(options)
        resolved = target_of(options)
        result = _refused_at_once(options, resolved.uri, resolved.display, started)
        if result is None:
            if _shutdown.hard_exit_enabled():
                watchdog.start(started, options.deadline_seconds, resolved.display, emit)
            with _silenced(quiet):
                from mongomancy.cli._probe import run_ping  # noqa: PLC0415

                result = run_ping(options, started=started)
        watchdog.cancel()
        emit(result)
    except PingUsageError as error:
        watchdog.cancel()
        if not as_json:
            raise UsageError(str(error)) from None
        emit(
            PingResult(
                "usage_error",
                ExitCode.USAGE,
                display_of(target, host, port),
                error=str(error),
                elapsed_ms=_ms_since(started),
            )
        )
        raise SystemExit(ExitCode.USAGE) from None
    finally:
        watchdog.cancel()
    if result.exit_code:
        raise SystemExit(result.exit_code)


def _refused_at_once(options: PingOptions, uri: str, display: str, started: float) -> PingResult | None:
    """The verdict when every seed refused a TCP connection (without --wait, which makes it not final)."""
    if options.wait is not None:
        return None
    seeds = refusing_seeds(uri)
    if seeds is None:
        return None
    return PingResult(
        "unreachable",
        ExitCode.UNREACHABLE,
        display,
        elapsed_ms=_ms_since(started),
        attempts=1,
        members=tuple(
            MemberStatus(seed, "UNKNOWN", error="refused the connection") for seed in sorted(seeds)
        ),
        error=f"connection refused by {'every seed' if len(seeds) > 1 else 'the server'}",
    )


def display_of(target: str | None, host: str | None, port: int | None) -> str:
    """The target as the user gave it (redacted), for a usage error that stopped before resolving it."""
    if host is not None or port is not None:
        return f"{host or 'localhost'}:{port or 27017}"
    return shown(target if target is not None else os.environ.get("MONGODB_URI") or DEFAULT_TARGET)


@contextlib.contextmanager
def _silenced(quiet: bool) -> Iterator[None]:
    """With --quiet, nothing reaches the terminal: pymongo's warnings (a ``UserWarning`` for an unknown URI
    option, for instance) included."""
    if not quiet:
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


class _Watchdog:
    """Ends the process with exit 2 if the probe overruns ``--timeout``, whatever it is stuck in."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._timer: threading.Timer | None = None

    def start(self, started: float, budget: float, target: str, emit: Callable[[Any], None]) -> None:
        def fire() -> None:
            with self._lock:
                if self._cancelled:
                    return
                result = PingResult(
                    "timeout",
                    ExitCode.UNREACHABLE,
                    target,
                    elapsed_ms=_ms_since(started),
                    error=f"no answer within the {budget:g} s deadline",
                )
                try:
                    emit(result)
                    sys.stdout.flush()
                finally:
                    os._exit(ExitCode.UNREACHABLE)

        delay = max(0.0, started + budget + 0.03 - time.monotonic())
        self._timer = threading.Timer(delay, fire)
        self._timer.daemon = True
        self._timer.name = "mongomancy-ping-watchdog"
        self._timer.start()

    def cancel(self) -> None:
        """Called once the verdict is known: from here on, the normal exit path owns the process."""
        with self._lock:
            self._cancelled = True
            if self._timer is not None:
                self._timer.cancel()
