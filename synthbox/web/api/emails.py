"""/api/v1/emails: send (scope email:send), look up, list, resend."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request

from synthbox.errors import InputError
from synthbox.mail import templates
from synthbox.mail.service import EmailService
from synthbox.web.api.auth import acting, authenticate_api_request, caller, needs
from synthbox.web.errors import ok
from synthbox.web.requests import json_body, page_args

bp = Blueprint("emails_api", __name__, url_prefix="/api/v1/emails")
bp.before_request(authenticate_api_request)


def emails() -> EmailService:
    return current_app.config["SYNTHBOX_EMAILS"]


@bp.post("")
@needs("email:send")
def send() -> Any:
    return ok(emails().send(json_body(), caller().name), 201)


@bp.post("/bulk")
@needs("email:send")
def send_bulk() -> Any:
    items = json_body().get("emails")
    if not isinstance(items, list) or not 1 <= len(items) <= 1000:
        raise InputError("emails", "must be a list of 1 to 1000 emails")
    return ok(emails().send_bulk(items, caller().name), 201)


@bp.get("")
@needs("email:read")
def list_emails() -> Any:
    page, cursor = emails().list_emails(request.args.get("state") or None, *page_args())
    return ok({"emails": page, "nextCursor": cursor})


@bp.get("/templates")
@needs("email:read")
def list_templates() -> Any:
    return ok(templates.list_templates())


@bp.put("/templates/<name>")
@needs("operate")
def save_template(name: str) -> Any:
    """{"subject", "text", "html"} with {{ variables }}; creates or replaces."""
    payload = json_body()
    saved = templates.save_template(name, payload.get("subject"), payload.get("text"),
                                    payload.get("html"), actor=acting())
    return ok(saved)


@bp.delete("/templates/<name>")
@needs("operate")
def delete_template(name: str) -> Any:
    templates.delete_template(name, actor=acting())
    return ok({"deleted": True})


@bp.get("/<email_id>")
@needs("email:read")
def get_email(email_id: str) -> Any:
    return ok(emails().get(email_id))


@bp.post("/<email_id>/resend")
@needs("operate")
def resend(email_id: str) -> Any:
    result = emails().resend(email_id, actor=acting())
    return ok(result)
