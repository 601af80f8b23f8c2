"""A ``find()`` cursor that survives a failover mid-iteration.

pymongo never retries a ``getMore``: when the primary steps down during a long iteration, the cursor dies
with the server that held it.  This cursor remembers the sort key values of the last document it yielded
and, after a retryable failure, re-issues the query for the documents *after* that one.  That is exact
(no duplicate, no gap) only when the sort order is total, so the cursor always ends its sort with a unique
key (``_id`` unless told otherwise) and refuses to resume, with a clear error, where it cannot be exact.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pymongo
from pymongo.cursor import Cursor
from pymongo.errors import PyMongoError

from mongomancy._paths import MISSING, lookup_dotted
from mongomancy.commands import CollectionTarget, Command
from mongomancy.errors import CursorResumeError
from mongomancy.retry import Attempts, CommandKind

if TYPE_CHECKING:
    from mongomancy.engine import Engine

SortSpec = list[tuple[str, Any]]


def normalise_sort(key_or_list: Any, direction: Any = None) -> SortSpec:
    """Accept pymongo's sort forms: ``"a"``, ``("a", 1)`` pairs, a list of pairs, or a mapping."""
    if key_or_list is None:
        return []
    if isinstance(key_or_list, str):
        return [(key_or_list, 1 if direction is None else direction)]
    if isinstance(key_or_list, Mapping):
        return list(key_or_list.items())
    if isinstance(key_or_list, Sequence):
        spec: SortSpec = []
        for item in key_or_list:
            if isinstance(item, str):
                spec.append((item, 1))
            elif isinstance(item, Sequence) and len(item) == 2 and isinstance(item[0], str):
                spec.append((item[0], item[1]))
            else:
                raise TypeError(f"sort entries must be field names or (field, direction) pairs, got {item!r}")
        return spec
    raise TypeError(
        f"sort must be a field name, a list of (field, direction) pairs or a mapping, got {key_or_list!r}"
    )


class ResumableCursor(Iterator[Any]):
    """Iterate ``find()`` results; a failover mid-way resumes after the last document, exactly once each.

    Chaining (``sort``, ``limit``, ``skip``, ``batch_size``) works before iteration starts, as in pymongo.
    ``unique_key`` names the field that breaks sort ties (default ``_id``); it must be unique.
    """

    def __init__(
        self,
        engine: Engine,
        target: CollectionTarget,
        filter: Mapping[str, Any] | None = None,
        projection: Any = None,
        *,
        sort: Any = None,
        skip: int = 0,
        limit: int = 0,
        batch_size: int = 0,
        unique_key: str = "_id",
        **options: Any,
    ) -> None:
        if filter is not None and not isinstance(filter, Mapping):
            raise TypeError(f"filter must be a mapping, got {type(filter).__name__}")
        self._engine = engine
        self._target = target
        self._filter = dict(filter or {})
        self._projection = projection
        self._sort = normalise_sort(sort)
        self._skip = skip
        self._limit = limit
        self._batch_size = batch_size
        self._unique_key = unique_key
        self._options = options
        self._cursor: Cursor[Any] | None = None
        self._last: Mapping[str, Any] | None = None
        self._yielded = 0
        self._resumes = 0
        self._closed = False

    # ------------------------------------------------------------------------------ pymongo-style chaining
    def _check_not_started(self, what: str) -> None:
        if self._cursor is not None or self._yielded:
            raise CursorResumeError(
                f"cannot change {what} after iteration has started", command=None, cause=None
            )

    def sort(self, key_or_list: Any, direction: Any = None) -> ResumableCursor:
        self._check_not_started("the sort")
        self._sort = normalise_sort(key_or_list, direction)
        return self

    def limit(self, limit: int) -> ResumableCursor:
        self._check_not_started("the limit")
        self._limit = limit
        return self

    def skip(self, skip: int) -> ResumableCursor:
        self._check_not_started("the skip")
        self._skip = skip
        return self

    def batch_size(self, batch_size: int) -> ResumableCursor:
        self._batch_size = batch_size
        return self

    @property
    def resumes(self) -> int:
        """How many times the cursor re-opened after a failure."""
        return self._resumes

    @property
    def effective_sort(self) -> SortSpec:
        """The sort actually sent: the caller's, ended by the unique key so the order is total."""
        if any(key == self._unique_key for key, _ in self._sort):
            return list(self._sort)
        return [*self._sort, (self._unique_key, 1)]

    # ------------------------------------------------------------------------------ iteration
    def __iter__(self) -> ResumableCursor:
        return self

    def __next__(self) -> Any:
        retry: tuple[Command, Attempts, float] | None = None
        while True:
            if self._closed:
                raise StopIteration
            if self._limit and self._yielded >= self._limit:
                self.close()
                raise StopIteration
            try:
                if self._cursor is None:
                    self._cursor = self._open()
                with pymongo.timeout(self._engine.retry_policy.cursor_fetch_timeout):
                    document = next(self._cursor)
            except PyMongoError as error:
                if retry is None:
                    try:
                        command = self._find_command()
                    except CursorResumeError as cannot:
                        cannot.cause = error
                        raise cannot from error
                    retry = (command, Attempts(), time.monotonic() + self._engine.retry_policy.budget)
                command, attempts, deadline = retry
                retry = (command, self._engine.recover(command, error, attempts, deadline), deadline)
                self._drop_cursor()
                self._resumes += 1 if self._last is not None else 0
                continue
            self._last = document
            self._yielded += 1
            return document

    def to_list(self) -> list[Any]:
        return list(self)

    def close(self) -> None:
        self._closed = True
        self._drop_cursor()

    def __enter__(self) -> ResumableCursor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _drop_cursor(self) -> None:
        cursor, self._cursor = self._cursor, None
        if cursor is not None:
            try:
                cursor.close()
            except PyMongoError as error:  # the server that held it may be gone: nothing to release
                self._engine.logger.debug("closing a dead cursor failed: %s", error)

    # ------------------------------------------------------------------------------ (re)opening
    def _find_command(self) -> Command:
        kwargs: dict[str, Any] = {
            "filter": self._resume_filter() if self._last is not None else self._filter,
            "projection": self._projection,
            "sort": self.effective_sort,
            "skip": 0 if self._last is not None else self._skip,
            "limit": max(0, self._limit - self._yielded) if self._limit else 0,
            "batch_size": self._batch_size,
            **self._options,
        }
        return Command(
            operation="find",
            target=self._target,
            args=(),
            kwargs=kwargs,
            kind=CommandKind.READ,
        )

    def _open(self) -> Cursor[Any]:
        cursor: Cursor[Any] = self._engine.execute(self._find_command())
        return cursor

    def _resume_filter(self) -> dict[str, Any]:
        """Documents strictly after the last one yielded, in the (total) sort order."""
        assert self._last is not None
        if self._options.get("cursor_type") not in (None, 0):
            raise self._cannot_resume("tailable cursors cannot be resumed by sort key")
        keys = self.effective_sort
        values = []
        for key, direction in keys:
            if direction not in (1, -1):
                raise self._cannot_resume(
                    f"the sort on {key!r} is {direction!r}, not an ascending/descending order"
                )
            value = lookup_dotted(self._last, key)
            if value is MISSING:
                raise self._cannot_resume(
                    f"the last document has no {key!r} (missing, or excluded by the projection), "
                    "so the position to resume from is unknown"
                )
            if value is None or isinstance(value, (list, dict)):
                raise self._cannot_resume(
                    f"the last document's {key!r} is {type(value).__name__}; resuming compares sort keys and "
                    "is exact only for scalar, non-null values"
                )
            values.append(value)
        clauses = []
        for index, (key, direction) in enumerate(keys):
            clause: dict[str, Any] = {k: v for (k, _), v in zip(keys[:index], values[:index], strict=True)}
            clause[key] = {"$gt" if direction == 1 else "$lt": values[index]}
            clauses.append(clause)
        after = clauses[0] if len(clauses) == 1 else {"$or": clauses}
        return {"$and": [self._filter, after]} if self._filter else after

    def _cannot_resume(self, reason: str) -> CursorResumeError:
        return CursorResumeError(
            f"find on {self._target.full_name} failed mid-iteration after {self._yielded} document(s) and "
            f"cannot resume without risking duplicates or gaps: {reason}",
            command=None,
            cause=None,
        )
