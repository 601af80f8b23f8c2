"""What each simulated member saw, as immutable records with a small query API.

Why: a test about failover must prove *how* an outcome came about, e.g. that a retried write reached the
backend once and was answered from the de-duplication table the second time, not merely that one document
exists.  Handshakes (``hello``/``isMaster``) are not recorded: monitors send them continuously and they would
drown everything else.
"""

from __future__ import annotations

import enum
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import bson


class Outcome(enum.Enum):
    """What a member did with a command."""

    #: Sent to the backend and its reply relayed.
    FORWARDED = "forwarded"
    #: Answered by the member itself (``replSetGetStatus``, ``replSetStepDown``...).
    ANSWERED = "answered"
    #: Refused as a real replica-set member would (10107 NotWritablePrimary, 13435 NotPrimaryNoSecondaryOk).
    REFUSED = "refused"
    #: A retried write answered from the stored reply of its first execution, without reaching the backend.
    DEDUPLICATED = "deduplicated"
    #: Failed on purpose by :meth:`SimulatedReplicaSet.fail_command` (error reply or closed connection).
    INJECTED = "injected"
    #: Forwarding failed (the backend connection broke).
    FAILED = "failed"


LsidLike = uuid.UUID | bytes | bson.Binary | Mapping[str, Any]


def lsid_uuid(lsid: LsidLike | None) -> uuid.UUID | None:
    """Normalise a session id (``session.session_id``, its ``"id"`` Binary, bytes or a UUID) to a UUID."""
    if lsid is None:
        return None
    if isinstance(lsid, Mapping):
        lsid = lsid.get("id")
        if lsid is None:
            return None
    if isinstance(lsid, uuid.UUID):
        return lsid
    if isinstance(lsid, bson.Binary):
        return uuid.UUID(bytes=bytes(lsid))
    if isinstance(lsid, bytes) and len(lsid) == 16:
        return uuid.UUID(bytes=lsid)
    raise TypeError(f"not a session id: {lsid!r}")


@attrs.frozen
class CommandRecord:
    """One command a member received (handshakes excepted)."""

    member: int
    command: str
    db: str
    outcome: Outcome
    #: Whether the command is a write (refused on a secondary, de-duplicated when retried).
    is_write: bool
    lsid: uuid.UUID | None = None
    txn_number: int | None = None
    #: The error code of a refusal or injected error (None for success and for injected closes).
    error_code: int | None = None
    #: ``time.monotonic()`` when the member finished with the command.
    at: float = attrs.field(factory=time.monotonic)
    #: The command document as the member received it (to check e.g. the sort or ``maxTimeMS`` sent).
    body: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)


class RecordLog:
    """A thread-safe, append-only list of :class:`CommandRecord` shared by all members."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[CommandRecord] = []

    def add(self, record: CommandRecord) -> None:
        with self._lock:
            self._records.append(record)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def select(
        self,
        member: int | None = None,
        command: str | Iterable[str] | None = None,
        outcome: Outcome | None = None,
        lsid: LsidLike | None = None,
        txn_number: int | None = None,
    ) -> list[CommandRecord]:
        """Records matching every given criterion, oldest first."""
        with self._lock:
            records = list(self._records)
        names = {command} if isinstance(command, str) else set(command) if command is not None else None
        wanted_lsid = lsid_uuid(lsid)
        return [
            r
            for r in records
            if (member is None or r.member == member)
            and (names is None or r.command in names)
            and (outcome is None or r.outcome is outcome)
            and (wanted_lsid is None or r.lsid == wanted_lsid)
            and (txn_number is None or r.txn_number == txn_number)
        ]
