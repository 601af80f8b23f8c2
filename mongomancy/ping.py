"""``mongomancy-ping``: a probe-grade health check of a MongoDB deployment, with a hard wall-clock deadline.

Why plain pymongo and not the :class:`~mongomancy.engine.Engine`: a probe asks one question and exits; it must
not wait out failovers (that is the engine's job) and must not pay for a supervisor thread.  One
``MongoClient`` is created with every pymongo timeout derived from the time left, and each operation runs
under ``pymongo.timeout(remaining)``; the CLI adds a watchdog that exits 2 if anything still overruns.

Exit codes
----------
====  =====================================================================================
0     healthy: reachable and every requested check passed
1     reachable, but a check failed (no writable primary, replication lag over ``--max-lag``)
2     unreachable, or the ``--timeout`` deadline passed
3     usage or configuration error (bad option, malformed URI: the message says what is wrong)
4     authentication failed
====  =====================================================================================

JSON output (``--json``), ``schema_version`` 1
----------------------------------------------
One object on one line.  Keys are always present (``null`` when unknown); new keys may be added within a
schema version, none are removed or change type without bumping ``schema_version``::

    {
      "schema_version": 1,                  # int
      "status": "ok",                       # "ok" | "check_failed" | "unreachable" | "timeout"
                                            #   | "usage_error" | "auth_failed"
      "exit_code": 0,                       # int, the process exit code (see above)
      "target": "mongodb://u:***@h1,h2/",   # str, the target with passwords replaced by ***
      "elapsed_ms": 12.3,                   # float, from the start of the command
      "attempts": 1,                        # int, connection attempts (> 1 only with --wait)
      "topology_type": "ReplicaSetWithPrimary",  # str | null, pymongo's topology type name
      "set_name": "rs0",                    # str | null
      "primary": "h1:27017",                # str | null, the writable member ("host:port")
      "members": [                          # list, sorted by address
        {"address": "h1:27017",             # str
         "state": "PRIMARY",                # PRIMARY | SECONDARY | ARBITER | OTHER | GHOST | STANDALONE
                                            #   | MONGOS | LOAD_BALANCER | UNKNOWN (not reached)
         "round_trip_ms": 0.4,              # float | null
         "lag_seconds": null,               # float | null, only measured with --max-lag
         "error": null}                     # str | null, why the member was not reached
      ],
      "max_lag_seconds": null,              # float | null, the largest secondary lag (with --max-lag)
      "checks": [                           # list, in the order run
        {"name": "ping", "ok": true, "detail": "..."}   # name: "ping" | "primary" | "max_lag"
      ],
      "error": null                         # str | null, the failure in one line (no password)
    }
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from mongomancy._redact import redact_text, redact_uri

SCHEMA_VERSION = 1

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_UNREACHABLE = 2
EXIT_USAGE = 3
EXIT_AUTH = 4

#: Server error codes that mean "the credentials were refused" (AuthenticationFailed, UserNotFound).
AUTH_ERROR_CODES = frozenset({11, 18})

DEFAULT_TIMEOUT = 5.0
#: With ``--wait`` and no ``--timeout``, the deadline is the wait plus this.
WAIT_GRACE = 5.0
#: The probe keeps this much of the deadline for closing the client and printing.
_EXIT_MARGIN = 0.08
_RETRY_PAUSE = 0.2
_DISCOVERY_WAIT = 1.0
_PYMONGO_WAIT_STEP = 0.05

_STATE_NAMES = {
    "RSPrimary": "PRIMARY",
    "RSSecondary": "SECONDARY",
    "RSArbiter": "ARBITER",
    "RSOther": "OTHER",
    "RSGhost": "GHOST",
    "Standalone": "STANDALONE",
    "Mongos": "MONGOS",
    "LoadBalancer": "LOAD_BALANCER",
    "Unknown": "UNKNOWN",
}
_WRITABLE_TYPES = frozenset({"RSPrimary", "Standalone", "Mongos", "LoadBalancer"})
_SECRET_VALUE = re.compile(r"(?i)(?:password|authMechanismProperties|tlsCertificateKeyFilePassword)=([^&]*)")
_USERINFO_PASSWORD = re.compile(r"^mongodb(?:\+srv)?://[^:@/]*:([^@/]*)@")
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+)(?::(?P<port>[0-9]{1,5}))?$")


class PingUsageError(Exception):
    """The options or the target are unusable (exit code 3); the message is safe to print."""


@dataclass(frozen=True)
class PingOptions:
    """What to probe and which checks to run (the ``mongomancy ping`` options, already parsed)."""

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
    client_options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def deadline_seconds(self) -> float:
        if self.timeout is not None:
            return self.timeout
        return DEFAULT_TIMEOUT if self.wait is None else self.wait + WAIT_GRACE


@dataclass
class MemberStatus:
    address: str
    state: str
    round_trip_ms: float | None = None
    lag_seconds: float | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "state": self.state,
            "round_trip_ms": self.round_trip_ms,
            "lag_seconds": self.lag_seconds,
            "error": self.error,
        }

    def describe(self) -> str:
        text = f"{self.address} {self.state}"
        if self.round_trip_ms is not None:
            text += f" {self.round_trip_ms:.1f}ms"
        if self.lag_seconds is not None:
            text += f" lag {self.lag_seconds:.1f}s"
        if self.error is not None and self.state == "UNKNOWN":
            text += f" ({_shorten(self.error)})"
        return text


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
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
    members: list[MemberStatus] = field(default_factory=list)
    max_lag_seconds: float | None = None
    checks: list[CheckResult] = field(default_factory=list)
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
        """One line: verdict, topology, set name, primary, members with state and round-trip time."""
        verdict = {
            "ok": "OK",
            "check_failed": "FAILED",
            "unreachable": "UNREACHABLE",
            "timeout": "TIMEOUT",
            "auth_failed": "AUTH FAILED",
            "usage_error": "USAGE ERROR",
        }.get(self.status, self.status.upper())
        parts = [verdict]
        failed = [c.detail for c in self.checks if not c.ok]
        if failed:
            parts[0] += f" ({'; '.join(failed)})"
        elif self.error:
            parts[0] += f" ({_shorten(self.error)})"
        if self.topology_type is not None:
            topo = self.topology_type + (f" {self.set_name}" if self.set_name else "")
            parts.append(f"{topo}, primary {self.primary or 'none'}")
        else:
            parts.append(self.target)
        if self.members:
            parts.append("members " + ", ".join(m.describe() for m in self.members))
        return (
            ": ".join(parts[:2])
            + ("; " + parts[2] if len(parts) > 2 else "")
            + f" [{self.elapsed_ms:.0f} ms]"
        )


@dataclass(frozen=True)
class ResolvedTarget:
    """MongoClient's first argument, the same without passwords, and the secrets to redact from errors."""

    uri: str
    display: str
    secrets: tuple[str, ...]


def resolve_target(options: PingOptions, environ: Mapping[str, str] | None = None) -> ResolvedTarget:
    """The target of ``options``: ``--host``/``--port``, else the argument, else ``$MONGODB_URI``, else
    ``localhost:27017``.  An argument is a ``mongodb://`` / ``mongodb+srv://`` URI or ``host[:port]``."""
    env = os.environ if environ is None else environ
    if options.host is not None and options.target is not None:
        raise PingUsageError("give the target either as an argument or with --host/--port, not both")
    if options.host is not None or options.port is not None:
        host = options.host or "localhost"
        port = options.port or 27017
        if not _HOST_PORT.match(host):
            raise PingUsageError(f"--host is not a host name or address: {host[:60]!r}")
        if not 0 < port < 65536:
            raise PingUsageError(f"--port must be between 1 and 65535, got {port}")
        uri = f"mongodb://{host}:{port}/"
        return ResolvedTarget(uri, uri, ())
    raw = options.target if options.target is not None else env.get("MONGODB_URI") or "localhost:27017"
    raw = raw.strip()
    if raw.startswith(("mongodb://", "mongodb+srv://")):
        return ResolvedTarget(raw, redact_uri(raw), _secrets_of(raw))
    if "://" in raw:
        scheme = raw.partition("://")[0]
        raise PingUsageError(
            f"the target must start with mongodb:// or mongodb+srv://, not {scheme[:20]!r}://"
        )
    if "@" in raw:
        raise PingUsageError("credentials need the mongodb://user:password@host form")
    match = _HOST_PORT.match(raw)
    if not match:
        raise PingUsageError(f"the target is neither a mongodb:// URI nor host[:port]: {raw[:60]!r}")
    port_text = match.group("port")
    if port_text is not None and not 0 < int(port_text) < 65536:
        raise PingUsageError(f"the port must be between 1 and 65535, got {port_text}")
    uri = f"mongodb://{match.group('host')}:{port_text or 27017}/"
    return ResolvedTarget(uri, uri, ())


def _secrets_of(uri: str) -> tuple[str, ...]:
    found: list[str] = []
    match = _USERINFO_PASSWORD.match(uri)
    if match:
        found.append(match.group(1))
    found.extend(m.group(1) for m in _SECRET_VALUE.finditer(uri))
    decoded = [urllib.parse.unquote_plus(s) for s in found]
    return tuple(s for s in {*found, *decoded} if s)


_NOISE = re.compile(r" \(configured timeouts:[^)]*\)|, Timeout: .*$")


def _shorten(text: str, limit: int = 160) -> str:
    """One line, without pymongo's timeout settings and topology dump (they are in the JSON anyway)."""
    line = _NOISE.sub("", " ".join(text.split()))
    return line if len(line) <= limit else line[: limit - 3] + "..."


def run_ping(
    options: PingOptions,
    *,
    started: float | None = None,
    environ: Mapping[str, str] | None = None,
    client_factory: Callable[..., Any] | None = None,
) -> PingResult:
    """Probe the target and return the verdict; never raises for a MongoDB or network problem.

    ``started`` (``time.monotonic()``) is when the command began: the deadline counts from there.
    Raises :class:`PingUsageError` for unusable options (the CLI turns it into exit code 3).
    """
    started = time.monotonic() if started is None else started
    validate_options(options)
    target = resolve_target(options, environ)
    deadline = started + options.deadline_seconds - _EXIT_MARGIN
    with _fine_grained_waits():
        result = _probe(options, target, started, deadline, client_factory)
    result.elapsed_ms = round((time.monotonic() - started) * 1000, 1)
    for member in result.members:
        if member.error is not None:
            member.error = redact_text(member.error, target.secrets)
    if result.error is not None:
        result.error = redact_text(result.error, target.secrets)
    return result


@contextlib.contextmanager
def _fine_grained_waits() -> Iterator[None]:
    """pymongo waits in steps of ``MIN_HEARTBEAT_INTERVAL`` (0.5 s): server selection overshoots its timeout
    by up to that, a member coming back is re-checked that late, and exiting joins monitors for that long.  A
    probe lowers it to 50 ms while it runs (process-global, restored afterwards; pymongo's tests do the same).
    """
    import pymongo.common  # noqa: PLC0415

    saved = pymongo.common.MIN_HEARTBEAT_INTERVAL
    pymongo.common.MIN_HEARTBEAT_INTERVAL = min(saved, _PYMONGO_WAIT_STEP)
    try:
        yield
    finally:
        pymongo.common.MIN_HEARTBEAT_INTERVAL = saved


def validate_options(options: PingOptions) -> None:
    """Raise :class:`PingUsageError` for option values no probe can use."""
    for name, value in (
        ("--timeout", options.timeout),
        ("--wait", options.wait),
        ("--max-lag", options.max_lag),
    ):
        if value is not None and not value >= 0:  # also refuses NaN
            raise PingUsageError(f"{name} must be a number of seconds >= 0, got {value}")
    if options.timeout is not None and options.timeout <= _EXIT_MARGIN:
        raise PingUsageError(f"--timeout must be more than {_EXIT_MARGIN} s, got {options.timeout}")


def _client_kwargs(options: PingOptions, seconds: float) -> dict[str, Any]:
    ms = max(1, int(seconds * 1000))
    kwargs: dict[str, Any] = {
        "appname": "mongomancy-ping",
        "serverSelectionTimeoutMS": ms,
        "connectTimeoutMS": ms,
        "socketTimeoutMS": ms,
        "retryWrites": False,
        "maxPoolSize": 4,
        # No awaitable hellos: a streaming monitor blocks in a read at exit until the server answers.
        "serverMonitoringMode": "poll",
    }
    if options.direct:
        kwargs["directConnection"] = True
    if (
        options.tls
        or options.tls_ca_file
        or options.tls_certificate_key_file
        or options.tls_allow_invalid_certificates
    ):
        kwargs["tls"] = True
    if options.tls_ca_file:
        kwargs["tlsCAFile"] = options.tls_ca_file
    if options.tls_certificate_key_file:
        kwargs["tlsCertificateKeyFile"] = options.tls_certificate_key_file
    if options.tls_allow_invalid_certificates:
        kwargs["tlsAllowInvalidCertificates"] = True
    kwargs.update(options.client_options)
    return kwargs


def _probe(
    options: PingOptions,
    target: ResolvedTarget,
    started: float,
    deadline: float,
    client_factory: Callable[..., Any] | None,
) -> PingResult:
    import pymongo  # noqa: PLC0415 - lazy: `mongomancy --help` must not pay for pymongo
    from pymongo.errors import ConfigurationError, InvalidURI, OperationFailure  # noqa: PLC0415

    factory = client_factory or pymongo.MongoClient
    remaining = max(0.001, deadline - time.monotonic())
    try:
        client = factory(target.uri, **_client_kwargs(options, remaining))
    except (ConfigurationError, InvalidURI, ValueError, TypeError) as error:
        raise PingUsageError(
            f"invalid target {target.display}: {redact_text(str(error), target.secrets)}"
        ) from None
    wait_until = started + (options.wait or 0.0)
    attempts = 0
    try:
        while True:
            attempts += 1
            try:
                result = _attempt(client, options, target, deadline)
            except OperationFailure as error:
                if error.code in AUTH_ERROR_CODES or "authentication failed" in str(error).lower():
                    result = PingResult("auth_failed", EXIT_AUTH, target.display, error=_error_text(error))
                else:
                    result = PingResult(
                        "check_failed", EXIT_CHECK_FAILED, target.display, error=_error_text(error)
                    )
            except ConfigurationError as error:
                result = PingResult("usage_error", EXIT_USAGE, target.display, error=_error_text(error))
            except Exception as error:  # a probe reports every failure as a verdict
                result = _unreachable(client, target, error)
            result.attempts = attempts
            now = time.monotonic()
            if result.exit_code in (EXIT_OK, EXIT_USAGE, EXIT_AUTH) or now >= wait_until or now >= deadline:
                return result
            time.sleep(max(0.0, min(_RETRY_PAUSE, wait_until - now, deadline - now)))
    finally:
        client.close()


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {_shorten(str(error))}"


def _unreachable(client: Any, target: ResolvedTarget, error: BaseException) -> PingResult:
    """Exit 2: "unreachable" when a member refused or failed the connection, "timeout" when none answered."""
    result = PingResult("unreachable", EXIT_UNREACHABLE, target.display, error=_error_text(error))
    _describe_topology(client, result)
    if not any(m.error for m in result.members) and getattr(error, "timeout", False):
        result.status = "timeout"
    return result


def _attempt(client: Any, options: PingOptions, target: ResolvedTarget, deadline: float) -> PingResult:
    import pymongo  # noqa: PLC0415
    from pymongo.read_preferences import PrimaryPreferred  # noqa: PLC0415

    admin = client.get_database("admin")
    with pymongo.timeout(max(0.001, deadline - time.monotonic())):
        admin.command("ping", read_preference=PrimaryPreferred())
    checks = [CheckResult("ping", True, "a member answered ping")]
    _await_discovery(client, min(deadline, time.monotonic() + _DISCOVERY_WAIT))
    result = PingResult("ok", EXIT_OK, target.display, checks=checks)
    description = _describe_topology(client, result)

    if options.require_primary:
        writable = [
            sd for sd in description.server_descriptions().values() if sd.server_type_name in _WRITABLE_TYPES
        ]
        if writable:
            checks.append(
                CheckResult("primary", True, f"writable primary {result.primary or _address(writable[0])}")
            )
        else:
            checks.append(CheckResult("primary", False, "no writable primary"))

    if options.max_lag is not None:
        lags = _lags(client, admin, description, options.direct, deadline)
        for member in result.members:
            member.lag_seconds = lags.get(member.address, member.lag_seconds)
        if options.direct and len(result.members) == 1 and "self" in lags:
            result.members[0].lag_seconds = lags["self"]
        measured = [
            m.lag_seconds for m in result.members if m.state == "SECONDARY" and m.lag_seconds is not None
        ]
        worst = max(measured, default=0.0)
        result.max_lag_seconds = worst
        ok = worst <= options.max_lag
        detail = f"max secondary lag {worst:.1f}s {'<=' if ok else '>'} {options.max_lag:g}s"
        checks.append(CheckResult("max_lag", ok, detail))

    if not all(c.ok for c in checks):
        result.status, result.exit_code = "check_failed", EXIT_CHECK_FAILED
    return result


def _address(sd: Any) -> str:
    host, port = sd.address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _await_discovery(client: Any, until: float) -> None:
    """Wait (briefly) until pymongo checked every member it knows, so the line shows all of them."""
    while time.monotonic() < until:
        servers = client.topology_description.server_descriptions().values()
        if all(sd.round_trip_time is not None or sd.error is not None for sd in servers):
            return
        time.sleep(0.002)


def _describe_topology(client: Any, result: PingResult) -> Any:
    description = client.topology_description
    result.topology_type = description.topology_type_name
    result.set_name = description.replica_set_name
    members = []
    for sd in description.server_descriptions().values():
        state = _STATE_NAMES.get(sd.server_type_name, sd.server_type_name.upper())
        rtt = None if sd.round_trip_time is None else round(sd.round_trip_time * 1000, 2)
        error = None if sd.error is None or state != "UNKNOWN" else _shorten(str(sd.error))
        members.append(MemberStatus(_address(sd), state, rtt, None, error))
        if sd.server_type_name in ("RSPrimary", "Standalone"):
            result.primary = _address(sd)
    result.members = sorted(members, key=lambda m: m.address)
    return description


def _lags(client: Any, admin: Any, description: Any, direct: bool, deadline: float) -> dict[str, float]:
    """Seconds each secondary is behind: replSetGetStatus ``optimeDate``, else hello ``lastWrite``."""
    import pymongo  # noqa: PLC0415
    from pymongo.errors import OperationFailure  # noqa: PLC0415
    from pymongo.read_preferences import PrimaryPreferred  # noqa: PLC0415

    try:
        with pymongo.timeout(max(0.001, deadline - time.monotonic())):
            status = admin.command("replSetGetStatus", read_preference=PrimaryPreferred())
    except OperationFailure:
        status = None
    lags: dict[str, float] = {}
    if status is not None:
        healthy = [m for m in status.get("members", ()) if m.get("state") in (1, 2) and m.get("optimeDate")]
        dates = {m["name"]: _epoch(m["optimeDate"]) for m in healthy}
        primaries = [_epoch(m["optimeDate"]) for m in healthy if m.get("state") == 1]
        reference = primaries[0] if primaries else max(dates.values(), default=0.0)
        for m in healthy:
            lag = max(0.0, round(reference - dates[m["name"]], 3))
            lags[m["name"]] = lag
            if m.get("self"):
                lags["self"] = lag
        return lags
    writes = {
        _address(sd): sd.last_write_date
        for sd in description.server_descriptions().values()
        if sd.server_type_name in ("RSPrimary", "RSSecondary") and sd.last_write_date is not None
    }
    primary_dates = [
        sd.last_write_date
        for sd in description.server_descriptions().values()
        if sd.server_type_name == "RSPrimary" and sd.last_write_date is not None
    ]
    reference = primary_dates[0] if primary_dates else max(writes.values(), default=0.0)
    return {address: max(0.0, round(reference - when, 3)) for address, when in writes.items()}


def _epoch(value: Any) -> float:
    if isinstance(value, datetime.datetime):
        when: datetime.datetime = value
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        return when.timestamp()
    return float(value)
