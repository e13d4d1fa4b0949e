"""The request bodies of /api/v1/queues: a queue's definition, one schema per handler kind
(`oneOf`, discriminated by `handler`), built from synthbox/userqueues/definitions.py's own
constants so that what the document calls valid is what parse_definition accepts
(schemathesis checks it: tests/web/test_openapi.py). What only the records can tell (the
name is taken, the queue is missing, built in or in synthbox.toml, jobs wait) is a 404 or
409 declared in the operations."""

from __future__ import annotations

from typing import Any

from synthbox.checks import DURATION_UNITS
from synthbox.jobs.spec import BACKOFF_TYPES
from synthbox.userqueues.definitions import (
    DURATIONS,
    ISOLATIONS,
    KIND_FIELDS,
    KINDS,
    POSITIVE,
    RESERVED,
    TABLES,
    WHOLE,
)

_REF = "#/components/schemas/"
_NUMBER = r"[0-9]+(\.[0-9]+)?"
_UNIT = "(" + "|".join(DURATION_UNITS) + ")?"
DURATION = {"anyOf": [{"type": "number", "minimum": 0},
                      {"type": "string", "pattern": rf"^{_NUMBER}{_UNIT}$"}],
            "description": "seconds, or a duration such as 500ms, 90, 30s, 15m, 24h, 7d"}
POSITIVE_DURATION = {"anyOf": [{"type": "number", "exclusiveMinimum": 0},
                               {"type": "string",  # a digit other than 0 somewhere
                                "pattern": rf"^(?=[0-9.]*[1-9]){_NUMBER}{_UNIT}$"}],
                     "description": "more than 0: seconds, or a duration such as 30s"}
QUEUE_NAME = {"type": "string", "pattern": "^(?!(?:" + "|".join(RESERVED) + ")$)"
                                           r"[a-z0-9][a-z0-9_-]{0,62}$"}
LINE = {"type": "string", "pattern": r"^[^\n\x00]+$"}  # non-empty, one line
SECRET = {**LINE, "pattern": r"^(?!\$\{)[^\n\x00]+$",
          "description": "a ${VARIABLE} is read from the environment (synthbox.toml only)"}
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
# five fields, each * or a number in range (a day of the month every month has)
CRON = {"type": "string", "pattern": r"^(\*|[0-5]?[0-9]) (\*|[01]?[0-9]|2[0-3]) "
                                     r"(\*|[1-9]|1[0-9]|2[0-8]) (\*|[1-9]|1[0-2]) (\*|[0-6])$"}


def _duration(option: str) -> dict[str, Any]:
    return POSITIVE_DURATION if option in POSITIVE else DURATION


def _option(option: str) -> dict[str, Any]:
    if option in WHOLE:
        low, high = WHOLE[option]
        return {"type": "integer", "minimum": low, "maximum": high}
    if option == "backoff_type":
        return {"enum": list(BACKOFF_TYPES)}
    return _duration(option)


def _common(zones: list[str]) -> dict[str, Any]:
    """The fields every kind takes: the options (flat or as tables), schedules, webhook."""
    fields: dict[str, Any] = {"description": {"type": "string"},
                              **{option: _option(option) for option in
                                 (*WHOLE, *DURATIONS, "backoff_type")}}
    for table, keys in TABLES.items():
        fields[table] = {"type": "object", "additionalProperties": False,
                         "properties": {key: _option(option) for key, option in keys.items()}}
    fields["schedules"] = {"type": "array", "items": {
        "type": "object", "required": ["name", "cron"], "additionalProperties": False,
        "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 64},
                       "cron": CRON, "timezone": {"enum": zones},
                       "job": {"type": "string", "minLength": 1}, "data": {}}}}
    fields["webhook"] = {
        "type": "object", "required": ["secret"], "additionalProperties": False,
        "properties": {"secret": {**SECRET, "minLength": 16},
                       "job": {"type": "string", "minLength": 1},
                       "data": {"type": "object", "description": "JSON pointers into the body",
                                "additionalProperties": {"type": "string",
                                                         "pattern": "^(/.*)?$"}}}}
    return fields


_KIND_SCHEMAS: dict[str, dict[str, Any]] = {
    "http": {
        # a host, a port that is a number, no spaces
        "url": {"type": "string", "pattern":
                r"^https?://[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:[0-9]{1,4})?([/?#][!-~]*)?$"},
        "headers": {"type": "object", "propertyNames": {"pattern": r"^[A-Za-z0-9-]{1,64}$"},
                    "additionalProperties": {"type": "string",
                                             "pattern": r"^(?!\$\{)[^\r\n\x00]*$"}},
        "secret": SECRET, "allow_loopback": {"type": "boolean"}},
    "command": {
        "command": {"type": "array", "minItems": 1,
                    "prefixItems": [{"type": "string", "pattern": r"^[^\x00]+$"}],
                    "items": {"type": "string", "pattern": r"^[^\x00]*$"},
                    "description": 'the program first, e.g. ["python3", "resize.py"]'},
        "cwd": LINE, "user": LINE,
        "env": {"anyOf": [
            {"type": "array", "items": {"type": "string", "pattern": ENV_NAME}},
            {"type": "object", "propertyNames": {"pattern": ENV_NAME},
             "additionalProperties": {"type": "string", "pattern": r"^(?!\$\{)"}}],
            "description": "names passed on from the environment, or names and values"}},
    "python": {
        "function": {"type": "string", "pattern":
                     r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$",
                     "description": '"module:function", e.g. "myapp.jobs:resize"'},
        "python_path": {"anyOf": [{"type": "string"}, {"type": "array", "items": {
            "type": "string", "minLength": 1}}]},
        "isolation": {"enum": list(ISOLATIONS)}},
    "remote": {},
}
_REQUIRED = {"http": ["url"], "command": ["command"], "python": ["function"], "remote": []}
assert {k: set(v) for k, v in _KIND_SCHEMAS.items()} == \
    {k: set(v) for k, v in KIND_FIELDS.items()}, "every kind's fields are described"


# answers that depend on the records, declared in the operations (synthbox/web/api/openapi.py)
QUEUE_ANSWERS: dict[tuple[str, str], dict[str, str]] = {
    ("post", "/queues"): {
        "409": "a queue of that name exists (built in, in synthbox.toml or defined earlier)"},
    ("put", "/queues/{name}"): {
        "404": "the queue does not exist",
        "409": "the queue is built in or defined in synthbox.toml (read-only)"},
    ("delete", "/queues/{name}"): {
        "404": "the queue does not exist",
        "409": "the queue is built in or defined in synthbox.toml, or jobs wait or run in it "
               "(and neither discard, nor drain that saw them finish)"}}


def _schema_name(kind: str, new: bool) -> str:
    return ("New" if new else "") + kind.capitalize() + "QueueDefinition"


def queue_bodies(zones: list[str]) -> dict[str, Any]:
    """The component schemas: NewQueueDefinition (POST, with its name) and
    QueueDefinitionChange (PUT), each a oneOf of one schema per handler kind."""
    common = _common(zones)
    schemas: dict[str, Any] = {}
    for new in (True, False):
        for kind in KINDS:
            named = {"name": QUEUE_NAME} if new else {}
            schemas[_schema_name(kind, new)] = {
                "type": "object", "additionalProperties": False,
                "required": [*named, "handler", *_REQUIRED[kind]],
                "properties": {**named, "handler": {"const": kind}, **common,
                               **_KIND_SCHEMAS[kind]}}
        mapping = {kind: _REF + _schema_name(kind, new) for kind in KINDS}
        schemas["NewQueueDefinition" if new else "QueueDefinitionChange"] = {
            "oneOf": [{"$ref": ref} for ref in mapping.values()],
            "discriminator": {"propertyName": "handler", "mapping": mapping}}
    return schemas
