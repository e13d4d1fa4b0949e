"""The user queues of one engine: those of the settings file, and those defined at run time
(records shared by every instance, applied here within a second of any change).

`UserQueues.sync()` compares the records' versions with what this engine runs and adds,
replaces or removes queues (`Engine.add_queue`, `replace_queue`, `remove_queue`); every
instance runs it as a periodic task, and the instance that took a change at once.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

from synthbox.errors import InputError
from synthbox.jobs.engine import Engine
from synthbox.jobs.periodic import Periodic
from synthbox.jobs.spec import QueueSpec
from synthbox.outbound import allowed_networks
from synthbox.userqueues.definitions import KINDS, Definition, parse_definition
from synthbox.userqueues.kinds import build_spec
from synthbox.userqueues.models import QueueDefinition, QueueSecret

log = logging.getLogger("synthbox.userqueues")

SYNC_EVERY = 1.0  # seconds: a change reaches every running instance within about this
_BY_ENGINE: weakref.WeakKeyDictionary[Engine, UserQueues] = weakref.WeakKeyDictionary()


def split_config(tables: Mapping[str, Any],
                 builtin: set[str]) -> tuple[dict[str, Any], list[Definition]]:
    """The settings file's `[queues.NAME]` tables: options of built-in queues, and user
    queues (checked here, so a bad one stops the start naming its field)."""
    overrides: dict[str, Any] = {}
    definitions = []
    for name, table in tables.items():
        if name in builtin and not (isinstance(table, Mapping) and "handler" in table):
            overrides[name] = table
        elif name in builtin:
            raise InputError(f"queues.{name}.handler", "a built-in queue keeps its own "
                                                       "handler; choose another name")
        elif isinstance(table, Mapping) and "handler" not in table:
            raise InputError(f"queues.{name}.handler",
                             f"required for a queue of your own: one of {', '.join(KINDS)} "
                             f"(the built-in queues are {', '.join(sorted(builtin))})")
        else:
            definitions.append(parse_definition(name, table))
    return overrides, definitions


class UserQueues:
    def __init__(self, engine: Engine, configured: list[Definition]):
        self.engine = engine
        self.allow = allowed_networks(engine.settings)
        self.configured = {d.name: d for d in configured}
        self.versions: dict[str, int] = {}  # queues from the records applied here
        self.definitions: dict[str, Definition] = dict(self.configured)  # what runs here
        self._lock = threading.Lock()
        _BY_ENGINE[engine] = self
        for definition in configured:
            engine.add_queue(self.spec_of(definition))
        self.sync()

    def secret(self, name: str) -> str:
        """The queue's signing secret, made once and shared by every instance."""
        row = QueueSecret.get_or_none(QueueSecret.name == name)
        if row is None:
            QueueSecret.insert(name=name, secret=secrets.token_urlsafe(32),
                               created_at=time.time()).on_conflict_ignore().execute()
            row = QueueSecret.get(QueueSecret.name == name)
        return str(row.secret)

    def spec_of(self, definition: Definition) -> QueueSpec:
        return build_spec(definition, self.secret, self.allow)

    def source(self, name: str) -> str | None:
        """Where a user queue is defined ("synthbox.toml" or "api"); None: built in."""
        if name in self.configured:
            return "synthbox.toml"
        return "api" if name in self.versions else None

    def sync(self) -> None:
        """Apply the records' definitions to this engine."""
        with self._lock:
            rows: list[tuple[str, int, str]] = [
                (row.name, row.version, row.definition) for row in QueueDefinition.select(
                    QueueDefinition.name, QueueDefinition.version, QueueDefinition.definition)]
            for name, version, text in rows:
                if self.versions.get(name) == version:
                    continue
                if name not in self.versions and name in self.engine.queues:
                    continue  # a built-in or settings-file queue has the name
                self._apply(name, version, text)
            for name in set(self.versions) - {row[0] for row in rows}:
                del self.versions[name]
                self.definitions.pop(name, None)
                self.engine.remove_queue(name)
                log.info("queue %s removed", name)

    def _apply(self, name: str, version: int, text: str) -> None:
        try:
            definition = parse_definition(name, json.loads(text))
            spec = self.spec_of(definition)
        except (InputError, ValueError) as exc:
            log.error("queue %s: its definition is refused: %s", name, exc)
            self.versions[name] = version
            return
        if name in self.versions:
            self.engine.replace_queue(spec)
            log.info("queue %s changed (version %d)", name, version)
        else:
            self.engine.add_queue(spec)
            log.info("queue %s added (version %d)", name, version)
        self.versions[name] = version
        self.definitions[name] = definition

    def periodic(self) -> Periodic:
        return Periodic("queue-definitions", SYNC_EVERY, self.sync)


def user_queues(engine: Engine) -> UserQueues:
    """The user queues of an engine assembled by synthbox/app.py."""
    found = _BY_ENGINE.get(engine)
    if found is None:
        found = UserQueues(engine, [])
    return found
