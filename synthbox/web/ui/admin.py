"""Admin pages: users, API tokens (a new one shown once), the audit log, and the
effective settings (passwords in URLs masked)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, g, request, url_for

from synthbox.accounts import audit, tokens, users
from synthbox.accounts.principal import SCOPES
from synthbox.config import MASK, SETTINGS, masked
from synthbox.errors import InputError, NotFound
from synthbox.jobs.service import JOB_ID
from synthbox.jobs.spec import NOT_OPTIONS
from synthbox.web.ui.base import action, actor, back, page, ui_page

bp = Blueprint("ui_admin", __name__)


@bp.get("/users")
@ui_page("admin")
def users_page() -> Any:
    found, _ = users.list_users(1000)
    return page("ui/users.html", users=found)


@bp.post("/users")
@ui_page("admin")
@action
def create_user() -> Any:
    name = request.form.get("name", "").strip()
    if request.form.get("password") != request.form.get("confirm"):
        raise InputError("confirm", "the two passwords differ")
    users.create_user(name, request.form.get("password"), request.form.get("role"), *actor())
    flash(f"User {name} created.", "ok")
    return back(url_for("ui_admin.users_page"))


@bp.post("/users/<name>/disable")
@ui_page("admin")
@action
def toggle_user(name: str) -> Any:
    user = users.get_user(name)
    if user.id == g.user.id:
        raise InputError("name", "you cannot disable yourself")
    users.set_disabled(user, not user.disabled, *actor())
    flash(f"User {name} is {'disabled' if not user.disabled else 'enabled'}.", "ok")
    return back(url_for("ui_admin.users_page"))


@bp.get("/tokens")
@ui_page("admin")
def tokens_page() -> Any:
    found, _ = tokens.list_tokens(1000)
    return page("ui/tokens.html", tokens=found, scopes=SCOPES, new_token=None)


@bp.post("/tokens")
@ui_page("admin")
@action
def create_token() -> Any:
    """The token is on the page this answers, once; only its hash is kept."""
    token, value = tokens.create_token(request.form.get("name", "").strip(),
                                       request.form.getlist("scopes"), *actor())
    found, _ = tokens.list_tokens(1000)
    body, status = page("ui/tokens.html", tokens=found, scopes=SCOPES,
                        new_token={"name": token.name, "value": value})
    response = current_app.make_response((body, status))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/tokens/<name>/revoke")
@ui_page("admin")
@action
def revoke_token(name: str) -> Any:
    if not tokens.revoke_token(name, *actor()):
        raise NotFound(f"token: no active token named {name!r}")
    flash(f"Token {name} revoked.", "ok")
    return back(url_for("ui_admin.tokens_page"))


@bp.get("/audit")
@ui_page("admin")
def audit_page() -> Any:
    before = request.args.get("before", "")
    if before and not JOB_ID.fullmatch(before):
        raise InputError("before", "must be an entry id")
    entries, cursor = audit.entries(100, int(before) if before else None)
    return page("ui/audit.html", entries=entries, cursor=cursor)


@bp.get("/settings")
@ui_page("admin")
def settings_page() -> Any:
    engine = current_app.config["SYNTHBOX_ENGINE"]
    settings = engine.settings
    rows = [{"name": s.name, "value": (MASK if s.secret and settings.values[s.name]
                                        else masked(settings.values[s.name])),
             "source": settings.sources.get(s.name, "default"), "help": s.help}
            for s in SETTINGS]
    queues = [{"name": spec.name, "options": {k: v for k, v in vars(spec).items()
                                              if k not in NOT_OPTIONS}}
              for spec in engine.registry]
    return page("ui/settings.html", rows=rows, queues=queues,
                config_file=settings.config_file, data_path=engine.data_path)
