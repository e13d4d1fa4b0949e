"""The alerts page: rules with their state, the history, and a form for a new rule."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, request, url_for

from synthbox.alerting import rules
from synthbox.errors import InputError
from synthbox.web.ui.base import action, actor, back, page, ui_page

bp = Blueprint("ui_alerts", __name__)


def _number(name: str) -> float | None:
    raw = request.form.get(name, "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise InputError(name, "must be a number") from None


@bp.get("/alerts")
@ui_page("admin")
def alerts_page() -> Any:
    history, _ = rules.events(50)
    return page("ui/alerts.html", rules=rules.list_rules(), history=history,
                kinds=rules.KINDS, queues=list(current_app.config["SYNTHBOX_ENGINE"].queues))


@bp.post("/alerts")
@ui_page("admin")
@action
def create_alert() -> Any:
    payload: dict[str, Any] = {"name": request.form.get("name", "").strip(),
                               "kind": request.form.get("kind")}
    if request.form.get("queue"):
        payload["queue"] = request.form["queue"]
    for key in ("threshold", "window"):
        number = _number(key)
        if number is not None:
            payload[key] = number
    if request.form.get("webhook", "").strip():
        payload["webhook"] = request.form["webhook"].strip()
    emails = [e.strip() for e in request.form.get("emails", "").split(",") if e.strip()]
    if emails:
        payload["emails"] = emails
    made = rules.create_rule(payload, list(current_app.config["SYNTHBOX_ENGINE"].queues),
                             actor=actor())
    flash(f"Alert rule {made['name']} added.", "ok")
    return back(url_for("ui_alerts.alerts_page"))


@bp.post("/alerts/<name>/delete")
@ui_page("admin")
@action
def delete_alert(name: str) -> Any:
    rules.delete_rule(name, actor=actor())
    flash(f"Alert rule {name} removed.", "ok")
    return back(url_for("ui_alerts.alerts_page"))
