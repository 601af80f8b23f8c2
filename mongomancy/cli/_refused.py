"""Is every seed refusing TCP connections?  Answered with plain sockets, before pymongo is imported.

Why: a refused connection is a definite answer ("nothing listens there"), and ``pg_isready`` or ``redis-cli``
give it at once; importing pymongo alone can take longer than the whole answer on a loaded machine.  Only IP
literals and ``localhost`` are tried (a DNS lookup could be slow, and pymongo's own heartbeats report refusals
quickly too); any seed that accepts, is slow, or cannot be tried means "no quick answer" and the real probe
runs.
"""

from __future__ import annotations

import errno
import ipaddress
import select
import socket
import time

from mongomancy._redact import address_text, split_userinfo

_QUICK_NAMES = frozenset({"localhost"})


def seeds_of(uri: str) -> list[tuple[str, int]] | None:
    """The host list of a ``mongodb://`` URI; None for ``mongodb+srv://`` or a host list it cannot read."""
    if not uri.startswith("mongodb://"):
        return None
    rest = split_userinfo(uri).rest
    hosts = rest.split("/", 1)[0].split("?", 1)[0]
    seeds = []
    for entry in hosts.split(","):
        if entry.startswith("["):
            host, _, port_text = entry[1:].partition("]")
            port_text = port_text.lstrip(":")
        else:
            host, _, port_text = entry.partition(":")
        if not host or (port_text and not port_text.isdigit()):
            return None
        seeds.append((host, int(port_text or 27017)))
    return seeds


def _quick(host: str) -> bool:
    if host.lower() in _QUICK_NAMES:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def refusing_seeds(uri: str, timeout: float = 0.25) -> tuple[str, ...] | None:
    """The seeds (``host:port``) when every one of them refused a TCP connection within ``timeout``; None
    when any accepted, did not answer in time, or could not be tried quickly."""
    seeds = seeds_of(uri)
    if not seeds or not all(_quick(host) for host, _port in seeds):
        return None
    pending: dict[socket.socket, str] = {}
    try:
        for host, port in seeds:
            for family, kind, proto, _name, address in socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            ):
                sock = socket.socket(family, kind, proto)
                sock.setblocking(False)
                pending[sock] = address_text((host, port))
                sock.connect_ex(address)
        refused: set[str] = set()
        accepted: set[str] = set()
        deadline = time.monotonic() + timeout
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            _, ready, _ = select.select([], list(pending), [], remaining)
            for sock in ready:
                seed = pending.pop(sock)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                sock.close()
                (refused if code == errno.ECONNREFUSED else accepted).add(seed)
        # A seed counts as refusing only if every address it resolved to refused.
        if accepted:
            return None
        return tuple(address_text(seed) for seed in seeds)
    except OSError:
        return None
    finally:
        for sock in pending:
            sock.close()
