"""The job records (Peewee models). Times are Unix seconds (float), the same on every backend."""

from __future__ import annotations

from peewee import (
    BigAutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    CompositeKey,
    DatabaseProxy,
    DoubleField,
    IntegerField,
    Model,
    TextField,
)

database = DatabaseProxy()

# Stored states. "delayed" is not stored: it is a waiting job whose run_at is
# still ahead, so one index serves the claim in priority order (DESIGN.md).
WAITING, ACTIVE, COMPLETED, FAILED = "waiting", "active", "completed", "failed"
DELAYED, PAUSED = "delayed", "paused"
STATES = (WAITING, ACTIVE, COMPLETED, FAILED, DELAYED)  # the one list of job states
COUNTED = (*STATES, PAUSED, "total")  # a queue's stats: each state, paused jobs, all jobs


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


class Job(BaseModel):
    id = BigAutoField()
    queue = CharField(max_length=64)
    name = CharField(max_length=128)
    data = TextField(default="{}")
    status = CharField(max_length=16, default=WAITING)
    priority = IntegerField(default=0)
    run_at = DoubleField()
    attempts_made = IntegerField(default=0)
    attempts_max = IntegerField(default=1)
    backoff_type = CharField(max_length=16, default="exponential")
    backoff_delay = DoubleField(default=0)
    timeout = DoubleField(null=True)
    lease_until = DoubleField(null=True)
    owner = CharField(max_length=64, null=True)
    stalled_count = IntegerField(default=0)
    result = TextField(null=True)
    progress = IntegerField(default=0)
    failed_reason = TextField(null=True)
    created_at = DoubleField()
    started_at = DoubleField(null=True)
    finished_at = DoubleField(null=True)
    job_key = CharField(max_length=255, null=True)


class JobAttempt(BaseModel):
    """One failed attempt: what went wrong, kept after the job is retried."""

    id = BigAutoField()
    job_id = IntegerField(index=True)
    attempt = IntegerField()
    started_at = DoubleField(null=True)
    finished_at = DoubleField()
    error = TextField()
    traceback = TextField(null=True)


class JobLog(BaseModel):
    id = BigAutoField()
    job_id = IntegerField(index=True)
    at = DoubleField()
    line = TextField()


class QueueState(BaseModel):
    name = CharField(max_length=64, primary_key=True)
    paused = BooleanField(default=False)
    updated_at = DoubleField()


class Instance(BaseModel):
    """A running `synthbox serve`, seen through its heartbeat."""

    id = CharField(max_length=64, primary_key=True)
    host = CharField(max_length=255)
    pid = IntegerField()
    version = CharField(max_length=32)
    queues = TextField(default="")
    started_at = DoubleField()
    last_seen = DoubleField()


class RateHit(BaseModel):
    """A claim counted by the database rate limiter (used when there is no Redis)."""

    id = BigAutoField()
    queue = CharField(max_length=64)
    at = DoubleField()

    class Meta:
        indexes = ((("queue", "at"), False),)


class QueueMinute(BaseModel):
    """Finished jobs of a queue per minute, for charts and totals (kept two days)."""

    queue = CharField(max_length=64)
    minute = IntegerField()  # Unix time // 60
    completed = BigIntegerField(default=0)
    failed = BigIntegerField(default=0)  # failed for good
    wait_ms = DoubleField(default=0)  # summed time from due to pickup
    picked = BigIntegerField(default=0)
    retried = BigIntegerField(default=0)  # failed attempts with attempts left
    stalled = BigIntegerField(default=0)
    rate_limited = BigIntegerField(default=0)  # claims the rate limit turned down

    class Meta:
        primary_key = CompositeKey("queue", "minute")  # minute 0: everything pruned


class JobHistogram(BaseModel):
    """Run and wait times of finished attempts per queue: a count and a sum per bucket
    (`metric` is "duration" or "wait"; `bucket` indexes synthbox.jobs.tallies.BUCKETS)."""

    queue = CharField(max_length=64)
    metric = CharField(max_length=16)
    bucket = IntegerField()
    n = BigIntegerField(default=0)
    total = DoubleField(default=0)

    class Meta:
        primary_key = CompositeKey("queue", "metric", "bucket")


class SchemaVersion(BaseModel):
    """One row per step applied: the numbered schema that came before names (db.py)."""

    version = IntegerField(primary_key=True)
    applied_at = DoubleField()


class SchemaMigration(BaseModel):
    """A schema step applied, by its name ("owner.what")."""

    name = CharField(max_length=128, primary_key=True)
    applied_at = DoubleField()


MODELS = (Job, JobAttempt, JobLog, QueueState, Instance, RateHit, SchemaVersion)
