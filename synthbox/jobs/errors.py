"""Exceptions that are part of the engine's interface."""

from __future__ import annotations

import threading

from synthbox.errors import InputError, NotFound


class JobOptionError(InputError):
    """A job option or argument breaks a rule. `field` names it, the message says the rule."""


class UnknownQueue(NotFound):
    def __init__(self, name: str):
        super().__init__(f"queue: no queue named {name!r}")
        self.name = name


class UnrecoverableError(Exception):
    """Raised by a handler: fail the job now, whatever attempts are left (as in BullMQ)."""


class RetryLater(Exception):
    """Raised by a handler: not now, and not a failure (no attempt is used): the job waits
    `seconds` and runs again. For limits a handler keeps, like mail per recipient domain."""

    def __init__(self, seconds: float, reason: str = ""):
        super().__init__(reason or f"retry in {seconds:g} s")
        self.seconds = max(float(seconds), 0.001)


class JobTimeout(Exception):
    """Raised inside a job's thread when its timeout has passed."""


# A JobTimeout is raised in a job's thread between any two Python instructions. A job
# holds this lock around what must not be cut in half (a child process started and not
# yet recorded); the runner takes it before raising one.
TIMEOUTS_HELD = threading.Lock()
