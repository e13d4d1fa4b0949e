"""What the workers tally as they finish jobs: per queue and minute (the dashboard's
charts, the metrics' totals) and in histogram buckets of run and wait time."""

from __future__ import annotations

import bisect
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from peewee import Database, PostgresqlDatabase

from synthbox.jobs.rows import ClaimedJob, Failure


class Minute(NamedTuple):
    """What happened in a queue in one minute (a queue_minute row)."""

    queue: str
    minute: int  # Unix time // 60
    completed: int
    failed: int
    wait_ms: float  # summed over the attempts picked
    picked: int
    retried: int
    stalled: int
    rate_limited: int


MINUTE_COLUMNS = Minute._fields[2:]
_COMPLETED, _FAILED, _WAIT_MS, _PICKED, _RETRIED = (
    MINUTE_COLUMNS.index(c) for c in ("completed", "failed", "wait_ms", "picked", "retried"))
MINUTE_UPSERT = (  # what happened per queue and minute, added up
    f"INSERT INTO queue_minute (queue, minute, {', '.join(MINUTE_COLUMNS)}) "
    f"VALUES (?, ?, {', '.join('?' * len(MINUTE_COLUMNS))}) "
    "ON CONFLICT (queue, minute) DO UPDATE SET "
    + ", ".join(f"{c}=queue_minute.{c}+excluded.{c}" for c in MINUTE_COLUMNS))
# upper bounds (seconds) of the run and wait time buckets; the last one is +Inf
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
           300.0, 600.0, float("inf"))
HISTOGRAM_UPSERT = (
    "INSERT INTO job_histogram (queue, metric, bucket, n, total) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (queue, metric, bucket) DO UPDATE SET n=job_histogram.n+excluded.n, "
    "total=job_histogram.total+excluded.total")


def tally(completed: Sequence[tuple[ClaimedJob, str | None, float]],
          failures: Sequence[Failure]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Rows for queue_minute (each attempt's wait; each outcome) and job_histogram (each
    attempt's run and wait time) for a batch of outcomes."""
    minutes: dict[tuple[str, int], list[float]] = {}
    histogram: dict[tuple[str, str, int], list[float]] = {}
    outcomes = [(job, finished, _COMPLETED) for job, _, finished in completed] + [
        (f.job, f.finished_at, _FAILED if f.retry_at is None else _RETRIED)
        for f in failures if f.uses_attempt]
    for job, finished, column in outcomes:
        row = minutes.setdefault((job.queue, int(finished // 60)),
                                 [0.0] * len(MINUTE_COLUMNS))
        row[column] += 1
        wait = max(job.started_at - job.run_at, 0.0)
        row[_WAIT_MS] += wait * 1000
        row[_PICKED] += 1
        for metric, seconds in (("duration", max(finished - job.started_at, 0.0)),
                                ("wait", wait)):
            bucket = bisect.bisect_left(BUCKETS, seconds)
            cell = histogram.setdefault((job.queue, metric, bucket), [0, 0.0])
            cell[0] += 1
            cell[1] += seconds
    return ([(queue, minute, *(int(v) if i != _WAIT_MS else v for i, v in enumerate(row)))
             for (queue, minute), row in sorted(minutes.items())],
            [(*key, int(n), total) for key, (n, total) in sorted(histogram.items())])


# -- where the tallies are kept ----------------------------------------------------------
# PostgreSQL: every worker's transaction used to upsert the same (queue, minute) row, and
# each waited for the one before to commit (14.8 ms a completion, benchmarks/README.md).
# Now a transaction only appends its batch's tallies to insert-only `*_delta` tables (no
# row another transaction locks); upkeep folds them into queue_minute and job_histogram
# every second, and readers add both, so the counts are exact at every moment and
# committed with the outcomes they count. SQLite has one writer: it upserts as before.

_SUMS = ", ".join(f"SUM({c})" for c in MINUTE_COLUMNS)
_TYPED_SUMS = ", ".join(f"SUM({c})::{'float8' if c == 'wait_ms' else 'bigint'}"
                       for c in MINUTE_COLUMNS)
_MINUTE_INSERT = (f"INSERT INTO queue_minute_delta (queue, minute, {', '.join(MINUTE_COLUMNS)}) "
                  "VALUES ")
_HISTOGRAM_INSERT = "INSERT INTO job_histogram_delta (queue, metric, bucket, n, total) VALUES "
_MINUTE_ON_CONFLICT = MINUTE_UPSERT[MINUTE_UPSERT.index("ON CONFLICT"):]
_HISTOGRAM_ON_CONFLICT = HISTOGRAM_UPSERT[HISTOGRAM_UPSERT.index("ON CONFLICT"):]
# one statement, so two instances folding at once lock the rows in one order (no deadlock)
_FOLD = (
    "WITH minutes AS (DELETE FROM queue_minute_delta RETURNING *), "
    "buckets AS (DELETE FROM job_histogram_delta RETURNING *), "
    f"folded AS ({MINUTE_UPSERT.split(' VALUES')[0]} SELECT queue, minute, {_SUMS} "
    f"FROM minutes GROUP BY 1, 2 ORDER BY 1, 2 {_MINUTE_ON_CONFLICT}) "
    "INSERT INTO job_histogram (queue, metric, bucket, n, total) SELECT queue, metric, "
    f"bucket, SUM(n), SUM(total) FROM buckets GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 "
    f"{_HISTOGRAM_ON_CONFLICT}")
# bisect_left(BUCKETS, s): the first bucket whose bound is at least s
_BUCKET = ("CASE " + " ".join(f"WHEN s <= {bound!r} THEN {i}" for i, bound in
                              enumerate(BUCKETS[:-1])) + f" ELSE {len(BUCKETS) - 1} END")


# PostgreSQL: complete a batch of claimed jobs and append their tallies, one statement
# (one round trip, one implicit transaction). Parameters: results, finished times, job ids
# and start times, each one array literal (completion_params), then the owner. Returns the
# ids it completed: a job whose claim went stale is neither completed nor counted. Arrays,
# not a VALUES row per job: the server parsed, analysed and planned five casted literals a
# job, about a sixth of its time on a drained job, and the statement's text is now the same
# for every batch.
_MINUTE_OTHERS = [c for c in MINUTE_COLUMNS if c not in ("completed", "wait_ms", "picked")]
COUNTED_COMPLETION = (
    "WITH v(result, finished, id, started) AS (SELECT * FROM unnest(%s::text[], "
    "%s::float8[], %s::bigint[], %s::float8[])), "
    "done AS (UPDATE job SET status='completed', result=v.result, finished_at=v.finished, "
    "progress=100, lease_until=NULL, owner=NULL FROM v WHERE job.id=v.id "
    "AND job.status='active' AND job.owner=%s AND job.started_at=v.started "
    "RETURNING job.id, job.queue, job.run_at, v.started, v.finished), "
    "minutes AS (INSERT INTO queue_minute_delta (queue, minute, completed, wait_ms, "
    f"picked, {', '.join(_MINUTE_OTHERS)}) SELECT queue, FLOOR(finished / 60)::integer, "
    f"COUNT(*), SUM(GREATEST(started - run_at, 0)) * 1000, COUNT(*), "
    f"{', '.join('0' for _ in _MINUTE_OTHERS)} FROM done GROUP BY 1, 2), "
    "times AS (SELECT queue, 'duration' AS metric, GREATEST(finished - started, 0) AS s "
    "FROM done UNION ALL SELECT queue, 'wait', GREATEST(started - run_at, 0) FROM done), "
    "buckets AS (INSERT INTO job_histogram_delta (queue, metric, bucket, n, total) "
    f"SELECT queue, metric, bucket, COUNT(*), SUM(s) FROM (SELECT queue, metric, s, "
    f"{_BUCKET} AS bucket FROM times) t GROUP BY 1, 2, 3) "
    "SELECT id FROM done")


def completion_params(owner: str, completed: Sequence[tuple[ClaimedJob, str | None, float]]
                      ) -> list[str]:
    """COUNTED_COMPLETION's parameters for (job, result as JSON text, finished at) rows.

    Numbers go as repr(), which PostgreSQL reads back to the same float (the claim's
    started_at must match exactly); each result is quoted as an array element."""
    results = ",".join(["NULL" if result is None else
                        '"' + result.replace("\\", "\\\\").replace('"', '\\"') + '"'
                        for _, result, _ in completed])
    return ["{" + results + "}",
            "{" + ",".join([repr(finished) for _, _, finished in completed]) + "}",
            "{" + ",".join([str(job.id) for job, _, _ in completed]) + "}",
            "{" + ",".join([repr(job.started_at) for job, _, _ in completed]) + "}",
            owner]


class Tallies:
    """Reads and writes the tallies: queue_minute and job_histogram (plus, on
    PostgreSQL, the deltas not folded yet)."""

    def __init__(self, db: Database):
        self.db = db
        self.postgres = isinstance(db, PostgresqlDatabase)
        self._mark = "%s" if self.postgres else "?"

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.db.execute_sql(sql.replace("?", self._mark), params)

    def record(self, minutes: Sequence[tuple[Any, ...]],
               histogram: Sequence[tuple[Any, ...]]) -> None:
        """Add rows made by `tally()` (inside the caller's transaction)."""
        if not self.postgres:
            cursor = self.db.cursor()
            cursor.executemany(MINUTE_UPSERT, minutes)
            cursor.executemany(HISTOGRAM_UPSERT, histogram)
            return
        for insert, rows in ((_MINUTE_INSERT, minutes), (_HISTOGRAM_INSERT, histogram)):
            if rows:
                marks = "(" + ", ".join(["%s"] * len(rows[0])) + ")"
                self.db.execute_sql(insert + ", ".join([marks] * len(rows)),
                                    [value for row in rows for value in row])

    def count(self, queue: str, column: str, n: int = 1, at: float | None = None) -> None:
        """Add `n` to one of MINUTE_COLUMNS for this minute (stalls, rate limits)."""
        values = [n if c == column else 0 for c in MINUTE_COLUMNS]
        self.record([(queue, int((at or time.time()) // 60), *values)], [])

    def fold(self) -> None:
        """PostgreSQL: move the deltas into the tallies (safe in several instances)."""
        if self.postgres:
            self.db.execute_sql(_FOLD)

    def _both(self, table: str, columns: str, where: str = "") -> str:
        """`table`'s rows, and on PostgreSQL its deltas' too (to be summed)."""
        if not self.postgres:
            return f"SELECT {columns} FROM {table} {where}"
        return (f"SELECT {columns} FROM {table} {where} UNION ALL "
                f"SELECT {columns} FROM {table}_delta {where}")

    def minutes(self, since_minute: int) -> list[Minute]:
        """Each queue's minutes from `since_minute` on; minute 0 holds everything older."""
        columns = f"queue, minute, {', '.join(MINUTE_COLUMNS)}"
        if not self.postgres:
            return [Minute(*row) for row in self._execute(
                f"SELECT {columns} FROM queue_minute WHERE minute>=?",
                (since_minute,)).fetchall()]
        return [Minute(*row) for row in self._execute(
            f"SELECT queue, minute, {_TYPED_SUMS} FROM ("
            f"{self._both('queue_minute', columns, 'WHERE minute>=?')}) t GROUP BY 1, 2",
            (since_minute, since_minute)).fetchall()]

    def totals(self) -> dict[str, dict[str, float]]:
        """Every queue's totals since the records began: {queue: {column: sum}}."""
        columns = f"queue, {', '.join(MINUTE_COLUMNS)}"
        return {row[0]: dict(zip(MINUTE_COLUMNS, row[1:], strict=True)) for row in self._execute(
            f"SELECT queue, {_SUMS} FROM ({self._both('queue_minute', columns)}) t "
            "GROUP BY queue").fetchall()}

    def histogram(self) -> list[tuple[str, str, int, int, float]]:
        """(queue, metric, bucket, count, sum of seconds) for every bucket seen."""
        columns = "queue, metric, bucket, n, total"
        sql = (f"SELECT {columns} FROM job_histogram" if not self.postgres else
               f"SELECT queue, metric, bucket, SUM(n), SUM(total) FROM "
               f"({self._both('job_histogram', columns)}) t GROUP BY 1, 2, 3")
        return [(q, m, int(b), int(n), float(t)) for q, m, b, n, t in
                self._execute(sql).fetchall()]

    def forget_minutes(self, before_minute: int) -> None:
        """Fold minutes older than `before_minute` into minute 0, so totals never shrink
        (a row folded by one instance is never folded again by another)."""
        head = MINUTE_UPSERT.split(" VALUES")[0]
        with self.db.atomic():
            if self.postgres:
                self._execute(
                    f"WITH moved AS (DELETE FROM queue_minute WHERE minute>0 AND minute<? "
                    f"RETURNING *) {head} SELECT queue, 0, {_SUMS} FROM moved GROUP BY queue "
                    f"ORDER BY queue {_MINUTE_ON_CONFLICT}", (before_minute,))
                return
            self._execute(f"{head} SELECT queue, 0, {_SUMS} FROM queue_minute WHERE minute>0 "
                          f"AND minute<? GROUP BY queue {_MINUTE_ON_CONFLICT}", (before_minute,))
            self._execute("DELETE FROM queue_minute WHERE minute>0 AND minute<?",
                          (before_minute,))
