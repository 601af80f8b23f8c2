"""The simulator's SCRAM-SHA-256 server against the example exchange of RFC 7677 section 3."""

from __future__ import annotations

import base64

from bson import Binary

from mongomancy.testing.auth import StoredCredential, UserStore, verify_proof

# RFC 7677 section 3: user "user", password "pencil".
CLIENT_FIRST_BARE = b"n=user,r=rOprNGfwEbeRWgbNEkqO"
SERVER_FIRST = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
WITHOUT_PROOF = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
PROOF = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
SERVER_SIGNATURE = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def rfc_credential(password: str = "pencil") -> StoredCredential:
    return StoredCredential.derive(password, 4096, base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="))


def test_the_rfc_7677_proof_is_accepted_and_answered_with_its_server_signature() -> None:
    auth_message = b",".join((CLIENT_FIRST_BARE, SERVER_FIRST, WITHOUT_PROOF))
    signature = verify_proof(rfc_credential(), auth_message, base64.b64decode(PROOF))
    assert signature is not None
    assert base64.b64encode(signature).decode() == SERVER_SIGNATURE


def test_the_rfc_7677_proof_is_refused_for_another_password() -> None:
    auth_message = b",".join((CLIENT_FIRST_BARE, SERVER_FIRST, WITHOUT_PROOF))
    assert verify_proof(rfc_credential("pencil2"), auth_message, base64.b64decode(PROOF)) is None


class Connection:
    """Stands for a member connection (the store only needs a weak-referenceable key)."""


def test_an_unauthenticated_connection_is_refused_data_commands_with_code_13() -> None:
    store = UserStore({"ops": "secret"}, iterations=4096)
    refusal = store.screen(Connection(), "find", {"find": "x"})
    assert refusal is not None
    assert (refusal["code"], refusal["codeName"]) == (13, "Unauthorized")
    assert store.screen(Connection(), "hello", {"hello": 1}) is None


def test_an_unknown_user_and_a_wrong_mechanism_are_refused() -> None:
    store = UserStore({"ops": "secret"}, iterations=4096)
    unknown = store.screen(
        Connection(),
        "saslStart",
        {"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": Binary(b"n,,n=nobody,r=abc")},
    )
    assert unknown is not None and (unknown["code"], unknown["errmsg"]) == (18, "Authentication failed.")
    sha1 = store.screen(
        Connection(),
        "saslStart",
        {"saslStart": 1, "mechanism": "SCRAM-SHA-1", "payload": Binary(b"n,,n=ops,r=a")},
    )
    assert sha1 is not None and sha1["code"] == 334


def test_hello_names_the_mechanism_only_for_a_known_user() -> None:
    store = UserStore({"ops": "secret"}, iterations=4096)
    known: dict[str, object] = {}
    store.decorate_hello(Connection(), {"hello": 1, "saslSupportedMechs": "admin.ops"}, known)
    unknown: dict[str, object] = {}
    store.decorate_hello(Connection(), {"hello": 1, "saslSupportedMechs": "admin.nobody"}, unknown)
    assert known == {"saslSupportedMechs": ["SCRAM-SHA-256"]}
    assert unknown == {}
