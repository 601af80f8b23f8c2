"""The ``mongomancy`` command line: ``ping`` (also installed as ``mongomancy-ping``), ``watch``, ``demo``,
``sim`` and ``schema``, one module each, sharing one exit-code table (:mod:`mongomancy.cli.exit_codes`).

Why the imports are lazy: ``mongomancy-ping`` is a probe run by container runtimes and cron every few
seconds, so the package imports only click at the top; each command imports what it needs when it runs
(``ping`` plain pymongo, ``watch`` the engine, ``demo`` and ``sim`` the simulator).

Exit codes: 0 success, 1 a check failed (``ping``) or the demo saw errors or duplicates, 2 unreachable or
timed out, 3 usage or configuration error, 4 authentication failed, 128+N interrupted by signal N.
"""

from __future__ import annotations

import click

from mongomancy._version import __version__
from mongomancy.cli import _shutdown, demo, ping, schema, sim, watch
from mongomancy.cli._click import Group
from mongomancy.cli.exit_codes import ExitCode

# The command modules keep their names here (``mongomancy.cli.ping`` is the module, its command is
# ``mongomancy.cli.ping.ping``), so ``import mongomancy.cli.demo as d`` gives the module.
__all__ = ["ExitCode", "cli", "demo", "main", "ping", "ping_main", "schema", "sim", "watch"]


@click.group(cls=Group, no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="mongomancy", message="%(prog)s %(version)s")
def cli() -> None:
    """Keep programs talking to a MongoDB replica set through primary switches."""


cli.add_command(ping.ping)
cli.add_command(watch.watch)
cli.add_command(demo.demo)
cli.add_command(sim.sim)
cli.add_command(schema.schema)


def main() -> None:
    """``mongomancy``: the command group."""
    _shutdown.enable_hard_exit()
    cli.main(prog_name="mongomancy")


def ping_main() -> None:
    """``mongomancy-ping``: the ``ping`` command on its own."""
    _shutdown.enable_hard_exit()
    ping.ping.main(prog_name="mongomancy-ping")
