"""Keep credentials out of logs, messages and JSON: connection strings are shown without passwords."""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<scheme>mongodb(?:\+srv)?://)(?P<userinfo>[^@/]*)@")
_SECRET_OPTION = re.compile(
    r"(?i)(?P<key>(?:password|authMechanismProperties|tlsCertificateKeyFilePassword)=)[^&]*"
)


def redact_uri(uri: str) -> str:
    """``mongodb://user:secret@h1,h2/?authMechanismProperties=...`` -> ``mongodb://user:***@h1,h2/?...=***``."""

    def hide_password(match: re.Match[str]) -> str:
        user, _, _password = match.group("userinfo").partition(":")
        return f"{match.group('scheme')}{user}:***@" if user else f"{match.group('scheme')}***@"

    return _SECRET_OPTION.sub(r"\g<key>***", _USERINFO.sub(hide_password, uri))


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Redact connection strings inside ``text`` and any literal secret (a password given on its own)."""
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}***@", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
