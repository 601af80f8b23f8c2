"""A private logger per engine under test, whose records the test reads.

Why not ``caplog``: it reads the root logger, which other tests in the same worker process may reconfigure;
an engine given its own logger (``Engine(logger=...)``) is unaffected by that.
"""

from __future__ import annotations

import itertools
import logging

_NAMES = itertools.count(1)


class EngineLog(logging.Handler):
    """Collects every record of one fresh, non-propagating logger (``.logger``)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.logger = logging.getLogger(f"mongomancy.tests.engine{next(_NAMES)}")
        self.logger.setLevel(logging.DEBUG)
        self.logger.propagate = False
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def text(self) -> str:
        return "\n".join(record.getMessage() for record in list(self.records))

    def messages(self, level: int, containing: str) -> list[str]:
        return [
            r.getMessage() for r in list(self.records) if r.levelno == level and containing in r.getMessage()
        ]
