"""The one exit-code table of every ``mongomancy`` command (and of ``mongomancy-ping``).

====  =====================================================================================
0     success: healthy (``ping``); stopped by Ctrl-C or SIGTERM (``watch``, ``sim``); a clean demo
1     reachable, but a check failed (``ping``); the demo let errors through or lost or doubled a write
2     unreachable, or the ``--timeout`` deadline passed
3     usage or configuration error (bad option, malformed URI: the message says what is wrong)
4     authentication failed
128+N interrupted by signal N before it could give its verdict (``demo``: 130 for Ctrl-C, 143 for SIGTERM)
====  =====================================================================================

``schema plan|apply`` is the one exception, on purpose: it is a deploy gate, not a probe, and follows
``terraform plan --detailed-exitcode``, which deploy pipelines already test for: 0 nothing to do (or done),
1 any error (an unreachable target included), 2 changes pending or made (only with ``--detailed-exitcode``),
3 usage error.

Why 3 and not click's 2 for usage errors: 2 already means "unreachable", the answer a probe exists for.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    CHECK_FAILED = 1
    UNREACHABLE = 2
    USAGE = 3
    AUTH = 4


class SchemaExitCode(enum.IntEnum):
    """``schema plan|apply`` (see the module docstring: ``terraform plan --detailed-exitcode``)."""

    OK = 0
    ERROR = 1
    CHANGES = 2
    USAGE = 3


def interrupted(signum: int) -> int:
    """The shell's convention for a process ended by signal ``signum``: ``128 + signum``."""
    return 128 + signum
