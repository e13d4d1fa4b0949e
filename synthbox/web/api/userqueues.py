"""/api/v1/queues: define, change and delete queues at run time (admins, audited). The body
is the queue's definition, the same fields as a `[queues.NAME]` table of synthbox.toml."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request

from synthbox.errors import InputError
from synthbox.jobs.engine import Engine
from synthbox.userqueues import manage, triggers
from synthbox.userqueues.catalog import user_queues
from synthbox.web.api.auth import acting, authenticate_api_request, needs
from synthbox.web.errors import ok
from synthbox.web.requests import json_body

bp = Blueprint("queues_api", __name__, url_prefix="/api/v1/queues")
bp.before_request(authenticate_api_request)
hooks_bp = Blueprint("queue_hooks_api", __name__, url_prefix="/api/v1/queues")


def engine() -> Engine:
    return current_app.config["SYNTHBOX_ENGINE"]


def _flag(name: str) -> bool:
    value = request.args.get(name, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise InputError(name, "must be true or false")
    return value in ("true", "1")


@bp.post("")
@needs("admin")
def create_queue() -> Any:
    body = json_body()
    table = {key: value for key, value in body.items() if key != "name"}
    return ok(manage.create(engine(), body.get("name"), table, acting()), 201)


@bp.get("/<name>")
@needs("read")
def show_queue(name: str) -> Any:
    return ok(manage.describe(engine(), name))


@bp.put("/<name>")
@needs("admin")
def replace_queue(name: str) -> Any:
    body = json_body()
    if body.get("name", name) != name:
        raise InputError("name", "must be the queue's name in the path (a queue cannot be "
                                 "renamed)")
    table = {key: value for key, value in body.items() if key != "name"}
    return ok(manage.edit(engine(), name, table, acting()))


@bp.delete("/<name>")
@needs("admin")
def delete_queue(name: str) -> Any:
    return ok(manage.delete(engine(), name, acting(), drain=_flag("drain"),
                            discard=_flag("discard")))


@hooks_bp.post("/<name>/webhook")
def receive_webhook(name: str) -> Any:
    """A signed delivery to a queue with a `webhook` (public: the signature is the
    credential); its body becomes the job's data, or what the definition picks from it."""
    found = user_queues(engine()).definitions.get(name)
    headers = {key.lower(): value for key, value in request.headers.items()}
    answer = triggers.receive(engine().service(name),
                              None if found is None else found.config.get("webhook"),
                              headers, request.get_data(cache=True))
    return ok(answer)
