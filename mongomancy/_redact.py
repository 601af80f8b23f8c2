"""Keep credentials out of logs, messages and JSON, and print addresses one way everywhere.

Shared by the library (engine, supervisor, fatal-error messages) and the command line, so a connection
string is shown the same way, without its password, whatever prints it.

Where the user-info ends: RFC 3986 (section 3.2.1) and MongoDB's connection-string spec put it before the last
``@`` of the authority, and the host list contains no ``@``.  A password that is not percent-encoded may hold
``/``, ``?``, ``:`` or ``@``; splitting at the first ``/`` (as pymongo's parser does) or the first ``@`` would
then print the rest of the password as if it were a host or a database name.  :func:`split_userinfo`
therefore takes the user-info up to the *last* ``@`` that is followed by a valid host list, unless the
usual reading finds clean credentials and every later ``@`` sits inside a ``key=value`` query option
(``?appname=me@home``).  When both readings are possible it hides too much rather than too little.
"""

from __future__ import annotations

import re
import urllib.parse

import attrs

_SCHEME = re.compile(r"mongodb(?:\+srv)?://")
_HOST = r"(?:\[[0-9A-Za-z:.%]+\]|[A-Za-z0-9_.~%\-]+)(?::[0-9]{1,5})?"
_HOST_LIST = re.compile(rf"{_HOST}(?:,{_HOST})*")
_OPTION = re.compile(r"[A-Za-z][A-Za-z0-9_]*=[^&]*")
_SECRET_OPTION = re.compile(
    r"(?i)(?P<key>(?:password|authMechanismProperties|tlsCertificateKeyFilePassword)=)(?P<value>[^&\s]*)"
)
#: In free text, a connection string runs to the next white space or quote.
_URI_IN_TEXT = re.compile(r"mongodb(?:\+srv)?://[^\s'\"]*")
#: Characters RFC 3986 reserves as delimiters: inside a user name or password they must be percent-encoded.
_DELIMITERS = frozenset(":/?#[]@")
_MASK = "***"


@attrs.frozen
class UriParts:
    """A connection string cut where its user-info ends (nothing else is parsed)."""

    scheme: str
    #: Everything before the host list's ``@``, or None when the string has no user-info.
    userinfo: str | None
    #: The host list and whatever follows it (``/db?options``).
    rest: str

    @property
    def user(self) -> str | None:
        return None if self.userinfo is None else self.userinfo.partition(":")[0]

    @property
    def password(self) -> str | None:
        if self.userinfo is None or ":" not in self.userinfo:
            return None
        return self.userinfo.partition(":")[2]


def address_text(address: tuple[str, int | None]) -> str:
    """``("h", 1)`` -> ``"h:1"``; an IPv6 host in brackets (``[::1]:27017``)."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _hosts_end(text: str) -> int | None:
    """The length of the valid host list ``text`` starts with, if it ends at ``/``, ``?`` or the end."""
    match = _HOST_LIST.match(text)
    if match is None:
        return None
    end = match.end()
    return end if end == len(text) or text[end] in "/?" else None


def split_userinfo(uri: str) -> UriParts:
    """Cut ``uri`` after its user-info (see the module doc); a string without a scheme has none."""
    scheme_match = _SCHEME.match(uri)
    if scheme_match is None:
        return UriParts("", None, uri)
    scheme, body = scheme_match.group(), uri[scheme_match.end() :]
    usual = _usual_split(body)
    if usual is not None:
        return UriParts(scheme, *usual)
    for at in reversed([i for i, char in enumerate(body) if char == "@"]):
        if _hosts_end(body[at + 1 :]) is not None:
            return UriParts(scheme, body[:at], body[at + 1 :])
    return UriParts(scheme, None, body)


def _usual_split(body: str) -> tuple[str | None, str] | None:
    """pymongo's reading (authority up to the first ``/``), when it is valid and every later ``@`` sits
    inside a ``key=value`` query option; None when the string must be read the careful way."""
    authority, slash, after = body.partition("/")
    userinfo, at, hosts = authority.rpartition("@")
    if not at:
        userinfo, hosts = "", authority
    if _hosts_end(hosts) != len(hosts):
        return None
    user, _, password = userinfo.partition(":")
    if "@" in after and (not at or _DELIMITERS.intersection(user + password)):
        return None
    if "@" in after:
        database, question, query = after.partition("?")
        if "@" in database or not question:
            return None
        if any("@" in option and not _OPTION.fullmatch(option) for option in query.split("&")):
            return None
    return (userinfo if at else None), hosts + slash + after


def redact_uri(uri: str) -> str:
    """``mongodb://user:secret@h1,h2/?authMechanismProperties=...`` -> ``mongodb://user:***@h1,h2/?...=***``.

    The user name stays (it is not a secret and helps reading); the password and secret-bearing options go.
    """
    parts = split_userinfo(uri)
    rest = _SECRET_OPTION.sub(rf"\g<key>{_MASK}", parts.rest)
    if parts.userinfo is None:
        return parts.scheme + rest
    if parts.password is None:
        return f"{parts.scheme}{parts.userinfo}@{rest}"
    return f"{parts.scheme}{parts.user}:{_MASK}@{rest}"


def secrets_of(uri: str) -> tuple[str, ...]:
    """The password and secret option values of ``uri``, as written and percent-decoded, longest first
    (so :func:`redact_text` replaces a whole secret before any part of it)."""
    parts = split_userinfo(uri)
    found = [m.group("value") for m in _SECRET_OPTION.finditer(parts.rest)]
    if parts.password:
        found.append(parts.password)
    variants = {s for raw in found for s in (raw, urllib.parse.unquote_plus(raw), urllib.parse.unquote(raw))}
    return tuple(sorted((s for s in variants if s), key=len, reverse=True))


def unencoded_userinfo(uri: str) -> str | None:
    """Why the user name or password of ``uri`` is ambiguous (an unencoded delimiter), or None.

    pymongo reads such a string differently from what was meant (``alice:12/x@h`` connects to host ``alice``
    port 12 without credentials) or refuses it with a message that may quote parts of the password.
    """
    parts = split_userinfo(uri)
    if parts.userinfo is None:
        return None
    user, _, password = parts.userinfo.partition(":")
    for name, value in (("user name", user), ("password", password)):
        bad = sorted(_DELIMITERS.intersection(value))
        if bad:
            shown = " ".join(f"'{char}'" for char in bad)
            return (
                f"the {name} contains {shown} unencoded: percent-encode the user name and password "
                "(urllib.parse.quote_plus)"
            )
    return None


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Redact connection strings inside ``text`` and every literal secret (a password given on its own)."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, _MASK)
    return _URI_IN_TEXT.sub(lambda match: redact_uri(match.group()), text)
