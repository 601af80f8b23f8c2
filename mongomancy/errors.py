"""Every exception mongomancy raises, under one base class.

Why one module: callers write ``except MongomancyError`` once and know they caught only ours, and each
error that wraps a driver failure keeps it as ``__cause__`` (and as ``.cause``) so nothing is lost.
The bad-input errors also inherit ``ValueError``/``KeyError``/``LookupError`` so the standard idioms work.
"""

from __future__ import annotations

from typing import Any


class MongomancyError(Exception):
    """Base class of every error raised by mongomancy itself."""


class ConfigurationError(MongomancyError, ValueError):
    """An argument or option is invalid; the message names it and what was wrong."""


class EngineDisposedError(MongomancyError):
    """The engine was disposed: it runs nothing more, and queued commands are woken with this error."""


class QueueFullError(MongomancyError):
    """No primary is known and the engine's waiting queue is full: the command was never sent (a command that
    may already have been applied gets ``OutcomeUnknownError`` instead)."""

    def __init__(self, message: str, *, capacity: int) -> None:
        super().__init__(message)
        self.capacity = capacity


class SupervisorError(MongomancyError):
    """The supervisor thread died and could not be restarted; the engine refuses work rather than hang."""


class FatalConfigurationError(MongomancyError):
    """A configuration error no wait can cure: the credentials were refused, the TLS handshake or the
    server's certificate failed, no member belongs to the named replica set, or the server's wire version is
    one this pymongo does not support.

    Raised at once (never retried, never waited out); commands waiting for a primary are woken with it.  The
    message names the address(es), the user and the mechanism (never the password); the server's or the
    driver's error is ``__cause__``.  ``reason`` is ``"authentication"``, ``"tls"``, ``"replica_set_name"`` or
    ``"wire_version"``.  The engine keeps checking: once the condition clears (a password rotated on the
    server, a certificate renewed) commands work again without a restart.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        addresses: tuple[str, ...] = (),
        user: str | None = None,
        mechanism: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.addresses = addresses
        self.user = user
        self.mechanism = mechanism


class CommandError(MongomancyError):
    """Base of the errors about one command: carries the command, the driver error behind it (also as
    ``__cause__``) and the addresses of the servers involved, so the message says where and why."""

    def __init__(
        self,
        message: str,
        *,
        command: Any,
        cause: BaseException | None = None,
        addresses: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.command = command
        self.cause = cause
        self.addresses = addresses
        if cause is not None:
            self.__cause__ = cause


class OutcomeUnknownError(CommandError):
    """A write failed after an attempt that may have been applied; it was not replayed.

    It may or may not have been applied.  Replaying it could apply it twice (an ``$inc`` counted twice, a
    document inserted twice, a job claimed by nobody), so mongomancy hands the decision to the caller: read
    the data back, or make the write safe to repeat.  ``attempts`` counts the attempts made.
    """

    def __init__(
        self,
        message: str,
        *,
        command: Any,
        cause: BaseException | None,
        attempts: int = 1,
        addresses: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, command=command, cause=cause, addresses=addresses)
        self.attempts = attempts


class RetryBudgetExhaustedError(CommandError):
    """Time or the attempt limit ran out and no attempt may have been applied (nothing was changed); the
    last driver error, or the topology's last error when no attempt could be made, is the cause."""

    def __init__(
        self,
        message: str,
        *,
        command: Any,
        cause: BaseException | None,
        attempts: int,
        elapsed: float,
        addresses: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, command=command, cause=cause, addresses=addresses)
        self.attempts = attempts
        self.elapsed = elapsed


class CursorResumeError(CommandError):
    """A cursor died mid-iteration (for example at a failover) and cannot be resumed without risking
    duplicates or gaps; the message says why."""


class StaleSessionError(MongomancyError):
    """A session or transaction belongs to a client the engine has since replaced; start a new one."""


class SchemaError(MongomancyError):
    """A live database cannot be brought in line with the definitions without an explicit permission."""


class IndexConflictError(SchemaError):
    """An index exists with options that can only change by dropping and re-creating it."""

    def __init__(self, message: str, *, collection: str, index: str, differences: Any) -> None:
        super().__init__(message)
        self.collection = collection
        self.index = index
        self.differences = differences


class UnknownCollectionError(MongomancyError, KeyError):
    """A collection name that the database does not define; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


class SimulatorError(MongomancyError):
    """The simulated replica set (``mongomancy.testing``) could not do what was asked."""


class UnknownMemberError(SimulatorError, LookupError):
    """A member index or address that is not part of the simulated replica set."""


class BackendNotInstalledError(SimulatorError):
    """The wire-protocol backend the simulator needs is not installed; the message names the extra."""


class PortInUseError(SimulatorError, OSError):
    """A port the simulator was asked to listen on is already taken."""
