"""Queue-aware autoscaling: more instances while the backlog per instance stays above
the target, fewer after a quiet spell; a cool-down between decisions, each one logged."""

from __future__ import annotations

import logging
import time
from typing import Any

from synthbox.app import build_engine
from synthbox.cluster_settings import Autoscale

log = logging.getLogger("synthbox.cluster")


class Autoscaler:
    def __init__(self, supervisor: Any, rule: Autoscale):
        self.supervisor = supervisor
        self.rule = rule
        self.engine = build_engine(supervisor.settings)  # reads the shared records; no workers
        self.next_check = 0.0
        self.above_since: float | None = None
        self.quiet_since: float | None = None
        self.last_decision = 0.0

    def waiting(self) -> int:
        return sum(q["stats"]["waiting"] for q in self.engine.overview())

    def tick(self) -> None:
        now = time.monotonic()
        if now < self.next_check:
            return
        self.next_check = now + self.rule.check_every
        waiting = self.waiting()
        count = len(self.supervisor.slots)
        per_instance = waiting / max(count, 1)
        self.above_since = (self.above_since or now) if per_instance > self.rule.target \
            else None
        self.quiet_since = (self.quiet_since or now) if waiting == 0 else None
        if now - self.last_decision < self.rule.cooldown:
            return
        if (self.above_since is not None and now - self.above_since >= self.rule.up_after
                and count < self.rule.max):
            self._decide(count + 1, f"{waiting} waiting, {per_instance:.0f} per instance "
                                    f"above the target {self.rule.target:g}")
        elif (self.quiet_since is not None and now - self.quiet_since >= self.rule.down_after
              and count > self.rule.min):
            self._decide(count - 1, f"no job waiting for {now - self.quiet_since:.0f} s")

    def _decide(self, target: int, reason: str) -> None:
        log.info("autoscale: %d -> %d instance(s): %s", len(self.supervisor.slots), target,
                 reason)
        self.supervisor.scale(target, f"autoscale: {reason}")
        self.last_decision = time.monotonic()
        self.above_since = self.quiet_since = None
