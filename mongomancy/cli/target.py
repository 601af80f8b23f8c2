"""Which server a command talks to: ``--host``/``--port``, else the TARGET argument, else ``$MONGODB_URI``,
else ``localhost:27017``; the same rules for ``ping`` and ``watch``."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import attrs

from mongomancy._redact import redact_uri, secrets_of, unencoded_userinfo

DEFAULT_TARGET = "localhost:27017"
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+)(?::(?P<port>[0-9]{1,5}))?$")


class TargetError(ValueError):
    """The target is unusable; the message says why and holds no password."""


@attrs.frozen
class Target:
    """MongoClient's first argument, the same without passwords, and the secrets to redact from errors."""

    uri: str
    display: str
    secrets: tuple[str, ...] = ()


def shown(raw: str | None) -> str:
    """What to print for a target that may not even parse (a usage error must still name it, redacted)."""
    return redact_uri(raw.strip()) if raw else ""


def resolve_target(
    target: str | None,
    host: str | None = None,
    port: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> Target:
    """Resolve the command line's target; raise :class:`TargetError` for one no client can use.

    A target is a ``mongodb://`` / ``mongodb+srv://`` URI or ``host[:port]``.
    """
    env = os.environ if environ is None else environ
    if host is not None and target is not None:
        raise TargetError("give the target either as an argument or with --host/--port, not both")
    if host is not None or port is not None:
        host = host or "localhost"
        port = port or 27017
        if not _HOST_PORT.match(host):
            raise TargetError(f"--host is not a host name or address: {host[:60]!r}")
        if not 0 < port < 65536:
            raise TargetError(f"--port must be between 1 and 65535, got {port}")
        uri = f"mongodb://{host}:{port}/"
        return Target(uri, uri)
    raw = (target if target is not None else env.get("MONGODB_URI") or DEFAULT_TARGET).strip()
    if raw.startswith(("mongodb://", "mongodb+srv://")):
        problem = unencoded_userinfo(raw)
        if problem is not None:
            raise TargetError(f"{problem}: {redact_uri(raw)}")
        return Target(raw, redact_uri(raw), secrets_of(raw))
    if "://" in raw:
        scheme = raw.partition("://")[0]
        raise TargetError(f"the target must start with mongodb:// or mongodb+srv://, not {scheme[:20]!r}://")
    if "@" in raw:
        raise TargetError("credentials need the mongodb://user:password@host form")
    match = _HOST_PORT.match(raw)
    if not match:
        raise TargetError(f"the target is neither a mongodb:// URI nor host[:port]: {raw[:60]!r}")
    port_text = match.group("port")
    if port_text is not None and not 0 < int(port_text) < 65536:
        raise TargetError(f"the port must be between 1 and 65535, got {port_text}")
    uri = f"mongodb://{match.group('host')}:{port_text or 27017}/"
    return Target(uri, uri)
