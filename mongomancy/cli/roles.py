"""The names the command line gives member roles: the ones ``mongosh``'s ``rs.status()`` users know
(``PRIMARY``, ``SECONDARY``...), not pymongo's server type names (``RSPrimary``), in ``ping`` and ``watch``
alike."""

from __future__ import annotations

from typing import overload

_NAMES = {
    "RSPrimary": "PRIMARY",
    "RSSecondary": "SECONDARY",
    "RSArbiter": "ARBITER",
    "RSOther": "OTHER",
    "RSGhost": "GHOST",
    "Standalone": "STANDALONE",
    "Mongos": "MONGOS",
    "LoadBalancer": "LOAD_BALANCER",
    "Unknown": "UNKNOWN",
}


@overload
def role_name(server_type_name: str) -> str: ...
@overload
def role_name(server_type_name: None) -> None: ...
def role_name(server_type_name: str | None) -> str | None:
    """``"RSPrimary"`` -> ``"PRIMARY"``; None (a member not in the topology) stays None."""
    if server_type_name is None:
        return None
    return _NAMES.get(server_type_name, server_type_name.upper())
