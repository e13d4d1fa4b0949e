"""`synthbox serve`, the default command: the API and the workers in one process."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import click

from synthbox.cli.base import resolve_settings, settings_options
from synthbox.host.serve import serve as run


@click.command()
@click.option("--workers-only", is_flag=True, default=False,
              help="Run the workers without the HTTP server.")


@settings_options
def serve(workers_only: bool, **options: Any) -> None:
    """Serve the API and run the queue workers (the default command)."""
    settings = resolve_settings(options)
    if workers_only:
        settings = dataclasses.replace(settings, web=False)
    sys.exit(run(settings))
