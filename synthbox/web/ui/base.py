"""What every UI page shares: the signed-in user and what they may do, rendering,
messages carried across a redirect, and actions whose bad input becomes a message."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import (
    flash,
    g,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    url_for,
)

from synthbox import __version__
from synthbox.accounts.principal import for_user
from synthbox.actors import Actor
from synthbox.errors import Conflict, InputError, NotFound
from synthbox.web.security import check_form, safe_next
from synthbox.web.ui.signin import signed_in


def ui_page(permission: str = "read") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A page or action for a signed-in user with `permission`; a POST also needs the
    session's CSRF token from our own origin. Not signed in: to the sign-in page."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            found = signed_in()
            if found is None:
                return redirect(url_for("pages.login",
                                        next=request.full_path.rstrip("?")))
            g.user, g.csrf_token = found
            g.principal = for_user(g.user.name, g.user.role, g.user.id)
            if request.method == "POST":
                check_form(g.csrf_token)
            g.principal.require(permission)
            return view(*args, **kwargs)

        guarded.permission = permission  # type: ignore[attr-defined]
        return guarded

    return decorate


def actor() -> Actor:
    """Who is acting on this page, and from where, for the services' audit lines."""
    return Actor(g.user.name, request.remote_addr or "")


def page(template: str, status: int = 200, **context: Any) -> Any:
    context.setdefault("back_to", None)
    return render_template(template, version=__version__, user=g.user,
                           csrf_token=g.csrf_token, can=g.principal.can,
                           messages=get_flashed_messages(with_categories=True),
                           **context), status


def back(default: str) -> Any:
    """Redirect to the form's `back` field (a path on this site), else to `default`."""
    return redirect(safe_next(request.form.get("back")) if request.form.get("back")
                    else default)


def action(view: Callable[..., Any]) -> Callable[..., Any]:
    """A form action: bad input, a clash or a missing record becomes a message on the page
    it redirects back to (the action changes nothing then)."""

    @wraps(view)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except (InputError, Conflict, NotFound) as exc:
            flash(str(exc), "error")
            return back("/")

    return run


def form_json(name: str) -> Any:
    """A form field holding JSON; a message naming it when it does not parse."""
    raw = request.form.get(name, "").strip()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(name, f"must be JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise InputError(name, "must be JSON (nested too deeply)") from None


def when(milliseconds: int | None) -> dict[str, str] | None:
    """A time for a <time> element: ISO for the browser, and UTC text without JavaScript."""
    if milliseconds is None:
        return None
    moment = datetime.datetime.fromtimestamp(milliseconds / 1000, datetime.UTC)
    return {"iso": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "text": moment.strftime("%Y-%m-%d %H:%M:%S UTC")}


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
