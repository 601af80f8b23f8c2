"""mongomancy: keep long-running programs talking to MongoDB through failovers, and declare the schema in code."""

from mongomancy._version import __version__
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

__all__ = [
    "BackendNotInstalledError",
    "CommandError",
    "ConfigurationError",
    "CursorResumeError",
    "EngineDisposedError",
    "IndexConflictError",
    "MongomancyError",
    "OutcomeUnknownError",
    "PortInUseError",
    "QueueFullError",
    "RetryBudgetExhaustedError",
    "SchemaError",
    "SimulatorError",
    "StaleSessionError",
    "SupervisorError",
    "UnknownCollectionError",
    "UnknownMemberError",
    "__version__",
]
