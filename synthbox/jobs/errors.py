"""Exceptions that are part of the engine's interface."""

from __future__ import annotations

from synthbox.errors import InputError


class JobOptionError(InputError):
    """A job option or argument breaks a rule. `field` names it, the message says the rule."""


class UnknownQueue(LookupError):
    def __init__(self, name: str):
        super().__init__(f"queue: no queue named {name!r}")
        self.name = name


class UnrecoverableError(Exception):
    """Raised by a handler: fail the job now, whatever attempts are left (as in BullMQ)."""


class JobTimeout(Exception):
    """Raised inside a job's thread when its timeout has passed."""
