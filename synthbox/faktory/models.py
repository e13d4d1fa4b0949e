"""What a Faktory job carries beyond a SynthBox job: its jid and the fields a worker gets
back (custom, reserve_for, retry, backtrace). One row per job pushed through the protocol;
a job added by the API, the CLI or cron has none and is known by its id."""

from __future__ import annotations

from peewee import BigIntegerField, CharField, CompositeKey, DoubleField, IntegerField, TextField

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


class FaktoryWorker(BaseModel):
    """A worker process as one instance sees it (workers.py): every instance of a cluster
    writes its own row for each worker connected to it, and lists everyone's."""

    wid = CharField(max_length=255)
    instance = CharField(max_length=255)  # the engine's instance_id
    hostname = CharField(max_length=255, default="")
    pid = BigIntegerField(default=0)
    labels = TextField(default="[]")  # JSON array
    protocol = CharField(max_length=16)  # faktory or http
    address = CharField(max_length=255, default="")
    started_at = DoubleField()
    last_beat = DoubleField()
    rss_kb = BigIntegerField(null=True)
    current_state = CharField(max_length=16, default="")
    requested = CharField(max_length=16, default="")  # quiet or terminate: an admin's ask
    jobs = TextField(default="[]")  # JSON array of the jids held, as of the last write

    class Meta:
        primary_key = CompositeKey("wid", "instance")


# Append only: applied by every engine this module is assembled into.
MIGRATIONS = (tables_step("faktory.tables", (FaktoryJob,)),
              tables_step("faktory.workers", (FaktoryWorker,)))
