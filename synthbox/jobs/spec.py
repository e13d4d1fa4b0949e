"""Queue definitions: a name, its handlers, and its options (defaults from DESIGN.md)."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from synthbox.jobs.periodic import Periodic

Handler = Callable[..., Any]

BACKOFF_TYPES = ("fixed", "exponential", "faktory")
# code, not settings
NOT_OPTIONS = ("name", "handlers", "on_stop", "periodic", "internal", "local_consumer")


@dataclass(frozen=True)
class QueueSpec:
    """Everything SynthBox needs to know to run one queue. Durations are in seconds."""

    name: str
    handlers: Mapping[str, Handler] = field(default_factory=dict)
    concurrency: int = 1
    rate_limit_max: int = 0  # 0: no rate limit
    rate_limit_duration: float = 1.0
    attempts: int = 3
    backoff_type: str = "exponential"
    backoff_delay: float = 60.0
    timeout: float | None = None
    keep_completed_age: float = 24 * 3600.0
    keep_completed_count: int = 1000
    keep_failed_age: float = 7 * 24 * 3600.0
    stalled_interval: float = 30.0
    max_stalled_count: int = 2
    on_stop: Callable[[], None] | None = None  # release what the handlers hold
    # the queue's own upkeep tasks, each run with the queue's service (cron)
    periodic: tuple[Periodic, ...] = ()
    # jobs of an internal queue come from its own service (emails, orchestration), never
    # from the generic job API, whose callers could point them at any record
    internal: bool = False
    # False: no consumer in this process claims its jobs; workers elsewhere take them
    # through Engine.claim (stalled jobs and retention are still looked after here)
    local_consumer: bool = True

    def handler_for(self, job_name: str) -> Handler | None:
        return self.handlers.get(job_name) or self.handlers.get("*")

    def backoff_seconds(self, backoff_type: str, delay: float, attempts_made: int) -> float:
        """The wait before the next attempt, after `attempts_made` attempts have failed."""
        if backoff_type == "exponential":
            return delay * (2 ** max(attempts_made - 1, 0))
        if backoff_type == "faktory":  # Faktory's own: retry_count^4 + 15 + rand(10)*(n+1)
            count = max(attempts_made - 1, 0)
            return float(count ** 4 + 15 + random.randrange(10) * (count + 1))
        return delay

    def with_options(self, options: Mapping[str, Any]) -> QueueSpec:
        """A copy with `options` applied; a bad name or value raises ValueError naming it."""
        known = {f.name: f for f in fields(self) if f.name not in NOT_OPTIONS}
        changes: dict[str, Any] = {}
        for key, value in options.items():
            if key not in known:
                raise ValueError(
                    f"queues.{self.name}.{key}: unknown option; one of {', '.join(known)}")
            changes[key] = _check_option(f"queues.{self.name}.{key}", key, value)
        return replace(self, **changes)


_INTS_AT_LEAST = {"concurrency": 1, "rate_limit_max": 0, "attempts": 1,
                  "keep_completed_count": 0, "max_stalled_count": 0}
_SECONDS_ABOVE_ZERO = ("rate_limit_duration", "stalled_interval")
_SECONDS_AT_LEAST_ZERO = ("backoff_delay", "keep_completed_age", "keep_failed_age")


def _check_option(label: str, key: str, value: Any) -> Any:
    if key in _INTS_AT_LEAST:
        if isinstance(value, bool) or not isinstance(value, int) or value < _INTS_AT_LEAST[key]:
            raise ValueError(f"{label}: must be a whole number of at least {_INTS_AT_LEAST[key]}")
        return value
    if key == "backoff_type":
        if value not in BACKOFF_TYPES:
            raise ValueError(f"{label}: must be one of {', '.join(BACKOFF_TYPES)}")
        return value
    if key == "timeout" and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{label}: must be a number of seconds")
    if (key in _SECONDS_ABOVE_ZERO or key == "timeout") and value <= 0:
        raise ValueError(f"{label}: must be a number of seconds greater than 0")
    if key in _SECONDS_AT_LEAST_ZERO and value < 0:
        raise ValueError(f"{label}: must be a number of seconds, 0 or more")
    return float(value)


class QueueRegistry:
    """The queues this process knows, by name."""

    def __init__(self) -> None:
        self._specs: dict[str, QueueSpec] = {}

    def register(self, spec: QueueSpec) -> None:
        if spec.name in self._specs:
            raise ValueError(f"queue {spec.name!r} is already registered")
        self._specs[spec.name] = spec

    def configure(self, overrides: Mapping[str, Mapping[str, Any]]) -> None:
        for name, options in overrides.items():
            if name not in self._specs:
                raise ValueError(f"queues.{name}: no queue by that name; one of "
                                 f"{', '.join(self._specs)}")
            if not isinstance(options, Mapping):
                raise ValueError(f"queues.{name}: must be a table of options")
            self._specs[name] = self._specs[name].with_options(options)

    def replace(self, spec: QueueSpec) -> None:
        if spec.name not in self._specs:
            raise ValueError(f"queue {spec.name!r} is not registered")
        self._specs[spec.name] = spec

    def remove(self, name: str) -> None:
        self._specs.pop(name, None)

    def get(self, name: str) -> QueueSpec | None:
        return self._specs.get(name)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self._specs.values()))
