"""/api/v1/admin/alerts: alert rules with their state, and their history (admins)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from synthbox.alerting import rules
from synthbox.web.api.auth import acting, authenticate_api_request, needs
from synthbox.web.errors import ok
from synthbox.web.requests import json_body, page_args

bp = Blueprint("alerts_api", __name__, url_prefix="/api/v1/admin/alerts")
bp.before_request(authenticate_api_request)


def queues() -> list[str]:
    return list(current_app.config["SYNTHBOX_ENGINE"].queues)


@bp.get("")
@needs("admin")
def list_rules() -> Any:
    return ok(rules.list_rules())


@bp.post("")
@needs("admin")
def create_rule() -> Any:
    made = rules.create_rule(json_body(), queues(), actor=acting())
    return ok(made, 201)


@bp.patch("/<name>")
@needs("admin")
def update_rule(name: str) -> Any:
    changed = rules.update_rule(name, json_body(), queues(), actor=acting())
    return ok(changed)


@bp.delete("/<name>")
@needs("admin")
def delete_rule(name: str) -> Any:
    rules.delete_rule(name, actor=acting())
    return ok({"deleted": True})


@bp.get("/events")
@needs("admin")
def list_events() -> Any:
    found, cursor = rules.events(*page_args())
    return ok({"events": found, "nextCursor": cursor})
