"""A user's queue as data: the `[queues.NAME]` table of synthbox.toml, or the same object
through the API and the CLI, checked field by field.

`parse_definition(name, table)` returns a Definition (the handler kind, the QueueSpec
options, the kind's own settings) or raises InputError naming `queues.NAME.field`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from synthbox.checks import (
    DURATION_RULE,
    check_http_url,
    check_whole,
    is_number,
    parse_duration,
)
from synthbox.errors import InputError
from synthbox.jobs.spec import BACKOFF_TYPES
from synthbox.userqueues.triggers import check_schedules, check_webhook

KINDS = ("http", "command", "python", "remote")
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
NAME_RULE = "must be 1-63 lowercase letters, digits, _ and -, starting with a letter or digit"
ISOLATIONS = ("thread", "process")
FUNCTION = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")

# option -> how it is given: a whole number with a floor, or a duration
WHOLE = {"concurrency": (1, 256), "attempts": (1, 1000), "max_stalled_count": (0, 1000),
          "keep_completed_count": (0, 10_000_000), "rate_limit_max": (0, 1_000_000)}
RESERVED = ("new",)  # /queues/new is the UI's form
DURATIONS = ("timeout", "stalled_interval", "keep_completed_age", "keep_failed_age",
              "backoff_delay", "rate_limit_duration")
TABLES = {  # a nested table and the flat options its keys stand for
    "backoff": {"type": "backoff_type", "delay": "backoff_delay"},
    "rate_limit": {"max": "rate_limit_max", "per": "rate_limit_duration"},
    "keep_completed": {"age": "keep_completed_age", "count": "keep_completed_count"},
    "keep_failed": {"age": "keep_failed_age"},
}
KIND_FIELDS = {
    "http": ("url", "headers", "secret", "allow_loopback"),
    "command": ("command", "cwd", "env", "user"),
    "python": ("function", "python_path", "isolation"),
    "remote": (),
}
POSITIVE = ("timeout", "stalled_interval", "rate_limit_duration")  # durations above 0
COMMON_FIELDS = ("handler", "description", *WHOLE, *DURATIONS, "backoff_type", *TABLES,
                 "schedules", "webhook")


@dataclass(frozen=True)
class Definition:
    name: str
    kind: str
    options: dict[str, Any]  # for QueueSpec.with_options, in seconds
    config: dict[str, Any]  # the kind's own fields
    table: dict[str, Any] = field(default_factory=dict)  # as given


def check_name(name: Any, label: str = "name") -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InputError(label, NAME_RULE)
    if name in RESERVED:
        raise InputError(label, f"{name!r} is reserved; choose another name")
    return name


def parse_definition(name: str, table: Any) -> Definition:
    """The definition of queue `name`, or an InputError naming `queues.NAME.field`."""
    prefix = f"queues.{name}."
    check_name(name, f"queues.{name}")
    if not isinstance(table, Mapping):
        raise InputError(prefix.rstrip("."), "must be a table of fields")
    kind = table.get("handler")
    if kind is None:
        raise InputError(prefix + "handler", f"required; one of {', '.join(KINDS)}")
    if kind not in KINDS:
        raise InputError(prefix + "handler",
                         f"unknown kind {_quoted(kind)}; one of {', '.join(KINDS)}")
    allowed = (*COMMON_FIELDS, *KIND_FIELDS[kind])
    for key in table:
        if key not in allowed:
            raise InputError(prefix + str(key), f"unknown field for a {kind} queue; one of "
                                                f"{', '.join(allowed)}")
    options: dict[str, Any] = {}
    for key, value in table.items():
        if key in TABLES:
            options.update(_nested(prefix + key, value, TABLES[key]))
        elif key in WHOLE or key in DURATIONS or key == "backoff_type":
            options[key] = _option(prefix + key, key, value)
    if "description" in table and not isinstance(table["description"], str):
        raise InputError(prefix + "description", "must be a string")
    config = CHECK_KIND[kind](prefix, table)
    config["schedules"] = (check_schedules(prefix + "schedules", table["schedules"])
                           if "schedules" in table else [])
    config["webhook"] = (check_webhook(prefix + "webhook", table["webhook"])
                         if "webhook" in table else None)
    return Definition(name, kind, options, config, dict(table))


def _quoted(value: Any) -> str:
    return '"' + str(value).replace('"', '\\"') + '"'


def _nested(label: str, value: Any, keys: Mapping[str, str]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError(label, f"must be a table with {', '.join(keys)}")
    options = {}
    for key, item in value.items():
        if key not in keys:
            raise InputError(f"{label}.{key}", f"unknown field; one of {', '.join(keys)}")
        options[keys[key]] = _option(f"{label}.{key}", keys[key], item)
    return options


def _option(label: str, option: str, value: Any) -> Any:
    if option in WHOLE:
        return check_whole(value, label, *WHOLE[option])
    if option == "backoff_type":
        if value not in BACKOFF_TYPES:
            raise InputError(label, f"must be one of {', '.join(BACKOFF_TYPES)}")
        return value
    seconds = _seconds(label, value)
    if seconds == 0 and option in POSITIVE:
        raise InputError(label, "must be more than 0")
    return seconds


def _seconds(label: str, value: Any) -> float:
    if is_number(value) and value >= 0:
        return float(value)
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError:
            pass
    raise InputError(label, DURATION_RULE)


def _string(label: str, value: Any, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or "\n" in value or "\0" in value:
        raise InputError(label, "must be a non-empty single-line string")
    return value


def _http(prefix: str, table: Mapping[str, Any]) -> dict[str, Any]:
    url: str = table.get("url")  # type: ignore[assignment]  # checked next
    try:
        check_http_url(url, "url")
    except InputError:
        raise InputError(prefix + "url", "required: an http:// or https:// URL") from None
    if any(c.isspace() for c in url):
        raise InputError(prefix + "url", "must not contain spaces")
    headers = table.get("headers") or {}
    if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and re.fullmatch(r"[A-Za-z0-9-]{1,64}", k)
            and isinstance(v, str) and not any(c in v for c in "\r\n\0")
            for k, v in headers.items()):
        raise InputError(prefix + "headers", "must be a table of header names and "
                                             "single-line string values")
    allow_loopback = table.get("allow_loopback", False)
    if not isinstance(allow_loopback, bool):
        raise InputError(prefix + "allow_loopback", "must be true or false")
    return {"url": url, "headers": dict(headers),
            "secret": _string(prefix + "secret", table.get("secret")),
            "allow_loopback": allow_loopback}


def _command(prefix: str, table: Mapping[str, Any]) -> dict[str, Any]:
    argv = table.get("command")
    if not isinstance(argv, list) or not argv or not all(
            isinstance(a, str) and "\0" not in a for a in argv) or not argv[0]:
        raise InputError(prefix + "command", 'required: a list of strings, the program '
                                             'first, e.g. ["python3", "resize.py"]')
    env = table.get("env") or []
    if isinstance(env, list):
        if not all(isinstance(n, str) and re.fullmatch(r"[A-Za-z_]\w*", n) for n in env):
            raise InputError(prefix + "env", "must be a list of environment variable names "
                                             "(or a table of names and values)")
    elif not isinstance(env, Mapping) or not all(
            isinstance(k, str) and re.fullmatch(r"[A-Za-z_]\w*", k) and isinstance(v, str)
            for k, v in env.items()):
        raise InputError(prefix + "env", "must be a list of environment variable names "
                                         "(or a table of names and values)")
    return {"command": list(argv), "cwd": _string(prefix + "cwd", table.get("cwd")),
            "env": env if isinstance(env, list) else dict(env),
            "user": _string(prefix + "user", table.get("user"))}


def _python(prefix: str, table: Mapping[str, Any]) -> dict[str, Any]:
    function = table.get("function")
    if not isinstance(function, str) or not FUNCTION.fullmatch(function):
        raise InputError(prefix + "function", 'required: "module:function", e.g. '
                                              '"myapp.jobs:resize"')
    path = table.get("python_path") or []
    if isinstance(path, str):
        path = [path]
    if not isinstance(path, list) or not all(isinstance(p, str) and p for p in path):
        raise InputError(prefix + "python_path", "must be a directory or a list of them")
    isolation = table.get("isolation", "thread")
    if isolation not in ISOLATIONS:
        raise InputError(prefix + "isolation", f"must be one of {', '.join(ISOLATIONS)}")
    return {"function": function, "python_path": list(path), "isolation": isolation}


CHECK_KIND = {"http": _http, "command": _command, "python": _python,
              "remote": lambda prefix, table: {}}
