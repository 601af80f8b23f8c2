"""What ``mongomancy ping`` answers, as values: the options, each member, each check, the verdict.

Kept apart from the probe (which imports pymongo) so the command can answer without pymongo when every seed
refused the connection, and print a verdict of its watchdog.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from mongomancy.cli.target import Target, TargetError, resolve_target

SCHEMA_VERSION = 1
DEFAULT_TIMEOUT = 5.0
#: With ``--wait`` and no ``--timeout``, the deadline is the wait plus this.
WAIT_GRACE = 5.0
#: The probe keeps this much of the deadline for closing the client and printing.
EXIT_MARGIN = 0.08


class PingUsageError(ValueError):
    """The options or the target are unusable (exit 3); the message is safe to print."""


@attrs.frozen
class PingOptions:
    """What to probe and which checks to run (the ``ping`` options, already parsed)."""

    target: str | None = None
    host: str | None = None
    port: int | None = None
    tls: bool = False
    tls_ca_file: str | None = None
    tls_certificate_key_file: str | None = None
    tls_allow_invalid_certificates: bool = False
    timeout: float | None = None
    require_primary: bool = False
    direct: bool = False
    max_lag: float | None = None
    wait: float | None = None
    #: Extra MongoClient keyword arguments (tests use ``heartbeatFrequencyMS``).
    client_options: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    @property
    def deadline_seconds(self) -> float:
        if self.timeout is not None:
            return self.timeout
        return DEFAULT_TIMEOUT if self.wait is None else self.wait + WAIT_GRACE


@attrs.frozen
class MemberStatus:
    address: str
    state: str
    round_trip_ms: float | None = None
    lag_seconds: float | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def describe(self) -> str:
        text = f"{self.address} {self.state}"
        if self.round_trip_ms is not None:
            text += f" {self.round_trip_ms:.1f}ms"
        if self.lag_seconds is not None:
            text += f" lag {self.lag_seconds:.1f}s"
        if self.error is not None:
            text += f" ({shorten(self.error)})"
        return text


@attrs.frozen
class CheckResult:
    #: "ping" | "primary" | "max_lag" | "replica_set"
    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


_VERDICTS = {
    "ok": "OK",
    "check_failed": "FAILED",
    "unreachable": "UNREACHABLE",
    "timeout": "TIMEOUT",
    "auth_failed": "AUTH FAILED",
    "usage_error": "USAGE ERROR",
}


@attrs.frozen
class PingResult:
    """What the probe found; ``to_json()`` is the documented schema, ``describe()`` the human line."""

    status: str
    exit_code: int
    target: str
    elapsed_ms: float = 0.0
    attempts: int = 0
    topology_type: str | None = None
    set_name: str | None = None
    primary: str | None = None
    members: tuple[MemberStatus, ...] = ()
    max_lag_seconds: float | None = None
    checks: tuple[CheckResult, ...] = ()
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "status": self.status,
            "exit_code": self.exit_code,
            "target": self.target,
            "elapsed_ms": self.elapsed_ms,
            "attempts": self.attempts,
            "topology_type": self.topology_type,
            "set_name": self.set_name,
            "primary": self.primary,
            "members": [m.to_json() for m in self.members],
            "max_lag_seconds": self.max_lag_seconds,
            "checks": [c.to_json() for c in self.checks],
            "error": self.error,
        }

    def describe(self) -> str:
        """One line: verdict (and why), topology, set name, primary, members with state and round trip."""
        verdict = _VERDICTS.get(self.status, self.status.upper())
        failed = [c.detail for c in self.checks if not c.ok]
        if failed:
            verdict += f" ({'; '.join(failed)})"
        elif self.error:
            verdict += f" ({shorten(self.error)})"
        if self.topology_type is not None and self.topology_type != "Unknown":
            where = f"{self.topology_type}{f' {self.set_name}' if self.set_name else ''}"
            where += f", primary {self.primary or 'none'}"
        else:
            where = self.target
        line = f"{verdict}: {where}"
        if self.members:
            line += "; members " + ", ".join(m.describe() for m in self.members)
        return f"{line} [{self.elapsed_ms:.0f} ms]"


def shorten(text: str, limit: int = 200) -> str:
    """One line, without pymongo's timeout settings and topology dump (they are in the JSON anyway)."""
    line = " ".join(text.split())
    for noise in (" (configured timeouts:", ", Timeout: ", ", full error:"):
        line = line.partition(noise)[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."


def validate_options(options: PingOptions) -> None:
    """Raise :class:`PingUsageError` for option values no probe can use."""
    for name, value in (
        ("--timeout", options.timeout),
        ("--wait", options.wait),
        ("--max-lag", options.max_lag),
    ):
        if value is not None and not value >= 0:  # also refuses NaN
            raise PingUsageError(f"{name} must be a number of seconds >= 0, got {value}")
    if options.timeout is not None and options.timeout <= EXIT_MARGIN:
        raise PingUsageError(f"--timeout must be more than {EXIT_MARGIN} s, got {options.timeout}")


def target_of(options: PingOptions, environ: Mapping[str, str] | None = None) -> Target:
    try:
        return resolve_target(options.target, options.host, options.port, environ)
    except TargetError as error:
        raise PingUsageError(str(error)) from None
