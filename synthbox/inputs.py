"""Input rules shared by parts that know nothing else of each other."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from synthbox.errors import InputError


def http_url(value: Any, field: str) -> str:
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
