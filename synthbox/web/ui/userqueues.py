"""Queues of your own in the browser: a form to define one, to change one defined at run
time, and to delete it. Queues of synthbox.toml (and the built-in ones) are shown, not
changed. A refused definition comes back on the form, with the field named."""

from __future__ import annotations

import shlex
from typing import Any

from flask import Blueprint, current_app, flash, redirect, request, url_for

from synthbox.errors import Conflict, InputError
from synthbox.jobs.engine import Engine
from synthbox.userqueues import manage
from synthbox.userqueues.definitions import KINDS
from synthbox.web.ui.base import action, actor, back, page, pretty, ui_page

bp = Blueprint("ui_userqueues", __name__)
TEXT_FIELDS = ("url", "secret", "cwd", "user", "function", "isolation", "timeout",
               "description")
WHOLE_FIELDS = ("concurrency", "attempts")


def engine() -> Engine:
    return current_app.config["SYNTHBOX_ENGINE"]


def _whole(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise InputError(name, "must be a whole number") from None


def _lines(raw: str, label: str) -> dict[str, str]:
    """`Name: value` lines as a table."""
    table = {}
    for line in raw.splitlines():
        if line.strip():
            name, sep, value = line.partition(":")
            if not sep:
                raise InputError(label, "one `Name: value` a line")
            table[name.strip()] = value.strip()
    return table


def form_definition(form: Any) -> dict[str, Any]:
    """The definition the form's filled fields make (the fields of [queues.NAME])."""
    kind = form.get("handler", "")
    table: dict[str, Any] = {"handler": kind}
    for key in TEXT_FIELDS:
        if form.get(key, "").strip():
            table[key] = form[key].strip()
    for key in WHOLE_FIELDS:
        if form.get(key, "").strip():
            table[key] = _whole(key, form[key].strip())
    if kind == "http":
        table["allow_loopback"] = form.get("allow_loopback") == "on"
    if form.get("headers", "").strip():
        table["headers"] = _lines(form["headers"], "headers")
    if form.get("command", "").strip():
        try:
            table["command"] = shlex.split(form["command"])
        except ValueError as exc:
            raise InputError("command", f"cannot be split into words ({exc})") from None
    for key in ("env", "python_path"):
        items = [item.strip() for item in form.get(key, "").split(",") if item.strip()]
        if items:
            table[key] = items
    if form.get("backoff_type") or form.get("backoff_delay", "").strip():
        table["backoff"] = {k: v for k, v in (("type", form.get("backoff_type")),
                                              ("delay", form.get("backoff_delay", "").strip()))
                            if v}
    if form.get("rate_limit_max", "").strip():
        table["rate_limit"] = {"max": _whole("rate_limit_max", form["rate_limit_max"]),
                               "per": form.get("rate_limit_per", "").strip() or "1s"}
    return {key: value for key, value in table.items() if key in KIND_FIELDS.get(kind, ())
            or key not in ALL_KIND_FIELDS}


KIND_FIELDS = {"http": ("url", "headers", "secret", "allow_loopback"),
               "command": ("command", "cwd", "env", "user"),
               "python": ("function", "python_path", "isolation"), "remote": ()}
ALL_KIND_FIELDS = {field for fields in KIND_FIELDS.values() for field in fields}


def _form(found: dict[str, Any] | None, status: int = 200, error: InputError | Conflict |
          None = None, values: dict[str, Any] | None = None) -> Any:
    return page("ui/queue_definition.html", status, found=found, kinds=KINDS,
                error=error, bad_field=getattr(error, "field", "").rpartition(".")[2],
                values=values or {}, pretty=pretty)


def _values(table: dict[str, Any]) -> dict[str, Any]:
    """A definition as the form's fields show it."""
    values = {k: v for k, v in table.items() if not isinstance(v, dict | list)}
    values["headers"] = "\n".join(f"{k}: {v}" for k, v in (table.get("headers") or {}).items())
    values["command"] = shlex.join(table.get("command") or [])
    for key in ("env", "python_path"):
        item = table.get(key) or []
        values[key] = ", ".join(item) if isinstance(item, list) else item
    backoff, rate = table.get("backoff") or {}, table.get("rate_limit") or {}
    values.update(backoff_type=backoff.get("type", ""), backoff_delay=backoff.get("delay", ""),
                  rate_limit_max=rate.get("max", ""), rate_limit_per=rate.get("per", ""))
    return values


@bp.get("/queues/new")
@ui_page("admin")
def new_queue() -> Any:
    return _form(None, values={"handler": "http"})


@bp.post("/queues/new")
@ui_page("admin")
def create_queue() -> Any:
    name = request.form.get("name", "").strip()
    try:
        made = manage.create(engine(), name, form_definition(request.form), actor())
    except (InputError, Conflict) as exc:
        return _form(None, 400, exc, {"name": name, **request.form.to_dict()})
    message = f"Queue {name} created; every instance runs it within 2 s."
    if made.get("signingSecret"):
        message += f" Its signing secret (shown once): {made['signingSecret']}"
    flash(message, "ok")
    return redirect(url_for("ui_userqueues.definition", name=name))


@bp.get("/queues/<name>/definition")
@ui_page()
def definition(name: str) -> Any:
    found = manage.describe(engine(), name)
    return _form(found, values=_values(found.get("definition") or {}))


@bp.post("/queues/<name>/definition")
@ui_page("admin")
def edit_queue(name: str) -> Any:
    found = manage.describe(engine(), name)
    try:
        manage.edit(engine(), name, form_definition(request.form), actor())
    except (InputError, Conflict) as exc:
        return _form(found, 400, exc, request.form.to_dict())
    flash(f"Queue {name} changed; every instance uses it within 2 s.", "ok")
    return redirect(url_for("ui_userqueues.definition", name=name))


@bp.post("/queues/<name>/delete")
@ui_page("admin")
@action
def delete_queue(name: str) -> Any:
    mode = request.form.get("mode", "")
    done = manage.delete(engine(), name, actor(), drain=mode == "drain",
                         discard=mode == "discard")
    flash(f"Queue {name} deleted" + (f", {done['discarded']} job(s) discarded."
                                     if mode == "discard" else "."), "ok")
    return back(url_for("ui_queues.dashboard"))
