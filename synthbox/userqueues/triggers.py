"""Jobs a queue of your own adds itself: cron `schedules` and a signed inbound `webhook`,
both declared in its definition.

```toml
[[queues.thumbnails.schedules]]
name = "nightly"            # the job's name unless `job` says another
cron = "0 3 * * *"
timezone = "Europe/Paris"   # default UTC
data = { full = true }

[queues.thumbnails.webhook]
secret = "${THUMBS_HOOK_SECRET}"
job = "resize"              # default "webhook"
data = { image = "/image/url" }   # JSON pointers into the body; left out: the whole body
```

A due time fires once across every instance (a conditional UPDATE of the schedule's row,
in the job's transaction). A webhook delivery (`POST /api/v1/queues/NAME/webhook`) is
checked as project webhooks are (synthbox/signatures.py) and accepted once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from synthbox.cron import next_due
from synthbox.errors import InputError, NotFound
from synthbox.jobs.service import QueueService
from synthbox.signatures import accept_once, verify_signature
from synthbox.userqueues.environment import DeliveryFailed, expand_env
from synthbox.userqueues.models import QueueHookDelivery, QueueSchedule


def check_schedules(label: str, value: Any) -> list[dict[str, Any]]:
    from croniter import croniter  # with dateutil, 0.6 MB: loaded once a schedule exists

    if not isinstance(value, list):
        raise InputError(label, "must be a list of tables with name, cron, timezone, data")
    checked = []
    for index, item in enumerate(value):
        where = f"{label}[{index}]"
        if not isinstance(item, Mapping):
            raise InputError(where, "must be a table with name, cron, timezone, data")
        for key in item:
            if key not in ("name", "cron", "timezone", "job", "data"):
                raise InputError(f"{where}.{key}", "unknown field; one of name, cron, "
                                                   "timezone, job, data")
        name, cron = item.get("name"), item.get("cron")
        if not isinstance(name, str) or not 1 <= len(name) <= 64:
            raise InputError(f"{where}.name", "required: 1 to 64 characters")
        if not isinstance(cron, str) or not croniter.is_valid(cron):
            raise InputError(f"{where}.cron", 'required: a cron expression, e.g. "0 3 * * *"')
        zone = item.get("timezone", "UTC")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise InputError(f"{where}.timezone", "must be a time zone such as "
                                                  "Europe/Paris") from None
        job = item.get("job", name)
        if not isinstance(job, str) or not job:
            raise InputError(f"{where}.job", "must be a job name")
        checked.append({"name": name, "cron": cron, "timezone": zone, "job": job,
                        "data": item.get("data")})
    return checked


def check_webhook(label: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError(label, "must be a table with secret, job, data")
    for key in value:
        if key not in ("secret", "job", "data"):
            raise InputError(f"{label}.{key}", "unknown field; one of secret, job, data")
    secret, job, data = value.get("secret"), value.get("job", "webhook"), value.get("data")
    if not isinstance(secret, str) or (len(secret) < 16 and not secret.startswith("${")):
        raise InputError(f"{label}.secret", "required: at least 16 characters (or "
                                            "${VARIABLE})")
    if not isinstance(job, str) or not job:
        raise InputError(f"{label}.job", "must be a job name")
    if data is not None and not (isinstance(data, Mapping) and all(
            isinstance(p, str) and (p == "" or p.startswith("/")) for p in data.values())):
        raise InputError(f"{label}.data", 'must be a table of JSON pointers into the body, '
                                          'e.g. { image = "/image/url" }')
    return {"secret": secret, "job": job, "data": data}


def fire_due(schedules: list[dict[str, Any]], service: QueueService,
             now: float | None = None) -> int:
    """Add a job for each schedule that is due; how many this caller fired."""
    now = time.time() if now is None else now
    fired = 0
    for schedule in schedules:
        rule = f"{schedule['cron']} {schedule['timezone']}"
        row = QueueSchedule.get_or_none((QueueSchedule.queue == service.name)
                                        & (QueueSchedule.name == schedule["name"]))
        if row is None or row.rule != rule:  # new, or its rule changed: from now on
            first = next_due(schedule["cron"], schedule["timezone"], now)
            QueueSchedule.insert(queue=service.name, name=schedule["name"], rule=rule,
                                 next_run_at=first).on_conflict(
                conflict_target=[QueueSchedule.queue, QueueSchedule.name],
                update={QueueSchedule.rule: rule, QueueSchedule.next_run_at: first}).execute()
            continue
        if row.next_run_at > now:
            continue
        following = next_due(schedule["cron"], schedule["timezone"], now, row.next_run_at)
        with service.store.db.atomic():
            won = QueueSchedule.update(next_run_at=following, last_run_at=now).where(
                (QueueSchedule.id == row.id)
                & (QueueSchedule.next_run_at == row.next_run_at)).execute()
            if not won:
                continue  # another instance fired this due time
            service.add_bulk([{"name": schedule["job"], "data": schedule["data"],
                               "key": f"cron-{schedule['name']}-{row.next_run_at:.0f}"}],
                             announce=False)
        fired += 1
        service.announce([now])
    return fired


def _pointer(document: Any, pointer: str) -> Any:
    """The value at a JSON pointer (RFC 6901), None when it is not there."""
    if pointer == "":
        return document
    for part in pointer[1:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(document, Mapping):
            document = document.get(part)
        elif isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        else:
            return None
    return document


def receive(service: QueueService, hook: dict[str, Any] | None, headers: Mapping[str, str],
            body: bytes) -> dict[str, Any]:
    """Verify a delivery and add its job once: {"jobId", "duplicate"}."""
    if hook is None:
        raise NotFound(f"webhook: queue {service.name!r} takes no webhook")
    try:
        secret = expand_env(hook["secret"], "webhook.secret")
    except DeliveryFailed as exc:
        raise NotFound(f"webhook: not ready ({exc})") from None
    delivery = verify_signature(secret, headers, body)
    try:
        payload: Any = json.loads(body) if body else None
    except ValueError:
        raise InputError("body", "must be JSON") from None
    data = payload if hook["data"] is None else {
        name: _pointer(payload, pointer) for name, pointer in hook["data"].items()}
    now = time.time()
    taken = accept_once(QueueHookDelivery, {"queue": service.name, "delivery_id": delivery},
                        now, lambda: str(service.add_bulk([{"name": hook["job"], "data": data}],
                                                          announce=False)[0]["id"]))
    if not taken["duplicate"]:
        service.announce([now])
    return taken
