"""The workers page: every worker process connected to any instance (Faktory clients
and HTTP workers), the jobs each holds, and buttons to quiet or stop one (audited)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, url_for

from synthbox.errors import NotFound
from synthbox.faktory.workers import worker_registry
from synthbox.web.ui.base import action, actor, back, page, ui_page

bp = Blueprint("ui_workers", __name__)

ACTIONS = {"quiet": "quiet", "stop": "terminate"}


@bp.get("/workers")
@ui_page("read")
def workers_page() -> Any:
    engine = current_app.config["SYNTHBOX_ENGINE"]
    return page("ui/workers.html", workers=worker_registry(engine).listing(),
                listening=engine.settings.faktory_address)


@bp.post("/workers/<wid>/<state>")
@ui_page("operate")
@action
def signal_worker(wid: str, state: str) -> Any:
    engine = current_app.config["SYNTHBOX_ENGINE"]
    if state not in ACTIONS:
        raise NotFound("action: one of quiet, stop")
    if not worker_registry(engine).signal(wid, ACTIONS[state]):
        raise NotFound(f"worker: no worker {wid!r} is connected")
    engine.record(actor(), f"worker.{state}", f"worker:{wid}", "")
    flash(f"Worker {wid} asked to {state}; it hears so at its next beat.", "ok")
    return back(url_for("ui_workers.workers_page"))
