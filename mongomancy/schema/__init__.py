"""Schema declared in code: definitions, the live state, a pure plan, and its safe application.

* :mod:`~mongomancy.schema.definitions`: ``CollectionDefinition``, ``Index``, ``Document``, ``TimeSeries``;
* :mod:`~mongomancy.schema.live`: read what exists on the server;
* :mod:`~mongomancy.schema.normalise`: server answers and definitions in one comparable form;
* :mod:`~mongomancy.schema.plan`: the pure diff;
* :mod:`~mongomancy.schema.apply`: perform a plan, idempotently;
* :mod:`~mongomancy.schema.database`: ``Database`` and ``Collection``, the facade applications use.
"""

from __future__ import annotations

from mongomancy.schema.apply import ApplyResult, apply_plan
from mongomancy.schema.database import DEFAULT_DATABASE_NAME, Collection, Database
from mongomancy.schema.definitions import CollectionDefinition, Document, FrozenMap, Index, TimeSeries
from mongomancy.schema.live import LiveCollection, LiveState, read_live_state
from mongomancy.schema.plan import Plan, plan

__all__ = [
    "DEFAULT_DATABASE_NAME",
    "ApplyResult",
    "Collection",
    "CollectionDefinition",
    "Database",
    "Document",
    "FrozenMap",
    "Index",
    "LiveCollection",
    "LiveState",
    "Plan",
    "TimeSeries",
    "apply_plan",
    "plan",
    "read_live_state",
]
