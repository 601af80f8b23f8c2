"""Configuration errors no wait can cure: recognising them, and saying what they are.

Why they need their own path: pymongo answers an authentication failure by marking the server Unknown
(Authentication spec: "If the authentication handshake fails for a socket, drivers MUST mark the server
Unknown and clear the server's connection pool"; SDAM spec, errors while establishing application
connections), and the server stays Unknown until its monitor checks it again.  Read naively that is "no
primary", and a command would wait out its whole budget to end with a false reason.  The same holds for a
TLS handshake or certificate failure (the monitor marks the member Unknown with the SSL error), a
replica-set name no seed has (pymongo removes such members from the topology), and a wire version this
pymongo does not support (server selection raises ``ConfigurationError``).  None of these clears by
waiting for an election, so the first command that meets one raises
:class:`~mongomancy.errors.FatalConfigurationError` at once.

Everything here is pure (no I/O): the supervisor and the engine's retry loop decide with it.
"""

from __future__ import annotations

import enum
import re
import ssl
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
from pymongo.errors import ConfigurationError as PyMongoConfigurationError
from pymongo.errors import ConnectionFailure, OperationFailure
from pymongo.topology_description import TopologyDescription

from mongomancy._redact import address_text, redact_text
from mongomancy.errors import FatalConfigurationError

#: Server codes meaning "these credentials are refused": AuthenticationFailed, UserNotFound,
#: MechanismUnavailable (the server does not offer the mechanism asked for).
AUTH_ERROR_CODES = frozenset({11, 18, 334})

#: OpenSSL reasons that say the two ends cannot agree on TLS at all (not a network accident): a plaintext
#: server, no common protocol or cipher, a certificate refused by either side.
_TLS_CONFIG_REASONS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "UNKNOWN_PROTOCOL",
        "UNSUPPORTED_PROTOCOL",
        "NO_PROTOCOLS_AVAILABLE",
        "NO_SHARED_CIPHER",
        "CERTIFICATE_VERIFY_FAILED",
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "TLSV1_ALERT_UNKNOWN_CA",
        "TLSV1_ALERT_CERTIFICATE_REQUIRED",
        "SSLV3_ALERT_HANDSHAKE_FAILURE",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
    }
)


_OPENSSL_REASON = re.compile(r"\[SSL: ([A-Z0-9_]+)\]")


class FatalReason(enum.Enum):
    AUTHENTICATION = "authentication"
    TLS = "tls"
    REPLICA_SET_NAME = "replica_set_name"
    WIRE_VERSION = "wire_version"


@attrs.frozen
class Identity:
    """Who the engine connects as: the user, the mechanism and the auth database (never the password)."""

    user: str | None = None
    mechanism: str | None = None
    source: str | None = None

    @classmethod
    def from_client_arguments(cls, args: tuple[Any, ...], options: Mapping[str, Any]) -> Identity:
        """Read from the connection string and the keyword options, which win as they do in MongoClient."""
        user = mechanism = source = None
        if args and isinstance(args[0], str) and "://" in args[0]:
            user, uri_options = _parse_uri(args[0])
            mechanism = uri_options.get("authmechanism")
            # pymongo's default auth database is the connection string's database, else admin.
            source = uri_options.get("authsource") or uri_options.get("/database")
        lowered = {key.lower(): value for key, value in options.items()}
        user = lowered.get("username", user)
        mechanism = lowered.get("authmechanism", mechanism)
        source = lowered.get("authsource", source)
        return cls(
            user=str(user) if user else None,
            mechanism=str(mechanism) if mechanism else None,
            source=str(source) if source else None,
        )

    def describe(self) -> str:
        """``user 'ops' (mechanism SCRAM-SHA-256, authSource admin)``."""
        if self.user is None:
            return "no user (the connection string and options name none)"
        mechanism = self.mechanism or "negotiated (SCRAM-SHA-256 or SCRAM-SHA-1)"
        return f"user {self.user!r} (mechanism {mechanism}, authSource {self.source or 'admin'})"


def seed_addresses(args: tuple[Any, ...]) -> tuple[str, ...]:
    """The seed list as ``host:port`` strings, from MongoClient's positional arguments."""
    if not args or not isinstance(args[0], str):
        return ()
    if "://" not in args[0]:
        port = args[1] if len(args) > 1 and isinstance(args[1], int) else 27017
        return (f"{args[0]}:{port}",)
    if args[0].startswith("mongodb+srv://"):
        return ()
    netloc = args[0].split("://", 1)[1].partition("/")[0]
    hosts = netloc.rpartition("@")[2]
    return tuple(
        host if ":" in host.rpartition("]")[2] else f"{host}:27017" for host in hosts.split(",") if host
    )


def _parse_uri(uri: str) -> tuple[str | None, dict[str, str]]:
    """The user name and the options (lower-case keys; the path's database as ``"/database"``) of a
    connection string MongoClient accepted."""
    rest = uri.split("://", 1)[1]
    netloc, _slash, path = rest.partition("/")
    userinfo, at, _hosts = netloc.rpartition("@")
    user = urllib.parse.unquote(userinfo.partition(":")[0]) if at else None
    database, _question, query = path.partition("?")
    options = {key.lower(): value for key, value in urllib.parse.parse_qsl(query)}
    if database:
        options["/database"] = urllib.parse.unquote(database)
    return user or None, options


@attrs.frozen
class FatalCondition:
    """One incurable condition as the engine holds it; :meth:`error` makes a fresh exception per raise.

    Why fresh: raising one instance again and again appends to its traceback for ever.
    """

    reason: FatalReason
    message: str
    addresses: tuple[str, ...]
    identity: Identity
    cause: BaseException | None = attrs.field(eq=False)

    @property
    def key(self) -> FatalReason:
        """What makes two conditions "the same" for logging once: the reason (the addresses named may
        differ from one failed attempt to the next while the cause is the same)."""
        return self.reason

    def error(self) -> FatalConfigurationError:
        error = FatalConfigurationError(
            self.message,
            reason=self.reason.value,
            addresses=self.addresses,
            user=self.identity.user,
            mechanism=self.identity.mechanism,
        )
        error.__cause__ = self.cause
        return error


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def reason_of(error: BaseException) -> FatalReason | None:
    """The incurable kind of ``error``, or None when waiting or retrying may still help."""
    for link in _chain(error):
        if isinstance(link, OperationFailure):
            if link.code in AUTH_ERROR_CODES or _pymongo_auth_message(str(link)):
                return FatalReason.AUTHENTICATION
            return None
        if isinstance(link, PyMongoConfigurationError) and "wire version" in str(link):
            return FatalReason.WIRE_VERSION
        if isinstance(link, ssl.CertificateError):
            return FatalReason.TLS
        if isinstance(link, ssl.SSLError) and getattr(link, "reason", None) in _TLS_CONFIG_REASONS:
            return FatalReason.TLS
        # pymongo's monitor keeps only the text of a handshake failure (no cause): OpenSSL's reason is
        # in it as "[SSL: REASON]".
        match = _OPENSSL_REASON.search(str(link))
        if isinstance(link, ConnectionFailure) and match and match.group(1) in _TLS_CONFIG_REASONS:
            return FatalReason.TLS
    return None


def _pymongo_auth_message(text: str) -> bool:
    """pymongo's own SCRAM checks of the server's answers (they carry no code)."""
    return text.startswith(
        (
            "Server returned an invalid signature",
            "Server returned an invalid nonce",
            "Server returned an invalid iteration count",
            "SASL conversation failed",
        )
    )


def condition_from_error(
    error: BaseException,
    identity: Identity,
    description: TopologyDescription | None,
    secrets: tuple[str, ...] = (),
) -> FatalCondition | None:
    """The condition ``error`` (a command's or the supervisor's probe's) reveals, if it is incurable.

    The address: pymongo stores the very error on the server it marked Unknown; failing that (a newer
    check replaced it), the members showing an error of the same kind; failing that, every known member.
    """
    reason = reason_of(error)
    if reason is None:
        return None
    addresses: tuple[str, ...] = ()
    if description is not None:
        servers = description.server_descriptions()
        addresses = tuple(address_text(a) for a, s in servers.items() if s.error is error)
        if not addresses:
            addresses = tuple(
                sorted(
                    address_text(a)
                    for a, s in servers.items()
                    if s.error is not None and reason_of(s.error) is reason
                )
            )
        if not addresses:
            addresses = tuple(sorted(address_text(a) for a in servers))
    return _condition(reason, error, addresses, identity, secrets)


def condition_from_description(
    description: TopologyDescription,
    identity: Identity,
    foreign_members: Mapping[str, str],
    secrets: tuple[str, ...] = (),
    seeds: tuple[str, ...] = (),
) -> FatalCondition | None:
    """An incurable condition the topology shows by itself, or None.

    - wire version: pymongo refuses to select any server (``check_compatible``);
    - TLS: there is no writable server and every member is Unknown with a TLS configuration error;
    - replica-set name: ``replicaSet=`` was given and pymongo removed every server.  It removes a server
      from a replica-set topology only when the server answered as something that cannot belong to the set
      (another set name, a standalone, a mongos: SDAM spec, ``updateRSWithoutPrimary``), or when a primary
      left it out of its host list, and then the primary itself stays; so an empty topology means no seed
      belongs to the set.  ``foreign_members`` (address -> what it said it is, from monitoring events,
      which pymongo delivers about a second later) makes the message say what the seeds are.
    """
    try:
        description.check_compatible()
    except PyMongoConfigurationError as error:
        addresses = tuple(sorted(address_text(a) for a in description.server_descriptions()))
        return _condition(FatalReason.WIRE_VERSION, error, addresses, identity, secrets)
    if description.has_writable_server():
        return None
    servers = description.server_descriptions()
    if servers:
        errors = [s.error for s in servers.values()]
        if all(e is not None and reason_of(e) is FatalReason.TLS for e in errors):
            first = errors[0]
            assert first is not None
            addresses = tuple(sorted(address_text(a) for a in servers))
            return _condition(FatalReason.TLS, first, addresses, identity, secrets)
        return None
    if description.topology_type_name == "ReplicaSetNoPrimary" and description.replica_set_name is not None:
        addresses = tuple(sorted(set(foreign_members) | set(seeds)))
        if foreign_members:
            seen = "; ".join(f"{address} {what}" for address, what in sorted(foreign_members.items()))
        else:
            seen = f"every seed ({', '.join(addresses)}) answered as something that cannot belong to it"
        message = (
            f"no member of replica set {description.replica_set_name!r} was found: {seen}; "
            "check replicaSet= in the connection string"
        )
        return FatalCondition(
            reason=FatalReason.REPLICA_SET_NAME,
            message=redact_text(message, secrets),
            addresses=addresses,
            identity=identity,
            cause=None,
        )
    return None


def foreign_role(expected_set_name: str | None, set_name: str | None, server_type: str) -> str | None:
    """What a member that answered is, when it cannot belong to ``expected_set_name`` (else None)."""
    if expected_set_name is None or server_type == "Unknown":
        return None
    if server_type == "Standalone":
        return f"is a standalone server, not a member of replica set {expected_set_name!r}"
    if server_type == "Mongos":
        return "is a mongos router, not a replica-set member"
    if set_name is not None and set_name != expected_set_name:
        return f"is a member of replica set {set_name!r}"
    return None


def _condition(
    reason: FatalReason,
    cause: BaseException,
    addresses: tuple[str, ...],
    identity: Identity,
    secrets: tuple[str, ...],
) -> FatalCondition:
    where = ", ".join(addresses) or "the server"
    detail = redact_text(_first_line(cause), secrets)
    if reason is FatalReason.AUTHENTICATION:
        message = (
            f"authentication failed at {where} for {identity.describe()}: {detail}; "
            "check the user name and password (waiting cannot cure this)"
        )
    elif reason is FatalReason.TLS:
        message = (
            f"TLS with {where} failed: {detail}; check the tls options and the server's certificate "
            "(waiting cannot cure this)"
        )
    else:
        message = f"{where}: {detail} (waiting cannot cure this)"
    return FatalCondition(reason=reason, message=message, addresses=addresses, identity=identity, cause=cause)


def _first_line(error: BaseException) -> str:
    """The error without pymongo's ``, full error: {...}`` tail (the cause keeps the whole reply)."""
    text = str(error).partition(", full error:")[0]
    return text.splitlines()[0] if text else type(error).__name__
