"""The orchestration queue's definition (the seed's `orchestration-queue`)."""

from __future__ import annotations

from synthbox.config import Settings
from synthbox.jobs.periodic import Periodic
from synthbox.jobs.spec import QueueSpec
from synthbox.orchestration.agents.base import AgentProcesses
from synthbox.orchestration.handler import make_orchestrate
from synthbox.orchestration.service import ORCHESTRATE, ORCHESTRATION_QUEUE
from synthbox.orchestration.triggers import fire_schedules_of
from synthbox.outbound import allowed_networks


def orchestration_queue_spec(settings: Settings) -> QueueSpec:
    """3 workers, 5 jobs a minute across instances, 3 attempts with exponential backoff
    from 30 s, 10 minutes per job, completed kept 24 h, failed 7 d; cron in a periodic task."""
    processes = AgentProcesses()
    return QueueSpec(name=ORCHESTRATION_QUEUE,
                     handlers={ORCHESTRATE: make_orchestrate(
                         allowed_networks(settings), settings.data_path, processes,
                         settings.repository_roots)},
                     concurrency=3, rate_limit_max=5, rate_limit_duration=60.0, attempts=3,
                     backoff_type="exponential", backoff_delay=30.0, timeout=600.0,
                     keep_completed_age=24 * 3600.0, keep_completed_count=1000,
                     keep_failed_age=7 * 24 * 3600.0,
                     periodic=(Periodic("cron", 1.0, fire_schedules_of),),
                     on_stop=processes.stop, internal=True)
