"""The one vocabulary for checking input: each check returns the clean value or raises
InputError(field, rule), so the API answers 400, the UI shows a message and the CLI exits 2,
all naming the field and its rule."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from synthbox.errors import InputError

DURATION_UNITS = ("ms", "s", "m", "h", "d")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(" + "|".join(DURATION_UNITS) + r")?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
DURATION_RULE = "must be a duration such as 90, 30s, 15m, 24h or 7d"


def parse_duration(text: str) -> float:
    """'500ms', '90', '30s', '15m', '24h', '7d' as seconds; a ValueError saying the rule."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(DURATION_RULE)
    return float(match.group(1)) * _UNITS[match.group(2)]


def check_duration(text: str, field: str) -> float:
    """A duration string (see parse_duration) as seconds; else an error naming `field`."""
    try:
        return parse_duration(text)
    except ValueError:
        raise InputError(field, DURATION_RULE) from None


# -- one value ---------------------------------------------------------------------------

SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
MAX_JSON_CHARS = 64 * 1024


def is_number(value: Any) -> bool:
    """An int or a float, not a bool (JSON's true is not 1)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_whole(value: Any, field: str, low: int, high: int) -> int:
    """A whole number from `low` to `high` (2.0 is one: JSON does not tell them apart)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(field, f"must be a whole number from {low} to {high}")
    return value


def check_seconds(value: Any, field: str, allow_zero: bool = False, most: float = math.inf,
                  past_most: str = "") -> float:
    """A number of seconds above 0 (or 0 too, with `allow_zero`) and at most `most`;
    `past_most` is the rule said when it is larger."""
    if not is_number(value) or not math.isfinite(value):
        raise InputError(field, "must be a number")
    if value < 0 or (value == 0 and not allow_zero):
        raise InputError(field, "must be 0 or more" if allow_zero else "must be more than 0")
    if value > most:
        raise InputError(field, past_most or f"must be at most {most:g}")
    return float(value)


def check_bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(field, "must be true or false")
    return value


def check_slug(value: Any, field: str) -> str:
    if not isinstance(value, str) or not SLUG.fullmatch(value) or value.isdigit():
        raise InputError(field, "must be 1-63 lowercase letters, digits and dashes, "
                                "starting with a letter or digit, not only digits")
    return value


def check_text(value: Any, field: str, most: int = 200) -> str:
    """One non-empty line of at most `most` characters, trimmed."""
    if not isinstance(value, str) or not value.strip() or len(value) > most \
            or any(ord(c) < 32 for c in value):
        raise InputError(field, f"must be a non-empty single line of at most {most} "
                                "characters")
    return value.strip()


def check_string(value: Any, field: str, least: int = 1, most: int = 255) -> str:
    if not isinstance(value, str) or not least <= len(value) <= most:
        raise InputError(field, f"must be a string of {least} to {most} characters")
    return value


def check_json_object(value: Any, field: str) -> dict[str, Any]:
    """A JSON object of at most MAX_JSON_CHARS characters; None is an empty one."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(field, "must be a JSON object")
    if len(json.dumps(value)) > MAX_JSON_CHARS:
        raise InputError(field, f"must be at most {MAX_JSON_CHARS} characters of JSON")
    return value


def check_string_map(value: Any, field: str) -> dict[str, str]:
    """An object of at most 50 single-line strings; None is an empty one."""
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 50 or not all(
            isinstance(k, str) and k and isinstance(v, str) and "\n" not in k + v
            for k, v in value.items()):
        raise InputError(field, "must be an object of at most 50 single-line strings")
    return value


def check_one_of(value: Any, field: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise InputError(field, f"must be one of {', '.join(choices)}")
    return str(value)


def check_http_url(value: Any, field: str) -> str:
    """An http:// or https:// URL with a host (and a port that is a number)."""
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
        if parts is not None:
            parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(field, "must be an http:// or https:// URL")
    return str(value)


# -- a payload, declared as a table of fields ----------------------------------------------

Check = Callable[[Any, str], Any]  # (value, field name) -> the clean value


@dataclass(frozen=True)
class Field:
    """One field of a request payload: its name, its check, whether it must be there,
    whether null passes (as None, unchecked), and the CLI's flag for it (where it has one:
    the field's name in each interface, declared once)."""

    name: str
    check: Check
    required: bool = False
    nullable: bool = True
    flag: str | None = None


def flag_for(fields: Sequence[Field], field: str) -> str:
    """The CLI's flag for an error's field (`to[0]` -> `--to`), or the field itself."""
    head = field.split("[")[0].split(".")[0]
    flag = next((f.flag for f in fields if f.name == head and f.flag), None)
    return f"--{flag}" if flag else field


def check_known_fields(payload: Mapping[str, Any], allowed: Sequence[str],
                       prefix: str = "") -> None:
    for key in payload:
        if key not in allowed:
            raise InputError(prefix + key, f"unknown field; one of {', '.join(allowed)}")


def check_payload(payload: Any, fields: Sequence[Field], prefix: str = "",
                  partial: bool = False, extra: Sequence[str] = ()) -> dict[str, Any]:
    """The fields `payload` gives, each checked; a required one missing is refused unless
    `partial` (a change). A body that is not an object, or a field not in the table nor in
    `extra` (read by the caller itself), is refused naming it."""
    if not isinstance(payload, Mapping):
        raise InputError(prefix.rstrip(".") or "body", "must be a JSON object")
    check_known_fields(payload, sorted([*(f.name for f in fields), *extra]), prefix)
    checked: dict[str, Any] = {}
    for field in fields:
        value = payload.get(field.name)
        if field.name in payload and (value is not None or not field.nullable):
            checked[field.name] = field.check(value, prefix + field.name)
        elif field.name in payload:
            checked[field.name] = None
        elif field.required and not partial:  # its check says what it must be
            checked[field.name] = field.check(None, prefix + field.name)
    return checked


def whole(low: int, high: int) -> Check:
    return lambda value, field: check_whole(value, field, low, high)


def string(least: int = 1, most: int = 255) -> Check:
    return lambda value, field: check_string(value, field, least, most)


def one_of(*choices: str) -> Check:
    return lambda value, field: check_one_of(value, field, choices)
