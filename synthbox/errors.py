"""Errors that are part of SynthBox's interface, shared by the engine, the API and the CLI.

Each class carries what every interface needs to answer it: the HTTP status, the code in
the JSON error envelope, and the CLI's exit code (2 for input to fix, 1 otherwise). The API,
the UI and the CLI each have one handler for SynthBoxError."""

from __future__ import annotations


class SynthBoxError(Exception):
    status = 500
    code = "error"
    exit_code = 1


class InputError(SynthBoxError, ValueError):
    """Bad input. `field` names it, `rule` says what it must be."""

    status, code, exit_code = 400, "invalid_input", 2

    def __init__(self, field: str, rule: str):
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class NotAllowed(SynthBoxError, PermissionError):
    """Who is asking may not do this (403), or is not known at all (401)."""

    code = "forbidden"

    def __init__(self, message: str, status: int = 403):
        super().__init__(message)
        self.status = status
        if status == 401:
            self.code = "unauthorized"


class Throttled(SynthBoxError):
    """Too many attempts; try again in `retry_after` seconds."""

    status, code = 429, "too_many_requests"

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class NotFound(SynthBoxError, LookupError):
    """What the request names does not exist; the message says what."""

    status, code = 404, "not_found"


class UnknownReference(NotFound):
    """A field of a well-formed request names a record that does not exist (an agent, a
    template, an earlier run): 404 naming the field, as no document can list the records."""

    exit_code = 2

    def __init__(self, field: str, rule: str):
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class Conflict(SynthBoxError):
    """The request is valid but clashes with the current state; `field`, when given, names
    the field that clashes."""

    status, code, exit_code = 409, "conflict", 2

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        if field is not None:
            self.field = field
