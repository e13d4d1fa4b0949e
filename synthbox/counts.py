"""Job counts per queue and state, kept by the records database itself (triggers), so a
dashboard or a scrape costs the same with a million jobs as with ten.

SQLite: row triggers keep `job_count` exact (one writer at a time, nothing to contend).
PostgreSQL: statement triggers append one row per (queue, state) changed to
`job_count_delta`, insert-only so concurrent transactions never wait on a counter or
deadlock; the maintenance loop folds the deltas into `job_count`, and readers add both.
"""

from __future__ import annotations

from peewee import Database, PostgresqlDatabase

TABLES = """
CREATE TABLE IF NOT EXISTS job_count (
  queue VARCHAR(64) NOT NULL, status VARCHAR(16) NOT NULL, n BIGINT NOT NULL,
  PRIMARY KEY (queue, status));
CREATE TABLE IF NOT EXISTS job_count_delta (
  queue VARCHAR(64) NOT NULL, status VARCHAR(16) NOT NULL, n BIGINT NOT NULL);
"""

SQLITE_TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS job_count_insert AFTER INSERT ON job BEGIN
  INSERT INTO job_count (queue, status, n) VALUES (NEW.queue, NEW.status, 1)
  ON CONFLICT (queue, status) DO UPDATE SET n = n + 1; END;
CREATE TRIGGER IF NOT EXISTS job_count_update AFTER UPDATE OF status ON job
WHEN OLD.status <> NEW.status BEGIN
  UPDATE job_count SET n = n - 1 WHERE queue = OLD.queue AND status = OLD.status;
  INSERT INTO job_count (queue, status, n) VALUES (NEW.queue, NEW.status, 1)
  ON CONFLICT (queue, status) DO UPDATE SET n = n + 1; END;
CREATE TRIGGER IF NOT EXISTS job_count_delete AFTER DELETE ON job BEGIN
  UPDATE job_count SET n = n - 1 WHERE queue = OLD.queue AND status = OLD.status; END;
"""

POSTGRES_TRIGGERS = """
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
        SELECT n.queue, n.status, 1 AS k FROM new_rows n JOIN old_rows o ON o.id = n.id
          WHERE o.status <> n.status
        UNION ALL
        SELECT o.queue, o.status, -1 FROM new_rows n JOIN old_rows o ON o.id = n.id
          WHERE o.status <> n.status) changed
      GROUP BY 1, 2;
  END IF;
  RETURN NULL;
END $$;
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
