"""The records database going away and coming back: a dead connection is dropped and
the next use opens a new one (with backoff while the database stays away), a failed
rollback never hides the error that caused it, and `RecordsHealth` knows whether the
records could be written lately (for /readyz, /metrics and the UI's banner).

PostgreSQL restarted or a backend terminated: psycopg2 keeps the dead connection and
peewee would hand it out for ever ("connection already closed"). SQLite: a full disk
makes SQLite roll the transaction back itself, and peewee's own ROLLBACK then fails with
"cannot rollback - no transaction is active", which used to be the error logged."""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from typing import Any

import peewee

log = logging.getLogger("synthbox.db")

BACKOFF_FIRST = 0.1  # seconds before the next connection attempt after one failed
BACKOFF_MAX = 2.0  # well inside the promise: adds succeed within 5 s of the database's return

# What SQLite and PostgreSQL say when the records cannot be written or reached right now
# (and waiting, not a code change, is the answer).
_OUTAGE_WORDS = (
    "database or disk is full", "disk i/o error", "readonly database", "read-only",
    "unable to open database", "database is locked", "connection already closed",
    "server closed the connection", "terminating connection", "connection refused",
    "could not connect", "connection to server", "no connection to the server",
    "the database system is", "ssl connection has been closed", "connection timed out",
    "records database unreachable", "cannot connect now", "no space left",
    "database system is shutting down",
)


class RecordsUnavailable(peewee.OperationalError):
    """The records database cannot be reached (raised at once while backing off)."""


def outage_cause(exc: BaseException) -> str | None:
    """The cause, in one line, when `exc` means the records database is unreachable or
    cannot be written right now; None for any other error (a bug, a constraint...)."""
    if not isinstance(exc, peewee.OperationalError | peewee.InterfaceError):
        return None
    text = " ".join(str(exc).split()) or type(exc).__name__
    lowered = text.lower()
    if isinstance(exc, RecordsUnavailable) or any(w in lowered for w in _OUTAGE_WORDS):
        return text.removeprefix("records database unreachable: ")
    return None


def is_busy(exc: BaseException) -> bool:
    """SQLite's "database is locked" (or busy): another process or a long write holds it
    past the busy timeout; waiting longer is the answer, not an error."""
    text = str(exc).lower()
    return isinstance(exc, peewee.OperationalError) and ("locked" in text or "busy" in text)


def health_of(db: Any) -> RecordsHealth:
    """The database's RecordsHealth (a database opened some other way gets a fresh one)."""
    health = getattr(db, "health", None)
    if not isinstance(health, RecordsHealth):
        health = RecordsHealth()
        db.health = health
    return health


class RecordsHealth:
    """Could the records be written lately? Logs one line when they go, one when back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.up = True
        self.cause = ""
        self.down_since: float | None = None
        self.unreachable = False  # down because no connection could be made (not a write)
        self.waiting: Any = lambda: 0  # the outcomes held in memory (set by the engine)

    def failed(self, cause: str, unreachable: bool = False) -> None:
        with self._lock:
            was_up, self.up, self.cause = self.up, False, cause
            self.unreachable = unreachable
            if was_up:
                self.down_since = time.time()
        if was_up:
            log.warning("records database unreachable: %s", cause)

    def ok(self, connected_only: bool = False) -> None:
        """A write succeeded (or, `connected_only`, a connection was made after the
        failures were all failures to connect)."""
        if self.up or (connected_only and not self.unreachable):
            return
        with self._lock:
            if self.up:
                return
            self.up, since = True, self.down_since or time.time()
        log.warning("records database reachable again after %.1f s (%d job outcome(s) "
                    "waiting to be written)", time.time() - since, self.waiting())

    def describe(self) -> str:
        return "ok" if self.up else f"unreachable: {self.cause}"


class Reconnecting(peewee.Database):
    """Mixed into the records database classes (see database.py)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.health = RecordsHealth()
        self._retry_at = 0.0
        self._backoff = BACKOFF_FIRST
        self._backoff_lock = threading.Lock()
        self._local = threading.local()

    def connect(self, reuse_if_open: bool = False) -> bool:
        with self._backoff_lock:
            if time.monotonic() < self._retry_at:
                self._local.connect_failed = True
                raise RecordsUnavailable(f"records database unreachable: {self.health.cause}")
        try:
            opened = bool(super().connect(reuse_if_open))
        except Exception as exc:
            with self._backoff_lock:
                self._retry_at = time.monotonic() + self._backoff
                self._backoff = min(self._backoff * 2, BACKOFF_MAX)
            self.health.failed(" ".join(str(exc).split()) or type(exc).__name__,
                               unreachable=True)
            self._local.connect_failed = True  # noted as such: _note() leaves it
            raise
        self._backoff = BACKOFF_FIRST
        self._local.connect_failed = False
        self.health.ok(connected_only=True)
        return opened

    def connection_dead(self) -> bool:
        """This thread's connection, open, that can no longer be used."""
        state: Any = getattr(self, "_state")  # noqa: B009 - peewee's, untyped
        conn = state.conn
        if state.closed or conn is None:
            return False
        if getattr(conn, "closed", 0):  # psycopg2: 1 closed here, 2 lost
            return True
        fileno = getattr(conn, "fileno", None)
        if fileno is None:
            return False
        try:
            # Idle, a PostgreSQL connection has nothing to read unless the server sent
            # its goodbye (restart, pg_terminate_backend) or closed the socket.
            return bool(select.select([fileno()], [], [], 0)[0])
        except Exception:  # OSError, or psycopg2's InterfaceError: closed
            return True

    def discard_connection(self) -> None:
        """Drop this thread's connection (outside a transaction): the next use opens one."""
        state: Any = getattr(self, "_state")  # noqa: B009 - peewee's, untyped
        try:
            if state.conn is not None:
                state.conn.close()
        except Exception as exc:
            log.debug("closing a dead records connection: %s", exc)
        state.reset()

    def begin(self, *args: Any, **kwargs: Any) -> None:
        if self.connection_dead():
            self.discard_connection()
        self._local.flag = False
        try:
            super().begin(*args, **kwargs)
        except Exception as exc:
            if not self.connection_dead():
                self._note(exc)
                raise
            self.discard_connection()  # BEGIN is safe to send again, on a new connection
            super().begin(*args, **kwargs)

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        outside = self.transaction_depth() == 0
        if outside and self.connection_dead():
            self.discard_connection()
        reads = sql.lstrip()[:6].upper() == "SELECT"
        try:
            cursor = super().execute_sql(sql, params)
        except Exception as exc:
            if not (outside and self.connection_dead()):
                self._note(exc)
                raise
            self.discard_connection()
            if not reads:  # a write may have reached the server: the caller decides
                self._note(exc)
                raise
            cursor = super().execute_sql(sql, params)  # the connection was gone already
        if not reads:
            if outside:
                self.health.ok()
            else:
                self._local.flag = True
        return cursor

    def commit(self) -> None:
        try:
            super().commit()
        except Exception as exc:
            self._note(exc)
            raise
        if getattr(self._local, "flag", False):
            self._local.flag = False
            self.health.ok()

    def rollback(self) -> None:
        """Never raises: a rollback runs because something failed, and that error is the
        one to report. A connection that cannot roll back is dropped."""
        try:
            super().rollback()
        except Exception as exc:
            log.debug("rollback after an error failed too (%s)", exc)
            if self.transaction_depth() == 0 and (
                    self.connection_dead() or isinstance(self, peewee.PostgresqlDatabase)):
                self.discard_connection()

    def _note(self, exc: BaseException) -> None:
        if getattr(self._local, "connect_failed", False):  # noted as such by connect()
            self._local.connect_failed = False
            return
        cause = outage_cause(exc)
        if cause is not None and not is_busy(exc):
            self.health.failed(cause)


MIN_FREE_BYTES = 64 * 1024  # less than this on SQLite's file system: a write cannot be sure
_PROBE = "UPDATE schema_migration SET applied_at=applied_at WHERE name=?"


def records_problem(db: Any) -> str | None:
    """Why the records cannot be written right now ("unreachable: ...", "unwritable:
    ..."), or None. For /readyz: a query that reads, the file system under SQLite, and,
    after a write failed, a small real write to learn whether writes work again."""
    health: RecordsHealth | None = getattr(db, "health", None)
    postgres = isinstance(db, peewee.PostgresqlDatabase)
    try:
        row = db.execute_sql("SELECT current_setting('transaction_read_only')" if postgres
                             else "SELECT 1").fetchone()
    except Exception as exc:
        return f"unreachable: {outage_cause(exc) or ' '.join(str(exc).split())}"
    if postgres and row and row[0] == "on":
        return "unwritable: the server is read-only (a standby, or default_transaction_read_only)"
    if not postgres:
        problem = _file_system_problem(str(db.database))
        if problem:
            return problem
    if health is not None and not health.up:
        try:
            with db.atomic():  # the row is written as it was: a real write, nothing changed
                db.execute_sql(_PROBE.replace("?", "%s") if postgres else _PROBE,
                               ("jobs.schema",))
        except Exception as exc:
            return f"unwritable: {outage_cause(exc) or ' '.join(str(exc).split())}"
    return None


def _file_system_problem(path: str) -> str | None:
    directory = os.path.dirname(os.path.abspath(path)) or "."
    try:
        stat = os.statvfs(directory)
    except OSError as exc:
        return f"unreachable: {exc}"
    if stat.f_flag & os.ST_RDONLY:
        return f"unwritable: read-only file system ({directory})"
    free = (stat.f_bfree if os.geteuid() == 0 else stat.f_bavail) * stat.f_frsize
    if free < MIN_FREE_BYTES:
        return f"unwritable: database or disk is full ({free} bytes free in {directory})"
    if not os.access(path if os.path.exists(path) else directory, os.W_OK):
        return f"unwritable: {path} is not writable by this process"
    return None
