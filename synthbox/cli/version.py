"""`synthbox version`: which copy this is and how it runs (it loads nothing else)."""

from __future__ import annotations

import platform
import sys

import click

from synthbox import __version__


@click.command()
def version() -> None:
    """Print the version, and how this copy runs (binary or Python)."""
    how = "single binary" if getattr(sys, "frozen", False) else "Python package"
    click.echo(f"synthbox {__version__} ({how}, Python {platform.python_version()}, "
               f"{platform.system()} {platform.machine()})")
