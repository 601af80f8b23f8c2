"""``mongomancy schema plan|apply URI module:attribute``: the schema diff and its application, for deploys.

Why a command: a deploy pipeline wants to see what a release would change before it changes it, and to gate
on it.  ``plan`` prints :meth:`Database.plan` (``--json``: the versioned JSON form); ``apply`` runs
``create_all(skip_existing=False)`` and prints what it did.  ``--detailed-exitcode`` works as in
``terraform plan``: 0 nothing to do, 2 changes pending (``plan``) or made (``apply``), 1 an error.
Without it, success is 0.  A bad ``module:attribute`` is a usage error (3, like every command of the group).

``attribute`` names a :class:`~mongomancy.Database` (its definitions and its database name are used, on a
connection of this command's own to URI) or a list of :class:`~mongomancy.CollectionDefinition` (the
database is the one in URI's path, else ``mongomancy``).  Only click is imported at the top: the group's
other commands must stay cheap to start.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from mongomancy.cli._click import Command, Group, UsageError
from mongomancy.cli.exit_codes import SchemaExitCode

if TYPE_CHECKING:
    from mongomancy.schema.definitions import CollectionDefinition

__all__ = ["EXIT_CHANGES", "EXIT_ERROR", "schema"]

EXIT_ERROR = SchemaExitCode.ERROR
EXIT_CHANGES = SchemaExitCode.CHANGES


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
def schema() -> None:
    """Compare a database with its definitions (plan) and bring it in line (apply).

    \b
    Exit codes: 0 nothing to do (or done), 1 error, 2 changes pending (plan)
    or made (apply) with --detailed-exitcode, 3 usage error.
    """


def _options(function: Any) -> Any:
    for option in reversed(
        [
            click.argument("uri"),
            click.argument("target", metavar="MODULE:ATTRIBUTE"),
            click.option(
                "--json", "as_json", is_flag=True, default=False, help="One JSON object (schema_version 1)."
            ),
            click.option(
                "--allow-drop", is_flag=True, default=False, help="Allow replacing changed indexes (apply)."
            ),
            click.option(
                "--drop-undeclared",
                is_flag=True,
                default=False,
                help="Also drop the indexes no definition declares (except --keep ones).",
            ),
            click.option("--keep", multiple=True, metavar="INDEX", help="An index --drop-undeclared keeps."),
            click.option(
                "--detailed-exitcode",
                is_flag=True,
                default=False,
                help="Exit 2 when there are changes (plan) or were (apply).",
            ),
        ]
    ):
        function = option(function)
    return function


@schema.command(cls=Command)
@_options
def plan(  # noqa: PLR0917 - one parameter per documented option
    uri: str,
    target: str,
    as_json: bool,
    allow_drop: bool,
    drop_undeclared: bool,
    keep: tuple[str, ...],
    detailed_exitcode: bool,
) -> None:
    """Print what `apply` would change in the database at URI."""
    _run(
        uri,
        target,
        as_json,
        detailed_exitcode,
        step=lambda database: database.plan(drop_undeclared=drop_undeclared, keep=keep),
        changed=lambda plan: not plan.is_empty,
    )


@schema.command(cls=Command)
@_options
def apply(  # noqa: PLR0917 - one parameter per documented option
    uri: str,
    target: str,
    as_json: bool,
    allow_drop: bool,
    drop_undeclared: bool,
    keep: tuple[str, ...],
    detailed_exitcode: bool,
) -> None:
    """Bring the database at URI in line with the definitions and print what was done."""
    _run(
        uri,
        target,
        as_json,
        detailed_exitcode,
        step=lambda database: database.create_all(
            skip_existing=False, allow_drop=allow_drop, drop_undeclared=drop_undeclared, keep=keep
        ),
        changed=lambda result: result.changed,
    )


def _run(
    uri: str,
    target: str,
    as_json: bool,
    detailed_exitcode: bool,
    *,
    step: Callable[[Any], Any],
    changed: Callable[[Any], bool],
) -> None:
    """Run ``step`` on the database at URI with TARGET's definitions, print its result (``--json``: its JSON
    form with the database name) and exit 2 under ``--detailed-exitcode`` when ``changed(result)``.  ``plan``
    and ``apply`` differ only in the step and in what counts as a change; an error exits 1 via ``_fail``."""
    name, definitions = _load(target)
    with _database(uri, name, definitions, as_json) as database:
        try:
            result = step(database)
        except Exception as error:
            _fail(error, as_json)
        if as_json:
            click.echo(json.dumps({**result.to_json(), "database": database.name}))
        else:
            click.echo(str(result))
    if detailed_exitcode and changed(result):
        sys.exit(EXIT_CHANGES)


def _load(target: str) -> tuple[str | None, list[CollectionDefinition]]:
    """``module:attribute`` -> (database name or None, definitions); a usage error when it is not one."""
    from mongomancy.schema.database import Database  # noqa: PLC0415
    from mongomancy.schema.definitions import CollectionDefinition  # noqa: PLC0415

    module_name, colon, attribute = target.partition(":")
    if not colon or not module_name or not attribute:
        raise UsageError(f"MODULE:ATTRIBUTE expected (for example myapp.schema:db), got {target!r}")
    try:
        value: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageError(f"cannot import {module_name!r}: {error}") from None
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise UsageError(f"{module_name!r} has no attribute {attribute!r}") from None
    if isinstance(value, Database):
        return value.name, value.topology
    if isinstance(value, (list, tuple)) and all(isinstance(item, CollectionDefinition) for item in value):
        return None, list(value)
    raise UsageError(
        f"{target} must be a mongomancy Database or a list of CollectionDefinition, "
        f"not {type(value).__name__}"
    )


class _database:
    """An engine on URI and a Database with the definitions; both closed on exit."""

    def __init__(
        self, uri: str, name: str | None, definitions: list[CollectionDefinition], as_json: bool
    ) -> None:
        self.uri = uri
        self.name = name
        self.definitions = definitions
        self.as_json = as_json

    def __enter__(self) -> Any:
        from mongomancy.engine import Engine  # noqa: PLC0415
        from mongomancy.errors import ConfigurationError  # noqa: PLC0415
        from mongomancy.schema.database import Database  # noqa: PLC0415

        try:
            self.engine = Engine(uri=self.uri)
            self.database = Database(self.engine, name=self.name)
            self.database.extend(*self.definitions)
        except ConfigurationError as error:
            raise UsageError(str(error)) from None
        except Exception as error:
            _fail(error, self.as_json)
        return self.database

    def __exit__(self, *exc_info: object) -> None:
        self.database.close()
        self.engine.dispose()


def _fail(error: BaseException, as_json: bool) -> Any:
    """Report ``error`` (naming the collection, index and step when it is a schema step) and exit 1."""
    from mongomancy._redact import redact_text  # noqa: PLC0415

    message = redact_text(f"{type(error).__name__}: {error}", ())
    if as_json:
        click.echo(
            json.dumps(
                {
                    "schema_version": 1,
                    "kind": "error",
                    "error": message,
                    "collection": getattr(error, "collection", None),
                    "index": getattr(error, "index", None),
                    "step": getattr(error, "step", None),
                }
            )
        )
    else:
        click.echo(f"mongomancy schema: {message}", err=True)
    sys.exit(EXIT_ERROR)
