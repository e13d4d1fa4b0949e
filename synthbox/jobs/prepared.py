"""One statement that PostgreSQL parses and plans once per connection (PREPARE, then
EXECUTE), for the single add: its commit is most of its time, and parsing and planning
its INSERT were about a tenth (pgbench on this machine: 0.41 ms sent whole, 0.36 ms
prepared).

psycopg2 has no prepared statements of its own, so this uses SQL's. A connection that
loses its statement (a pooler that hands out server connections per transaction, or
DISCARD ALL) answers "does not exist"; the caller then sends the statement whole, and the
next use prepares it again. After LOSSES_TO_GIVE_UP losses, it is sent whole for good."""

from __future__ import annotations

import itertools
import logging
import re
import weakref
from typing import Any

from peewee import Database

log = logging.getLogger(__name__)

LOSSES_TO_GIVE_UP = 3
_DOES_NOT_EXIST = "26000"  # invalid_sql_statement_name
_ALREADY_THERE = "42P05"  # duplicate_prepared_statement


def pgcode(exc: BaseException) -> str | None:
    """PostgreSQL's error code of `exc` (psycopg2's, or peewee's wrapping of it)."""
    for candidate in (exc, getattr(exc, "orig", None)):
        code = getattr(candidate, "pgcode", None)
        if code:
            return str(code)
    return None


class Prepared:
    def __init__(self, db: Database, name: str, sql: str, count: int):
        """`sql` with `count` ? placeholders, the statement to prepare as `name`."""
        numbers = itertools.count(1)
        self.db = db
        self._prepare = f"PREPARE {name} AS " + re.sub(r"\?", lambda _: f"${next(numbers)}",
                                                      sql)
        self._execute = f"EXECUTE {name} ({', '.join(['%s'] * count)})"
        self._ready: weakref.WeakSet[Any] = weakref.WeakSet()  # connections prepared
        self._losses = 0
        self.enabled = True

    def statement(self) -> str | None:
        """The EXECUTE to send on this thread's connection, prepared there first if need
        be; None outside autocommit (an error would abort the caller's transaction) or
        once given up: send the statement whole."""
        if not self.enabled or self.db.in_transaction():
            return None
        if self.db.connection() not in self._ready:
            try:
                self.db.execute_sql(self._prepare)
            except Exception as exc:
                if pgcode(exc) != _ALREADY_THERE:
                    raise
            self._ready.add(self.db.connection())
        return self._execute

    def lost(self, exc: BaseException) -> bool:
        """Whether `exc`, raised by the EXECUTE, says the connection lost the statement
        (then send it whole: nothing was done)."""
        if pgcode(exc) != _DOES_NOT_EXIST:
            return False
        self._ready = weakref.WeakSet()
        self._losses += 1
        if self._losses >= LOSSES_TO_GIVE_UP and self.enabled:
            self.enabled = False
            log.info("prepared statements do not last on this database's connections "
                     "(a pooler in transaction mode?): single adds are sent whole")
        return True
