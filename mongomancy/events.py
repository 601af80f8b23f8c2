"""Values describing what the supervisor saw: topology changes handed to hooks and observers."""

from __future__ import annotations

import enum
import time

import attrs


class ChangeKind(enum.Enum):
    """The kinds of change the supervisor reports."""

    #: A different member became primary (old and new addresses are set).
    PRIMARY_CHANGED = "primary_changed"
    #: No writable server any more: commands that need one now wait in the queue.
    NO_PRIMARY = "no_primary"
    #: The same primary is writable again after a gap.
    PRIMARY_BACK = "primary_back"
    #: The engine replaced its ``MongoClient`` (``reconnect()`` or the replace-on-failover policy).
    CLIENT_REPLACED = "client_replaced"
    #: A member's role changed (up, down, primary, secondary...): for observers, not for hooks.
    MEMBER_CHANGED = "member_changed"


#: Kinds that run the engine's reconnect hooks; member changes only reach topology observers.
HOOK_KINDS = frozenset(
    {ChangeKind.PRIMARY_CHANGED, ChangeKind.NO_PRIMARY, ChangeKind.PRIMARY_BACK, ChangeKind.CLIENT_REPLACED}
)


@attrs.frozen
class TopologyChange:
    """One change, as hooks and observers receive it (addresses are ``"host:port"`` strings)."""

    kind: ChangeKind
    old_primary: str | None = None
    new_primary: str | None = None
    #: For MEMBER_CHANGED: the member, and its role before and after (pymongo's server type names).
    member: str | None = None
    old_role: str | None = None
    new_role: str | None = None
    topology_type: str = "Unknown"
    set_name: str | None = None
    #: Which client the engine had when the change was seen (grows with every replacement).
    client_generation: int = 0
    observed_at: float = attrs.field(factory=time.time)

    def describe(self) -> str:
        """One human line, as ``mongomancy watch`` prints it."""
        if self.kind is ChangeKind.MEMBER_CHANGED:
            return f"member {self.member}: {self.old_role} -> {self.new_role}"
        if self.kind is ChangeKind.PRIMARY_CHANGED:
            return f"primary changed: {self.old_primary} -> {self.new_primary}"
        if self.kind is ChangeKind.NO_PRIMARY:
            return f"no primary (was {self.old_primary})"
        if self.kind is ChangeKind.PRIMARY_BACK:
            return f"primary back: {self.new_primary}"
        return f"client replaced (generation {self.client_generation})"

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict with stable keys (used by ``mongomancy watch --json``)."""
        return {
            "kind": self.kind.value,
            "old_primary": self.old_primary,
            "new_primary": self.new_primary,
            "member": self.member,
            "old_role": self.old_role,
            "new_role": self.new_role,
            "topology_type": self.topology_type,
            "set_name": self.set_name,
            "client_generation": self.client_generation,
            "observed_at": self.observed_at,
        }
