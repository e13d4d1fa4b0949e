"""Who asked for an operation: a user or token by name, from an address; the CLI; the system.

The services take an Actor and write the audit line themselves, so the API, the UI and the
CLI, calling the same method, leave the same line."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple


class Actor(NamedTuple):
    name: str
    address: str = ""


CLI = Actor("cli")
SYSTEM = Actor("system")

# (actor, action, target, detail): where a service reports what it did
Recorder = Callable[[Actor, str, str, str], None]


def unrecorded(actor: Actor, action: str, target: str, detail: str) -> None:
    """The recorder of an engine assembled without an audit log (benchmarks, tests)."""
