"""mongomancy: keep programs talking to MongoDB through failovers, and declare the schema in code."""

from mongomancy._version import __version__
from mongomancy.commands import CollectionTarget, Command, RetryClass
from mongomancy.cursor import ResumableCursor
from mongomancy.engine import Engine
from mongomancy.errors import (
    BackendNotInstalledError,
    CommandError,
    ConfigurationError,
    CursorResumeError,
    EngineDisposedError,
    IndexConflictError,
    MongomancyError,
    OutcomeUnknownError,
    PortInUseError,
    QueueFullError,
    RetryBudgetExhaustedError,
    SchemaError,
    SimulatorError,
    StaleSessionError,
    SupervisorError,
    UnknownCollectionError,
    UnknownMemberError,
)
from mongomancy.events import ChangeKind, TopologyChange
from mongomancy.executor import Executor
from mongomancy.retry import ErrorKind, RetryPolicy, classify_error
from mongomancy.schema import (
    ApplyResult,
    Collection,
    CollectionDefinition,
    Database,
    Document,
    FrozenMap,
    Index,
    LiveCollection,
    LiveState,
    Plan,
    TimeSeries,
    apply_plan,
    plan,
    read_live_state,
)
from mongomancy.stats import EngineStats
from mongomancy.supervisor import TopologyState

__all__ = [
    "ApplyResult",
    "BackendNotInstalledError",
    "ChangeKind",
    "Collection",
    "CollectionDefinition",
    "CollectionTarget",
    "Command",
    "CommandError",
    "ConfigurationError",
    "CursorResumeError",
    "Database",
    "Document",
    "Engine",
    "EngineDisposedError",
    "EngineStats",
    "ErrorKind",
    "Executor",
    "FrozenMap",
    "Index",
    "IndexConflictError",
    "LiveCollection",
    "LiveState",
    "MongomancyError",
    "OutcomeUnknownError",
    "Plan",
    "PortInUseError",
    "QueueFullError",
    "ResumableCursor",
    "RetryBudgetExhaustedError",
    "RetryClass",
    "RetryPolicy",
    "SchemaError",
    "SimulatorError",
    "StaleSessionError",
    "SupervisorError",
    "TimeSeries",
    "TopologyChange",
    "TopologyState",
    "UnknownCollectionError",
    "UnknownMemberError",
    "__version__",
    "apply_plan",
    "classify_error",
    "plan",
    "read_live_state",
]
