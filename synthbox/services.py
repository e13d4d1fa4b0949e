"""The seed's Python service API: `get_email_queue_service()` and friends.

Each returns a service over one Engine per process, opened on first use from the
configured settings (the same ones `synthbox serve` reads), or over the Engine given.
"""

from __future__ import annotations

import threading

from synthbox.app import build_engine, email_service
from synthbox.config import load_settings
from synthbox.jobs.engine import Engine
from synthbox.jobs.service import QueueService
from synthbox.mail.service import EmailService
from synthbox.orchestration.service import ORCHESTRATION_QUEUE, OrchestrationService

_engine: Engine | None = None
_lock = threading.Lock()


def default_engine() -> Engine:
    """This process's Engine, from the configured settings (no workers are started)."""
    global _engine
    with _lock:
        if _engine is None:
            _engine = build_engine(load_settings())
        return _engine


def get_email_queue_service(engine: Engine | None = None) -> EmailService:
    """add_high_priority, schedule_email, get_stats, get_failed_jobs, retry_job, cleanup."""
    return email_service(engine or default_engine())


def get_orchestration_queue_service(engine: Engine | None = None) -> OrchestrationService:
    """add_job, add_high_priority_job, get_stats, get_failed_jobs, retry_all_failed,
    cleanup; plus trigger() and the runs of a project."""
    return OrchestrationService((engine or default_engine()).service(ORCHESTRATION_QUEUE))


def get_queue_service(name: str, engine: Engine | None = None) -> QueueService:
    """Any queue's service: add, add_bulk, get_job, get_stats, retry_all_failed, ..."""
    return (engine or default_engine()).service(name)
