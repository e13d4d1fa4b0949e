"""Email pages: the list, one email (its HTML only inside a sandboxed frame, or as
source), a test email, templates and the suppression list."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, g, redirect, request, url_for

from synthbox.errors import InputError
from synthbox.jobs.service import JOB_ID
from synthbox.mail import templates
from synthbox.mail.models import EMAIL_STATES
from synthbox.mail.service import EmailService
from synthbox.web.ui.base import action, actor, back, page, ui_page

bp = Blueprint("ui_emails", __name__)

# The body of an email is somebody else's HTML: shown only in a frame that may run
# nothing, load nothing from the network, and reach nothing of ours.
BODY_CSP = ("sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
            "frame-ancestors 'self'")


def emails() -> EmailService:
    return current_app.config["SYNTHBOX_EMAILS"]


@bp.get("/emails")
@ui_page("email:read")
def emails_page() -> Any:
    state = request.args.get("state") or None
    before = request.args.get("before", "")
    if before and not JOB_ID.fullmatch(before):
        raise InputError("before", "must be an email id")
    found, cursor = emails().list_emails(state, 50, int(before) if before else None)
    return page("ui/emails.html", emails=found, cursor=cursor, state=state,
                states=EMAIL_STATES)


@bp.get("/emails/<email_id>")
@ui_page("email:read")
def email_page(email_id: str) -> Any:
    return page("ui/email.html", email=emails().get(email_id))


@bp.get("/emails/<email_id>/html")
@ui_page("email:read")
def email_html(email_id: str) -> Any:
    body = emails().get(email_id)["html"] or ""
    response = current_app.make_response((body, 200))
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    response.headers["Content-Security-Policy"] = BODY_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@bp.post("/emails/<email_id>/resend")
@ui_page("operate")
@action
def resend(email_id: str) -> Any:
    emails().resend(email_id, actor=actor())
    flash(f"Email {email_id} is queued again.", "ok")
    return back(url_for("ui_emails.email_page", email_id=email_id))


@bp.route("/emails/compose", methods=["GET", "POST"])
@ui_page("email:send")
def compose() -> Any:
    if request.method == "GET":
        return page("ui/compose.html", form={})
    form = {k: request.form.get(k, "").strip() for k in ("from", "to", "subject", "text")}
    payload = {"to": [a.strip() for a in form["to"].split(",") if a.strip()],
               "subject": form["subject"], "text": form["text"]}
    if form["from"]:
        payload["from"] = form["from"]
    try:
        sent = emails().send(payload, g.user.name)
    except InputError as exc:
        return page("ui/compose.html", 400, form=form, error=str(exc))
    flash(f"Email {sent['id']} is queued.", "ok")
    return redirect(url_for("ui_emails.email_page", email_id=sent["id"]))


@bp.get("/emails/templates")
@ui_page("email:read")
def templates_page() -> Any:
    return page("ui/templates.html", templates=templates.list_templates())


@bp.post("/emails/templates")
@ui_page("operate")
@action
def save_template() -> Any:
    name = request.form.get("name", "").strip()
    fields = [request.form.get(k) or None for k in ("subject", "text", "html")]
    templates.save_template(name, fields[0], fields[1], fields[2], actor=actor())
    flash(f"Template {name} saved.", "ok")
    return back(url_for("ui_emails.templates_page"))


@bp.post("/emails/templates/<name>/delete")
@ui_page("operate")
@action
def delete_template(name: str) -> Any:
    templates.delete_template(name, actor=actor())
    flash(f"Template {name} deleted.", "ok")
    return back(url_for("ui_emails.templates_page"))


@bp.get("/emails/suppressions")
@ui_page("email:read")
def suppressions_page() -> Any:
    return page("ui/suppressions.html", entries=emails().list_suppressions())


@bp.post("/emails/suppressions")
@ui_page("operate")
@action
def suppress() -> Any:
    entry = request.form.get("entry", "").strip()
    emails().suppress(entry, request.form.get("reason", "").strip(), actor=actor())
    flash(f"{entry} is suppressed.", "ok")
    return back(url_for("ui_emails.suppressions_page"))


@bp.post("/emails/suppressions/remove")
@ui_page("operate")
@action
def unsuppress() -> Any:
    entry = request.form.get("entry", "").strip()
    emails().unsuppress(entry, actor=actor())
    flash(f"{entry} may be sent to again.", "ok")
    return back(url_for("ui_emails.suppressions_page"))
