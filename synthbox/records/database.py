"""Open the records database from a URL, and bring its schema up to date."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

from peewee import Database, Model, PostgresqlDatabase, SqliteDatabase

from synthbox.config import SettingsError
from synthbox.records import counts
from synthbox.records.models import (
    MODELS,
    JobHistogram,
    QueueMinute,
    SchemaMigration,
    SchemaVersion,
    database,
)
from synthbox.records.outage import Reconnecting

log = logging.getLogger("synthbox.db")

SQLITE_PRAGMAS = (
    ("journal_mode", "wal"),
    ("synchronous", "normal"),
    ("busy_timeout", 10000),
    ("cache_size", -16000),
    ("temp_store", "memory"),
    # SqliteRecords checkpoints in a thread of its own; SQLite's own checkpoint, in the
    # commit that finds the WAL past this many pages, is only the fallback (a process
    # whose writes are all outside transactions never starts that thread)
    ("wal_autocheckpoint", 10000),
)
CHECKPOINT_EVERY = 0.25  # seconds, while there are commits to fold in
CHECKPOINTER_IDLE = 5.0  # seconds without a commit before the checkpoint thread ends


class SqliteRecords(Reconnecting, SqliteDatabase):
    """SQLite with this process's writers in line on a Python lock.

    Every transaction begins IMMEDIATE, taking SQLite's write lock at BEGIN; queued on a
    Python lock, the next writer begins the moment the last commits (SQLite's busy handler
    sleeps past it). Other processes (cluster mode) still meet SQLite's own lock.

    WAL checkpoints run passively in a thread of their own, not inside whichever commit
    finds the WAL long. benchmarks/README.md has the measurements behind both.
    A failed rollback never hides the error before it (outage.py)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._writer = threading.Lock()
        self._holds_writer = threading.local()
        self._committed = threading.Event()
        self._closing = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self._checkpointer_lock = threading.Lock()

    def begin(self, lock_type: str | None = None) -> None:
        # past the busy timeout, go on to SQLite, which then says it is locked
        held = self._writer.acquire(timeout=self.timeout)
        try:
            super().begin(lock_type)
        except BaseException:
            if held:
                self._writer.release()
            raise
        self._holds_writer.held = held

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._release_writer()
        self._committed.set()
        self._start_checkpointer()

    def _start_checkpointer(self) -> None:
        with self._checkpointer_lock:
            if self._checkpointer is None:
                self._checkpointer = threading.Thread(
                    target=self._checkpoint_loop, name="sqlite-checkpoint", daemon=True)
                self._checkpointer.start()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._release_writer()

    def _release_writer(self) -> None:
        if getattr(self._holds_writer, "held", False):
            self._holds_writer.held = False
            self._writer.release()

    def close(self) -> bool:
        """This thread's connection. Called from another thread than the checkpoint
        thread's, that one ends first: nothing opens the files after an engine closes
        (a test or a bench then deletes its directory)."""
        with self._checkpointer_lock:  # a commit may be starting it: wait until it has
            checkpointer = self._checkpointer
        if checkpointer is not None and checkpointer is not threading.current_thread():
            self._closing.set()
            checkpointer.join(10)
            self._closing.clear()
        return bool(super().close())

    def _checkpoint_loop(self) -> None:
        try:
            self._checkpoint_until_idle()
        except BaseException:
            with self._checkpointer_lock:  # the next commit starts another
                self._checkpointer = None
            raise
        finally:
            super().close()  # this thread's connection

    def _checkpoint_until_idle(self) -> None:
        """Fold the WAL into the database file while commits come in; end when idle."""
        idle_since = time.monotonic()
        while not self._closing.wait(CHECKPOINT_EVERY):
            if self._committed.is_set():
                self._committed.clear()
                idle_since = time.monotonic()
                try:
                    self.execute_sql("PRAGMA wal_checkpoint(PASSIVE)")
                except Exception as exc:  # busy or closed: the next turn tries again
                    log.debug("WAL checkpoint skipped: %s", exc)
                continue
            with self._checkpointer_lock:  # decided under the lock commits start it under
                if (not self._committed.is_set()
                        and time.monotonic() - idle_since >= CHECKPOINTER_IDLE):
                    self._checkpointer = None
                    return
        with self._checkpointer_lock:
            self._checkpointer = None


def open_database(url: str, data_path: Path) -> Database:
    """The records database: `url` when given (PostgreSQL), else SQLite in `data_path`."""
    if url and not url.startswith("sqlite"):
        if not url.startswith(("postgres://", "postgresql://")):
            raise SettingsError(
                "database_url: must start with postgresql:// (or be empty for SQLite)")
        db: Database = _postgres(url)
    else:
        path = url.split("///", 1)[1] if url.startswith("sqlite") else str(
            data_path / "synthbox.db")
        # IMMEDIATE: a transaction takes the write lock at BEGIN, so two processes never
        # deadlock upgrading read locks; busy_timeout makes the other one wait its turn.
        db = SqliteRecords(path, pragmas=SQLITE_PRAGMAS, timeout=10, lock_type="IMMEDIATE")
    database.initialize(db)
    return db


class PostgresRecords(Reconnecting, PostgresqlDatabase):
    """PostgreSQL whose dead connections are dropped and opened again (outage.py)."""


def _postgres(url: str) -> PostgresqlDatabase:
    """`postgresql://user:password@host:port/name?option=value`, read as playhouse.db_url
    reads it (the options last, "true", "false", "none" and numbers converted) without
    importing playhouse's every other backend (0.6 MB); user and password are
    percent-decoded, as libpq decodes its own URLs."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise SettingsError("database_url: the port must be a number") from None
    params: dict[str, Any] = {"database": parts.path[1:]}
    for key, value in (("user", parts.username), ("password", parts.password),
                       ("host", parts.hostname), ("port", port)):
        if value:
            params[key] = unquote(value) if isinstance(value, str) else value
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        params[key] = _url_option(value)
    name = params.pop("database")
    if not name:
        raise SettingsError("database_url: names no database (postgresql://host/name)")
    return PostgresRecords(name, **params)


def _url_option(value: str) -> Any:
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    if value.isdigit():
        return int(value)
    whole, dot, fraction = value.partition(".")
    if dot and whole.isdigit() and fraction.isdigit():
        return float(value)
    return value


def describe(db: Database) -> str:
    if isinstance(db, PostgresqlDatabase):
        params = db.connect_params
        return f"PostgreSQL {params.get('host', 'localhost')}/{db.database}"
    return f"SQLite {db.database}"


class Migration(NamedTuple):
    """One step of a schema: `name` ("owner.what") is recorded once it is applied."""

    name: str
    apply: Callable[[Database], None]


def tables_step(name: str, models: Sequence[type[Model]]) -> Migration:
    """A step that makes these tables (one already there is left as it is)."""
    return Migration(name, lambda db: db.create_tables(models, safe=True))


def _create_schema(db: Database) -> None:
    db.create_tables(MODELS, safe=True)
    db.execute_sql(
        "CREATE INDEX IF NOT EXISTS job_claim ON job (queue, status, priority DESC, run_at, id)")
    db.execute_sql(
        "CREATE INDEX IF NOT EXISTS job_finished ON job (queue, status, finished_at)")
    db.execute_sql("CREATE INDEX IF NOT EXISTS job_lease ON job (status, lease_until)")
    db.execute_sql("CREATE INDEX IF NOT EXISTS job_owner ON job (owner, status)")
    db.execute_sql("CREATE UNIQUE INDEX IF NOT EXISTS job_key ON job (queue, job_key)")


def _index_newest_first(db: Database) -> None:
    # a queue's jobs newest first (the lists and search of the API and UI), without a sort
    db.execute_sql("CREATE INDEX IF NOT EXISTS job_queue_id ON job (queue, id)")


def _partial_job_indexes(db: Database) -> None:
    # Index only the rows each lookup can want: a waiting job has no lease, no owner and
    # no finish time, so adding one writes 3 index pages fewer (single enqueue on SQLite:
    # about an eighth faster). Every query on these columns names the condition
    # (status='active', finished_at<?, finished_at IS NOT NULL). The jobId index stays
    # whole: an instance of the version before keeps its ON CONFLICT (queue, job_key)
    # during a rolling upgrade.
    for name in ("job_lease", "job_owner", "job_finished"):
        db.execute_sql(f"DROP INDEX IF EXISTS {name}")
    db.execute_sql("CREATE INDEX job_lease ON job (lease_until) WHERE status = 'active'")
    db.execute_sql("CREATE INDEX job_owner ON job (owner) WHERE status = 'active'")
    db.execute_sql("CREATE INDEX job_finished ON job (queue, status, finished_at) "
                   "WHERE finished_at IS NOT NULL")


def _fewer_index_entries(db: Database) -> None:
    # A claimed or finished job leaves the claim index, rather than taking a new entry
    # in it at each change of state, and the owner index goes (an instance's few active
    # jobs are found through job_lease, which holds only active rows, now by queue): a
    # drained job writes 8 index entries, not 11. Every query of waiting jobs names
    # status='waiting' as a literal, so both SQLite and PostgreSQL use the index.
    for name in ("job_owner", "job_claim", "job_lease"):
        db.execute_sql(f"DROP INDEX IF EXISTS {name}")
    db.execute_sql("CREATE INDEX job_lease ON job (queue, lease_until) WHERE status = 'active'")
    # (status stays a column, constant as it is: SQLite then reads the index alone)
    db.execute_sql("CREATE INDEX job_claim ON job (queue, status, priority DESC, run_at, id) "
                   "WHERE status = 'waiting'")


def _tally_deltas(db: Database) -> None:
    # Insert-only twins of queue_minute and job_histogram: on PostgreSQL a transaction
    # appends its tallies here and upkeep folds them in (synthbox/jobs/tallies.py says why)
    tallied = [f for f in QueueMinute._meta.sorted_field_names if f not in ("queue", "minute")]
    db.execute_sql(
        "CREATE TABLE IF NOT EXISTS queue_minute_delta (queue VARCHAR(64) NOT NULL, "
        "minute INTEGER NOT NULL, " + ", ".join(
            f"{c} {'DOUBLE PRECISION' if c == 'wait_ms' else 'BIGINT'} NOT NULL"
            for c in tallied) + ")")
    db.execute_sql(
        "CREATE TABLE IF NOT EXISTS job_histogram_delta (queue VARCHAR(64) NOT NULL, "
        "metric VARCHAR(16) NOT NULL, bucket INTEGER NOT NULL, n BIGINT NOT NULL, "
        "total DOUBLE PRECISION NOT NULL)")


# The engine's own tables; each domain brings its own list (see synthbox/app.py). Append
# only: a step, once released, keeps its name and its place.
JOB_MIGRATIONS = (
    Migration("jobs.schema", _create_schema),
    tables_step("jobs.queue-minutes", [QueueMinute]),
    Migration("jobs.counts", counts.install),
    Migration("jobs.newest-first-index", _index_newest_first),
    tables_step("jobs.histograms", [JobHistogram]),
    Migration("jobs.partial-indexes", _partial_job_indexes),
    Migration("jobs.count-by-batch", counts.count_by_batch),
    Migration("jobs.tally-deltas", _tally_deltas),
    Migration("jobs.count-without-join", counts.count_without_join),
    Migration("jobs.fewer-index-entries", _fewer_index_entries),
)

# Versions 1-11 were one numbered list across the domains (schema_version counts its rows):
# a database made then is read as having applied these names, in this order. The rows are
# still written, so an instance of the version before, in a rolling upgrade, finds the
# schema it knows already made.
NUMBERED_BEFORE = ("jobs.schema", "accounts.tables", "mail.tables", "orchestration.tables",
                   "jobs.queue-minutes", "jobs.counts", "jobs.newest-first-index",
                   "alerting.tables", "jobs.histograms", "jobs.partial-indexes",
                   "jobs.count-by-batch")


def migrate(db: Database, migrations: Iterable[Migration] = ()) -> int:
    """Apply the engine's migrations, then the given ones, that this database has not seen;
    return how many steps its schema has had."""
    steps = [*JOB_MIGRATIONS, *migrations]
    with db.atomic():
        if isinstance(db, PostgresqlDatabase):
            # One migrating instance at a time across hosts.
            db.execute_sql("SELECT pg_advisory_xact_lock(727733)")
        db.create_tables([SchemaVersion, SchemaMigration], safe=True)
        applied = {row.name for row in SchemaMigration.select(SchemaMigration.name)}
        numbered = SchemaVersion.select().count()
        if not applied and numbered:
            applied = set(NUMBERED_BEFORE[:numbered])
            _record(applied, numbered=None)
        for step in steps:
            if step.name in applied:
                continue
            log.info("applying schema migration %s", step.name)
            step.apply(db)
            applied.add(step.name)
            numbered += 1
            _record({step.name}, numbered)
    return len(applied)


def _record(names: Iterable[str], numbered: int | None) -> None:
    now = time.time()
    for name in names:
        SchemaMigration.create(name=name, applied_at=now)
    if numbered is not None:
        SchemaVersion.create(version=numbered, applied_at=now)
