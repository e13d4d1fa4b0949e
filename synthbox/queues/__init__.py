"""The queues SynthBox ships with."""

from __future__ import annotations

from synthbox.config import Settings
from synthbox.jobs.spec import QueueRegistry
from synthbox.mail.service import email_queue_spec
from synthbox.orchestration.definition import orchestration_queue_spec
from synthbox.queues.diagnostics import DIAGNOSTICS


def register_builtin_queues(registry: QueueRegistry, settings: Settings) -> None:
    registry.register(DIAGNOSTICS)
    registry.register(email_queue_spec(settings))
    registry.register(orchestration_queue_spec(settings))
