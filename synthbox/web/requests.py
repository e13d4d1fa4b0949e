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


PAGE_LIMIT = 1000  # the most items one page of any list holds
LARGEST_ID = 10**18 - 1  # ids of at most 18 digits


def query_int(name: str, default: int | None, low: int, high: int) -> int | None:
    """A whole-number query parameter from `low` to `high`; else a 400 naming it."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not WHOLE.fullmatch(raw) or not low <= int(raw) <= high:
        raise InputError(name, f"must be a whole number from {low} to {high}")
    return int(raw)


def page_args(default_limit: int = 50) -> tuple[int, int | None]:
    """`?limit=` and `?cursor=`, read the same on every list (`before=` is the cursor's
    older name on the job and email lists)."""
    limit = query_int("limit", default_limit, 1, PAGE_LIMIT)
    cursor_name = "before" if request.args.get("cursor") is None else "cursor"
    cursor = query_int(cursor_name, None, 0, LARGEST_ID)
    assert limit is not None
    return limit, cursor
