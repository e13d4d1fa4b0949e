"""Alert rules (with their current state) and the history of their changes."""

from __future__ import annotations

from peewee import BigAutoField, BooleanField, CharField, DoubleField, TextField

from synthbox.records.database import tables_step
from synthbox.records.models import BaseModel


class AlertRule(BaseModel):
    id = BigAutoField()
    name = CharField(max_length=64, unique=True)
    kind = CharField(max_length=32)
    queue = CharField(max_length=64, null=True)  # None: every queue
    threshold = DoubleField()
    window = DoubleField(default=60.0)  # seconds, for counts over time
    webhook = TextField(null=True)
    emails = TextField(default="[]")  # JSON list
    enabled = BooleanField(default=True)
    source = CharField(max_length=16, default="api")  # "config": from the settings file
    firing = BooleanField(default=False)
    value = DoubleField(null=True)  # at the last check
    changed_at = DoubleField(null=True)
    created_at = DoubleField()


class AlertEvent(BaseModel):
    id = BigAutoField()
    rule = CharField(max_length=64, index=True)
    state = CharField(max_length=16)  # firing, resolved
    value = DoubleField()
    message = TextField()
    delivery = TextField(default="")  # what the webhook answered, which email was queued
    at = DoubleField(index=True)


ALERT_MODELS = (AlertRule, AlertEvent)

# Append only (see synthbox/db.py): applied by every engine this domain is assembled into.
MIGRATIONS = (tables_step("alerting.tables", ALERT_MODELS),)
