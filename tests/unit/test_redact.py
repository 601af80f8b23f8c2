"""Redaction holds for any password: the user-info runs to the last ``@`` before the host list."""

from __future__ import annotations

import pytest

from mongomancy._redact import (
    address_text,
    redact_text,
    redact_uri,
    secrets_of,
    split_userinfo,
    unencoded_userinfo,
)

PASSWORDS = ["S3cr/tPW", "S3c@tPW", "S3c:tPW", "12/tPW", "a?b@c:d/e", "p@ss@word", "x/?y=z@w", "pa ss", "%zz"]


@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize(
    "template",
    [
        "mongodb://alice:{}@127.0.0.1:1/",
        "mongodb://alice:{}@h1:27017,h2:27018/db?replicaSet=rs0",
        "mongodb+srv://alice:{}@cluster.example.com",
        "mongodb://alice:{}@[::1]:27017/?appname=a@b",
    ],
)
def test_no_part_of_an_unencoded_password_survives(template: str, password: str) -> None:
    uri = template.format(password)
    shown = redact_uri(uri)
    assert password not in shown
    assert shown.startswith(uri.split("://")[0] + "://alice:***@")
    text = redact_text(f"invalid target {uri}: Port contains non-digit characters", secrets_of(uri))
    assert password not in text and "alice:***@" in text


def test_the_host_list_and_options_stay_readable() -> None:
    uri = "mongodb://alice:S3cr%2FtPW@h1:1,h2:2/db?replicaSet=rs0&appname=me@home"
    assert redact_uri(uri) == "mongodb://alice:***@h1:1,h2:2/db?replicaSet=rs0&appname=me@home"
    # Ambiguous (an unencoded '/' in the password and an '@' in an option): hide too much, never too little.
    assert "tPW" not in redact_uri("mongodb://alice:S3cr/tPW@h1/db?appname=me@home")
    assert split_userinfo("mongodb://u:p@h/?appname=x@y").rest == "h/?appname=x@y"
    assert redact_uri("mongodb://h1,h2/?replicaSet=rs0") == "mongodb://h1,h2/?replicaSet=rs0"
    assert redact_uri("mongodb://CN=me@h/?authMechanism=MONGODB-X509") == (
        "mongodb://CN=me@h/?authMechanism=MONGODB-X509"
    )


def test_secret_options_are_masked() -> None:
    uri = "mongodb://h/?authMechanismProperties=AWS_SESSION_TOKEN:tok&tlsCertificateKeyFilePassword=kp"
    shown = redact_uri(uri)
    assert "tok" not in shown and "kp" not in shown
    assert set(secrets_of(uri)) >= {"AWS_SESSION_TOKEN:tok", "kp"}


def test_percent_encoded_passwords_are_masked_decoded_too() -> None:
    uri = "mongodb://alice:S3cr%2FtPW@h/"
    assert "S3cr/tPW" in secrets_of(uri)
    assert redact_text("auth failed for S3cr/tPW", secrets_of(uri)) == "auth failed for ***"


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("mongodb://alice:12/tPW@127.0.0.1:1/", "'/'"),
        ("mongodb://alice:S3c@tPW@h/", "'@'"),
        ("mongodb://alice:S3c:tPW@h/", "':'"),
        ("mongodb://al@ce:pw@h/", "user name contains '@'"),
    ],
)
def test_unencoded_delimiters_are_named_without_the_password(uri: str, problem: str) -> None:
    message = unencoded_userinfo(uri)
    assert message is not None and problem in message
    assert split_userinfo(uri).password not in message


def test_encoded_or_absent_credentials_are_fine() -> None:
    assert unencoded_userinfo("mongodb://alice:S3cr%2FtPW@h/") is None
    assert unencoded_userinfo("mongodb://h1,h2/?replicaSet=rs0") is None


def test_address_text() -> None:
    assert address_text(("h", 1)) == "h:1"
    assert address_text(("::1", 27017)) == "[::1]:27017"
