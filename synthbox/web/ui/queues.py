"""Dashboard, queue and job pages, their actions, and the dashboard's live figures."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, current_app, flash, jsonify, request, url_for

from synthbox.checks import check_duration
from synthbox.errors import InputError
from synthbox.jobs import operations
from synthbox.jobs.engine import Engine
from synthbox.jobs.service import JOB_ID
from synthbox.records.models import STATES
from synthbox.web.ui.base import action, actor, back, form_json, page, pretty, ui_page
from synthbox.web.ui.charts import bars

bp = Blueprint("ui_queues", __name__)
PAGE_SIZE = 50


def engine() -> Engine:
    return current_app.config["SYNTHBOX_ENGINE"]


# -- dashboard ------------------------------------------------------------------------------

def _charts() -> dict[str, str]:
    now = time.time()
    hour = engine().history(60, 1, now)
    day = engine().history(24 * 60, 15, now)
    return {
        "hour": bars("Jobs per minute, last hour", [
            ("completed", "ok", hour["completed"]), ("failed", "bad", hour["failed"])],
            "-60 min", "now"),
        "day": bars("Jobs per 15 minutes, last day", [
            ("completed", "ok", day["completed"]), ("failed", "bad", day["failed"])],
            "-24 h", "now"),
        "wait": bars("Average wait before pickup, per minute, last hour", [
            ("wait", "wait", hour["waitMs"])], "-60 min", "now", " ms"),
    }


def _live_values(overview: list[dict[str, Any]], instances: list[dict[str, Any]]
                 ) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for queue in overview:
        for state, count in queue["stats"].items():
            values[f"{queue['name']}.{state}"] = count
        values[f"{queue['name']}.state"] = "paused" if queue["paused"] else "running"
    for instance in instances:
        values[f"instance.{instance['id']}.seen"] = f"{instance['secondsSinceSeen']:.0f} s ago"
        values[f"instance.{instance['id']}.jobs"] = instance["jobsDone"]
    values["instances"] = len(instances)
    return values


@bp.get("/")
@ui_page()
def dashboard() -> Any:
    overview = engine().overview()
    instances = engine().instances()
    return page("ui/dashboard.html", overview=overview, instances=instances,
                charts=_charts(), values=_live_values(overview, instances),
                backends=engine().backends(), readiness=engine().readiness())


@bp.get("/ui/live/dashboard")
@ui_page()
def dashboard_live() -> Any:
    """The figures the dashboard refreshes without a reload."""
    overview = engine().overview()
    return jsonify({"values": _live_values(overview, engine().instances()),
                    "charts": {name: str(svg) for name, svg in _charts().items()}})


# -- a queue --------------------------------------------------------------------------------

def _filters() -> tuple[str | None, str | None]:
    state = request.values.get("state") or None
    if state is not None and state not in STATES:
        raise InputError("state", f"must be one of {', '.join(STATES)}")
    search = (request.values.get("search") or "").strip() or None
    return state, search


@bp.get("/queues/<name>")
@ui_page()
def queue_page(name: str) -> Any:
    service = engine().service(name)
    state, search = _filters()
    cursor = request.args.get("cursor", "")
    if cursor and not JOB_ID.fullmatch(cursor):
        raise InputError("cursor", "must be a job id")
    jobs, next_cursor = service.list_jobs(state, PAGE_SIZE, int(cursor) if cursor else None,
                                          search)
    return page("ui/queue.html", queue=name, stats=service.get_stats(),
                paused=service.is_paused(), jobs=jobs, state=state, search=search or "",
                next_cursor=next_cursor, states=STATES, internal=service.spec.internal)


@bp.post("/queues/<name>/pause")
@ui_page("operate")
@action
def pause(name: str) -> Any:
    operations.set_paused(engine(), name, True, actor())
    flash(f"Queue {name} is paused: no new job starts until you resume it.", "ok")
    return back(url_for("ui_queues.queue_page", name=name))


@bp.post("/queues/<name>/resume")
@ui_page("operate")
@action
def resume(name: str) -> Any:
    operations.set_paused(engine(), name, False, actor())
    flash(f"Queue {name} is running again.", "ok")
    return back(url_for("ui_queues.queue_page", name=name))


@bp.post("/queues/<name>/clean")
@ui_page("operate")
@action
def clean(name: str) -> Any:
    state = request.form.get("clean_state", "completed")
    raw = request.form.get("grace", "").strip() or "0"
    grace = check_duration(raw, "grace")
    removed = operations.clean(engine(), name, state, grace, actor())
    flash(f"Removed {removed} {state} job(s) older than {raw}.", "ok")
    return back(url_for("ui_queues.queue_page", name=name))


@bp.post("/queues/<name>/bulk")
@ui_page("operate")
@action
def bulk(name: str) -> Any:
    """Retry or delete what the filter matches: first a page that shows the count, then
    (confirmed) the action."""
    verb = request.form.get("bulk_action")
    if verb not in ("retry", "delete"):
        raise InputError("bulk_action", "must be retry or delete")
    state, search = _filters()
    if request.form.get("confirmed") != "yes":
        count = operations.bulk(engine(), name, verb, state, search, True, actor())
        return page("ui/confirm_bulk.html", queue=name, verb=verb, count=count,
                    state="failed" if verb == "retry" else state, search=search or "")
    done = operations.bulk(engine(), name, verb, state, search, False, actor())
    flash(f"{'Retried' if verb == 'retry' else 'Deleted'} {done} job(s).", "ok")
    return back(url_for("ui_queues.queue_page", name=name))


# -- a job ----------------------------------------------------------------------------------

@bp.get("/jobs/<job_id>")
@ui_page()
def job_page(job_id: str) -> Any:
    service, job = operations.find_job(engine(), job_id)
    return page("ui/job.html", job=job, data=pretty(job["data"]),
                result=None if job["returnvalue"] is None else pretty(job["returnvalue"]),
                internal=service.spec.internal)


def _job_action(job_id: str, name: str, message: str) -> Any:
    operations.job_action(engine(), job_id, name, actor())
    flash(message, "ok")
    if name == "remove":
        return back("/")
    return back(url_for("ui_queues.job_page", job_id=job_id))


@bp.post("/jobs/<job_id>/retry")
@ui_page("operate")
@action
def retry_job(job_id: str) -> Any:
    return _job_action(job_id, "retry_job", f"Job {job_id} is waiting to run again.")


@bp.post("/jobs/<job_id>/promote")
@ui_page("operate")
@action
def promote_job(job_id: str) -> Any:
    return _job_action(job_id, "promote", f"Job {job_id} runs now.")


@bp.post("/jobs/<job_id>/delete")
@ui_page("operate")
@action
def delete_job(job_id: str) -> Any:
    return _job_action(job_id, "remove", f"Job {job_id} was deleted.")


@bp.post("/jobs/<job_id>/edit")
@ui_page("admin")
@action
def edit_job(job_id: str) -> Any:
    data = form_json("data")
    operations.retry_with_data(engine(), job_id, data, actor())
    flash(f"Job {job_id} has new data and is waiting to run again.", "ok")
    return back(url_for("ui_queues.job_page", job_id=job_id))


