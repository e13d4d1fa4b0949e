"""An alert rule's fields and their rules: what the API, the UI and the settings file's
`[[alerts]]` tables are checked against (the last when the settings load)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from synthbox.checks import Field, check_bool, check_http_url, check_payload, is_number, one_of
from synthbox.errors import InputError
from synthbox.mail.addresses import address

# kind: (what the value is, default threshold, whether `window` applies)
KINDS = {
    "failures": ("jobs failed for good within the window", 5.0, True),
    "waiting": ("jobs waiting to run", 50.0, False),
    "oldest_waiting": ("seconds the longest-waiting due job has waited", 300.0, False),
    "stalled": ("stalled jobs within the window", 0.0, True),
    "instance_silent": ("instances whose heartbeat is older than the threshold (s)", 60.0,
                        False),
}
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def check(payload: Any, queues: Sequence[str] | None, prefix: str = "",
          partial: bool = False) -> dict[str, Any]:
    """A rule's fields, each checked; `prefix` names where it came from (alerts[0].).
    `queues`: the names `queue` may take (None: any name; the engine checks it later)."""
    fields = check_payload(payload, _fields(queues), prefix, partial)
    if fields.get("kind") == "instance_silent" and fields.get("threshold", 60) > 240:
        raise InputError(prefix + "threshold", "must be at most 240 seconds for "
                                               "instance_silent (silent instances are "
                                               "forgotten after 300 s)")
    return fields


def parse_settings_rules(raw: Any) -> tuple[dict[str, Any], ...]:
    """The `alerts` setting: `[[alerts]]` tables in the file (a JSON list in the
    environment), each checked as the API checks a rule; names are unique."""
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        raise ValueError("must be a JSON list of rules") from None
    if not isinstance(value, list | tuple):
        raise ValueError("must be a list of rules (`[[alerts]]` tables in the file)")
    rules = tuple(check(rule, None, f"alerts[{i}].") for i, rule in enumerate(value))
    names = [rule["name"] for rule in rules]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise InputError(f"alerts[{i}].name", f"{name!r} names two rules")
    return rules


def _fields(queues: Sequence[str] | None) -> tuple[Field, ...]:
    def queue(value: Any, field: str) -> str:
        if queues is None:  # the settings file: the engine checks the name once it runs
            if not isinstance(value, str) or not value:
                raise InputError(field, "must be a queue's name")
            return value
        if value not in queues:
            raise InputError(field, f"must be one of {', '.join(queues)} (or left out for "
                                    "every queue)")
        return str(value)

    return (Field("name", _name, required=True, nullable=False),
            Field("kind", one_of(*KINDS), required=True, nullable=False),
            Field("queue", queue),
            Field("threshold", _threshold, nullable=False),
            Field("window", _window, nullable=False),
            Field("webhook", check_http_url),
            Field("emails", _emails),
            Field("enabled", check_bool, nullable=False))


def _name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise InputError(field, "must be 1-63 lowercase letters, digits, - or _")
    return value


def _threshold(value: Any, field: str) -> float:
    if not is_number(value) or not math.isfinite(value) or value < 0:
        raise InputError(field, "must be a number, 0 or more")
    return float(value)


def _window(value: Any, field: str) -> float:
    if not is_number(value) or not 1 <= value <= 7 * 86400:
        raise InputError(field, "must be 1 to 604800 seconds")
    return float(value)


def _emails(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or len(value) > 20:
        raise InputError(field, "must be a list of at most 20 addresses")
    return [address(e, f"{field}[{i}]") for i, e in enumerate(value)]
