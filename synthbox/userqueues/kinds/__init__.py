"""A user queue's QueueSpec: its options, and a handler of its kind for every job name."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import replace

from synthbox.errors import InputError
from synthbox.jobs.context import JobContext
from synthbox.jobs.errors import UnrecoverableError
from synthbox.jobs.periodic import Periodic
from synthbox.jobs.spec import QueueSpec
from synthbox.outbound import Network
from synthbox.userqueues.definitions import Definition
from synthbox.userqueues.kinds.command import CommandRunner
from synthbox.userqueues.kinds.http import http_handler
from synthbox.userqueues.kinds.python import python_handler
from synthbox.userqueues.triggers import fire_due

# What a user queue is when its definition says nothing more (the built-in queues' rules)
DEFAULTS = {"concurrency": 1, "attempts": 3, "backoff_type": "exponential",
            "backoff_delay": 10.0}


def _remote(job: JobContext) -> None:
    raise UnrecoverableError("a remote queue's jobs are run by remote workers")


def build_spec(definition: Definition, secret: Callable[[str], str],
               allow: Sequence[Network]) -> QueueSpec:
    """The QueueSpec of `definition`; `secret(name)` gives an http queue's signing secret
    when the definition names none. Bad options raise InputError naming the field."""
    name, kind, config = definition.name, definition.kind, definition.config
    spec = QueueSpec(name=name, **DEFAULTS)  # type: ignore[arg-type]
    if kind == "http":
        handler = http_handler(name, config, config.get("secret") or secret(name), allow)
        spec = QueueSpec(name=name, handlers={"*": handler}, on_stop=handler.close,
                         **DEFAULTS)  # type: ignore[arg-type]
    elif kind == "command":
        runner = CommandRunner(config)
        spec = QueueSpec(name=name, handlers={"*": runner}, on_stop=runner.stop,
                         **DEFAULTS)  # type: ignore[arg-type]
    elif kind == "python":
        caller = python_handler(config)
        spec = QueueSpec(name=name, handlers={"*": caller},
                         on_stop=getattr(caller, "stop", None),
                         **DEFAULTS)  # type: ignore[arg-type]
    else:  # remote: workers elsewhere claim the jobs
        spec = QueueSpec(name=name, handlers={"*": _remote}, local_consumer=False,
                         **DEFAULTS)  # type: ignore[arg-type]
    if config.get("schedules"):
        spec = replace(spec, periodic=(Periodic(
            "cron", 1.0, functools.partial(fire_due, config["schedules"])),))
    try:
        return spec.with_options(definition.options)
    except ValueError as exc:
        field, _, rule = str(exc).partition(": ")
        raise InputError(field, rule) from None
