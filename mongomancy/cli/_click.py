"""click's command classes with this CLI's conventions: usage errors exit 3, a bare group prints its help.

Why: click's usage errors exit 2, which here means "unreachable" (see :mod:`mongomancy.cli.exit_codes`); and a
bare ``mongomancy`` would otherwise print the help a second time under ``Error:`` and exit with a usage code.
"""

from __future__ import annotations

from typing import Any

import click

from mongomancy.cli.exit_codes import ExitCode


class UsageError(click.UsageError):
    exit_code = ExitCode.USAGE


class Command(click.Command):
    """A click command whose usage errors exit 3."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as error:
            raise UsageError(error.format_message(), error.ctx) from None


class Group(Command, click.Group):
    """A group whose usage errors exit 3 like its commands'; without arguments it prints its help once and
    exits 0 (asking for help is not a mistake)."""

    command_class = Command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            click.echo(ctx.get_help(), color=ctx.color)
            ctx.exit(ExitCode.OK)
        return super().parse_args(ctx, args)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as error:
            raise UsageError(error.format_message(), error.ctx) from None
