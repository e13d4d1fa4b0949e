"""What every `synthbox` command shares: settings as options, an Engine on the configured
backends, durations, and bad input as one line with exit code 2."""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable
from typing import Any

import click

from synthbox.config import SETTINGS, Settings, load_settings

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(text: str) -> float:
    """'500ms', '90', '30s', '15m', '24h', '7d' as seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError("must be a duration such as 90, 30s, 15m, 24h or 7d")
    return float(match.group(1)) * _UNITS[match.group(2)]


class DefaultGroup(click.Group):
    """A group that runs `serve` when no command is named."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0].startswith("-") and args[0] not in ("--help", "--version")):
            args.insert(0, "serve")
        return super().parse_args(ctx, args)


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
        from synthbox.app import build_engine

        engine = build_engine(resolve_settings(options))
        try:
            return func(engine=engine, **options)
        finally:
            engine.close()

    return wrapper


class BadInput(click.ClickException):
    exit_code = 2


def record_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Errors about records as one line: bad input and clashes exit 2, unknown names 1."""
    from synthbox.errors import Conflict, InputError, NotFound

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (InputError, Conflict) as exc:
            raise BadInput(str(exc)) from None
        except NotFound as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)

    return wrapper
