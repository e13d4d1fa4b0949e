"""Alert rules: checked input, CRUD, and the rules of the settings file kept in step."""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

from peewee import IntegrityError

from synthbox.accounts.paging import page_by_id
from synthbox.alerting.models import AlertEvent, AlertRule
from synthbox.errors import Conflict, InputError, NotFound
from synthbox.inputs import http_url
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
FIELDS = ("name", "kind", "queue", "threshold", "window", "webhook", "emails", "enabled")
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def rule_dict(rule: AlertRule) -> dict[str, Any]:
    return {"name": rule.name, "kind": rule.kind, "queue": rule.queue,
            "threshold": rule.threshold, "window": rule.window, "webhook": rule.webhook,
            "emails": json.loads(rule.emails), "enabled": rule.enabled, "source": rule.source,
            "firing": rule.firing, "value": rule.value,
            "changedAt": None if rule.changed_at is None else int(rule.changed_at * 1000)}


def event_dict(event: AlertEvent) -> dict[str, Any]:
    return {"id": event.id, "rule": event.rule, "state": event.state, "value": event.value,
            "message": event.message, "delivery": event.delivery, "at": int(event.at * 1000)}


def check(payload: Any, queues: list[str], prefix: str = "",
          partial: bool = False) -> dict[str, Any]:
    """A rule's fields, each checked; `prefix` names where it came from (alerts[0].)."""
    if not isinstance(payload, dict):
        raise InputError(prefix.rstrip(".") or "body", "must be an object")
    for key in payload:
        if key not in FIELDS:
            raise InputError(prefix + key, f"unknown field; one of {', '.join(FIELDS)}")
    fields: dict[str, Any] = {}
    if not partial or "name" in payload:
        name = payload.get("name")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise InputError(prefix + "name", "must be 1-63 lowercase letters, digits, - or _")
        fields["name"] = name
    if not partial or "kind" in payload:
        if not isinstance(payload.get("kind"), str) or payload["kind"] not in KINDS:
            raise InputError(prefix + "kind", f"must be one of {', '.join(KINDS)}")
        fields["kind"] = payload["kind"]
    if "queue" in payload or not partial:
        queue = payload.get("queue")
        if queue is not None and queue not in queues:
            raise InputError(prefix + "queue", f"must be one of {', '.join(queues)} (or "
                                               "left out for every queue)")
        fields["queue"] = queue
    for key in ("threshold", "window"):
        if key in payload:
            number = payload[key]
            if isinstance(number, bool) or not isinstance(number, int | float) \
                    or not math.isfinite(number) or number < 0 \
                    or (key == "window" and not 1 <= number <= 7 * 86400):
                raise InputError(prefix + key, "must be a number, 0 or more" if key ==
                                 "threshold" else "must be 1 to 604800 seconds")
            fields[key] = float(number)
    if fields.get("kind") == "instance_silent" and fields.get("threshold", 60) > 240:
        raise InputError(prefix + "threshold", "must be at most 240 seconds for "
                                               "instance_silent (silent instances are "
                                               "forgotten after 300 s)")
    if "webhook" in payload:
        url = payload["webhook"]
        fields["webhook"] = None if url is None else http_url(url, prefix + "webhook")
    if "emails" in payload:
        emails = payload["emails"] or []
        if not isinstance(emails, list) or len(emails) > 20:
            raise InputError(prefix + "emails", "must be a list of at most 20 addresses")
        fields["emails"] = json.dumps([address(e, f"{prefix}emails[{i}]")
                                       for i, e in enumerate(emails)])
    if "enabled" in payload:
        if not isinstance(payload["enabled"], bool):
            raise InputError(prefix + "enabled", "must be true or false")
        fields["enabled"] = payload["enabled"]
    return fields


def list_rules() -> list[dict[str, Any]]:
    return [rule_dict(r) for r in AlertRule.select().order_by(AlertRule.name)]


def create_rule(payload: Any, queues: list[str], source: str = "api") -> dict[str, Any]:
    fields = check(payload, queues)
    fields.setdefault("threshold", KINDS[fields["kind"]][1])
    try:
        rule = AlertRule.create(**fields, source=source, created_at=time.time())
    except IntegrityError:
        raise Conflict(f"name: an alert rule {fields['name']!r} exists already") from None
    return rule_dict(rule)


def find_rule(name: str) -> AlertRule:
    rule = AlertRule.get_or_none(AlertRule.name == name)
    if rule is None:
        raise NotFound(f"alert: no rule {name!r}")
    return rule


def update_rule(name: str, payload: Any, queues: list[str]) -> dict[str, Any]:
    rule = find_rule(name)
    if rule.source == "config":
        raise Conflict(f"alert: rule {name!r} comes from the settings file; change it there")
    fields = check(payload, queues, partial=True)
    fields.pop("name", None)
    for key, value in fields.items():
        setattr(rule, key, value)
    rule.save()
    return rule_dict(rule)


def delete_rule(name: str) -> None:
    rule = find_rule(name)
    if rule.source == "config":
        raise Conflict(f"alert: rule {name!r} comes from the settings file; remove it there")
    rule.delete_instance()


def events(limit: int = 50, before: int | None = None) -> tuple[list[dict[str, Any]],
                                                                int | None]:
    return page_by_id(AlertEvent, event_dict, limit, before, newest_first=True)


def sync_config(rules: list[Any], queues: list[str]) -> None:
    """The settings file's `[[alerts]]` become rules (source "config"); ones removed from
    the file go. Their state (firing or not) is kept across restarts."""
    checked = [check(rule, queues, f"alerts[{i}].") for i, rule in enumerate(rules)]
    names = [rule["name"] for rule in checked]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise InputError(f"alerts[{i}].name", f"{name!r} names two rules")
    with AlertRule._meta.database.atomic():
        AlertRule.delete().where((AlertRule.source == "config")
                                 & AlertRule.name.not_in(names or [""])).execute()
        for fields in checked:
            # every field, so one removed from the file goes back to its default
            full = {"queue": None, "window": 60.0, "webhook": None, "emails": "[]",
                    "enabled": True, "threshold": KINDS[fields["kind"]][1], **fields}
            updated = AlertRule.update(**full, source="config").where(
                AlertRule.name == full["name"]).execute()
            if not updated:
                try:
                    with AlertRule._meta.database.atomic():
                        AlertRule.create(**full, source="config", created_at=time.time())
                except IntegrityError:
                    pass  # another instance starting at the same moment made it
