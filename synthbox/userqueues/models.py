"""Queue definitions made at run time (API, CLI, UI), shared by every instance through the
records database, and the signing secret of each `http` queue."""

from __future__ import annotations

from peewee import (
    BigAutoField,
    BigIntegerField,
    CharField,
    DoubleField,
    IntegerField,
    TextField,
)

from synthbox.records.database import tables_step
from synthbox.records.models import BaseModel


class QueueDefinition(BaseModel):
    id = BigAutoField()
    name = CharField(max_length=64, unique=True)
    definition = TextField()  # the JSON table, as given (the same fields as synthbox.toml)
    version = IntegerField(default=1)  # +1 on every change: instances compare it
    created_by = CharField(max_length=128, default="")
    created_at = DoubleField()
    updated_at = DoubleField()


class QueueSecret(BaseModel):
    """The HMAC secret an `http` queue signs its deliveries with, when it names none."""

    name = CharField(max_length=64, primary_key=True)
    secret = TextField()
    created_at = DoubleField()


class QueueSchedule(BaseModel):
    """Where a user queue's cron schedule stands: the due time it fires next."""

    id = BigAutoField()
    queue = CharField(max_length=64)
    name = CharField(max_length=64)
    rule = CharField(max_length=255)  # cron and time zone: a change starts it afresh
    next_run_at = DoubleField()
    last_run_at = DoubleField(null=True)

    class Meta:
        indexes = ((("queue", "name"), True),)


class QueueHookDelivery(BaseModel):
    """A webhook delivery a user queue took (the digest of its signature): taken once."""

    id = BigAutoField()
    queue = CharField(max_length=64)
    delivery_id = CharField(max_length=64)
    job_id = BigIntegerField(null=True)
    received_at = DoubleField(index=True)

    class Meta:
        indexes = ((("queue", "delivery_id"), True),)


USER_QUEUE_MODELS = (QueueDefinition, QueueSecret, QueueSchedule, QueueHookDelivery)

# Append only: applied by every engine this domain is assembled into.
MIGRATIONS = (tables_step("userqueues.tables", USER_QUEUE_MODELS),)
