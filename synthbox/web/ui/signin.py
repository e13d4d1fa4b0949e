"""Server-rendered pages: sign-in, first-admin setup and sign-out (the rest of the UI is
in synthbox.web.ui).

Sessions live on the server (synthbox.accounts.sessions); every form carries a CSRF
token and is accepted only from our own origin.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for

from synthbox import __version__
from synthbox.accounts import sessions, users
from synthbox.accounts.models import User
from synthbox.accounts.setup import finish_setup, setup_token_matches
from synthbox.errors import Conflict, InputError, NotAllowed, Throttled
from synthbox.web.security import check_form, safe_next

bp = Blueprint("pages", __name__)

SESSION_COOKIE = "synthbox_session"
FORM_COOKIE = "synthbox_form"  # CSRF token for forms shown before sign-in


def render(template: str, status: int = 200, **context: Any) -> Any:
    return render_template(template, version=__version__, **context), status


def _cookie(response: Any, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="Lax",
                        secure=request.is_secure, path="/")


def signed_in() -> tuple[User, str] | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    return sessions.find_session(cookie) if cookie else None


def _form_page(template: str, status: int = 200, **context: Any) -> Any:
    """A page with a form shown before sign-in: its CSRF token rides in a cookie too."""
    token = request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(32)
    body, code = render(template, status, csrf_token=token, **context)
    response = current_app.make_response((body, code))
    _cookie(response, FORM_COOKIE, token)
    return response


def _signed_in_response(user: User, target: str) -> Any:
    earlier = request.cookies.get(SESSION_COOKIE)
    if earlier:
        sessions.end_session(earlier)  # a sign-in always starts afresh
    cookie, _ = sessions.start_session(user)
    response = redirect(target)
    _cookie(response, SESSION_COOKIE, cookie, max_age=sessions.SESSION_SECONDS)
    response.delete_cookie(FORM_COOKIE, path="/")
    return response


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    target = safe_next(request.args.get("next"))
    if request.method == "GET":
        return _form_page("pages/login.html", next=target)
    check_form(request.cookies.get(FORM_COOKIE))
    name = request.form.get("name", "")
    try:
        user = users.authenticate(name, request.form.get("password", ""),
                                  request.remote_addr or "")
    except Throttled as exc:
        response = _form_page("pages/login.html", 429, next=target, name=name, error=str(exc))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except NotAllowed as exc:
        return _form_page("pages/login.html", 401, next=target, name=name, error=str(exc))
    return _signed_in_response(user, target)


@bp.post("/logout")
def logout() -> Any:
    found = signed_in()
    if found is not None:
        check_form(found[1])
        sessions.end_session(request.cookies[SESSION_COOKIE])
    response = redirect(url_for("pages.login"))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@bp.route("/setup/<token>", methods=["GET", "POST"])
def setup(token: str) -> Any:
    data_path = current_app.config["SYNTHBOX_ENGINE"].data_path
    if not setup_token_matches(data_path, token):
        abort(404)
    if request.method == "GET":
        return _form_page("pages/setup.html")
    check_form(request.cookies.get(FORM_COOKIE))
    name = request.form.get("name", "")
    password = request.form.get("password", "")
    try:
        if password != request.form.get("confirm", ""):
            raise InputError("confirm", "the two passwords differ")
        user = users.create_user(name, password, "admin", actor="setup",
                                 address=request.remote_addr or "")
    except (InputError, Conflict) as exc:
        return _form_page("pages/setup.html", 400, name=name, error=str(exc))
    finish_setup(data_path)
    return _signed_in_response(user, "/")
