"""mongomancy: keep programs talking to MongoDB through failovers, and declare the schema in code.

Exported here: what a program using the library writes.  Everything else stays importable from its own
module (``mongomancy.commands.Command``, ``mongomancy.retry.decide``, ``mongomancy.testing``...).
"""

from mongomancy._version import __version__
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
