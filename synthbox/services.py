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
    """The email queue's service (synthbox.mail.service.EmailService)."""
    return email_service(engine or default_engine())


def get_orchestration_queue_service(engine: Engine | None = None) -> OrchestrationService:
    """The orchestration queue's service (synthbox.orchestration.service)."""
    return OrchestrationService((engine or default_engine()).service(ORCHESTRATION_QUEUE))


def get_queue_service(name: str, engine: Engine | None = None) -> QueueService:
    """Any queue's service, by the queue's name (synthbox.jobs.service.QueueService)."""
    return (engine or default_engine()).service(name)
