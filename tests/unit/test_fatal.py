"""Which errors no wait can cure, and what the user is told about them (no server needed).

pymongo's descriptions are built from their public constructors, as pymongo's SDAM would report them.
"""

from __future__ import annotations

import errno
import ssl
from typing import Any

import pytest
from pymongo.errors import AutoReconnect, NetworkTimeout, OperationFailure
from pymongo.errors import ConfigurationError as PyMongoConfigurationError
from pymongo.hello import Hello
from pymongo.server_description import ServerDescription
from pymongo.topology_description import TOPOLOGY_TYPE, TopologyDescription

from mongomancy.errors import FatalConfigurationError
from mongomancy.fatal import (
    FatalReason,
    Identity,
    condition_from_description,
    condition_from_error,
    foreign_role,
    reason_of,
    seed_addresses,
)
from mongomancy.members import why_no_primary

A, B, C = ("127.0.0.1", 27017), ("127.0.0.1", 27018), ("127.0.0.1", 27019)
OPS = Identity(user="ops", mechanism="SCRAM-SHA-256", source="admin")


def auth_failure(code: int = 18) -> OperationFailure:
    reply = {"ok": 0.0, "errmsg": "Authentication failed.", "code": code, "codeName": "AuthenticationFailed"}
    return OperationFailure("Authentication failed.", code, reply)


def chained(outer: BaseException, cause: BaseException) -> BaseException:
    outer.__cause__ = cause
    return outer


def member(address: tuple[str, int], role: str = "secondary", set_name: str = "rs0") -> ServerDescription:
    hello: dict[str, Any] = {"ok": 1, "minWireVersion": 0, "maxWireVersion": 21, "hosts": ["127.0.0.1:27017"]}
    if role == "primary":
        hello.update(isWritablePrimary=True, setName=set_name)
    elif role == "secondary":
        hello.update(isWritablePrimary=False, secondary=True, setName=set_name)
    return ServerDescription(address, Hello(hello))


def failed(address: tuple[str, int], error: BaseException) -> ServerDescription:
    return ServerDescription(address, error=error)


def topology(*servers: ServerDescription, set_name: str | None = "rs0") -> TopologyDescription:
    kind = TOPOLOGY_TYPE.ReplicaSetWithPrimary if any(s.is_writable for s in servers) else None
    return TopologyDescription(
        kind if kind is not None else TOPOLOGY_TYPE.ReplicaSetNoPrimary,
        {s.address: s for s in servers},
        set_name,
        None,
        None,
        None,
    )


REFUSED = chained(
    AutoReconnect("127.0.0.1:27018: [Errno 111] Connection refused"),
    ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
)
CERT = chained(
    AutoReconnect("SSL handshake failed: 127.0.0.1:27017: certificate verify failed"),
    ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate"),
)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (auth_failure(18), FatalReason.AUTHENTICATION),
        (auth_failure(11), FatalReason.AUTHENTICATION),
        (auth_failure(334), FatalReason.AUTHENTICATION),
        (OperationFailure("Server returned an invalid signature."), FatalReason.AUTHENTICATION),
        (CERT, FatalReason.TLS),
        (chained(AutoReconnect("x"), ssl.CertificateError("hostname mismatch")), FatalReason.TLS),
        (
            PyMongoConfigurationError(
                "Server at h:1 reports wire version 3, but this version of PyMongo requires at least 8"
            ),
            FatalReason.WIRE_VERSION,
        ),
        # pymongo's monitor keeps only the text of a failed handshake
        (AutoReconnect("h:1: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), FatalReason.TLS),
        (AutoReconnect("h:1: [SSL: WRONG_VERSION_NUMBER] wrong version number"), FatalReason.TLS),
        (AutoReconnect("h:1: [SSL: UNEXPECTED_EOF_WHILE_READING] EOF"), None),
        # curable, or not a configuration error at all: never fatal
        (REFUSED, None),
        (NetworkTimeout("timed out"), None),
        (OperationFailure("not authorized on db to execute command", 13), None),
        (OperationFailure("not primary", 10107), None),
        (chained(AutoReconnect("SSL handshake failed: EOF"), ssl.SSLEOFError(8, "EOF occurred")), None),
    ],
)
def test_reason_of(error: BaseException, reason: FatalReason | None) -> None:
    assert reason_of(error) is reason


def test_an_auth_failure_names_the_member_pymongo_marked_with_it_and_never_the_password() -> None:
    error = auth_failure()
    description = topology(failed(A, error), member(B), member(C))
    condition = condition_from_error(error, OPS, description, secrets=("hunter2",))
    assert condition is not None
    raised = condition.error()
    assert isinstance(raised, FatalConfigurationError)
    assert raised.reason == "authentication" and raised.addresses == ("127.0.0.1:27017",)
    assert raised.user == "ops" and raised.mechanism == "SCRAM-SHA-256"
    assert "user 'ops'" in str(raised) and "SCRAM-SHA-256" in str(raised) and "127.0.0.1:27017" in str(raised)
    assert "full error" not in str(raised) and "hunter2" not in str(raised)
    assert raised.__cause__ is error
    assert condition.error() is not raised  # a fresh instance for every raise


def test_an_auth_failure_no_longer_on_a_member_names_the_members_with_the_same_kind_of_error() -> None:
    description = topology(failed(A, auth_failure()), member(B))
    condition = condition_from_error(auth_failure(), OPS, description)
    assert condition is not None and condition.addresses == ("127.0.0.1:27017",)


def test_curable_errors_make_no_condition() -> None:
    assert condition_from_error(REFUSED, OPS, topology(failed(B, REFUSED))) is None


def test_tls_is_fatal_only_when_every_member_failed_it() -> None:
    every = topology(failed(A, CERT), failed(B, CERT))
    condition = condition_from_description(every, OPS, {})
    assert condition is not None and condition.reason is FatalReason.TLS
    assert condition.addresses == ("127.0.0.1:27017", "127.0.0.1:27018")
    assert condition.error().__cause__ is CERT
    assert condition_from_description(topology(failed(A, CERT), failed(B, REFUSED)), OPS, {}) is None
    assert condition_from_description(topology(failed(A, CERT), member(B, "primary")), OPS, {}) is None


def test_an_emptied_replica_set_topology_means_no_seed_belongs_to_the_set() -> None:
    seeds = ("127.0.0.1:27017", "127.0.0.1:27018")
    early = condition_from_description(topology(set_name="nope"), OPS, {}, seeds=seeds)
    assert early is not None and early.reason is FatalReason.REPLICA_SET_NAME
    assert early.addresses == seeds and "replica set 'nope'" in early.message
    foreign = {"127.0.0.1:27017": "is a member of replica set 'rs0'"}
    later = condition_from_description(topology(set_name="nope"), OPS, foreign, seeds=seeds)
    assert later is not None and "127.0.0.1:27017 is a member of replica set 'rs0'" in later.message
    # seeds not checked yet are no evidence
    assert condition_from_description(topology(failed(A, REFUSED), set_name="nope"), OPS, {}) is None


def test_foreign_roles() -> None:
    assert foreign_role("rs0", "rs1", "RSPrimary") == "is a member of replica set 'rs1'"
    assert (
        foreign_role("rs0", None, "Standalone") == "is a standalone server, not a member of replica set 'rs0'"
    )
    assert foreign_role("rs0", "rs0", "RSSecondary") is None
    assert foreign_role(None, "rs1", "RSPrimary") is None
    assert foreign_role("rs0", None, "Unknown") is None


@pytest.mark.parametrize(
    ("args", "options", "expected"),
    [
        (("mongodb://ops:p%40ss@h1,h2/?replicaSet=rs0",), {}, Identity("ops", None, None)),
        (
            ("mongodb://ops:pw@h1/db?authMechanism=SCRAM-SHA-256&authSource=users",),
            {},
            Identity("ops", "SCRAM-SHA-256", "users"),
        ),
        (
            ("mongodb://h1/",),
            {"username": "kw", "authMechanism": "SCRAM-SHA-1"},
            Identity("kw", "SCRAM-SHA-1", None),
        ),
        (("mongodb://ops:pw@h1/billing",), {}, Identity("ops", None, "billing")),
        (("mongodb://ops:pw@h1/billing?authSource=admin",), {}, Identity("ops", None, "admin")),
        (("localhost", 27017), {}, Identity()),
    ],
)
def test_identity_from_the_client_arguments(
    args: tuple[Any, ...], options: dict[str, Any], expected: Identity
) -> None:
    assert Identity.from_client_arguments(args, options) == expected


def test_identity_describes_a_negotiated_mechanism_and_no_user() -> None:
    assert Identity("ops").describe() == (
        "user 'ops' (mechanism negotiated (SCRAM-SHA-256 or SCRAM-SHA-1), authSource admin)"
    )
    assert "no user" in Identity().describe()


def test_seed_addresses() -> None:
    assert seed_addresses(("mongodb://u:p@h1:1,h2/?replicaSet=rs0",)) == ("h1:1", "h2:27017")
    assert seed_addresses(("localhost", 5000)) == ("localhost:5000",)
    assert seed_addresses(("mongodb+srv://cluster.example.com/",)) == ()


def test_why_no_primary_names_every_member_and_the_overall_reason() -> None:
    line = why_no_primary(topology(failed(A, REFUSED), member(B), failed(C, NetworkTimeout("timed out"))))
    assert line == (
        "no primary elected: 127.0.0.1:27017 refused the connection; 127.0.0.1:27018 is a secondary; "
        "127.0.0.1:27019 timed out"
    )
    assert why_no_primary(topology(failed(A, REFUSED), failed(B, REFUSED))).startswith(
        "every member refused the connection"
    )
    assert why_no_primary(topology(set_name="nope"), {"h:1": "is a standalone server"}) == (
        "no member answered: h:1 is a standalone server"
    )
