"""Creating, changing and deleting queues at run time: one path for the API, the UI and the
CLI. Each checks the definition, writes the record, applies it here at once (the other
instances within a second) and reports who did it to the audit log."""

from __future__ import annotations

import json
import time
from typing import Any

from peewee import IntegrityError

from synthbox.actors import Actor
from synthbox.config import MASK
from synthbox.errors import Conflict, InputError, NotFound
from synthbox.jobs.engine import Engine
from synthbox.userqueues.catalog import user_queues
from synthbox.userqueues.definitions import check_name, parse_definition
from synthbox.userqueues.models import QueueDefinition

# seconds the API waits for a draining queue to empty, then 409 (ask again): a request
# must answer within any client's timeout (schemathesis gives up after 10 s)
DRAIN_WAIT = 5.0
PENDING = ("waiting", "delayed", "paused", "active")


def masked_table(table: dict[str, Any]) -> dict[str, Any]:
    """A definition as shown: header values and the secret masked, except `${VARIABLE}`s."""
    shown = dict(table)
    if "secret" in shown and not str(shown["secret"]).startswith("${"):
        shown["secret"] = MASK
    if isinstance(shown.get("headers"), dict):
        shown["headers"] = {k: v if isinstance(v, str) and v.startswith("${") else MASK
                            for k, v in shown["headers"].items()}
    if isinstance(shown.get("env"), dict):
        shown["env"] = {k: v if isinstance(v, str) and v.startswith("${") else MASK
                        for k, v in shown["env"].items()}
    return shown


def describe(engine: Engine, name: str) -> dict[str, Any]:
    """A queue as the API and UI show it: where it is defined, its handler, its fields."""
    catalog = user_queues(engine)
    service = engine.service(name)
    source = catalog.source(name)
    found: dict[str, Any] = {"name": name, "source": source or "built-in",
                             "readOnly": source != "api", "paused": service.is_paused()}
    if source == "synthbox.toml":
        table = catalog.configured[name].table
        found.update(handler=table["handler"], definition=masked_table(table))
    elif source == "api":
        row = QueueDefinition.get(QueueDefinition.name == name)
        table = json.loads(row.definition)
        found.update(handler=table.get("handler"), definition=masked_table(table),
                     version=row.version,
                     runningVersion=catalog.versions.get(name))
    return found


def list_definitions(engine: Engine) -> list[dict[str, Any]]:
    return [describe(engine, name) for name in list(engine.queues)]


def _kept_secrets(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A masked value sent back keeps the stored one."""
    merged = dict(new)
    if merged.get("secret") == MASK and "secret" in old:
        merged["secret"] = old["secret"]
    for key in ("headers", "env"):
        if isinstance(merged.get(key), dict) and isinstance(old.get(key), dict):
            merged[key] = {k: old[key].get(k, v) if v == MASK else v
                           for k, v in merged[key].items()}
    return merged


def create(engine: Engine, name: Any, table: Any, actor: Actor) -> dict[str, Any]:
    name = check_name(name)
    definition = parse_definition(name, table)
    user_queues(engine).spec_of(definition)  # options the spec refuses, named
    if name in engine.queues:
        raise Conflict(f"queue: {name!r} exists already"
                       + (" (defined in synthbox.toml)"
                          if user_queues(engine).source(name) == "synthbox.toml" else ""))
    now = time.time()
    try:
        QueueDefinition.create(name=name, definition=json.dumps(definition.table),
                               version=1, created_by=actor.name, created_at=now,
                               updated_at=now)
    except IntegrityError:
        raise Conflict(f"queue: {name!r} exists already") from None
    engine.record(actor, "queue.create", f"queue:{name}", f"handler={definition.kind}")
    user_queues(engine).sync()
    shown = describe(engine, name)
    if definition.kind == "http" and not definition.config.get("secret"):
        shown["signingSecret"] = user_queues(engine).secret(name)  # shown once
    return shown


def _runtime_row(engine: Engine, name: str) -> QueueDefinition:
    row = QueueDefinition.get_or_none(QueueDefinition.name == name)
    if row is not None:
        return row
    source = user_queues(engine).source(name) if name in engine.queues else "missing"
    if source == "missing":
        raise NotFound(f"queue: no queue named {name!r}")
    where = "defined in synthbox.toml; change it there" if source else "built in"
    raise Conflict(f"queue: {name!r} is {where}")


def edit(engine: Engine, name: str, table: Any, actor: Actor,
         merge: bool = False) -> dict[str, Any]:
    """Replace a run-time queue's definition (`merge`: only the fields given change)."""
    row = _runtime_row(engine, name)
    old = json.loads(row.definition)
    if not isinstance(table, dict):
        raise InputError("body", "must be a JSON object")
    new = _kept_secrets(old, {**old, **table} if merge else table)
    new = {k: v for k, v in new.items() if v is not None}
    definition = parse_definition(name, new)
    user_queues(engine).spec_of(definition)
    QueueDefinition.update(definition=json.dumps(definition.table),
                           version=QueueDefinition.version + 1, updated_at=time.time()
                           ).where(QueueDefinition.name == name).execute()
    engine.record(actor, "queue.edit", f"queue:{name}", f"handler={definition.kind}")
    user_queues(engine).sync()
    return describe(engine, name)


def pending_jobs(engine: Engine, name: str) -> int:
    stats = engine.service(name).get_stats()
    return sum(stats[state] for state in PENDING)


def delete(engine: Engine, name: str, actor: Actor, drain: bool = False,
           discard: bool = False, wait: float = DRAIN_WAIT) -> dict[str, Any]:
    """Delete a run-time queue. With jobs waiting: refused, unless `discard` (they are
    deleted) or `drain` (the workers finish them first; up to `wait` seconds). Both: the
    workers get `wait` seconds, then what still waits is deleted."""
    _runtime_row(engine, name)
    pending = pending_jobs(engine, name)
    deadline = time.monotonic() + wait
    while drain and pending and time.monotonic() < deadline:
        time.sleep(0.2)
        pending = pending_jobs(engine, name)
    if pending and not discard:
        raise Conflict(f"queue: {name!r} has {pending} job(s) waiting or running; "
                       + (f"they did not finish within {wait:g} s; ask again" if drain else
                          "drain it (finish them first) or discard them"))
    removed = 0
    if discard:
        service = engine.service(name)
        removed = sum(service.clean(state, 0, 1_000_000)
                      for state in ("waiting", "delayed"))
    QueueDefinition.delete().where(QueueDefinition.name == name).execute()
    engine.record(actor, "queue.delete", f"queue:{name}",
                  f"discarded={removed}" if discard else "")
    user_queues(engine).sync()
    return {"name": name, "deleted": True, "discarded": removed}
