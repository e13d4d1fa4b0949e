"""The one vocabulary for checking input: each check returns the clean value or raises
InputError(field, rule), so the API answers 400, the UI shows a message and the CLI exits 2,
all naming the field and its rule."""

from __future__ import annotations

import re

from synthbox.errors import InputError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
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
