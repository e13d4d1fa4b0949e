"""`synthbox install` and `uninstall`: the binary as a systemd service."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from synthbox.cli.base import (
    BadInput,
)
from synthbox.config import load_settings
from synthbox.host.install import CONFIG, DATA, InstallError, install, uninstall, wait_until_healthy


@click.command("install")
@click.option("--root", "root_dir", default="/", show_default=True,
              help="Write the tree under this folder instead (no user, no systemd).")


@click.option("--binary", default=None, help="The file to install (default: this binary).")
@click.option("--overwrite-config", is_flag=True, help="Replace an existing synthbox.toml.")
@click.option("--cluster", is_flag=True,
              help="Run the cluster supervisor (synthbox start) instead of one serve.")


def install_command(root_dir: str, binary: str | None, overwrite_config: bool,
                    cluster: bool) -> None:
    """Install this binary as the synthbox systemd service, and start it."""

    if binary is None and not getattr(sys, "frozen", False):
        raise BadInput("--binary: needed when not run from the built binary "
                       "(packaging/build.sh builds dist/synthbox)")
    source = Path(binary) if binary else Path(sys.executable)
    root = Path(root_dir)
    try:
        for line in install(root, source, overwrite_config, cluster):
            click.echo(line)
    except InstallError as exc:
        raise BadInput(str(exc)) from None
    if root.resolve() != Path("/"):
        return
    settings = load_settings(config_path=str(root / CONFIG))
    if not wait_until_healthy(settings.port):
        click.echo("Error: the service did not become healthy in 60 s; see "
                   "journalctl -u synthbox", err=True)
        sys.exit(1)
    started = (root / DATA / "synthbox.log").read_text().rsplit("--- ", 1)[-1]
    click.echo(started.split("\n", 1)[-1].rstrip())


@click.command("uninstall")
@click.option("--root", "root_dir", default="/", show_default=True,
              help="Remove the tree written under this folder.")


@click.option("--purge", is_flag=True, help="Also remove the data, the config and the user.")
def uninstall_command(root_dir: str, purge: bool) -> None:
    """Stop and remove the service and the binary (the data stays unless --purge)."""

    try:
        for line in uninstall(Path(root_dir), purge):
            click.echo(line)
    except InstallError as exc:
        raise BadInput(str(exc)) from None
