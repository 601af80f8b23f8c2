"""Why there is no primary, in words: one phrase per member from pymongo's server descriptions.

Why: a user whose commands wait for a primary needs to hear at once *which* servers were tried and what
each said (refused, timed out, answered as a secondary), not "no primary" after a minute.  pymongo keeps
the last error of every member on its ``ServerDescription`` (SDAM spec: a member that failed its check is
Unknown with that ``error``); this module turns that into a line for the log.  Pure: no I/O.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Mapping

from pymongo.errors import NetworkTimeout
from pymongo.server_description import ServerDescription
from pymongo.topology_description import TopologyDescription

from mongomancy._redact import address_text

_ROLES = {
    "RSSecondary": "is a secondary",
    "RSArbiter": "is an arbiter",
    "RSOther": "is a hidden or delayed member",
    "RSGhost": "is not initialised as a replica-set member yet",
    "Mongos": "is a mongos router",
    "Standalone": "is a standalone server",
}


def member_phrase(server: ServerDescription) -> str:
    """``"refused the connection"``, ``"timed out (...)"``, ``"is a secondary"``..."""
    error = server.error
    if error is None:
        if server.server_type_name == "RSPrimary":
            return "is the primary"
        return _ROLES.get(server.server_type_name, "has not been checked yet")
    text = str(error).partition(", full error:")[0]
    if _refused(error):
        return "refused the connection"
    if isinstance(error, NetworkTimeout) or "timed out" in text:
        return "timed out"
    if "connection closed" in text or "Connection reset by peer" in text:
        what = "closed" if "connection closed" in text else "reset"
        hint = "a server requiring TLS does that to a client without TLS"
        return f"{what} the connection during the handshake ({hint})"
    return f"failed: {text}"


def _refused(error: BaseException) -> bool:
    current: BaseException | None = error
    while current is not None:
        if (
            isinstance(current, ConnectionRefusedError)
            or getattr(current, "errno", None) == errno.ECONNREFUSED
        ):
            return True
        if isinstance(current, socket.gaierror):
            return False
        current = current.__cause__ or current.__context__
    return "Connection refused" in str(error)


def why_no_primary(description: TopologyDescription, foreign_members: Mapping[str, str] | None = None) -> str:
    """One line: every member and what it said, then the overall reason.

    ``foreign_members`` (address -> phrase) are seeds pymongo removed from the topology because they belong
    to another replica set (or none).
    """
    foreign_members = foreign_members or {}
    servers = description.server_descriptions()
    parts = [f"{address_text(a)} {member_phrase(s)}" for a, s in sorted(servers.items())]
    parts += [f"{address} {what}" for address, what in sorted(foreign_members.items())]
    answering = [s for s in servers.values() if s.error is None and s.server_type_name != "Unknown"]
    if not servers and not foreign_members:
        summary = "no member is known"
    elif answering:
        summary = "no primary elected"
    elif all(s.error is not None and _refused(s.error) for s in servers.values()) and servers:
        summary = "every member refused the connection"
    else:
        summary = "no member answered"
    listed = "; ".join(parts) if parts else "no members"
    return f"{summary}: {listed}"
