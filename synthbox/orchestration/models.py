"""Projects, agents, triggers (schedules and webhooks), runs and what agents report."""

from __future__ import annotations

from peewee import (
    BigAutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    DoubleField,
    IntegerField,
    TextField,
)

from synthbox.records.database import tables_step
from synthbox.records.models import BaseModel

AGENT_KINDS = ("http", "command", "python", "repo-scan")
JOB_TYPES = ("batch", "single_agent", "github_analysis", "retry")
TRIGGERS = ("cron", "webhook", "manual", "api", "system")
# a run: queued -> running -> succeeded | failed (running again on the job's next attempt)


class Project(BaseModel):
    id = BigAutoField()
    slug = CharField(max_length=64, unique=True)
    name = CharField(max_length=200)
    repository = TextField(null=True)  # any git URL, or a local path
    settings = TextField(default="{}")  # JSON
    created_at = DoubleField()


class Agent(BaseModel):
    id = BigAutoField()
    project_id = BigIntegerField(index=True)
    slug = CharField(max_length=64)
    name = CharField(max_length=200)
    kind = CharField(max_length=16)
    config = TextField(default="{}")  # JSON, by kind (see agents.py)
    enabled = BooleanField(default=True)
    timeout = DoubleField(default=300.0)
    created_at = DoubleField()

    class Meta:
        indexes = ((("project_id", "slug"), True),)


class Schedule(BaseModel):
    id = BigAutoField()
    project_id = BigIntegerField(index=True)
    cron = CharField(max_length=120)
    timezone = CharField(max_length=64, default="UTC")
    job_type = CharField(max_length=16, default="batch")
    agent_slug = CharField(max_length=64, null=True)
    context = TextField(default="{}")
    enabled = BooleanField(default=True)
    next_run_at = DoubleField(index=True)  # the due time this schedule fires next
    last_run_at = DoubleField(null=True)
    created_at = DoubleField()


class Hook(BaseModel):
    id = BigAutoField()
    project_id = BigIntegerField(index=True)
    slug = CharField(max_length=64)
    secret = CharField(max_length=128)  # HMAC key: shown once, needed in clear to verify
    job_type = CharField(max_length=16, default="batch")
    agent_slug = CharField(max_length=64, null=True)
    enabled = BooleanField(default=True)
    created_at = DoubleField()
    last_delivery_at = DoubleField(null=True)

    class Meta:
        indexes = ((("project_id", "slug"), True),)


class HookDelivery(BaseModel):
    """A delivery id seen once: a replay of it enqueues nothing."""

    hook_id = BigIntegerField()
    delivery_id = CharField(max_length=200)
    job_id = BigIntegerField(null=True)
    received_at = DoubleField(index=True)

    class Meta:
        indexes = ((("hook_id", "delivery_id"), True),)


class Run(BaseModel):
    """One orchestration job and what it did; the id is the job's id."""

    id = BigIntegerField(primary_key=True)
    project_id = BigIntegerField(index=True)
    triggered_by = CharField(max_length=16)
    job_type = CharField(max_length=16)
    agent_slug = CharField(max_length=64, null=True)
    user_id = CharField(max_length=128, null=True)
    state = CharField(max_length=16, default="queued")
    result = TextField(null=True)  # the seed's OrchestrationJobResult, JSON
    error = TextField(null=True)
    created_at = DoubleField()
    started_at = DoubleField(null=True)
    finished_at = DoubleField(null=True)


class AgentRun(BaseModel):
    id = BigAutoField()
    run_id = BigIntegerField(index=True)
    attempt = IntegerField()
    agent_slug = CharField(max_length=64)
    kind = CharField(max_length=16)
    status = CharField(max_length=16)  # succeeded, failed, timed_out
    duration_ms = IntegerField()
    output = TextField(default="")  # capped
    error = TextField(null=True)
    started_at = DoubleField()


class _Reported(BaseModel):
    """Something an agent reported: a title, and the rest of what it said as JSON."""

    id = BigAutoField()
    project_id = BigIntegerField(index=True)
    run_id = BigIntegerField(index=True)
    agent_slug = CharField(max_length=64)
    title = TextField()
    detail = TextField(default="{}")
    created_at = DoubleField()


class Task(_Reported):
    pass


class Suggestion(_Reported):
    pass


ORCHESTRATION_MODELS = (Project, Agent, Schedule, Hook, HookDelivery, Run, AgentRun, Task,
                        Suggestion)

# Append only (see synthbox/db.py): applied by every engine this domain is assembled into.
MIGRATIONS = (tables_step("orchestration.tables", ORCHESTRATION_MODELS),)
