"""Checking the rules: every instance looks every few seconds; a change of state is
claimed with one conditional UPDATE, so it is announced once however many look."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from synthbox.alerting.models import AlertEvent, AlertRule
from synthbox.alerting.rules import KINDS
from synthbox.jobs.engine import Engine
from synthbox.jobs.periodic import Periodic
from synthbox.logs import event
from synthbox.outbound import OutboundRefused, allowed_networks, post_json
from synthbox.records.outage import is_busy as _database_busy

log = logging.getLogger("synthbox.alerts")

CHECK_EVERY = 2.0
WEBHOOK_TIMEOUT = 5.0
BUSY_WAIT = 30.0  # seconds a rule's check waits for a locked SQLite before giving the turn up


class AlertEvaluator:
    def __init__(self, engine: Engine,
                 send_email: Callable[[dict[str, Any]], dict[str, Any]] | None = None):
        self.engine = engine
        self.send_email = send_email

    def periodic(self) -> Periodic:
        """The upkeep task that checks every rule each CHECK_EVERY seconds."""
        return Periodic("alerts", CHECK_EVERY, self.check_all)

    def check_all(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        for rule in AlertRule.select().where(AlertRule.enabled):
            try:
                self._check_when_free(rule, now)
            except Exception as exc:  # one broken rule does not silence the others
                if _database_busy(exc):
                    log.warning("alert rule %s: the database stayed busy for %g s; checked "
                                "again next turn", rule.name, BUSY_WAIT)
                else:
                    log.exception("alert rule %s could not be checked", rule.name)

    def _check_when_free(self, rule: AlertRule, now: float) -> None:
        """Check `rule`; while SQLite says it is locked, wait and check it afresh (its
        state read again: a check that got halfway must not be announced twice)."""
        give_up = time.monotonic() + BUSY_WAIT
        pause = 0.1
        while True:
            try:
                self._check(rule, now)
                return
            except Exception as exc:
                if not _database_busy(exc) or time.monotonic() + pause > give_up:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
            fresh = AlertRule.get_or_none(AlertRule.id == rule.id)
            if fresh is None:
                return
            rule = fresh

    def _check(self, rule: AlertRule, now: float) -> None:
        value = self.measure(rule, now)
        firing = value > (0 if rule.kind == "instance_silent" else rule.threshold)
        if firing == rule.firing:
            if value != rule.value:
                AlertRule.update(value=value).where(AlertRule.id == rule.id).execute()
            return
        won = AlertRule.update(firing=firing, value=value, changed_at=now).where(
            (AlertRule.id == rule.id) & (AlertRule.firing == rule.firing)).execute()
        if won:
            self.announce(rule, firing, value, now)

    def measure(self, rule: AlertRule, now: float) -> float:
        engine = self.engine
        queues = [rule.queue] if rule.queue else list(engine.queues)
        if rule.kind == "failures":
            return float(sum(engine.store.execute(
                "SELECT COUNT(*) FROM job WHERE queue=? AND status='failed' AND finished_at>?",
                (queue, now - rule.window)).fetchone()[0] for queue in queues))
        if rule.kind == "waiting":
            counts = [engine.service(q).get_stats() for q in queues]
            return float(sum(c["waiting"] + c["paused"] for c in counts))
        if rule.kind == "oldest_waiting":
            due = [d for d in (engine.store.oldest_due(q, now) for q in queues) if d]
            return max((now - d for d in due), default=0.0)
        if rule.kind == "stalled":
            since = int((now - rule.window) // 60)
            return float(sum(row.stalled for row in engine.store.tallies.minutes(max(since, 1))
                             if row.queue in queues))
        return float(sum(1 for i in engine.instances()
                         if i["secondsSinceSeen"] > rule.threshold))

    def announce(self, rule: AlertRule, firing: bool, value: float, now: float) -> None:
        meaning = KINDS[rule.kind][0]
        where = f" in queue {rule.queue}" if rule.queue else ""
        state = "firing" if firing else "resolved"
        message = (f"{rule.name} {state}: {meaning}{where} is {value:g} "
                   f"(threshold {rule.threshold:g})")
        payload = {"alert": rule.name, "state": state, "kind": rule.kind, "queue": rule.queue,
                   "value": value, "threshold": rule.threshold, "message": message,
                   "at": int(now * 1000)}
        deliveries = []
        emails = json.loads(rule.emails)
        if emails and self.send_email is not None:
            try:  # durable: the email queue delivers it
                sent = self.send_email({"to": emails, "subject": f"[SynthBox] {message}",
                                        "text": json.dumps(payload, indent=2)})
                deliveries.append(f"email {sent['id']} queued")
            except Exception as exc:  # no mail_from, a bad address: said in the history
                deliveries.append(f"email not queued: {exc}")
        record = AlertEvent.create(rule=rule.name, state=state, value=value, message=message,
                                   delivery="; ".join(deliveries), at=now)
        (log.warning if firing else log.info)(
            message, extra=event(f"alert {state}", alert=rule.name, queue=rule.queue))
        if rule.webhook:  # off the maintenance loop: a slow receiver delays nothing
            threading.Thread(target=self._deliver, args=(record.id, rule.webhook, payload,
                                                         deliveries), daemon=True).start()

    def _deliver(self, event_id: int, url: str, payload: dict[str, Any],
                 deliveries: list[str]) -> None:
        answer = self._post(url, payload)
        AlertEvent.update(delivery="; ".join([answer, *deliveries])).where(
            AlertEvent.id == event_id).execute()

    def _post(self, url: str, payload: dict[str, Any]) -> str:
        """Through the same guard as every outbound request (after DNS, on redirects)."""
        try:
            status, _ = post_json(url, payload, {}, time.monotonic() + WEBHOOK_TIMEOUT,
                                  allowed_networks(self.engine.settings), "SynthBox-alerts")
        except OutboundRefused as exc:
            return f"webhook refused: {exc}"
        except Exception as exc:  # noqa: BLE001 - refused, reset, TLS, timeout, protocol
            return f"webhook failed: {type(exc).__name__}: {exc}"
        return f"webhook answered {status}"
