"""The options of `synthbox queues create` and `edit`, and the definition they make: the
fields of a `[queues.NAME]` table (synthbox/userqueues/definitions.py checks them)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from typing import Any

import click

from synthbox.cli.base import BadInput

OPTIONS = [
    click.option("--handler", type=click.Choice(["http", "command", "python", "remote"]),
                 help="The handler kind."),
    click.option("--url", help="http: where each job is POSTed."),
    click.option("--header", "headers", multiple=True, metavar="NAME=VALUE",
                 help="http: a header to send (values may be ${VARIABLE}); repeat."),
    click.option("--secret", help="http: the signing secret (default: one is made)."),
    click.option("--allow-loopback/--no-allow-loopback", default=None,
                 help="http: the URL may be on this machine."),
    click.option("--command", "command_line", metavar='"PROGRAM ARGS"',
                 help="command: the program and its arguments, as a shell would split them."),
    click.option("--cwd", help="command: the directory it runs in."),
    click.option("--env", "env_names", multiple=True, metavar="NAME",
                 help="command: an environment variable passed through; repeat."),
    click.option("--user", help="command: the user it runs as (SynthBox running as root)."),
    click.option("--function", help='python: "module:function".'),
    click.option("--python-path", "python_path", multiple=True, metavar="DIR",
                 help="python: a directory the module is imported from; repeat."),
    click.option("--isolation", type=click.Choice(["thread", "process"]),
                 help="python: run in a worker thread or a child process."),
    click.option("--concurrency", type=int, help="Workers per instance."),
    click.option("--attempts", type=int, help="Attempts before a job fails for good."),
    click.option("--timeout", help="Per job: 90, 30s, 15m, 2h."),
    click.option("--backoff", metavar="TYPE:DELAY", help="e.g. exponential:10s or fixed:5s."),
    click.option("--rate-limit", "rate_limit", metavar="MAX/PER",
                 help="At most MAX job starts per PER across instances, e.g. 50/1s."),
    click.option("--set", "extra", multiple=True, metavar="FIELD=JSON",
                 help="Any other field of the definition, its value as JSON; repeat."),
]


def definition_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(OPTIONS):
        func = option(func)
    return func


def _pairs(items: tuple[str, ...], flag: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise BadInput(f"{flag}: must be NAME=VALUE")
        pairs[name] = value
    return pairs


def _durations(text: str, flag: str, sep: str, names: tuple[str, str]) -> dict[str, Any]:
    first, found, second = text.partition(sep)
    if not found:
        raise BadInput(f"{flag}: must be {names[0].upper()}{sep}{names[1].upper()}")
    value: Any = int(first) if first.isdigit() else first
    return {names[0]: value, names[1]: second}


def definition_from(options: dict[str, Any]) -> dict[str, Any]:
    """The fields the options give (those left out are not in it)."""
    table: dict[str, Any] = {}
    for key in ("handler", "url", "secret", "allow_loopback", "cwd", "user", "function",
                "isolation", "concurrency", "attempts", "timeout"):
        if options.get(key) is not None:
            table[key] = options[key]
    if options.get("headers"):
        table["headers"] = _pairs(options["headers"], "--header")
    if options.get("command_line"):
        table["command"] = shlex.split(options["command_line"])
    if options.get("env_names"):
        table["env"] = list(options["env_names"])
    if options.get("python_path"):
        table["python_path"] = list(options["python_path"])
    if options.get("backoff"):
        table["backoff"] = _durations(options["backoff"], "--backoff", ":", ("type", "delay"))
    if options.get("rate_limit"):
        table["rate_limit"] = _durations(options["rate_limit"], "--rate-limit", "/",
                                         ("max", "per"))
    for field, text in _pairs(options.get("extra") or (), "--set").items():
        try:
            table[field] = json.loads(text)
        except ValueError:
            raise BadInput(f"--set {field}: the value must be JSON") from None
    return table
