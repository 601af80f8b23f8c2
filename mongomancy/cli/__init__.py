"""The ``mongomancy`` command line: ``ping`` (also installed as ``mongomancy-ping``), ``watch`` and ``demo``.

Why the imports are lazy: ``mongomancy-ping`` is a probe run by container runtimes and cron every few
seconds, so this module imports only click at the top; each command imports what it needs when it runs
(``ping`` plain pymongo, ``watch`` the engine, ``demo`` the engine, the schema layer and the simulator).

Exit codes are the same for every command: 0 success, 1 a check failed (``ping``) or the demo saw errors or
duplicates, 2 unreachable or timed out, 3 usage or configuration error, 4 authentication failed.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

import click

from mongomancy.cli import _shutdown

EXIT_USAGE = 3

#: Set by the real entry points (``main``/``ping_main``): enables the watchdog that ends the process with
#: ``os._exit(2)`` when ``--timeout`` passes.  Off under click's test runner, where it would kill pytest.
_HARD_EXIT = False


class _UsageError(click.UsageError):
    exit_code = EXIT_USAGE


def _as_exit_3(error: click.UsageError) -> _UsageError:
    return _UsageError(error.format_message(), error.ctx)


class _Command(click.Command):
    """Click's usage errors exit 2; ours exit 3 (2 means "unreachable")."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as error:
            raise _as_exit_3(error) from None


class _Group(_Command, click.Group):
    """A group whose usage errors exit 3, like its commands' (``make_context`` from :class:`_Command`)."""

    command_class = _Command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as error:
            raise _as_exit_3(error) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mongomancy", message="%(prog)s %(version)s")
def cli() -> None:
    """Keep programs talking to a MongoDB replica set through primary switches."""


# ----------------------------------------------------------------------------------------------------- ping
@cli.command(cls=_Command, context_settings={"help_option_names": ["-h", "--help"]})
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
    help="Keep trying until healthy for up to this long.",
)
@click.option(
    "--json", "as_json", is_flag=True, default=False, help="Print one JSON object (schema_version 1)."
)
@click.option(
    "--quiet", "-q", is_flag=True, default=False, help="Print nothing: the exit code is the answer."
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

    \b
    Exit codes: 0 healthy, 1 reachable but a check failed, 2 unreachable or
    timed out, 3 usage or configuration error, 4 authentication failed.
    """
    started = _STARTED if _HARD_EXIT else time.monotonic()
    from mongomancy import ping as probe  # noqa: PLC0415

    if as_json and quiet:
        raise _UsageError("--json and --quiet exclude each other")
    options = probe.PingOptions(
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

    def emit(result: probe.PingResult) -> None:
        if quiet:
            return
        click.echo(json.dumps(result.to_json(), sort_keys=False) if as_json else result.describe())

    try:
        probe.validate_options(options)
        display = probe.resolve_target(options).display
        if _HARD_EXIT:
            _WATCHDOG.start(started, options.deadline_seconds, display, emit)
        result = probe.run_ping(options, started=started)
        _WATCHDOG.cancel()
        emit(result)
    except probe.PingUsageError as error:
        if as_json:
            emit(
                probe.PingResult(
                    "usage_error", EXIT_USAGE, "", error=str(error), elapsed_ms=_ms_since(started)
                )
            )
            raise SystemExit(EXIT_USAGE) from None
        raise _UsageError(str(error)) from None
    finally:
        _WATCHDOG.cancel()
    _exit(result.exit_code)


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def _exit(code: int) -> None:
    if code:
        raise SystemExit(code)


class _Watchdog:
    """Ends the process with exit 2 if the probe overruns ``--timeout``, whatever it is stuck in."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._timer: threading.Timer | None = None

    def start(self, started: float, budget: float, target: str, emit: Any) -> None:
        from mongomancy import ping as probe  # noqa: PLC0415

        def fire() -> None:
            with self._lock:
                if self._cancelled:
                    return
                result = probe.PingResult(
                    "timeout",
                    probe.EXIT_UNREACHABLE,
                    target,
                    elapsed_ms=_ms_since(started),
                    error=f"no answer within the {budget:g} s deadline",
                )
                try:
                    emit(result)
                    sys.stdout.flush()
                finally:
                    os._exit(probe.EXIT_UNREACHABLE)

        delay = max(0.0, started + budget + 0.03 - time.monotonic())
        self._timer = threading.Timer(delay, fire)
        self._timer.daemon = True
        self._timer.name = "mongomancy-ping-watchdog"
        self._timer.start()

    def cancel(self) -> None:
        """Called once the verdict is printed: from here on, the normal exit path owns the process."""
        with self._lock:
            self._cancelled = True
            if self._timer is not None:
                self._timer.cancel()


_WATCHDOG = _Watchdog()


# ---------------------------------------------------------------------------------------------------- watch
@cli.command(cls=_Command)
@click.argument("target", required=False)
@click.option("--json", "as_json", is_flag=True, default=False, help="One JSON object per line.")
@click.option(
    "--duration",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Stop after this long (default: until Ctrl-C).",
)
def watch(target: str | None, as_json: bool, duration: float | None) -> None:
    """Stream topology changes (primary switches, members up and down) of TARGET until interrupted.

    TARGET is a mongodb:// URI or host[:port] (default $MONGODB_URI, then localhost:27017).  Each change is
    one line on stdout (--json: an object with kind, old_primary, new_primary, member, old_role, new_role,
    topology_type, set_name, client_generation, observed_at).  Ctrl-C or SIGTERM stops cleanly (exit 0).
    """
    from mongomancy import ping as probe  # noqa: PLC0415
    from mongomancy.errors import ConfigurationError  # noqa: PLC0415

    if duration is not None and not duration >= 0:
        raise _UsageError(f"--duration must be >= 0, got {duration}")
    try:
        resolved = probe.resolve_target(probe.PingOptions(target=target))
    except probe.PingUsageError as error:
        raise _UsageError(str(error)) from None
    from mongomancy.engine import Engine  # noqa: PLC0415

    # Signals are routed before the announcement: a signal right after the line must count.
    with _shutdown.fine_grained_pymongo_waits(), _shutdown.StopSignals() as signals:
        try:
            engine = Engine(uri=resolved.uri)
        except ConfigurationError as error:
            raise _UsageError(_redacted(str(error), resolved.secrets)) from None
        lock = threading.Lock()

        def observer(change: Any) -> None:
            line = (
                json.dumps(change.to_json())
                if as_json
                else f"{_clock(change.observed_at)} {change.describe()}"
            )
            with lock:
                click.echo(line)
                sys.stdout.flush()

        engine.add_topology_observer(observer)
        click.echo(f"watching {resolved.display} (Ctrl-C to stop)", err=True)
        try:
            signals.wait(duration)
        finally:
            _shutdown.exit_within(_shutdown.STOP_DEADLINE, 0)
            engine.remove_topology_observer(observer)
            engine.dispose()


def _clock(when: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(when)) + f".{int(when * 1000) % 1000:03d}"


def _redacted(text: str, secrets: tuple[str, ...]) -> str:
    from mongomancy._redact import redact_text  # noqa: PLC0415

    return redact_text(text, secrets)


# ----------------------------------------------------------------------------------------------------- demo
@cli.command(cls=_Command)
@click.option("--threads", type=click.IntRange(1, 64), default=8, show_default=True, help="Worker threads.")
@click.option(
    "--duration",
    type=click.FloatRange(1, 600),
    default=15.0,
    show_default=True,
    help="Seconds of traffic per run.",
)
@click.option("--seed", type=int, default=None, help="Random seed of the workload and the fault schedule.")
@click.option(
    "--compare/--no-compare", default=True, show_default=True, help="Run the same job with plain pymongo too."
)
@click.option(
    "--json", "as_json", is_flag=True, default=False, help="Print the summary as JSON instead of text."
)
def demo(threads: int, duration: float, seed: int | None, compare: bool, as_json: bool) -> None:
    """Run a multithreaded batch job on a simulated replica set while its primary is stepped down.

    Starts an embedded 3-member SimulatedReplicaSet, runs inserts, $inc counters and reads through
    mongomancy's Database/Collection while the primary steps down several times (instant and ~1 s
    elections, one with hung-up connections), verifies every acknowledged write exactly once, then runs the
    same job with plain pymongo (retryable writes on) for comparison.  Exit 0 when mongomancy's workers saw
    no errors and nothing was duplicated or lost.
    """
    from mongomancy.demo import DemoConfig, run_demo  # noqa: PLC0415

    config = DemoConfig(threads=threads, duration=duration, seed=seed, compare=compare)
    code = run_demo(config, as_json=as_json)
    _exit(code)


# ---------------------------------------------------------------------------------------------- entry points
def _process_started() -> float:
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


_STARTED = _process_started()


def main() -> None:
    """``mongomancy``: the command group."""
    global _HARD_EXIT
    _HARD_EXIT = True
    _shutdown.enable_hard_exit()
    cli.main(prog_name="mongomancy")


def ping_main() -> None:
    """``mongomancy-ping``: the ``ping`` command on its own."""
    global _HARD_EXIT
    _HARD_EXIT = True
    _shutdown.enable_hard_exit()
    ping.main(prog_name="mongomancy-ping")


if __name__ == "__main__":
    main()
