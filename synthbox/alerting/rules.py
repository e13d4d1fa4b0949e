"""Alert rules: checked input, CRUD, and the rules of the settings file kept in step."""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

from peewee import IntegrityError

from synthbox.accounts.audit import record_by
from synthbox.accounts.paging import page_by_id
from synthbox.actors import SYSTEM, Actor
from synthbox.alerting.models import AlertEvent, AlertRule
from synthbox.checks import Field, check_bool, check_http_url, check_payload, is_number, one_of
from synthbox.errors import Conflict, InputError, NotFound
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
    fields = check_payload(payload, _fields(queues), prefix, partial)
    if fields.get("kind") == "instance_silent" and fields.get("threshold", 60) > 240:
        raise InputError(prefix + "threshold", "must be at most 240 seconds for "
                                               "instance_silent (silent instances are "
                                               "forgotten after 300 s)")
    if "emails" in fields:
        fields["emails"] = json.dumps(fields["emails"] or [])
    return fields


def _fields(queues: list[str]) -> tuple[Field, ...]:
    def queue(value: Any, field: str) -> str:
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


def list_rules() -> list[dict[str, Any]]:
    return [rule_dict(r) for r in AlertRule.select().order_by(AlertRule.name)]


def create_rule(payload: Any, queues: list[str], source: str = "api", actor: Actor = SYSTEM
                ) -> dict[str, Any]:
    fields = check(payload, queues)
    fields.setdefault("threshold", KINDS[fields["kind"]][1])
    try:
        rule = AlertRule.create(**fields, source=source, created_at=time.time())
    except IntegrityError:
        raise Conflict(f"name: an alert rule {fields['name']!r} exists already") from None
    record_by(actor, "alert.create", f"alert:{rule.name}")
    return rule_dict(rule)


def find_rule(name: str) -> AlertRule:
    rule = AlertRule.get_or_none(AlertRule.name == name)
    if rule is None:
        raise NotFound(f"alert: no rule {name!r}")
    return rule


def update_rule(name: str, payload: Any, queues: list[str], actor: Actor = SYSTEM
                ) -> dict[str, Any]:
    rule = find_rule(name)
    if rule.source == "config":
        raise Conflict(f"alert: rule {name!r} comes from the settings file; change it there")
    fields = check(payload, queues, partial=True)
    fields.pop("name", None)
    for key, value in fields.items():
        setattr(rule, key, value)
    rule.save()
    record_by(actor, "alert.update", f"alert:{name}")
    return rule_dict(rule)


def delete_rule(name: str, actor: Actor = SYSTEM) -> None:
    rule = find_rule(name)
    if rule.source == "config":
        raise Conflict(f"alert: rule {name!r} comes from the settings file; remove it there")
    rule.delete_instance()
    record_by(actor, "alert.delete", f"alert:{name}")


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
