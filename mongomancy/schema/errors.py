"""The errors of a failed schema step, each naming the collection, the index and the step.

They extend :class:`~mongomancy.errors.SchemaError` (so ``except MongomancyError`` catches them) and keep the
driver error as ``__cause__`` and ``.cause``.  Why attributes and not ``add_note``: Python 3.10 has no notes,
and a caller (or the CLI's JSON) wants the collection, index and step as fields, not parsed from a message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mongomancy.errors import SchemaError

__all__ = [
    "DuplicateValuesError",
    "IndexBuildError",
    "IndexBuildTimeoutError",
    "SchemaStepError",
]


class SchemaStepError(SchemaError):
    """One step of applying a plan failed; the message says which step, on what, and why."""

    def __init__(
        self,
        message: str,
        *,
        collection: str,
        step: str,
        index: str | None = None,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.collection = collection
        self.index = index
        self.step = step
        self.cause = cause
        if cause is not None:
            self.__cause__ = cause


class IndexBuildError(SchemaStepError):
    """An index build failed.  Whether the index it was to replace is still there is in the message and in
    ``old_index_kept`` (None when no index was being replaced)."""

    def __init__(
        self,
        message: str,
        *,
        collection: str,
        step: str,
        index: str | None = None,
        cause: BaseException | None = None,
        old_index_kept: bool | None = None,
    ) -> None:
        super().__init__(message, collection=collection, step=step, index=index, cause=cause)
        self.old_index_kept = old_index_kept


class DuplicateValuesError(IndexBuildError):
    """A unique index cannot be built: documents share a key.  ``examples`` lists some of them as
    ``{"key": {...}, "count": n, "ids": [...]}`` (the first ids of each duplicated key)."""

    def __init__(
        self,
        message: str,
        *,
        collection: str,
        step: str,
        index: str | None = None,
        cause: BaseException | None = None,
        old_index_kept: bool | None = None,
        examples: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        super().__init__(
            message, collection=collection, step=step, index=index, cause=cause, old_index_kept=old_index_kept
        )
        self.examples = tuple(dict(example) for example in examples)


class IndexBuildTimeoutError(IndexBuildError):
    """An index build did not finish within the build timeout.  The build may still be running on the
    server: this is an unknown outcome, not a failure of the build."""
