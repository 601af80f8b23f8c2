"""Deprecated alias of the planner and applier, kept for one release: use :mod:`mongomancy.schema`.

The module was split into :mod:`mongomancy.schema.live` (read the live state), :mod:`mongomancy.schema.plan`
(the pure diff) and :mod:`mongomancy.schema.apply`; every public name is re-exported here unchanged.
"""

from __future__ import annotations

from mongomancy.schema.apply import ApplyResult, Execute, apply_plan
from mongomancy.schema.live import LiveCollection, LiveState, read_live_state
from mongomancy.schema.plan import (
    CollectionConflict,
    CreateCollection,
    CreateIndex,
    ExtraIndex,
    IndexChange,
    InsertDocument,
    ModifyCollection,
    Plan,
    plan,
)

__all__ = [
    "ApplyResult",
    "CollectionConflict",
    "CreateCollection",
    "CreateIndex",
    "Execute",
    "ExtraIndex",
    "IndexChange",
    "InsertDocument",
    "LiveCollection",
    "LiveState",
    "ModifyCollection",
    "Plan",
    "apply_plan",
    "plan",
    "read_live_state",
]
