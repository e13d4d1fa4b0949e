"""The queues SynthBox ships with."""

from __future__ import annotations

from synthbox.jobs.spec import QueueRegistry
from synthbox.queues.diagnostics import DIAGNOSTICS


def register_builtin_queues(registry: QueueRegistry) -> None:
    registry.register(DIAGNOSTICS)
