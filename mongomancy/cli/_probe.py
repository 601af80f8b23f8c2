"""The health check behind ``mongomancy ping``: plain pymongo, a hard deadline, and an answer as soon as there
is one.

Why plain pymongo and not the :class:`~mongomancy.engine.Engine`: a probe asks one question and exits; it must
not wait out failovers (that is the engine's job) and must not pay for a supervisor thread.

Why it watches heartbeats itself: pymongo's server selection keeps retrying until ``serverSelectionTimeoutMS``
even when every seed refused the connection, and it silently drops seeds that answer as something else
(SDAM spec: a standalone, or a member of another set, is removed from a replica-set topology), so the user
would wait out the deadline to read "no servers".  A heartbeat listener (pymongo calls it on its monitor
threads, at each check) records what every address answered; the probe answers at once when every seed
refused (exit 2) or none belongs to the requested set (exit 1), and with ``--wait`` keeps going until the
cluster is healthy.  While waiting for a primary it runs server selection for one (a ``ping`` with read
preference primary), which makes pymongo re-check every member at once instead of at the next heartbeat.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from pymongo import monitoring
from pymongo.server_description import ServerDescription

from mongomancy._redact import address_text, redact_text
from mongomancy.cli._verdict import (
    EXIT_MARGIN,
    CheckResult,
    MemberStatus,
    PingOptions,
    PingResult,
    PingUsageError,
    shorten,
    target_of,
    validate_options,
)
from mongomancy.cli.exit_codes import ExitCode
from mongomancy.cli.roles import role_name
from mongomancy.cli.target import Target
from mongomancy.fatal import AUTH_ERROR_CODES, foreign_role
from mongomancy.members import member_phrase

#: While no member answered yet: how often the probe re-reads what the heartbeats said (a backstop; a
#: heartbeat wakes it at once).
_LISTEN_STEP = 0.05
#: With ``--wait``, the heartbeat period (pymongo's floor is lowered for the probe), so a member that comes
#: back or a new primary is seen within about this long even without server selection.
_WAIT_HEARTBEAT_MS = 250
_DISCOVERY_WAIT = 1.0
#: With ``--wait``: the longest pause between two attempts (a heartbeat ends it sooner).
_RETRY_PAUSE = 0.2


class HeartbeatLog(monitoring.ServerHeartbeatListener):
    """What every address answered at its last check.  pymongo calls it on its monitor threads, right after
    each check: it only stores and wakes (never blocks)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, ServerDescription] = {}
        self.changed = threading.Event()

    def started(self, event: monitoring.ServerHeartbeatStartedEvent) -> None:
        """A check starting is no news."""

    def succeeded(self, event: monitoring.ServerHeartbeatSucceededEvent) -> None:
        address = event.connection_id
        self._store(ServerDescription(address, event.reply, round_trip_time=event.duration))

    def failed(self, event: monitoring.ServerHeartbeatFailedEvent) -> None:
        self._store(ServerDescription(event.connection_id, error=event.reply))

    def _store(self, server: ServerDescription) -> None:
        with self._lock:
            self._last[address_text(server.address)] = server
        self.changed.set()

    def snapshot(self) -> dict[str, ServerDescription]:
        with self._lock:
            return dict(self._last)


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
    from mongomancy.cli._shutdown import fine_grained_pymongo_waits  # noqa: PLC0415

    started = time.monotonic() if started is None else started
    validate_options(options)
    target = target_of(options, environ)
    deadline = started + options.deadline_seconds - EXIT_MARGIN
    with fine_grained_pymongo_waits():
        result = _Probe(options, target, started, deadline).run(client_factory)
    return attrs.evolve(
        result,
        elapsed_ms=round((time.monotonic() - started) * 1000, 1),
        error=None if result.error is None else redact_text(result.error, target.secrets),
        members=tuple(
            m if m.error is None else attrs.evolve(m, error=redact_text(m.error, target.secrets))
            for m in result.members
        ),
    )


class _Probe:
    def __init__(self, options: PingOptions, target: Target, started: float, deadline: float) -> None:
        self.options = options
        self.target = target
        self.deadline = deadline
        self.wait_until = started + (options.wait or 0.0)
        self.heartbeats = HeartbeatLog()
        self.seeds = _seeds(target.uri)

    def remaining(self, until: float | None = None) -> float:
        return max(0.001, min(self.deadline, until or self.deadline) - time.monotonic())

    def waiting(self) -> bool:
        """Whether ``--wait`` still allows another try."""
        return time.monotonic() < min(self.wait_until, self.deadline)

    def run(self, client_factory: Callable[..., Any] | None) -> PingResult:
        import pymongo  # noqa: PLC0415 - lazy: `mongomancy --help` must not pay for pymongo
        from pymongo.errors import ConfigurationError, InvalidURI  # noqa: PLC0415

        factory = client_factory or pymongo.MongoClient
        try:
            client = factory(self.target.uri, **self._client_kwargs())
        except (ConfigurationError, InvalidURI, ValueError, TypeError) as error:
            message = redact_text(str(error), self.target.secrets)
            raise PingUsageError(f"invalid target {self.target.display}: {message}") from None
        attempts = 0
        try:
            while True:
                attempts += 1
                result = attrs.evolve(self._attempt(client), attempts=attempts)
                if result.exit_code in (ExitCode.OK, ExitCode.USAGE, ExitCode.AUTH) or not self.waiting():
                    return result
                self.heartbeats.changed.wait(min(_RETRY_PAUSE, self.remaining(self.wait_until)))
                self.heartbeats.changed.clear()
        finally:
            client.close()

    def _client_kwargs(self) -> dict[str, Any]:
        options = self.options
        ms = max(1, int(self.remaining() * 1000))
        kwargs: dict[str, Any] = {
            "appname": "mongomancy-ping",
            "serverSelectionTimeoutMS": ms,
            "connectTimeoutMS": ms,
            "socketTimeoutMS": ms,
            "retryWrites": False,
            "maxPoolSize": 4,
            # No awaitable hellos: a streaming monitor notices it is closed only every 0.5 s.
            "serverMonitoringMode": "poll",
            "event_listeners": [self.heartbeats],
        }
        if options.wait is not None:
            kwargs["heartbeatFrequencyMS"] = _WAIT_HEARTBEAT_MS
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

    # ------------------------------------------------------------------------------------------ one attempt
    def _attempt(self, client: Any) -> PingResult:
        from pymongo.errors import ConfigurationError, OperationFailure  # noqa: PLC0415

        try:
            early = self._until_a_member_answers(client)
            if early is not None:
                return early
            return self._checks(client)
        except OperationFailure as error:
            if error.code in AUTH_ERROR_CODES or "authentication failed" in str(error).lower():
                return self._result("auth_failed", ExitCode.AUTH, client, error=_error_text(error))
            return self._result("check_failed", ExitCode.CHECK_FAILED, client, error=_error_text(error))
        except ConfigurationError as error:
            return self._result("usage_error", ExitCode.USAGE, client, error=_error_text(error))
        except Exception as error:  # a probe reports every failure as a verdict
            status = "timeout" if getattr(error, "timeout", False) else "unreachable"
            result = self._result(status, ExitCode.UNREACHABLE, client, error=_error_text(error))
            if any(m.error for m in result.members) and status == "timeout":
                result = attrs.evolve(result, status="unreachable")
            return result

    def _until_a_member_answers(self, client: Any) -> PingResult | None:
        """None once pymongo knows a member it can use; a verdict when every seed refused the connection or
        none belongs to the requested set (at once, unless ``--wait`` leaves time), or at the deadline."""
        expected = client.options.replica_set_name
        while True:
            self.heartbeats.changed.clear()
            description = client.topology_description
            if any(s.server_type_name != "Unknown" for s in description.server_descriptions().values()):
                return None
            heard = self.heartbeats.snapshot()
            addresses = self.seeds | set(heard) | {address_text(a) for a in description.server_descriptions()}
            answers = [heard.get(address) for address in sorted(addresses)]
            if addresses and all(answer is not None for answer in answers):
                foreign = {
                    address: role
                    for address, server in heard.items()
                    if (role := foreign_role(expected, server.replica_set_name, server.server_type_name))
                }
                refused = [a for a in addresses if member_phrase(heard[a]) == "refused the connection"]
                if foreign and len(foreign) + len(refused) == len(addresses):
                    return self._foreign_members(client, expected, foreign)
                if len(refused) == len(addresses) and not self.waiting():
                    return self._result(
                        "unreachable",
                        ExitCode.UNREACHABLE,
                        client,
                        error=f"connection refused by {'every seed' if len(addresses) > 1 else 'the server'}",
                    )
            if time.monotonic() >= self.deadline:
                return self._result(
                    "timeout", ExitCode.UNREACHABLE, client, error="no member answered within the deadline"
                )
            self.heartbeats.changed.wait(min(_LISTEN_STEP, self.remaining()))

    def _foreign_members(self, client: Any, expected: str | None, foreign: dict[str, str]) -> PingResult:
        """Every seed that answered is something else than a member of ``expected`` (pymongo dropped them)."""
        heard = self.heartbeats.snapshot()
        detail = "; ".join(f"{address} {role}" for address, role in sorted(foreign.items()))
        result = self._result(
            "check_failed",
            ExitCode.CHECK_FAILED,
            client,
            checks=(CheckResult("replica_set", False, detail),),
        )
        members = {m.address: m for m in result.members}
        for address, role in foreign.items():
            server = heard[address]
            rtt = None if server.round_trip_time is None else round(server.round_trip_time * 1000, 2)
            members[address] = MemberStatus(address, role_name(server.server_type_name), rtt, None, role)
        return attrs.evolve(
            result,
            set_name=expected,
            members=tuple(sorted(members.values(), key=lambda m: m.address)),
        )

    def _checks(self, client: Any) -> PingResult:
        import pymongo  # noqa: PLC0415
        from pymongo.read_preferences import PrimaryPreferred  # noqa: PLC0415

        admin = client.get_database("admin")
        with pymongo.timeout(self.remaining()):
            admin.command("ping", read_preference=PrimaryPreferred())
        checks = [CheckResult("ping", True, "a member answered ping")]
        _await_discovery(client, min(self.deadline, time.monotonic() + _DISCOVERY_WAIT))
        options = self.options
        if options.require_primary:
            primary = self._writable(client)
            if primary is None and self.waiting():
                primary = self._select_primary(client)
            checks.append(
                CheckResult("primary", True, f"writable primary {primary}")
                if primary is not None
                else CheckResult("primary", False, "no writable primary")
            )
        result = self._result("ok", ExitCode.OK, client)
        if options.max_lag is not None:
            result = self._with_lag(client, admin, result)
            checks.append(_lag_check(result, options.max_lag))
        if not all(c.ok for c in checks):
            return attrs.evolve(
                result, status="check_failed", exit_code=ExitCode.CHECK_FAILED, checks=tuple(checks)
            )
        return attrs.evolve(result, checks=tuple(checks))

    @staticmethod
    def _writable(client: Any) -> str | None:
        for address, server in client.topology_description.server_descriptions().items():
            if server.is_writable:
                return address_text(address)
        return None

    def _select_primary(self, client: Any) -> str | None:
        """Server selection for a writable server until ``--wait`` runs out: pymongo re-checks every member
        each time it finds none, so a new primary is seen as soon as it is elected."""
        import pymongo  # noqa: PLC0415
        from pymongo.errors import PyMongoError  # noqa: PLC0415
        from pymongo.read_preferences import Primary  # noqa: PLC0415

        try:
            with pymongo.timeout(self.remaining(self.wait_until)):
                client.get_database("admin").command("ping", read_preference=Primary())
        except PyMongoError:
            return None
        return self._writable(client)

    def _with_lag(self, client: Any, admin: Any, result: PingResult) -> PingResult:
        lags = _lags(client, admin, client.topology_description, self.remaining())
        members = []
        for member in result.members:
            lag = lags.get(member.address, member.lag_seconds)
            if self.options.direct and len(result.members) == 1 and "self" in lags:
                lag = lags["self"]
            members.append(attrs.evolve(member, lag_seconds=lag))
        measured = [m.lag_seconds for m in members if m.state == "SECONDARY" and m.lag_seconds is not None]
        return attrs.evolve(result, members=tuple(members), max_lag_seconds=max(measured, default=0.0))

    def _result(
        self,
        status: str,
        code: int,
        client: Any,
        *,
        error: str | None = None,
        checks: tuple[CheckResult, ...] = (),
    ) -> PingResult:
        """A verdict with pymongo's current view of the topology (members sorted by address)."""
        description = client.topology_description
        members = []
        primary = None
        for address, server in description.server_descriptions().items():
            rtt = None if server.round_trip_time is None else round(server.round_trip_time * 1000, 2)
            phrase = None
            if server.server_type_name == "Unknown":
                heard = self.heartbeats.snapshot().get(address_text(address), server)
                phrase = member_phrase(heard) if heard.error is not None else None
            members.append(
                MemberStatus(address_text(address), role_name(server.server_type_name), rtt, None, phrase)
            )
            if server.server_type_name in ("RSPrimary", "Standalone"):
                primary = address_text(address)
        return PingResult(
            status,
            code,
            self.target.display,
            topology_type=description.topology_type_name,
            set_name=description.replica_set_name,
            primary=primary,
            members=tuple(sorted(members, key=lambda m: m.address)),
            checks=checks,
            error=error,
        )


def _seeds(uri: str) -> set[str]:
    """The host list of a ``mongodb://`` URI (a ``mongodb+srv://`` one's hosts come from DNS: none here)."""
    if not uri.startswith("mongodb://"):
        return set()
    from pymongo.uri_parser import parse_uri  # noqa: PLC0415

    try:
        return {address_text(node) for node in parse_uri(uri, validate=False)["nodelist"]}
    except Exception:  # MongoClient's own parse reports a bad URI with a better message
        return set()


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {shorten(str(error))}"


def _lag_check(result: PingResult, max_lag: float) -> CheckResult:
    worst = result.max_lag_seconds or 0.0
    ok = worst <= max_lag
    return CheckResult("max_lag", ok, f"max secondary lag {worst:.1f}s {'<=' if ok else '>'} {max_lag:g}s")


def _await_discovery(client: Any, until: float) -> None:
    """Wait (briefly) until pymongo checked every member it knows, so the line shows all of them."""
    while time.monotonic() < until:
        servers = client.topology_description.server_descriptions().values()
        if all(sd.round_trip_time is not None or sd.error is not None for sd in servers):
            return
        time.sleep(0.002)


def _lags(client: Any, admin: Any, description: Any, remaining: float) -> dict[str, float]:
    """Seconds each secondary is behind: replSetGetStatus ``optimeDate``, else hello ``lastWrite``."""
    import pymongo  # noqa: PLC0415
    from pymongo.errors import OperationFailure  # noqa: PLC0415
    from pymongo.read_preferences import PrimaryPreferred  # noqa: PLC0415

    try:
        with pymongo.timeout(remaining):
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
    servers = description.server_descriptions()
    writes = {
        address_text(address): sd.last_write_date
        for address, sd in servers.items()
        if sd.server_type_name in ("RSPrimary", "RSSecondary") and sd.last_write_date is not None
    }
    primary_dates = [
        sd.last_write_date
        for sd in servers.values()
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
