"""Job counts per queue and state, kept by the records database itself (triggers), so a
dashboard or a scrape costs the same with a million jobs as with ten.

SQLite: row triggers keep `job_count` exact (one writer at a time, nothing to contend).
The claim and finish statements of a drain count their own batch instead (`BatchCounts`):
the row trigger's two statements per job were a fifth of a drain's time.
PostgreSQL: statement triggers append one row per (queue, state) changed to
`job_count_delta`, insert-only so concurrent transactions never wait on a counter or
deadlock; the maintenance loop folds the deltas into `job_count`, and readers add both.
"""

from __future__ import annotations

import threading

from peewee import Database, PostgresqlDatabase

TABLES = """
CREATE TABLE IF NOT EXISTS job_count (
  queue VARCHAR(64) NOT NULL, status VARCHAR(16) NOT NULL, n BIGINT NOT NULL,
  PRIMARY KEY (queue, status));
CREATE TABLE IF NOT EXISTS job_count_delta (
  queue VARCHAR(64) NOT NULL, status VARCHAR(16) NOT NULL, n BIGINT NOT NULL);
"""

# A row here (only ever inside a write transaction) tells the update trigger that the
# statement running counts its own changes.
SQLITE_BATCH_TABLE = "CREATE TABLE IF NOT EXISTS job_count_by_batch (running INTEGER)"
SQLITE_UPDATE_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS job_count_update AFTER UPDATE OF status ON job
WHEN OLD.status <> NEW.status AND NOT EXISTS (SELECT 1 FROM job_count_by_batch) BEGIN
  UPDATE job_count SET n = n - 1 WHERE queue = OLD.queue AND status = OLD.status;
  INSERT INTO job_count (queue, status, n) VALUES (NEW.queue, NEW.status, 1)
  ON CONFLICT (queue, status) DO UPDATE SET n = n + 1; END;"""
SQLITE_TRIGGERS = ("""
CREATE TRIGGER IF NOT EXISTS job_count_insert AFTER INSERT ON job BEGIN
  INSERT INTO job_count (queue, status, n) VALUES (NEW.queue, NEW.status, 1)
  ON CONFLICT (queue, status) DO UPDATE SET n = n + 1; END;
CREATE TRIGGER IF NOT EXISTS job_count_delete AFTER DELETE ON job BEGIN
  UPDATE job_count SET n = n - 1 WHERE queue = OLD.queue AND status = OLD.status; END;"""
                   + SQLITE_UPDATE_TRIGGER)

# An UPDATE's change per (queue, state) is its new rows there less its old rows there:
# no join of the two transition tables on id (the planner, which thinks each holds one
# row, joined them in a nested loop: 100 x 100 comparisons twice for a batch of 100,
# about a fifth of the server's CPU on a drained job). A row whose state did not change
# counts +1 and -1 and nets out; a (queue, state) that nets to nothing writes no row.
POSTGRES_COUNT_FUNCTION = """
CREATE OR REPLACE FUNCTION job_count_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO job_count_delta (queue, status, n)
      SELECT queue, status, COUNT(*) FROM new_rows GROUP BY 1, 2;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO job_count_delta (queue, status, n)
      SELECT queue, status, -COUNT(*) FROM old_rows GROUP BY 1, 2;
  ELSE
    INSERT INTO job_count_delta (queue, status, n)
      SELECT queue, status, SUM(k) FROM (
        SELECT queue, status, 1 AS k FROM new_rows
        UNION ALL
        SELECT queue, status, -1 FROM old_rows) changed
      GROUP BY 1, 2 HAVING SUM(k) <> 0;
  END IF;
  RETURN NULL;
END $$;
"""
POSTGRES_TRIGGERS = POSTGRES_COUNT_FUNCTION + """
DROP TRIGGER IF EXISTS job_count_insert ON job;
DROP TRIGGER IF EXISTS job_count_update ON job;
DROP TRIGGER IF EXISTS job_count_delete ON job;
CREATE TRIGGER job_count_insert AFTER INSERT ON job REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION job_count_track();
CREATE TRIGGER job_count_update AFTER UPDATE ON job
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION job_count_track();
CREATE TRIGGER job_count_delete AFTER DELETE ON job REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION job_count_track();
"""

FOLD_POSTGRES = """
WITH moved AS (DELETE FROM job_count_delta RETURNING queue, status, n)
INSERT INTO job_count (queue, status, n)
  SELECT queue, status, SUM(n) FROM moved GROUP BY 1, 2 ORDER BY 1, 2
ON CONFLICT (queue, status) DO UPDATE SET n = job_count.n + EXCLUDED.n
"""

ADD = ("INSERT INTO job_count (queue, status, n) VALUES (?, ?, ?) "
       "ON CONFLICT (queue, status) DO UPDATE SET n = job_count.n + excluded.n")

READ = ("SELECT status, SUM(n) FROM (SELECT status, n FROM job_count WHERE queue=? "
        "UNION ALL SELECT status, n FROM job_count_delta WHERE queue=?) counted GROUP BY 1")


def install(db: Database) -> None:
    """The tables and triggers, and the counts of the jobs there already (a migration)."""
    postgres = isinstance(db, PostgresqlDatabase)
    for statement in TABLES.split(";"):
        if statement.strip():
            db.execute_sql(statement)
    if postgres:
        db.execute_sql("LOCK TABLE job IN SHARE ROW EXCLUSIVE MODE")  # no change slips by
        db.execute_sql(POSTGRES_TRIGGERS)
    else:
        db.execute_sql(SQLITE_BATCH_TABLE)
        for statement in SQLITE_TRIGGERS.split("END;"):
            if statement.strip():
                db.execute_sql(statement + "END;")
    db.execute_sql("DELETE FROM job_count")
    db.execute_sql("DELETE FROM job_count_delta")
    db.execute_sql("INSERT INTO job_count (queue, status, n) "
                   "SELECT queue, status, COUNT(*) FROM job GROUP BY queue, status")


def fold(db: Database) -> None:
    """PostgreSQL: move the deltas into the counts (safe in several instances at once)."""
    if isinstance(db, PostgresqlDatabase):
        with db.atomic():
            db.execute_sql(FOLD_POSTGRES)


def count_by_batch(db: Database) -> None:
    """Migration: the SQLite update trigger gives way to statements that count their own
    batch (a database counted before keeps its counts)."""
    if not isinstance(db, PostgresqlDatabase):
        db.execute_sql(SQLITE_BATCH_TABLE)
        db.execute_sql("DROP TRIGGER IF EXISTS job_count_update")
        db.execute_sql(SQLITE_UPDATE_TRIGGER)


def count_without_join(db: Database) -> None:
    """Migration: PostgreSQL's update trigger nets old and new rows by (queue, state)
    instead of joining them on id (POSTGRES_COUNT_FUNCTION)."""
    if isinstance(db, PostgresqlDatabase):
        db.execute_sql(POSTGRES_COUNT_FUNCTION)


_open = threading.local()  # this thread's outermost BatchCounts, while it is open


class BatchCounts:
    """Inside a write transaction: status changes the caller reports with `move()` are
    counted on leaving, one upsert per (queue, state), and on SQLite the row trigger
    stands aside meanwhile. On PostgreSQL the statement triggers count already, and this
    does nothing. One opened inside another of the same thread and database joins it:
    its moves are counted (netted) when the outer one leaves."""

    def __init__(self, db: Database):
        self.db = db
        self.sqlite = not isinstance(db, PostgresqlDatabase)
        self.moves: dict[tuple[str, str], int] = {}
        self.joined = False

    def __enter__(self) -> BatchCounts:
        if not self.sqlite:
            return self
        outer = getattr(_open, "batch", None)
        if outer is not None and outer.db is self.db:
            self.joined = True
            return outer
        self.db.execute_sql("INSERT INTO job_count_by_batch VALUES (1)")
        _open.batch = self  # only once entered: a failed entry has no exit to clear it
        return self

    def move(self, queue: str, old: str, new: str, n: int = 1) -> None:
        if self.sqlite and n:
            self.moves[(queue, old)] = self.moves.get((queue, old), 0) - n
            self.moves[(queue, new)] = self.moves.get((queue, new), 0) + n

    def __exit__(self, exc_type: object, *_: object) -> None:
        if not self.sqlite or self.joined:
            return
        _open.batch = None
        if exc_type is not None:
            return  # an exception rolls the transaction back, the row in the table too
        self.db.execute_sql("DELETE FROM job_count_by_batch")
        for (queue, status), n in sorted(self.moves.items()):
            if n:
                self.db.execute_sql(ADD, (queue, status, n))
