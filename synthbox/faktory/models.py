"""What a Faktory job carries beyond a SynthBox job: its jid and the fields a worker gets
back (custom, reserve_for, retry, backtrace). One row per job pushed through the protocol;
a job added by the API, the CLI or cron has none and is known by its id."""

from __future__ import annotations

from peewee import BigIntegerField, CharField, DoubleField, IntegerField, TextField

from synthbox.records.database import tables_step
from synthbox.records.models import BaseModel


class FaktoryJob(BaseModel):
    jid = CharField(max_length=255, primary_key=True)
    job_id = BigIntegerField(index=True)
    custom = TextField(null=True)  # JSON object
    reserve_for = DoubleField()  # seconds: the lease a FETCH gives
    retry = IntegerField()  # -1: drop the job on failure
    backtrace = IntegerField(default=0)
    created_at = DoubleField()  # the job's: with job_id, which job (ids are reused)


# Append only: applied by every engine this module is assembled into.
MIGRATIONS = (tables_step("faktory.tables", (FaktoryJob,)),)
