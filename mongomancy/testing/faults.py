"""Injected command failures, modelled on MongoDB's ``failCommand`` fail point.

Why a copy of ``failCommand`` rather than something new: its semantics (the next N matching commands fail with
a code and labels, or the connection closes) are what drivers' own retry tests are written against, so a test
written here reads the same as one against a real server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

#: codeName for the error codes tests typically inject.
CODE_NAMES: Mapping[int, str] = {
    2: "BadValue",
    6: "HostUnreachable",
    7: "HostNotFound",
    8: "UnknownError",
    11: "UserNotFound",
    13: "Unauthorized",
    26: "NamespaceNotFound",
    27: "IndexNotFound",
    50: "MaxTimeMSExpired",
    72: "InvalidOptions",
    85: "IndexOptionsConflict",
    86: "IndexKeySpecsConflict",
    89: "NetworkTimeout",
    91: "ShutdownInProgress",
    112: "WriteConflict",
    115: "CommandNotSupported",
    189: "PrimarySteppedDown",
    251: "NoSuchTransaction",
    262: "ExceededTimeLimit",
    9001: "SocketException",
    10107: "NotWritablePrimary",
    11000: "DuplicateKey",
    11600: "InterruptedAtShutdown",
    11602: "InterruptedDueToReplStateChange",
    13435: "NotPrimaryNoSecondaryOk",
    13436: "NotPrimaryOrSecondary",
}


def code_name(code: int) -> str:
    return CODE_NAMES.get(code, f"Error{code}")


class FailPoint:
    """A handle on one :meth:`SimulatedReplicaSet.fail_command` rule; thread-safe.

    ``remaining`` counts down as matching commands fail; :meth:`cancel` disables the rule early.
    """

    def __init__(
        self,
        commands: frozenset[str],
        times: int,
        *,
        code: int | None,
        labels: tuple[str, ...],
        close_connection: bool,
        members: frozenset[int] | None,
        error_message: str,
        after_forward: bool,
    ) -> None:
        self.commands = commands
        self.code = code
        self.labels = labels
        self.close_connection = close_connection
        self.members = members
        self.error_message = error_message
        self.after_forward = after_forward
        self._lock = threading.Lock()
        self._remaining = times
        self._triggered = 0

    @property
    def remaining(self) -> int:
        with self._lock:
            return self._remaining

    @property
    def triggered(self) -> int:
        """How many commands this rule has failed so far."""
        with self._lock:
            return self._triggered

    def cancel(self) -> None:
        with self._lock:
            self._remaining = 0

    def take(self, command: str, member: int) -> bool:
        """Consume one use if ``command`` on ``member`` matches; True means: fail this command."""
        if command not in self.commands or (self.members is not None and member not in self.members):
            return False
        with self._lock:
            if self._remaining <= 0:
                return False
            self._remaining -= 1
            self._triggered += 1
            return True

    def error_reply(self) -> dict[str, Any]:
        assert self.code is not None
        doc: dict[str, Any] = {
            "ok": 0.0,
            "errmsg": self.error_message,
            "code": self.code,
            "codeName": code_name(self.code),
        }
        if self.labels:
            doc["errorLabels"] = list(self.labels)
        return doc

    def __repr__(self) -> str:
        what = "close" if self.close_connection else f"code={self.code}"
        return f"<FailPoint {sorted(self.commands)} {what} remaining={self.remaining}>"


class FaultTable:
    """The active fail points; the first matching rule with uses left fires."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._points: list[FailPoint] = []

    def add(self, point: FailPoint) -> None:
        with self._lock:
            self._points.append(point)

    def clear(self) -> None:
        with self._lock:
            for p in self._points:
                p.cancel()
            self._points.clear()

    def match(self, command: str, member: int) -> FailPoint | None:
        if not self._points:  # fast path, racy read is fine: a rule added concurrently applies next time
            return None
        with self._lock:
            self._points = [p for p in self._points if p.remaining > 0]
            for p in self._points:
                if p.take(command, member):
                    return p
        return None


def normalise_commands(commands: str | Iterable[str]) -> frozenset[str]:
    names = frozenset([commands] if isinstance(commands, str) else commands)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"commands must be a command name or non-empty names, not {commands!r}")
    return names
