"""Reading requests: the JSON body, and query values that must be ids or numbers."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import request

from synthbox.errors import InputError

WHOLE = re.compile(r"[0-9]{1,18}")


def json_body() -> dict[str, Any]:
    """The request's JSON object ({} when there is no body); a 400 naming `body` otherwise."""
    try:
        payload = request.get_json(force=True, silent=True)
    except RecursionError:
        raise InputError("body", "malformed JSON (nested too deeply)") from None
    if payload is None:
        if request.get_data(cache=True).strip():
            raise InputError("body", "malformed JSON")
        return {}
    if not isinstance(payload, dict):
        raise InputError("body", "must be a JSON object")
    try:
        json.dumps(payload, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise InputError("body", "must be valid UTF-8 text (no lone surrogates)") from None
    return payload


def query_int(name: str, default: int | None, low: int, high: int) -> int | None:
    """A whole-number query parameter, clamped to [low, high]; a 400 if it is not a number."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not WHOLE.fullmatch(raw):
        raise InputError(name, "must be a whole number")
    return max(low, min(high, int(raw)))
