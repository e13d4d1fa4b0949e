"""Queue definitions made at run time (API, CLI, UI), shared by every instance through the
records database, and the signing secret of each `http` queue."""

from __future__ import annotations

from peewee import BigAutoField, CharField, DoubleField, IntegerField, TextField

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


USER_QUEUE_MODELS = (QueueDefinition, QueueSecret)

# Append only: applied by every engine this domain is assembled into.
MIGRATIONS = (tables_step("userqueues.tables", USER_QUEUE_MODELS),)
