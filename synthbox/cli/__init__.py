"""The `synthbox` command: a thin click layer over the same services as the API.

`synthbox` alone means `synthbox serve`. Every option also reads a `SYNTHBOX_*`
environment variable. Every error is one line on stderr; its class says the exit code.
A command's module is imported only when that command runs (`COMMANDS`), so a command
loads what it uses and nothing else (the cluster supervisor stays small).
"""

from __future__ import annotations

import sys

import click

from synthbox import __version__
from synthbox.cli.base import DefaultGroup
from synthbox.errors import SynthBoxError

COMMANDS = {  # name -> "module:attribute" under synthbox.cli
    "serve": "serve:serve", "jobs": "jobs:jobs", "queues": "queues:queue_group",
    "version": "version:version", "doctor": "checks:doctor", "bench": "checks:bench",
    "users": "accounts:users_group", "tokens": "accounts:tokens_group",
    "emails": "emails:email_group", "projects": "projects:projects_group",
    "agents": "projects:agents_group", "orchestrate": "projects:orchestrate_command",
    "run-agent": "projects:run_agent_command", "top": "top:top_command",
    "start": "cluster:start_command", "status": "cluster:status_command",
    "scale": "cluster:scale_command", "reload": "cluster:reload_command",
    "restart": "cluster:restart_command", "stop": "cluster:stop_command",
    "logs": "cluster:logs_command", "monit": "cluster:monit_command",
    "install": "service:install_command", "uninstall": "service:uninstall_command",
}


@click.group(cls=DefaultGroup, commands_from=COMMANDS,
             context_settings={"auto_envvar_prefix": "SYNTHBOX",
                               "help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="synthbox")
def cli() -> None:
    """SynthBox: durable background jobs, workers, admin UI and API in one process."""


def main(argv: list[str] | None = None) -> None:
    """Entry point: click, with every error as one line; its class says the exit code (2 for
    input to fix)."""
    try:
        cli.main(args=argv, prog_name="synthbox", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        message = exc.format_message().replace("\n", " ")
        click.echo(f"Error: {message}", err=True)
        sys.exit(exc.exit_code)
    except SynthBoxError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    sys.exit(0)
