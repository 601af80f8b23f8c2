"""Configuration errors no wait can cure, for real on the simulated cluster: refused credentials
(SCRAM-SHA-256 as mongod runs it, code 18), a password rotated while the engine runs, a replica-set name no
member has, TLS (an untrusted certificate, a renewed one, a client without TLS) and a wire version too old.

Each must reach the caller at once as ``FatalConfigurationError`` naming the user, the address and the
mechanism (never the password), with the server's error as ``__cause__``; never "no primary" after the whole
budget.  The elapsed-time bounds below only tell "at once" from "after the budget" (60 s); the real times are
measured by benchmarks/bench_auth.py.
"""

from __future__ import annotations

import logging
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo.errors import AutoReconnect, OperationFailure

from mongomancy import Engine, FatalConfigurationError, RetryBudgetExhaustedError, RetryPolicy
from mongomancy.testing import SimulatedReplicaSet, wait_for
from mongomancy.testing import member as member_module
from tests.sim.logs import EngineLog

USER = "ops"
PASSWORD = "s3cret-Pass"
WRONG = "not-the-Pass"
BUDGET = RetryPolicy(budget=60)
AT_ONCE = 10.0  # seconds: far below the 60 s budget, generous for a loaded 2-core machine


def uri_for(
    cluster: SimulatedReplicaSet, password: str, user: str = USER, set_name: str | None = None
) -> str:
    hosts = ",".join(member.address for member in cluster.members)
    return f"mongodb://{user}:{password}@{hosts}/?replicaSet={set_name or cluster.set_name}"


@pytest.fixture
def cluster(fast_heartbeats: None) -> Iterator[SimulatedReplicaSet]:
    with SimulatedReplicaSet(users={USER: PASSWORD}) as cluster:
        yield cluster


@pytest.fixture
def make_engine(cluster: SimulatedReplicaSet) -> Iterator[Any]:
    engines: list[Engine] = []

    def make(password: str, **options: Any) -> Engine:
        options.setdefault("heartbeatFrequencyMS", 100)
        options.setdefault("retry_policy", BUDGET)
        uri = options.pop("uri", None) or uri_for(cluster, password)
        engine = Engine(uri=uri, **options)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()


def things(engine: Engine) -> Any:
    return engine.client.db.things


def assert_names_user_not_password(error: FatalConfigurationError, cluster: SimulatedReplicaSet) -> None:
    assert error.reason == "authentication"
    assert error.user == USER
    assert f"user {USER!r}" in str(error)
    assert "SCRAM-SHA-256" in str(error)
    assert cluster.primary_address in error.addresses
    assert cluster.primary_address in str(error)
    assert WRONG not in str(error) and PASSWORD not in str(error)
    assert isinstance(error.__cause__, OperationFailure)
    assert error.__cause__.code == 18


def test_a_wrong_password_fails_at_once_naming_user_address_and_mechanism(make_engine, cluster):
    log = EngineLog()
    engine = make_engine(WRONG, logger=log.logger)
    started = time.monotonic()
    with pytest.raises(FatalConfigurationError) as info:
        engine.insert_one(things(engine), {"k": 1})
    assert time.monotonic() - started < AT_ONCE
    assert_names_user_not_password(info.value, cluster)
    # Later calls fail the same way, each with a fresh error (no traceback growing across calls).
    with pytest.raises(FatalConfigurationError) as again:
        engine.find_one(things(engine), {})
    assert again.value is not info.value
    assert len(log.messages(logging.ERROR, "authentication failed")) == 1, "logged once"
    assert WRONG not in log.text
    assert engine.stats().fatal_errors == 1
    # Nothing was written: the insert never got past the handshake.
    with Engine(uri=uri_for(cluster, PASSWORD), heartbeatFrequencyMS=100) as good:
        assert good.count_documents(things(good), {}) == 0


def test_sixteen_threads_calling_at_once_all_get_the_authentication_error(make_engine, cluster):
    engine = make_engine(WRONG)
    barrier = threading.Barrier(16)
    outcomes: list[BaseException | object] = []
    lock = threading.Lock()

    def call(index: int) -> None:
        barrier.wait()
        try:
            result: object = engine.insert_one(things(engine), {"thread": index})
        except BaseException as error:  # collected: every thread must report what it got
            result = error
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(AT_ONCE * 2)
    assert time.monotonic() - started < AT_ONCE
    assert len(outcomes) == 16
    assert all(isinstance(o, FatalConfigurationError) for o in outcomes), outcomes
    for outcome in outcomes:
        assert isinstance(outcome, FatalConfigurationError)
        assert outcome.user == USER and outcome.reason == "authentication"
        assert outcome.__cause__ is not None
    assert len({id(o) for o in outcomes}) == 16


def test_the_right_password_works_and_reads_back_what_it_wrote(make_engine):
    engine = make_engine(PASSWORD)
    inserted = engine.insert_one(things(engine), {"k": "auth", "n": 1})
    engine.update_one(things(engine), {"k": "auth"}, {"$inc": {"n": 1}})
    assert engine.find_one(things(engine), {"_id": inserted.inserted_id}) == {
        "_id": inserted.inserted_id,
        "k": "auth",
        "n": 2,
    }
    assert engine.stats().fatal_errors == 0


def test_an_unknown_user_is_refused_like_a_wrong_password(make_engine, cluster):
    engine = make_engine(PASSWORD, uri=uri_for(cluster, PASSWORD, user="nobody"))
    with pytest.raises(FatalConfigurationError) as info:
        engine.find_one(things(engine), {})
    assert info.value.user == "nobody" and info.value.reason == "authentication"


def test_a_password_rotated_while_running_is_reported_by_the_old_engine_and_used_by_a_new_one(
    make_engine, cluster
):
    log = EngineLog()
    old = make_engine(PASSWORD, logger=log.logger)
    old.insert_one(things(old), {"k": "before"})
    cluster.set_password(USER, "rotated-Pass")
    # Connections already authenticated keep working, as on mongod; a new connection must authenticate.
    cluster.hang_up(cluster.primary)
    with pytest.raises(FatalConfigurationError) as info:
        old.insert_one(things(old), {"k": "old engine after the rotation"})
    assert info.value.user == USER and "rotated-Pass" not in str(info.value)
    assert cluster.primary_address in info.value.addresses

    new = make_engine("rotated-Pass")
    new.insert_one(things(new), {"k": "new engine"})
    assert sorted(d["k"] for d in new.find(things(new), {}, {"_id": 0})) == ["before", "new engine"]

    # The password goes back to what the old engine has: it recovers without a restart.
    cluster.set_password(USER, PASSWORD)

    def old_engine_works() -> bool:
        try:
            old.insert_one(things(old), {"k": "old engine recovered"})
        except FatalConfigurationError:
            return False
        return True

    wait_for(old_engine_works, 15, "the old engine to authenticate again")
    assert log.messages(logging.INFO, "authentication error cleared")
    assert new.count_documents(things(new), {"k": "old engine recovered"}) == 1


def test_a_replica_set_name_no_member_has_fails_at_once_saying_what_the_members_are(make_engine, cluster):
    engine = make_engine(PASSWORD, uri=uri_for(cluster, PASSWORD, set_name="nope"))
    started = time.monotonic()
    with pytest.raises(FatalConfigurationError) as info:
        engine.find_one(things(engine), {})
    assert time.monotonic() - started < AT_ONCE
    error = info.value
    assert error.reason == "replica_set_name"
    assert "replica set 'nope'" in str(error) and "replicaSet=" in str(error)
    assert set(error.addresses) == {member.address for member in cluster.members}
    assert "no primary" not in str(error)

    # Once pymongo's monitoring events arrive, the error also says what the members are.
    def names_the_real_set() -> bool:
        try:
            engine.find_one(things(engine), {})
        except FatalConfigurationError as later:
            return "is a member of replica set 'rs0'" in str(later)
        return False

    wait_for(names_the_real_set, 10, "the members' own set name in the error")


# ------------------------------------------------------------------------------------------------ TLS
def make_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made now (nothing secret is kept in the repo)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_cluster(tmp_path: Path, fast_heartbeats: None) -> Iterator[tuple[SimulatedReplicaSet, Path]]:
    """A set whose members require TLS with a self-signed certificate; yields it and that certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = make_certificate(tmp_path, "member")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with SimulatedReplicaSet(tls=context) as cluster:
        yield cluster, cert


def plain_uri(cluster: SimulatedReplicaSet, options: str = "") -> str:
    hosts = ",".join(member.address for member in cluster.members)
    return f"mongodb://{hosts}/?replicaSet={cluster.set_name}{options}"


def test_a_tls_member_works_for_a_client_that_trusts_its_certificate(tls_cluster):
    cluster, cert = tls_cluster
    with Engine(uri=plain_uri(cluster, f"&tls=true&tlsCAFile={cert}"), heartbeatFrequencyMS=100) as engine:
        inserted = engine.insert_one(engine.client.db.things, {"over": "tls"})
        assert engine.find_one(engine.client.db.things, {}) == {"_id": inserted.inserted_id, "over": "tls"}


def test_a_certificate_the_client_does_not_trust_fails_at_once_as_a_tls_error(tls_cluster, tmp_path):
    cluster, _cert = tls_cluster
    other, _key = make_certificate(tmp_path, "someone-else")  # the client trusts only this one
    with Engine(
        uri=plain_uri(cluster, f"&tls=true&tlsCAFile={other}"), heartbeatFrequencyMS=100, retry_policy=BUDGET
    ) as engine:
        started = time.monotonic()
        with pytest.raises(FatalConfigurationError) as info:
            engine.find_one(engine.client.db.things, {})
        assert time.monotonic() - started < AT_ONCE
    error = info.value
    assert error.reason == "tls"
    assert set(error.addresses) == {member.address for member in cluster.members}
    assert "certificate verify failed" in str(error)
    # pymongo's monitor keeps the handshake failure as text only: the cause is its AutoReconnect
    assert isinstance(error.__cause__, AutoReconnect)
    assert "[SSL: CERTIFICATE_VERIFY_FAILED]" in str(error.__cause__)


def test_a_renewed_certificate_clears_the_tls_error_without_a_restart(tls_cluster, tmp_path):
    cluster, _cert = tls_cluster
    other, other_key = make_certificate(tmp_path, "renewed")  # the client trusts this one only
    log = EngineLog()
    with Engine(
        uri=plain_uri(cluster, f"&tls=true&tlsCAFile={other}"),
        heartbeatFrequencyMS=100,
        retry_policy=BUDGET,
        logger=log.logger,
    ) as engine:
        with pytest.raises(FatalConfigurationError):
            engine.find_one(engine.client.db.things, {})
        renewed = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        renewed.load_cert_chain(other, other_key)
        cluster.set_tls(renewed)

        def works() -> bool:
            try:
                engine.insert_one(engine.client.db.things, {"after": "renewal"})
            except FatalConfigurationError:
                return False
            return True

        wait_for(works, 15, "the engine to work with the renewed certificate")
        assert engine.count_documents(engine.client.db.things, {"after": "renewal"}) == 1
    assert log.messages(logging.INFO, "tls error cleared")


def test_a_tls_member_contacted_without_tls_is_named_with_the_likely_reason(tls_cluster):
    """A TLS-only server just closes a plaintext connection (mongod too): the client cannot tell that from a
    member that is going away, so this is not fatal; the WARNING names the likely reason and the command ends
    at its budget with the addresses and the last error."""
    cluster, _cert = tls_cluster
    log = EngineLog()
    with Engine(
        uri=plain_uri(cluster),
        heartbeatFrequencyMS=100,
        retry_policy=RetryPolicy(budget=2),
        logger=log.logger,
    ) as engine:
        with pytest.raises(RetryBudgetExhaustedError) as info:
            engine.find_one(engine.client.db.things, {})
    assert set(info.value.addresses) == {member.address for member in cluster.members}
    warning = log.messages(logging.WARNING, "no primary")[0]
    assert "the connection during the handshake (a server requiring TLS does that" in warning


# -------------------------------------------------------------------------------------------- wire version
def test_a_server_too_old_for_this_pymongo_fails_at_once_as_a_wire_version_error(
    sim_cluster, fast_heartbeats, monkeypatch
):
    """Members that report MongoDB 3.6's wire version (6), below what pymongo 4 accepts."""
    monkeypatch.setattr(member_module, "MAX_WIRE_VERSION", 6)
    with Engine(uri=sim_cluster.uri, heartbeatFrequencyMS=100, retry_policy=BUDGET) as engine:
        started = time.monotonic()
        with pytest.raises(FatalConfigurationError) as info:
            engine.find_one(engine.client.db.things, {})
        assert time.monotonic() - started < AT_ONCE
    assert info.value.reason == "wire_version"
    assert "wire version 6" in str(info.value)
    assert info.value.addresses
