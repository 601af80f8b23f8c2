"""mongomancy: keep programs talking to MongoDB through failovers, and declare the schema in code.

Exported here: what a program using the library writes.  Everything else stays importable from its own
module (``mongomancy.commands.Command``, ``mongomancy.retry.decide``, ``mongomancy.testing``...).

Why the exports are resolved on first use (PEP 562 ``__getattr__``): ``import mongomancy.cli`` imports this
package first, and ``mongomancy-ping`` (a probe run every few seconds) and ``mongomancy sim`` must not pay
the ~0.6 s of importing the engine, the schema layer and all of pymongo for names they never use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mongomancy._version import __version__

if TYPE_CHECKING:
    from mongomancy.commands import RetryClass
    from mongomancy.cursor import ResumableCursor
    from mongomancy.engine import Engine
    from mongomancy.errors import (
        ConfigurationError,
        CursorResumeError,
        EngineDisposedError,
        FatalConfigurationError,
        IndexConflictError,
        MongomancyError,
        OutcomeUnknownError,
        QueueFullError,
        RetryBudgetExhaustedError,
        SchemaError,
        StaleSessionError,
        SupervisorError,
        UnknownCollectionError,
    )
    from mongomancy.events import ChangeKind, TopologyChange
    from mongomancy.executor import Executor
    from mongomancy.retry import RetryPolicy
    from mongomancy.schema import (
        ApplyResult,
        Collection,
        CollectionDefinition,
        Database,
        Document,
        Index,
        Plan,
        TimeSeries,
    )
    from mongomancy.stats import EngineStats

#: Exported name -> the module that defines it.
_EXPORTS = {
    "RetryClass": "mongomancy.commands",
    "ResumableCursor": "mongomancy.cursor",
    "Engine": "mongomancy.engine",
    "ConfigurationError": "mongomancy.errors",
    "CursorResumeError": "mongomancy.errors",
    "EngineDisposedError": "mongomancy.errors",
    "FatalConfigurationError": "mongomancy.errors",
    "IndexConflictError": "mongomancy.errors",
    "MongomancyError": "mongomancy.errors",
    "OutcomeUnknownError": "mongomancy.errors",
    "QueueFullError": "mongomancy.errors",
    "RetryBudgetExhaustedError": "mongomancy.errors",
    "SchemaError": "mongomancy.errors",
    "StaleSessionError": "mongomancy.errors",
    "SupervisorError": "mongomancy.errors",
    "UnknownCollectionError": "mongomancy.errors",
    "ChangeKind": "mongomancy.events",
    "TopologyChange": "mongomancy.events",
    "Executor": "mongomancy.executor",
    "RetryPolicy": "mongomancy.retry",
    "ApplyResult": "mongomancy.schema",
    "Collection": "mongomancy.schema",
    "CollectionDefinition": "mongomancy.schema",
    "Database": "mongomancy.schema",
    "Document": "mongomancy.schema",
    "Index": "mongomancy.schema",
    "Plan": "mongomancy.schema",
    "TimeSeries": "mongomancy.schema",
    "EngineStats": "mongomancy.stats",
    # mongomancy 0.1's shortcuts, kept for old code (not in __all__): pymongo's own constants.
    "ASCENDING": "pymongo",
    "DESCENDING": "pymongo",
}

__all__ = [
    "ApplyResult",
    "ChangeKind",
    "Collection",
    "CollectionDefinition",
    "ConfigurationError",
    "CursorResumeError",
    "Database",
    "Document",
    "Engine",
    "EngineDisposedError",
    "EngineStats",
    "Executor",
    "FatalConfigurationError",
    "Index",
    "IndexConflictError",
    "MongomancyError",
    "OutcomeUnknownError",
    "Plan",
    "QueueFullError",
    "ResumableCursor",
    "RetryBudgetExhaustedError",
    "RetryClass",
    "RetryPolicy",
    "SchemaError",
    "StaleSessionError",
    "SupervisorError",
    "TimeSeries",
    "TopologyChange",
    "UnknownCollectionError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mongomancy' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
