"""Alert rules: checked input, CRUD, and the rules of the settings file kept in step."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from peewee import IntegrityError

from synthbox.accounts.audit import record_by
from synthbox.accounts.paging import page_by_id
from synthbox.actors import SYSTEM, Actor
from synthbox.alerting.fields import KINDS, check
from synthbox.alerting.models import AlertEvent, AlertRule
from synthbox.errors import Conflict, InputError, NotFound


def rule_dict(rule: AlertRule) -> dict[str, Any]:
    return {"name": rule.name, "kind": rule.kind, "queue": rule.queue,
            "threshold": rule.threshold, "window": rule.window, "webhook": rule.webhook,
            "emails": json.loads(rule.emails), "enabled": rule.enabled, "source": rule.source,
            "firing": rule.firing, "value": rule.value,
            "changedAt": None if rule.changed_at is None else int(rule.changed_at * 1000)}


def event_dict(event: AlertEvent) -> dict[str, Any]:
    return {"id": event.id, "rule": event.rule, "state": event.state, "value": event.value,
            "message": event.message, "delivery": event.delivery, "at": int(event.at * 1000)}


def _stored(fields: dict[str, Any]) -> dict[str, Any]:
    """Checked fields as the records keep them (the addresses as one JSON list)."""
    if "emails" in fields:
        fields["emails"] = json.dumps(fields["emails"] or [])
    return fields


def list_rules() -> list[dict[str, Any]]:
    return [rule_dict(r) for r in AlertRule.select().order_by(AlertRule.name)]


def create_rule(payload: Any, queues: list[str], source: str = "api", actor: Actor = SYSTEM
                ) -> dict[str, Any]:
    fields = _stored(check(payload, queues))
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
    fields = _stored(check(payload, queues, partial=True))
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


def sync_config(rules: Sequence[dict[str, Any]], queues: list[str]) -> None:
    """The settings file's `[[alerts]]` (checked when the settings loaded) become rules
    (source "config"); ones removed from the file go. Their state (firing or not) is kept
    across restarts."""
    for i, rule in enumerate(rules):
        if rule.get("queue") is not None and rule["queue"] not in queues:
            raise InputError(f"alerts[{i}].queue", f"must be one of {', '.join(queues)} (or "
                                                   "left out for every queue)")
    checked = [_stored(dict(rule)) for rule in rules]
    names = [rule["name"] for rule in checked]
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
