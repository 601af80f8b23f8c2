"""The one exit-code table of every ``mongomancy`` command (and of ``mongomancy-ping``).

====  =====================================================================================
0     success: healthy (``ping``); stopped by Ctrl-C or SIGTERM (``watch``, ``sim``); a clean demo
1     reachable, but a check failed (``ping``); the demo let errors through or lost or doubled a write
2     unreachable, or the ``--timeout`` deadline passed
3     usage or configuration error (bad option, malformed URI: the message says what is wrong)
4     authentication failed
128+N interrupted by signal N before it could give its verdict (``demo``: 130 for Ctrl-C, 143 for SIGTERM)
====  =====================================================================================

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


def interrupted(signum: int) -> int:
    """The shell's convention for a process ended by signal ``signum``: ``128 + signum``."""
    return 128 + signum
