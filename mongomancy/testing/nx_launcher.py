"""Runs ``nx_27017`` on the SQLite build the project pins, in the backend's own child process.

Why: ``nx_27017``'s answers depend on the SQLite library under it (SQLite 3.40 sorts integer ``_id`` values
as text and turns some into strings, 3.45+ sorts them as numbers and turns numeric strings into ints), so a
test could pass on one machine and fail on another.
``neosqlite`` (nx's storage layer) imports ``pysqlite3.dbapi2`` when it exists, else the standard ``sqlite3``;
this launcher decides which one it gets *before* nx is imported:

- ``pinned`` (the default): the ``sqlean-py`` wheel, which bundles its own SQLite
  (:data:`PINNED_SQLITE_VERSION`) on every platform, is registered as both ``sqlite3`` and ``pysqlite3``
  in this process only;
- ``platform`` (``MONGOMANCY_SIM_SQLITE=platform``): the interpreter's own ``sqlite3``, with ``pysqlite3``
  hidden so that an installed ``pysqlite3`` cannot slip in.

The launcher is run as a script path, not with ``-m``: ``-m`` would import the ``mongomancy`` package (and
pymongo) into every backend process, which costs start time and nothing else.  It writes a small JSON report
(SQLite version, module, nx and neosqlite versions) that :class:`~mongomancy.testing.NxBackend` reads back,
then hands its remaining arguments to ``nx_27017``'s own ``main()``.

Usage: ``python nx_launcher.py REPORT_PATH [nx_27017 arguments...]``.  Standard library only.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and sys.path and sys.path[0]:
    # Running as a script put this directory first on sys.path, where wire.py, faults.py, ... would shadow
    # any top-level module of the same name imported by nx_27017 or its dependencies.
    del sys.path[0]

import importlib
import importlib.metadata
import json
import logging
import os
import threading
import time
import types
from collections.abc import Mapping

#: Environment variable choosing the SQLite the backend runs on: ``pinned`` (default) or ``platform``.
SQLITE_ENV = "MONGOMANCY_SIM_SQLITE"
#: Environment variable: the backend's log level (default WARNING; INFO logs every command).
LOG_ENV = "MONGOMANCY_SIM_BACKEND_LOG"
#: The SQLite library version bundled by the pinned wheel (``sqlean-py==3.50.4.5``, see setup.cfg).
PINNED_SQLITE_VERSION = "3.50.4"
PINNED_MODULE = "sqlean"
PINNED_DISTRIBUTION = "sqlean-py"
#: How often the backend checks that the process that started it is still there.
PARENT_CHECK_SECONDS = 0.5
#: Exit code for "the SQLite the project pins is not what is installed" (argparse uses 2).
EXIT_WRONG_SQLITE = 3


class SQLiteChoiceError(Exception):
    """The pinned SQLite module is missing or is not the pinned build; the message says what to install."""


def sqlite_choice(environ: Mapping[str, str]) -> str:
    """``pinned`` or ``platform`` from ``$MONGOMANCY_SIM_SQLITE`` (default ``pinned``)."""
    value = (environ.get(SQLITE_ENV) or "pinned").strip().lower()
    if value not in ("pinned", "platform"):
        raise ValueError(f"{SQLITE_ENV} must be 'pinned' or 'platform', not {value!r}")
    return value


def pinned_sqlite() -> types.ModuleType:
    """The pinned ``sqlean`` module, checked to bundle :data:`PINNED_SQLITE_VERSION`."""
    try:
        module = importlib.import_module(PINNED_MODULE)
    except ImportError as exc:
        raise SQLiteChoiceError(
            f"the simulated cluster runs nx_27017 on the SQLite {PINNED_SQLITE_VERSION} bundled by "
            f'{PINNED_DISTRIBUTION}, which is not installed: pip install "mongomancy[sim]" '
            f"(or set {SQLITE_ENV}=platform to use this Python's own SQLite)"
        ) from exc
    version = getattr(module, "sqlite_version", None)
    if version != PINNED_SQLITE_VERSION:
        raise SQLiteChoiceError(
            f"{PINNED_DISTRIBUTION} bundles SQLite {version}, but the simulated cluster is pinned to "
            f'{PINNED_SQLITE_VERSION}: pip install "mongomancy[sim]" (or set {SQLITE_ENV}=platform)'
        )
    return module


def install_sqlite(choice: str) -> types.ModuleType:
    """Make ``import sqlite3`` and ``from pysqlite3 import dbapi2`` resolve to the chosen module."""
    if choice == "platform":
        # Imported here only: in the pinned case this process never loads the platform's SQLite library.
        import sqlite3  # noqa: PLC0415

        sys.modules["pysqlite3"] = None  # type: ignore[assignment]  # an import of it now raises ImportError
        sys.modules["pysqlite3.dbapi2"] = None  # type: ignore[assignment]
        return sqlite3
    module = pinned_sqlite()
    dbapi2 = importlib.import_module(f"{PINNED_MODULE}.dbapi2")
    for name in ("sqlite3", "pysqlite3"):
        sys.modules[name] = module
        sys.modules[f"{name}.dbapi2"] = dbapi2
    return module


def report(module: types.ModuleType, choice: str) -> dict[str, str]:
    """What this backend process runs on (read back by the parent, asserted by the tests)."""
    return {
        "sqlite": choice,
        "sqlite_module": module.__name__,
        "sqlite_version": str(module.sqlite_version),
        "nx_27017": importlib.metadata.version("nx-27017"),
        "neosqlite": importlib.metadata.version("neosqlite"),
    }


def _exit_with_parent(parent: int) -> None:
    """End this process once its parent is gone (re-parented): a test process killed outright (a CI timeout,
    SIGKILL) cannot stop its backends, and an in-memory backend without its test serves nobody."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: nx_launcher.py REPORT_PATH [nx_27017 arguments...]", file=sys.stderr)
        return 2
    report_path, nx_args = argv[0], argv[1:]
    try:
        choice = sqlite_choice(os.environ)
        module = install_sqlite(choice)
    except (SQLiteChoiceError, ValueError) as exc:
        print(f"mongomancy simulated cluster: {exc}", file=sys.stderr)
        return EXIT_WRONG_SQLITE
    from nx_27017 import nx_27017  # noqa: PLC0415 - only now: neosqlite binds its sqlite3 at import time

    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), name="parent-watch", daemon=True).start()

    # Write-then-rename: the parent never reads a half-written report.
    with open(report_path + ".tmp", "w", encoding="utf-8") as out:
        json.dump(report(module, choice), out)
    os.replace(report_path + ".tmp", report_path)
    # nx logs two INFO lines per command (to stderr and its log file): a quarter of its CPU time per find_one,
    # for logs nobody reads.  Configured before nx's own basicConfig, which then leaves it alone.
    logging.basicConfig(level=os.environ.get(LOG_ENV, "WARNING").upper())
    sys.argv = ["nx_27017", *nx_args]
    result = nx_27017.main()
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
