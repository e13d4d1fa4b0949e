"""Cron schedules and webhooks: the triggers that queue runs without a person.

Cron: each schedule row holds the due time it fires next. Every instance's maintenance
loop looks for due rows about once a second and moves a row on with one conditional
UPDATE (`... WHERE id=? AND next_run_at=?`) in the same transaction as the job it queues,
so a due time fires once however many instances look. After downtime, missed times fire
once (as `system`, a catch-up), not once per missed time.

Webhooks: `POST /api/v1/hooks/<project>/<hook>`, signed with the hook's secret by
HMAC-SHA256 over the raw body, in GitHub's form (`X-Hub-Signature-256: sha256=<hex>`) or
the timestamped form (`X-SynthBox-Timestamp: <unix s>`, `X-SynthBox-Signature:
v1=<hex of HMAC(secret, "<timestamp>.<body>")>`, refused when 5 minutes off). A delivery
(the same signed request: a digest of its signature, as delivery-id headers are not
signed) is accepted once; `X-GitHub-Delivery` or `X-SynthBox-Delivery` only label it.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from peewee import IntegrityError

from synthbox.accounts.audit import record_by
from synthbox.actors import SYSTEM, Actor
from synthbox.checks import check_bool, check_known_fields, check_slug
from synthbox.cron import next_due
from synthbox.errors import Conflict, InputError, NotFound
from synthbox.jobs.service import JOB_ID, milliseconds
from synthbox.orchestration.models import Hook, HookDelivery, Project, Schedule
from synthbox.orchestration.projects import find_project
from synthbox.orchestration.service import OrchestrationService, check_request
from synthbox.signatures import accept_once, verify_signature

log = logging.getLogger("synthbox.orchestration")

CATCH_UP_AFTER = 90.0  # a due time missed by more than this fired late, after downtime
SCHEDULE_FIELDS = ("cron", "timezone", "jobType", "agentSlug", "context", "enabled")
HOOK_FIELDS = ("slug", "jobType", "agentSlug", "enabled")


# -- cron ---------------------------------------------------------------------------------

def _check_cron(value: Any) -> str:
    from croniter import CroniterBadDateError, croniter

    if not isinstance(value, str) or len(value.split()) != 5 or not croniter.is_valid(value):
        raise InputError("cron", "must be a cron expression of 5 fields: minute hour "
                                 "day-of-month month day-of-week, e.g. '*/15 * * * *'")
    try:
        next_due(value, "UTC", time.time())
    except CroniterBadDateError:
        raise InputError("cron", "never matches a date (like 31 February)") from None
    return " ".join(value.split())


def _check_timezone(value: Any) -> str:
    try:
        if not isinstance(value, str) or not value:
            raise ValueError
        ZoneInfo(value)
    except (ValueError, ZoneInfoNotFoundError):
        raise InputError("timezone", "must be an IANA time zone such as UTC or "
                                     "Europe/Paris") from None
    return value


def _changed_request(payload: dict[str, Any], job_type: str, agent_slug: str | None
                     ) -> dict[str, Any]:
    """The jobType and agentSlug a change leaves: a new jobType other than single_agent
    drops the agent the trigger had, unless the change names one (then refused)."""
    job_type = payload.get("jobType", job_type)
    if "jobType" in payload and job_type != "single_agent":
        agent_slug = None
    return {"jobType": job_type, "agentSlug": payload.get("agentSlug", agent_slug)}


def schedule_dict(schedule: Schedule) -> dict[str, Any]:
    return {"id": str(schedule.id), "cron": schedule.cron, "timezone": schedule.timezone,
            "jobType": schedule.job_type, "agentSlug": schedule.agent_slug,
            "context": json.loads(schedule.context), "enabled": schedule.enabled,
            "nextRunAt": milliseconds(schedule.next_run_at),
            "lastRunAt": milliseconds(schedule.last_run_at)}


def list_schedules(project_ref: str) -> list[dict[str, Any]]:
    project = find_project(project_ref)
    return [schedule_dict(s) for s in Schedule.select().where(
        Schedule.project_id == project.id).order_by(Schedule.id)]


def _find_schedule(project: Project, schedule_id: str) -> Schedule:
    schedule = (Schedule.get_or_none(Schedule.id == int(schedule_id))
                if JOB_ID.fullmatch(schedule_id) else None)
    if schedule is None or schedule.project_id != project.id:
        raise NotFound(f"schedule: no schedule {schedule_id!r} in project {project.slug!r}")
    return schedule


def save_schedule(project_ref: str, payload: dict[str, Any], schedule_id: str | None = None,
                  actor: Actor = SYSTEM) -> dict[str, Any]:
    """Create a schedule, or change one (also while instances run: the next due time is
    worked out again from now)."""
    project = find_project(project_ref)
    check_known_fields(payload, SCHEDULE_FIELDS)
    schedule = (_find_schedule(project, schedule_id) if schedule_id is not None else
                Schedule(project_id=project.id, created_at=time.time(), timezone="UTC"))
    if schedule_id is None or "cron" in payload:
        schedule.cron = _check_cron(payload.get("cron"))
    if "timezone" in payload:
        schedule.timezone = _check_timezone(payload["timezone"])
    if "enabled" in payload:
        schedule.enabled = check_bool(payload["enabled"], "enabled")
    if schedule_id is None or {"jobType", "agentSlug", "context"} & payload.keys():
        merged = {**_changed_request(payload, schedule.job_type or "batch",
                                     schedule.agent_slug),
                  "context": payload.get("context", json.loads(schedule.context or "{}"))}
        request = check_request(project, merged)
        schedule.job_type, schedule.agent_slug = request["jobType"], request["agentSlug"]
        schedule.context = json.dumps(request["context"])
    schedule.next_run_at = next_due(schedule.cron, schedule.timezone, time.time())
    schedule.save()
    record_by(actor, "schedule.update" if schedule_id else "schedule.create",
              f"schedule:{project.slug}/{schedule.id}")
    return schedule_dict(schedule)


def delete_schedule(project_ref: str, schedule_id: str, actor: Actor = SYSTEM) -> None:
    project = find_project(project_ref)
    _find_schedule(project, schedule_id).delete_instance()
    record_by(actor, "schedule.delete", f"schedule:{project.slug}/{schedule_id}")


def fire_due_schedules(service: OrchestrationService, now: float | None = None) -> int:
    """Queue a run for every schedule that is due; the number fired by this caller."""
    now = time.time() if now is None else now
    fired = 0
    due = list(Schedule.select().where(Schedule.enabled & (Schedule.next_run_at <= now)))
    for schedule in due:
        late = now - schedule.next_run_at > CATCH_UP_AFTER
        try:
            following = next_due(schedule.cron, schedule.timezone, now, schedule.next_run_at)
        except (ValueError, KeyError, ZoneInfoNotFoundError):
            log.error("schedule %s: cannot work out its next time; disabled", schedule.id)
            Schedule.update(enabled=False).where(Schedule.id == schedule.id).execute()
            continue
        with service.db.atomic():
            won = Schedule.update(next_run_at=following, last_run_at=now).where(
                (Schedule.id == schedule.id)
                & (Schedule.next_run_at == schedule.next_run_at)).execute()
            if not won:
                continue  # another instance fired this due time
            context = json.loads(schedule.context)
            if late:
                context = {**context, "catchUp": True, "dueAt": milliseconds(schedule.next_run_at)}
            request = {"jobType": schedule.job_type, "context": context}
            if schedule.agent_slug:
                request["agentSlug"] = schedule.agent_slug
            try:
                service.trigger(schedule.project_id, request, "system" if late else "cron",
                                job_key=f"cron-{schedule.id}-{schedule.next_run_at:.0f}",
                                announce=False)
            except (InputError, NotFound, Conflict) as exc:  # the project changed
                log.error("schedule %s did not fire: %s", schedule.id, exc)
                continue
        fired += 1
        if late:
            _log_skipped(schedule, now)
        service.queue.announce([now])
    return fired


def _log_skipped(schedule: Schedule, now: float) -> None:
    """A late schedule fires once, as a catch-up: the due times it passed are said, not
    run (the instances were down, or the clock was stepped forward)."""
    skipped, due = 0, schedule.next_run_at
    while skipped < 10_000:
        due = next_due(schedule.cron, schedule.timezone, due)
        if due > now:
            break
        skipped += 1
    log.warning("schedule %s: due at %s, fired %.0f s late as one catch-up run; %d later "
                "due time(s) passed meanwhile and were skipped (instances down, or the clock "
                "stepped forward)", schedule.id, time.strftime(
                    "%Y-%m-%d %H:%M:%S UTC", time.gmtime(schedule.next_run_at)),
                now - schedule.next_run_at, skipped)


def fire_schedules_of(queue: Any) -> None:
    """The orchestration queue's periodic task: fire the schedules that are due."""
    fire_due_schedules(OrchestrationService(queue))


# -- webhooks -----------------------------------------------------------------------------

def hook_dict(hook: Hook, project: Project, secret: str | None = None) -> dict[str, Any]:
    shown = {"id": str(hook.id), "slug": hook.slug, "jobType": hook.job_type,
             "agentSlug": hook.agent_slug, "enabled": hook.enabled,
             "path": f"/api/v1/hooks/{project.slug}/{hook.slug}",
             "createdAt": milliseconds(hook.created_at),
             "lastDeliveryAt": milliseconds(hook.last_delivery_at)}
    if secret is not None:
        shown["secret"] = secret  # once, at creation
    return shown


def find_hook(project: Project, slug: str) -> Hook:
    hook = Hook.get_or_none((Hook.project_id == project.id) & (Hook.slug == slug))
    if hook is None:
        raise NotFound(f"hook: no hook {slug!r} in project {project.slug!r}")
    return hook


def list_hooks(project_ref: str) -> list[dict[str, Any]]:
    project = find_project(project_ref)
    return [hook_dict(h, project) for h in
            Hook.select().where(Hook.project_id == project.id).order_by(Hook.slug)]


def create_hook(project_ref: str, payload: dict[str, Any], actor: Actor = SYSTEM) -> dict[str, Any]:
    project = find_project(project_ref)
    check_known_fields(payload, HOOK_FIELDS)
    slug = check_slug(payload.get("slug"), "slug")
    request = check_request(project, {k: payload[k] for k in ("jobType", "agentSlug")
                                      if k in payload})
    secret = secrets.token_hex(32)
    try:
        hook = Hook.create(project_id=project.id, slug=slug, secret=secret,
                           job_type=request["jobType"], agent_slug=request["agentSlug"],
                           enabled=check_bool(payload.get("enabled", True), "enabled"),
                           created_at=time.time())
    except IntegrityError:
        raise Conflict(f"slug: project {project.slug!r} has a hook {slug!r} already",
                       "slug") from None
    record_by(actor, "hook.create", f"hook:{project.slug}/{slug}")
    return hook_dict(hook, project, secret)


def update_hook(project_ref: str, slug: str, payload: dict[str, Any], actor: Actor = SYSTEM
                ) -> dict[str, Any]:
    project = find_project(project_ref)
    hook = find_hook(project, slug)
    check_known_fields(payload, HOOK_FIELDS[1:])
    if "enabled" in payload:
        hook.enabled = check_bool(payload["enabled"], "enabled")
    if {"jobType", "agentSlug"} & payload.keys():
        request = check_request(project, _changed_request(payload, hook.job_type,
                                                          hook.agent_slug))
        hook.job_type, hook.agent_slug = request["jobType"], request["agentSlug"]
    hook.save()
    record_by(actor, "hook.update", f"hook:{project.slug}/{slug}")
    return hook_dict(hook, project)


def delete_hook(project_ref: str, slug: str, actor: Actor = SYSTEM) -> None:
    project = find_project(project_ref)
    hook = find_hook(project, slug)
    HookDelivery.delete().where(HookDelivery.hook_id == hook.id).execute()
    hook.delete_instance()
    record_by(actor, "hook.delete", f"hook:{project.slug}/{slug}")


def receive_delivery(service: OrchestrationService, project_slug: str, hook_slug: str,
                     headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """Verify and queue one delivery: {"jobId", "duplicate"}."""
    project = Project.get_or_none(Project.slug == project_slug)
    hook = Hook.get_or_none((Hook.project_id == project.id) & (Hook.slug == hook_slug)
                            ) if project is not None else None
    if project is None or hook is None or not hook.enabled:
        raise NotFound(f"hook: no active hook {project_slug}/{hook_slug}")
    delivery = verify_signature(hook.secret, headers, body)
    label = (headers.get("x-github-delivery") or headers.get("x-synthbox-delivery")
             or delivery[:16])[:200]
    try:
        payload: Any = json.loads(body) if body else None
    except ValueError:
        payload = body.decode("utf-8", errors="replace")
    now = time.time()
    context = {"webhook": {"hook": hook.slug, "deliveryId": label,
                           "event": headers.get("x-github-event"), "payload": payload}}
    request: dict[str, Any] = {"jobType": hook.job_type, "context": context}
    if hook.agent_slug:
        request["agentSlug"] = hook.agent_slug

    def add_job() -> str:
        run = service.trigger(project.id, request, "webhook", announce=False)
        Hook.update(last_delivery_at=now).where(Hook.id == hook.id).execute()
        return str(run["jobId"])

    taken = accept_once(HookDelivery, {"hook_id": hook.id, "delivery_id": delivery}, now,
                        add_job)
    if not taken["duplicate"]:
        service.queue.announce([now])
    return taken
