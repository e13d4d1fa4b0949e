"""Errors that are part of SynthBox's interface, shared by the engine, the API and the CLI."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input. `field` names it, `rule` says what it must be (a 400, or exit code 2)."""

    def __init__(self, field: str, rule: str):
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class NotAllowed(PermissionError):
    """Who is asking may not do this (403), or is not known at all (401)."""

    def __init__(self, message: str, status: int = 403):
        super().__init__(message)
        self.status = status


class Throttled(Exception):
    """Too many attempts; try again in `retry_after` seconds (429)."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class NotFound(LookupError):
    """What the request names does not exist (404); the message says what."""


class Conflict(Exception):
    """The request is valid but clashes with the current state (409)."""
