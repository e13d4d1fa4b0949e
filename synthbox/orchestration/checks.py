"""The rules every orchestration input follows; each failure names its field."""

from __future__ import annotations

import json
import re
from typing import Any

from synthbox.errors import InputError

SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
MAX_JSON_CHARS = 64 * 1024


def slug(value: Any, field: str) -> str:
    if not isinstance(value, str) or not SLUG.fullmatch(value) or value.isdigit():
        raise InputError(field, "must be 1-63 lowercase letters, digits and dashes, "
                                "starting with a letter or digit, not only digits")
    return value


def text(value: Any, field: str, most: int = 200) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > most \
            or any(ord(c) < 32 for c in value):
        raise InputError(field, f"must be a non-empty single line of at most {most} "
                                "characters")
    return value.strip()


def boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(field, "must be true or false")
    return value


def json_object(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(field, "must be a JSON object")
    if len(json.dumps(value)) > MAX_JSON_CHARS:
        raise InputError(field, f"must be at most {MAX_JSON_CHARS} characters of JSON")
    return value


def string_map(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 50 or not all(
            isinstance(k, str) and k and isinstance(v, str) and "\n" not in k + v
            for k, v in value.items()):
        raise InputError(field, "must be an object of at most 50 single-line strings")
    return value


def seconds(value: Any, field: str, most: float = 86400.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= most:
        raise InputError(field, f"must be a number of seconds above 0, at most {most:g}")
    return float(value)


def known_fields(payload: dict[str, Any], allowed: tuple[str, ...], prefix: str = "") -> None:
    for key in payload:
        if key not in allowed:
            raise InputError(prefix + key, f"unknown field; one of {', '.join(allowed)}")
