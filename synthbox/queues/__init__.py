"""The queues SynthBox ships with: each one's definition beside the others, the code it
runs in its domain (`mail/`, `orchestration/`)."""

from __future__ import annotations

from synthbox.config import Settings
from synthbox.jobs.spec import QueueRegistry
from synthbox.queues.diagnostics import DIAGNOSTICS
from synthbox.queues.email import email_queue_spec
from synthbox.queues.orchestration import orchestration_queue_spec


def register_builtin_queues(registry: QueueRegistry, settings: Settings) -> None:
    registry.register(DIAGNOSTICS)
    registry.register(email_queue_spec(settings))
    registry.register(orchestration_queue_spec(settings))
