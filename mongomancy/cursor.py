"""Cursors that survive a failover mid-iteration without changing what the query means.

pymongo never retries a ``getMore``: when the primary steps down during a long iteration, the cursor dies
with the server that held it.  These cursors remember where they are in the sort and, after a retryable
failure, re-issue the query for the documents after the last one yielded (see :mod:`mongomancy.resume`
for the filter, exact across BSON type brackets).

What the server receives is the caller's query:

- the caller's sort, unchanged.  When it is not total (no ``_id`` among its keys), ties at the resume point
  are resumed with "equal sort values and an ``_id`` not yet yielded" (``max_ties`` bounds the ``_id``\\ s
  kept; past it a resume is refused, naming the bound);
- an unsorted query is sorted by ``_id`` so that it can resume (the order is then ``_id`` order);
  ``resumable=False`` sends it as given, for the server's natural plan, and such a cursor cannot resume;
- ``$near``/``$nearSphere``/``$text`` queries get no added sort (it would override distance or score order);
  they iterate as in pymongo and cannot resume;
- no ``maxTimeMS`` unless the caller set one (it would bound the whole iteration).  A ``getMore`` to a dead
  or silent server is bounded on the client side instead, per batch, by the retry policy's
  ``cursor_fetch_timeout`` (the socket and server-selection timeouts of that one ``getMore``).

Any query, resumable or not, is re-run from the start when it fails before its first document was yielded.
Where a resume cannot be exact, the cursor raises :class:`~mongomancy.errors.CursorResumeError` saying why:
before each resume one ``find_one`` looks for a matching document with an array in a sort key, and ties of a
sort without ``_id`` on a string under a non-simple collation are refused (the client cannot tell them
apart).  Failures are decided by the engine's ``recover`` (``retry.decide``); under the caller's own
``pymongo.timeout`` its deadline binds and its error goes back unchanged.
The iteration reads pymongo 4's cursor batches (``_data``, ``_refresh``, ``_id``) directly, so the
per-document cost is one deque pop; the per-batch work (the resume position, stripping fetched keys) runs
once per batch.
"""

from __future__ import annotations

import copy
import time
from collections import deque
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Any, TypeVar

import attrs
import pymongo
from pymongo import _csot
from pymongo.collation import Collation
from pymongo.command_cursor import CommandCursor
from pymongo.cursor import Cursor
from pymongo.errors import InvalidOperation, PyMongoError

from mongomancy._paths import MISSING, lookup_dotted
from mongomancy.bson_order import Bracket, UnorderableValueError, bracket_of, compare
from mongomancy.commands import CollectionTarget, Command, CommandRunner, FunctionCommand, RetryClass
from mongomancy.errors import CursorResumeError
from mongomancy.fetch_keys import FetchPlan, plan_fetch, strip_paths
from mongomancy.resume import after_filter, check_direction, total_prefix
from mongomancy.retry import Attempts

SortSpec = list[tuple[str, Any]]
_Cursor = TypeVar("_Cursor", bound="_ResumableIterator")
ServerCursor = Cursor[Any] | CommandCursor[Any]

#: Query operators whose result order is not a sort on fields: an added sort would override it.
_ORDERED_BY_SERVER = ("$near", "$nearSphere", "$text")

#: The default bound on the ``_id``\ s kept for the documents tied with the last one yielded.
DEFAULT_MAX_TIES = 10_000


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


def uses_server_order(query: Any) -> str | None:
    """The first ``$near``/``$nearSphere``/``$text`` operator anywhere in ``query``, or None."""
    if isinstance(query, Mapping):
        for key, value in query.items():
            if key in _ORDERED_BY_SERVER:
                return str(key)
            found = uses_server_order(value)
            if found:
                return found
    elif isinstance(query, (list, tuple)):
        for value in query:
            found = uses_server_order(value)
            if found:
                return found
    return None


@attrs.frozen
class ResumePlan:
    """How a query resumes: the sort it follows, what to fetch, or why it cannot resume."""

    #: The sort keys the resume filter follows (up to ``_id`` when ``_id`` is one of them).
    keys: tuple[tuple[str, int], ...] = ()
    #: The sort is not total: keep the ``_id``\ s of the documents tied with the last one.
    needs_ties: bool = False
    fetch: FetchPlan = attrs.field(factory=lambda: FetchPlan(None))
    #: Why this query cannot resume once it has yielded a document (None: it can).
    refusal: str | None = None

    @classmethod
    def for_sort(cls, sort: SortSpec, projection: Any) -> ResumePlan:
        try:
            keys = tuple((key, check_direction(key, direction)) for key, direction in sort)
        except CursorResumeError as error:
            return cls(fetch=plan_fetch(projection, ()), refusal=str(error))
        total = total_prefix(keys)
        needs_ties = total is None
        keys = tuple(total) if total is not None else keys
        needed = [key for key, _ in keys] + (["_id"] if needs_ties else [])
        fetch = plan_fetch(projection, needed)
        return cls(keys=keys, needs_ties=needs_ties, fetch=fetch, refusal=fetch.blocker)

    @classmethod
    def refused(cls, reason: str, projection: Any = None) -> ResumePlan:
        return cls(fetch=FetchPlan(plan_fetch(projection, ()).projection), refusal=reason)


class _ResumableIterator(Iterator[Any]):
    """The iteration and recovery both cursors share; subclasses say how to open a server cursor."""

    _engine: CommandRunner
    _target: CollectionTarget
    _limit: int
    _max_ties: int

    def _reset(self) -> None:
        self._cursor: ServerCursor | None = None
        self._buffer: deque[Any] = deque()
        self._batch_len = 0
        self._consumed = 0
        self._boundary: tuple[Any, ...] | None = None
        self._tied: list[Any] = []
        self._position_error: str | None = None
        self._after: dict[str, Any] | None = None
        self._resumes = 0
        self._closed = False
        self._started = False
        self._plan_cache: ResumePlan | None = None

    # ------------------------------------------------------------------------------ to be provided
    def _plan(self) -> ResumePlan:
        raise NotImplementedError

    def _command(self, after: dict[str, Any] | None, yielded: int) -> Command:
        """The command that opens a server cursor, from the start or ``after`` a position."""
        raise NotImplementedError

    def _base_filter(self) -> Mapping[str, Any]:
        raise NotImplementedError

    def _stops_on_empty_batch(self) -> bool:
        """pymongo's ``find`` cursor stops at an empty batch (a tailable one may go on later)."""
        return True

    # ------------------------------------------------------------------------------ iteration
    def __iter__(self) -> _ResumableIterator:
        return self

    def __next__(self) -> Any:
        buffer = self._buffer
        if buffer:
            return buffer.popleft()
        return self._next_batch()

    def next(self) -> Any:
        """Advance the cursor (pymongo's ``Cursor.next``)."""
        return self.__next__()

    def to_list(self, length: int | None = None) -> list[Any]:
        """The remaining documents (at most ``length``) as a list."""
        if length is not None and (not isinstance(length, int) or length < 1):
            raise ValueError(f"to_list length must be a positive int or None, got {length!r}")
        if length is None:
            return list(self)
        result: list[Any] = []
        for document in self:
            result.append(document)
            if len(result) >= length:
                break
        return result

    @property
    def resumes(self) -> int:
        """How many times the cursor re-opened after the last document it had yielded."""
        return self._resumes

    @property
    def alive(self) -> bool:
        """Whether the cursor may still return documents (True before iteration starts, as in pymongo)."""
        if self._closed:
            return False
        cursor = self._cursor
        return bool(self._buffer) or cursor is None or cursor.alive

    @property
    def cursor_id(self) -> int | None:
        """The id of the current server-side cursor; a resume opens a new one, with a new id."""
        cursor = self._cursor
        return None if cursor is None else cursor.cursor_id

    @property
    def address(self) -> tuple[str, int | None] | None:
        """The server holding the current server-side cursor."""
        cursor = self._cursor
        return None if cursor is None else cursor.address

    def rewind(self: _Cursor) -> _Cursor:
        """Back to the start: the next document re-runs the query (as pymongo's ``rewind``)."""
        self._drop_cursor()
        self._reset()
        return self

    def close(self) -> None:
        self._closed = True
        self._buffer = deque()
        self._drop_cursor()

    def __enter__(self) -> _ResumableIterator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _yielded(self) -> int:
        return self._consumed + self._batch_len - len(self._buffer)

    def _next_batch(self) -> Any:
        retry: _Retry | None = None
        plan = self._current_plan()
        while True:
            if self._closed:
                raise StopIteration
            self._consumed += self._batch_len
            self._batch_len = 0
            if 0 < self._limit <= self._consumed:
                self.close()
                raise StopIteration
            try:
                cursor = self._cursor
                if cursor is None:
                    cursor = self._cursor = self._open()
                if cursor._id:
                    # A getMore goes to the server that holds the cursor: bound it here, on the client
                    # side (pymongo applies this to the socket and server selection, not as maxTimeMS).
                    with pymongo.timeout(self._engine.retry_policy.cursor_fetch_timeout):
                        cursor._refresh()
                else:
                    cursor._refresh()  # the first batch: no client-side timeout (it would send maxTimeMS)
            except PyMongoError as error:
                retry = self._recover(error, retry, plan)
                continue
            batch = cursor._data
            if batch:
                self._take(batch, plan)
                return batch.popleft()
            if not cursor.alive:
                self.close()
                raise StopIteration
            if self._stops_on_empty_batch():
                raise StopIteration

    def _current_plan(self) -> ResumePlan:
        plan = self._plan_cache
        if plan is None:
            plan = self._plan_cache = self._plan()
            self._started = True
        return plan

    def _take(self, batch: deque[Any], plan: ResumePlan) -> None:
        """A new batch arrived: note the resume position it ends at, then strip the fetched keys."""
        self._batch_len = len(batch)
        self._buffer = batch
        if plan.refusal is None:
            self._note_position(batch, plan)
        if plan.fetch.strip:
            paths = plan.fetch.strip
            if not isinstance(batch[0], MutableMapping):
                raise InvalidOperation(
                    f"documents of type {type(batch[0]).__name__} cannot have the sort keys fetched for "
                    "resuming removed again: include the sort keys in the projection, or pass resumable=False"
                )
            for document in batch:
                strip_paths(document, paths)

    def _note_position(self, batch: deque[Any], plan: ResumePlan) -> None:
        keys = [key for key, _ in plan.keys]
        try:
            values = tuple(_frozen(lookup_dotted(batch[-1], key)) for key in keys)
            if not plan.needs_ties:
                self._boundary = values
                return
            same_as_before = self._boundary is not None and _sort_equal(values, self._boundary)
            tied: list[Any] = []
            for document in reversed(batch):
                if not _sort_equal(tuple(lookup_dotted(document, key) for key in keys), values):
                    break
                tied.append(_frozen(document.get("_id", MISSING)))
                if len(tied) > self._max_ties:
                    break
            else:
                if same_as_before:
                    tied.extend(self._tied[: self._max_ties + 1 - len(tied)])
            self._boundary, self._tied = values, tied
        except UnorderableValueError as error:
            self._position_error = str(error)

    # ------------------------------------------------------------------------------ recovery
    def _recover(self, error: PyMongoError, retry: _Retry | None, plan: ResumePlan) -> _Retry:
        """A batch failed: raise, or back off and prepare the query that resumes exactly.

        The engine's ``recover`` (the pure ``retry.decide`` plus its effects) says whether to go on; a query
        that cannot resume exactly raises ``CursorResumeError`` only for an error worth retrying.
        """
        yielded = self._yielded()
        command = self._command(None, yielded)
        if retry is None:
            retry = _Retry.starting(self._engine.retry_policy.budget)
        attempts = self._engine.recover(
            command, error, retry.attempts, retry.deadline, limit_is_callers=retry.limit_is_callers
        )
        after = None
        if yielded:
            try:
                after = self._resume_position(plan)
            except CursorResumeError as cannot:
                cannot.cause = error
                raise cannot from error
        self._drop_cursor()
        self._after = after
        if yielded:
            self._resumes += 1
        return attrs.evolve(retry, attempts=attempts)

    def _resume_position(self, plan: ResumePlan) -> dict[str, Any]:
        reason = plan.refusal or self._position_error
        if reason is None and plan.needs_ties:
            if len(self._tied) > self._max_ties:
                reason = (
                    f"more than max_ties={self._max_ties} documents share the sort values of the last one "
                    "yielded, so the ones already yielded cannot all be told apart (raise max_ties, or "
                    "add _id to the sort)"
                )
            elif any(value is MISSING for value in self._tied):
                reason = "a document at the resume point has no _id to tell it from its ties"
        if reason is not None:
            raise self._cannot_resume(reason)
        assert self._boundary is not None
        try:
            return after_filter(plan.keys, self._boundary, tied_ids=self._tied if plan.needs_ties else None)
        except CursorResumeError as error:
            raise self._cannot_resume(str(error)) from None

    def _open(self) -> ServerCursor:
        after = self._after
        if after is not None:
            collection = self._target.resolve(self._engine.client)
            self._refuse_collation_ties(collection)
            self._refuse_array_keys(collection)
        cursor = self._server_cursor(self._command(after, self._yielded()))
        self._buffer = deque()
        return cursor

    def _collation(self) -> Any:
        """The collation the caller gave the query, if any."""
        return None

    def _refuse_collation_ties(self, collection: Any) -> None:
        """Ties are told apart by comparing sort values on the client, as binary strings; under a collation
        the server may hold strings equal that differ in bytes ("a" and "A" at strength 2), so a yielded
        document could come back.  Refuse where that can happen: a sort without ``_id`` whose resume point
        holds a string (or a sub-document), under the query's or the collection's default collation.

        Rule (manual, "Collation"): a query without a collation uses the collection's default collation.
        """
        plan = self._current_plan()
        if not plan.needs_ties or self._boundary is None:
            return
        if not any(
            bracket_of(value) in (Bracket.STRING, Bracket.OBJECT)
            for value in self._boundary
            if value is not MISSING
        ):
            return
        collation = self._collation()
        if collation is None:
            found = next(iter(collection.database.list_collections(filter={"name": collection.name})), None)
            collation = ((found or {}).get("options") or {}).get("collation")
        document = collation.document if isinstance(collation, Collation) else collation
        if not isinstance(document, Mapping) or document.get("locale", "simple") == "simple":
            return
        raise self._cannot_resume(
            f"the sort has no _id and the resume point holds a string compared under the collation "
            f"{dict(document)!r}: the documents already yielded among its ties cannot be told apart on the "
            "client (add _id to the sort)"
        )

    def _server_cursor(self, command: Command) -> ServerCursor:
        """pymongo's cursor for ``command`` (``find`` is lazy: the engine's retries only pick the client)."""
        cursor: ServerCursor = self._engine.execute(command)
        return cursor

    def _refuse_array_keys(self, collection: Any) -> None:
        """An array in a sort key anywhere in the result makes "after" ambiguous: look before resuming.

        Rule (manual, "Comparison/Sort Order > Arrays"): an ascending sort places an array by its smallest
        element and a descending one by its largest, while ``$gt``/``$lt`` match an array when *any*
        element matches, so the resume filter would yield such a document twice.  Concurrent writes can
        still add one later: a cursor is no snapshot, on mongod either.
        """
        plan = self._current_plan()
        paths: list[str] = []
        for key, _ in plan.keys:
            parts = key.split(".")
            paths.extend(".".join(parts[: depth + 1]) for depth in range(len(parts)))
        arrays = {"$or": [{path: {"$type": "array"}} for path in dict.fromkeys(paths)]}
        base = self._base_filter()
        query = {"$and": [dict(base), arrays]} if base else arrays
        # On the collection of the cursor just opened (its client and options), with no time limit: a
        # failure here is a failure of the resume, retried like one.
        found = collection.find_one(query, {"_id": True})
        if found is not None:
            raise self._cannot_resume(
                f"a matching document (_id {found.get('_id')!r}) holds an array in a sort key, and a "
                "multi-valued key has no single position to resume after"
            )

    def _drop_cursor(self) -> None:
        cursor, self._cursor = self._cursor, None
        if cursor is not None:
            try:
                cursor.close()
            except PyMongoError as error:  # the server that held it may be gone: nothing to release
                self._engine.logger.debug("closing a dead cursor failed: %s", error)

    def _cannot_resume(self, reason: str) -> CursorResumeError:
        return CursorResumeError(
            f"{self._describe()} on {self._target.full_name} failed mid-iteration after {self._yielded()} "
            f"document(s) and cannot resume without risking duplicates or gaps: {reason}",
            command=None,
            cause=None,
        )

    def _describe(self) -> str:
        return "find"


@attrs.frozen
class _Retry:
    """The attempts at re-opening the query so far, and the deadline for them.

    The deadline is the budget's, or the caller's own enclosing ``pymongo.timeout`` when that is sooner: a
    read gives the caller's limit straight back (its error, unchanged) instead of resuming past it.
    """

    attempts: Attempts
    deadline: float
    limit_is_callers: bool = False

    @classmethod
    def starting(cls, budget: float) -> _Retry:
        deadline = time.monotonic() + budget
        if _csot.get_timeout() is not None:  # pymongo keeps the caller's deadline with no public getter
            callers: float = _csot.get_deadline()
            if callers < deadline:
                return cls(Attempts(), callers, limit_is_callers=True)
        return cls(Attempts(), deadline)


def _frozen(value: Any) -> Any:
    """A copy of a mutable sort value, so a caller editing a yielded document cannot move the position."""
    return copy.deepcopy(value) if isinstance(value, (dict, list)) else value


def _sort_equal(left: tuple[Any, ...], right: tuple[Any, ...]) -> bool:
    return all(compare(a, b) == 0 for a, b in zip(left, right, strict=True))


class ResumableCursor(_ResumableIterator):
    """Iterate ``find()`` results; a failover mid-way resumes after the last document, exactly once each.

    Takes pymongo's ``find`` arguments (``filter``, ``projection``, ``sort``, ``skip``, ``limit``,
    ``batch_size``, ``hint``, ``max_time_ms``, ``collation``, ``comment``, ``session``...) and chaining
    methods before iteration starts, as in pymongo.  ``resumable=False`` sends an unsorted query without
    the added ``_id`` sort (the server's natural plan); it cannot resume after its first document.
    ``max_ties`` bounds the ``_id``\\ s kept for documents tied in a sort without ``_id``.

    Where a resume is exact only within a bound: ``max_time_ms`` applies to each server-side cursor, so a
    resumed iteration gets a fresh server time limit; ``skip`` applies to the first query only (a resume
    starts after the last document); a ``collation`` is honoured because the resume filter runs under it.
    """

    def __init__(
        self,
        engine: CommandRunner,
        target: CollectionTarget,
        filter: Mapping[str, Any] | None = None,
        projection: Any = None,
        *,
        sort: Any = None,
        skip: int = 0,
        limit: int = 0,
        batch_size: int = 0,
        resumable: bool = True,
        max_ties: int = DEFAULT_MAX_TIES,
        **options: Any,
    ) -> None:
        if filter is not None and not isinstance(filter, Mapping):
            raise TypeError(f"filter must be a mapping, got {type(filter).__name__}")
        _check_int("skip", skip, minimum=0)
        _check_int("limit", limit)
        _check_int("batch_size", batch_size, minimum=0)
        _check_int("max_ties", max_ties, minimum=1)
        self._engine = engine
        self._target = target
        self._filter = dict(filter or {})
        self._projection = projection
        self._sort_given = sort
        self._sort = normalise_sort(sort)
        self._skip = skip
        self._limit = limit
        self._batch_size = batch_size
        self._resumable = resumable
        self._max_ties = max_ties
        self._options = options
        self._reset()

    # ------------------------------------------------------------------------------ pymongo's chaining
    def _check_not_started(self) -> None:
        if self._started:
            raise InvalidOperation("cannot set options after executing query")

    def sort(self, key_or_list: Any, direction: Any = None) -> ResumableCursor:
        self._check_not_started()
        self._sort = normalise_sort(key_or_list, direction)
        self._sort_given = self._sort
        return self

    def limit(self, limit: int) -> ResumableCursor:
        """A negative limit returns one batch of at most ``-limit`` documents, then closes (as in pymongo)."""
        self._check_not_started()
        _check_int("limit", limit)
        self._limit = limit
        return self

    def skip(self, skip: int) -> ResumableCursor:
        self._check_not_started()
        _check_int("skip", skip, minimum=0)
        self._skip = skip
        return self

    def batch_size(self, batch_size: int) -> ResumableCursor:
        """Allowed during iteration too: it applies from the next batch."""
        _check_int("batch_size", batch_size, minimum=0)
        self._batch_size = batch_size
        if self._cursor is not None:
            self._cursor.batch_size(batch_size)
        return self

    def _option(self, name: str, value: Any) -> ResumableCursor:
        self._check_not_started()
        self._options[name] = value
        return self

    def hint(self, index: Any) -> ResumableCursor:
        """An index to use (an unsorted query sorted by ``_id`` may then sort in memory)."""
        return self._option("hint", index)

    def max_time_ms(self, max_time_ms: int | None) -> ResumableCursor:
        """A server-side limit for each server cursor (a resume starts a new one with a fresh limit)."""
        return self._option("max_time_ms", max_time_ms)

    def collation(self, collation: Any) -> ResumableCursor:
        return self._option("collation", collation)

    def comment(self, comment: Any) -> ResumableCursor:
        return self._option("comment", comment)

    def clone(self) -> ResumableCursor:
        """An unstarted copy with the same query and options."""
        return ResumableCursor(
            self._engine,
            self._target,
            self._filter,
            self._projection,
            sort=self._sort_given,
            skip=self._skip,
            limit=self._limit,
            batch_size=self._batch_size,
            resumable=self._resumable,
            max_ties=self._max_ties,
            **self._options,
        )

    def explain(self) -> Any:
        """The server's plan for the query as it is sent (with the added ``_id`` sort, if any)."""
        kwargs = self._find_kwargs(self._filter, self._skip, self._limit)
        target = self._target
        return self._engine.execute(
            FunctionCommand(
                f"explain find on {target.full_name}",
                lambda client: target.resolve(client).find(**kwargs).explain(),
                RetryClass.READ,
            )
        )

    def distinct(self, key: str) -> list[Any]:
        """The distinct values of ``key`` among the matching documents (a separate, retried command)."""
        kwargs = self._find_kwargs(self._filter, self._skip, self._limit)
        target = self._target
        values: list[Any] = self._engine.execute(
            FunctionCommand(
                f"distinct {key!r} on {target.full_name}",
                lambda client: target.resolve(client).find(**kwargs).distinct(key),
                RetryClass.READ,
            )
        )
        return values

    # ------------------------------------------------------------------------------ the query sent
    @property
    def sent_sort(self) -> SortSpec | None:
        """The sort the server receives: the caller's, or ``_id`` for an unsorted resumable query."""
        if self._sort:
            return list(self._sort)
        if self._resumable and self._natural_reason() is None:
            return [("_id", 1)]
        return None

    def _natural_reason(self) -> str | None:
        """Why the query must keep the server's own order (no sort may be added), or None."""
        operator = uses_server_order(self._filter)
        if operator is not None:
            return (
                f"a {operator} query returns documents in {'score' if operator == '$text' else 'distance'} "
                "order, which no filter on sort keys can resume, and a sort added to make it resumable "
                "would change which documents come first"
            )
        cursor_type = self._options.get("cursor_type")
        if cursor_type not in (None, pymongo.CursorType.NON_TAILABLE):
            return "a tailable cursor follows insertion order, which no filter on sort keys can resume"
        return None

    def _plan(self) -> ResumePlan:
        reason = self._natural_reason()
        if reason is None and not self._resumable:
            reason = "the cursor was opened with resumable=False (the server's natural order)"
        if reason is not None:
            return ResumePlan.refused(reason, self._projection)
        sort = self.sent_sort
        assert sort is not None
        return ResumePlan.for_sort(sort, self._projection)

    def _base_filter(self) -> Mapping[str, Any]:
        return self._filter

    def _collation(self) -> Any:
        return self._options.get("collation")

    def _find_kwargs(self, query: Mapping[str, Any], skip: int, limit: int) -> dict[str, Any]:
        plan = self._current_plan() if self._started else self._plan()
        sort = self._sort_given if self._sort else self.sent_sort
        kwargs: dict[str, Any] = {"filter": query, "projection": plan.fetch.projection}
        if sort:
            kwargs["sort"] = sort
        if skip:
            kwargs["skip"] = skip
        if limit:
            kwargs["limit"] = limit
        if self._batch_size:
            kwargs["batch_size"] = self._batch_size
        kwargs.update(self._options)
        return kwargs

    def _command(self, after: dict[str, Any] | None, yielded: int) -> Command:
        if after is None:
            query: Mapping[str, Any] = self._filter
            skip, limit = self._skip, self._limit
        else:
            query = {"$and": [self._filter, after]} if self._filter else after
            skip, limit = 0, (self._limit - yielded if self._limit > 0 else self._limit)
        return Command.build("find", self._target, (), self._find_kwargs(query, skip, limit))


def _check_int(name: str, value: Any, minimum: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum}"
        raise TypeError(f"{name} must be an int{bound}, got {value!r}")


class ResumableAggregateCursor(_ResumableIterator):
    """Iterate ``aggregate()`` results; a pipeline of ``$match`` stages and at most one ``$sort`` resumes
    like ``find()`` (an unsorted one is sorted by ``_id``; ``resumable=False`` sends it as given).

    Any other stage (``$group``, ``$project``, ``$lookup``, ``$limit``...) reshapes or reorders documents,
    so the position after the last document is not a filter on the collection: such a pipeline is sent as
    given, re-run from the start if it fails before its first document, and raises ``CursorResumeError``
    naming the stage if it fails later.
    """

    def __init__(
        self,
        engine: CommandRunner,
        target: CollectionTarget,
        pipeline: Sequence[Mapping[str, Any]],
        *,
        resumable: bool = True,
        max_ties: int = DEFAULT_MAX_TIES,
        **options: Any,
    ) -> None:
        if not isinstance(pipeline, Sequence) or not all(isinstance(stage, Mapping) for stage in pipeline):
            raise TypeError(f"pipeline must be a list of stage mappings, got {pipeline!r}")
        _check_int("max_ties", max_ties, minimum=1)
        self._engine = engine
        self._target = target
        self._pipeline = [dict(stage) for stage in pipeline]
        self._resumable = resumable
        self._max_ties = max_ties
        self._options = options
        self._limit = 0
        self._reset()

    def _stops_on_empty_batch(self) -> bool:
        return False  # pymongo's CommandCursor waits for the next batch while the cursor is alive

    def _describe(self) -> str:
        return "aggregate"

    def batch_size(self, batch_size: int) -> ResumableAggregateCursor:
        """The size of the following batches (the first one is the ``batchSize`` option's)."""
        _check_int("batch_size", batch_size, minimum=0)
        self._options["batchSize"] = batch_size
        if self._cursor is not None:
            self._cursor.batch_size(batch_size)
        return self

    def _shape(self) -> tuple[list[Mapping[str, Any]], SortSpec, str | None]:
        """The ``$match`` filters, the ``$sort``, and why the pipeline cannot resume (None: it can)."""
        matches: list[Mapping[str, Any]] = []
        sorts: list[SortSpec] = []
        for index, stage in enumerate(self._pipeline):
            name = next(iter(stage), "") if len(stage) == 1 else repr(stage)
            if name == "$match" and isinstance(stage["$match"], Mapping):
                matches.append(stage["$match"])
            elif name == "$sort" and isinstance(stage["$sort"], Mapping) and not sorts:
                sorts.append(normalise_sort(stage["$sort"]))
            else:
                return (
                    matches,
                    [],
                    (
                        f"stage {index} ({name}) is not a $match or the only $sort, so the position after "
                        "the last document is not a filter on the collection; only $match/$sort pipelines "
                        "resume"
                    ),
                )
        operator = uses_server_order(matches)
        if operator is not None:
            return (
                matches,
                [],
                f"a {operator} $match orders by score, which no filter on sort keys can resume",
            )
        return matches, sorts[0] if sorts else [], None

    def _plan(self) -> ResumePlan:
        _matches, sort, reason = self._shape()
        if reason is None and not self._resumable:
            reason = "the cursor was opened with resumable=False (the server's natural order)"
        if reason is not None:
            return ResumePlan.refused(reason)
        return ResumePlan.for_sort(sort or [("_id", 1)], None)

    def _collation(self) -> Any:
        return self._options.get("collation")

    def _base_filter(self) -> Mapping[str, Any]:
        matches, _sort, _reason = self._shape()
        if not matches:
            return {}
        return matches[0] if len(matches) == 1 else {"$and": list(matches)}

    @property
    def sent_pipeline(self) -> list[dict[str, Any]]:
        """The pipeline the server receives: the caller's, with ``{$sort: {_id: 1}}`` appended to a
        resumable ``$match``-only pipeline."""
        _matches, sort, reason = self._shape()
        if reason is None and self._resumable and not sort:
            return [*self._pipeline, {"$sort": {"_id": 1}}]
        return list(self._pipeline)

    def _server_cursor(self, command: Command) -> ServerCursor:
        """Run the ``aggregate`` on the engine's current collection handle, outside the engine's retry loop:
        its slow path runs reads under ``pymongo.timeout``, which would send ``maxTimeMS``, and on an
        ``aggregate`` that limit bounds every later ``getMore`` too.  Failures come back to ``_recover``."""
        target = self._target
        collection = self._engine.execute(
            FunctionCommand(f"resolve {target.full_name}", target.resolve, RetryClass.READ)
        )
        cursor: CommandCursor[Any] = collection.aggregate(*command.args, **command.kwargs)
        return cursor

    def _command(self, after: dict[str, Any] | None, yielded: int) -> Command:
        pipeline = self.sent_pipeline
        if after is not None:
            pipeline.insert(0, {"$match": after})
        return Command.build("aggregate", self._target, (pipeline,), self._options)
