"""What several test modules share, imported as ``from tests.helpers import ...`` (``tests`` is a package and
the repository root is on ``sys.path`` under pytest).

The tests that start a command or an example as a child process (tests/sim/test_cli_*.py, test_demo.py,
test_examples.py, and benchmarks/bench_stop.py) share :func:`child_process`, which stops and reaps it by PID.

The DDL tests (tests/sim/test_create_all.py, tests/sim/test_ddl_apply.py) share a sample schema and how they
read indexes back.  The definitions use only what both of their backends keep: ascending keys, ``unique``
and ``expireAfterSeconds``.  A bare nx_27017 (tests/sim/test_ddl_apply.py's ``nx`` backend, without simulated
members) renames indexes, so indexes are compared by key pattern, never by name.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pymongo.database import Database

from mongomancy.types import CollectionDefinition, Document, Index

#: The repository root: the working directory of the child processes the tests start.
ROOT = Path(__file__).resolve().parents[1]

GAME = CollectionDefinition(
    "game",
    indices=[
        Index({"genre": 1}),
        Index({"created": 1}, expire_after_seconds=3600),
        Index({"slug": 1}, unique=True),
    ],
    default_docs=[
        Document({"slug": "chess"}, {"slug": "chess", "genre": "board", "players": 2}),
        Document({"slug": "go"}, {"slug": "go", "genre": "board", "players": 2}),
    ],
)
PLAYER = CollectionDefinition(
    "player",
    indices=[Index({"player_id": 1}, unique=True)],
    default_docs=[Document({"player_id": 0}, {"player_id": 0, "name": "system"})],
)


def live_keys(database: Database[Any], collection: str) -> dict[tuple[tuple[str, Any], ...], dict[str, Any]]:
    """``{key pattern: index document}`` of ``collection`` (a bare nx backend renames indexes)."""
    return {tuple(index["key"].items()): dict(index) for index in database[collection].list_indexes()}


def assert_matches_definitions(database: Database[Any], *definitions: CollectionDefinition) -> None:
    """Every index is there with its ``unique`` and TTL, every default document exactly once."""
    for definition in definitions:
        keys = live_keys(database, definition.name)
        for index in definition.indices:
            key = tuple(index.fields.items())
            assert key in keys, f"{definition.name}.{index.name} missing"
            assert bool(keys[key].get("unique", False)) == bool(index.unique)
            assert keys[key].get("expireAfterSeconds") == index.expire_after_seconds
        for document in definition.default_docs:
            assert database[definition.name].count_documents(document.filter()) == 1


def process_exists(pid: int) -> bool:
    """True while a process with this PID exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.contextmanager
def child_process(
    args: Sequence[str], *, cwd: Path | None = ROOT, **popen_options: Any
) -> Iterator[subprocess.Popen[str]]:
    """``args`` running as a child process with text pipes (``popen_options`` say which), in ``cwd``.

    On the way out, however the block ended, the child is stopped by PID and reaped and its pipes are closed:
    a test stops every process it starts, and a failed assertion must not leave one running.
    """
    proc = subprocess.Popen(list(args), text=True, cwd=cwd, **popen_options)
    try:
        yield proc
    finally:
        stop_child(proc)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def stop_child(proc: subprocess.Popen[str]) -> None:
    """Kill ``proc`` by PID if it is still running, then reap it (no zombie); a no-op once it has exited."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
