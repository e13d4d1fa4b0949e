"""What every `synthbox` command shares: settings as options, an Engine on the configured
backends, durations, and bad input as one line with exit code 2."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

import click

from synthbox.config import SETTINGS, Settings, load_settings

# Command groups are plural; the singular still works, unlisted.
SINGULAR_ALIASES = {"queue": "queues", "job": "jobs", "email": "emails", "user": "users",
                    "token": "tokens", "project": "projects", "agent": "agents"}


class DefaultGroup(click.Group):
    """A group that runs `serve` when no command is named, imports each command's module
    only when that command runs (`commands_from`: name -> "module:attribute" under
    synthbox.cli), and knows the hidden singular names of its groups."""

    def __init__(self, *args: Any, commands_from: dict[str, str] | None = None,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.commands_from = commands_from or {}

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0].startswith("-") and args[0] not in ("--help", "--version")):
            args.insert(0, "serve")
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.commands_from})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        name = SINGULAR_ALIASES.get(cmd_name, cmd_name)
        where = self.commands_from.get(name)
        if where is None:
            return super().get_command(ctx, name)
        module, attribute = where.split(":")
        command = getattr(importlib.import_module(f"synthbox.cli.{module}"), attribute)
        assert isinstance(command, click.Command)
        return command


def settings_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The settings that have a flag, as options; their values feed load_settings()."""
    for setting in reversed(SETTINGS):
        if setting.flag is None:
            continue
        # The environment is read by load_settings(), in its place in the precedence.
        func = click.option(setting.flag, setting.name, default=None,
                            allow_from_autoenv=False, help=setting.help)(func)
    return click.option("--config", "config_path", default=None, envvar="SYNTHBOX_CONFIG",
                        help="Path of synthbox.toml (default: ./synthbox.toml if present).")(func)


def resolve_settings(options: dict[str, Any]) -> Settings:
    config_path = options.pop("config_path", None)
    cli = {s.name: options.pop(s.name) for s in SETTINGS if s.name in options}
    return load_settings(cli, config_path=config_path)


def with_engine(func: Callable[..., Any]) -> Callable[..., Any]:
    """Open the configured backends (no workers) and pass the Engine as `engine`."""

    @settings_options
    @functools.wraps(func)
    def wrapper(**options: Any) -> Any:
        from synthbox.app import build_engine  # the domains: not for commands with no engine

        engine = build_engine(resolve_settings(options))
        try:
            return func(engine=engine, **options)
        finally:
            engine.close()

    return wrapper


class BadInput(click.ClickException):
    exit_code = 2

