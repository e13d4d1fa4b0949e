"""The hot path in plain SQL: claim, finish, release, renew and recover jobs.

Peewee builds the schema and the admin queries; the statements here run for every
job, so they are written once as parameterised SQL (DESIGN.md, "The hot path").
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from typing import Any

from peewee import Database, PostgresqlDatabase

from synthbox.jobs.groupcommit import GroupCommit
from synthbox.jobs.pgbell import Notifier
from synthbox.jobs.prepared import Prepared
from synthbox.jobs.rows import (
    CLAIMED_COLUMNS,
    INSERT_JOB,
    INSERT_VALUES,
    ClaimedJob,
    Failure,
    NewJob,
)
from synthbox.jobs.tallies import COUNTED_COMPLETION, Tallies, completion_params, tally
from synthbox.records.counts import BatchCounts

# SQLite: a batch's completions (PostgreSQL's also tally them: tallies.COUNTED_COMPLETION)
_COMPLETE = ("WITH v(result, finished, id, owner, started) AS (VALUES {rows}) "
             "UPDATE job SET status='completed', result=v.result, finished_at=v.finished, "
             "progress=100, lease_until=NULL, owner=NULL FROM v WHERE job.id=v.id "
             "AND job.status='active' AND job.owner=v.owner AND job.started_at=v.started "
             "RETURNING job.id")
PRIORITIES = range(11)  # 0, the default, to 10, the highest
# The claim index is (queue, status, priority, run_at) of waiting jobs: the oldest due
# job is the first entry of one of the priorities, so ask each (one index seek apiece)
# rather than read every waiting job (41 ms -> 15 ms for three queues, a million records,
# PostgreSQL).
_OLDEST_DUE = "SELECT MIN(first) FROM (" + " UNION ALL ".join(
    f"SELECT (SELECT MIN(run_at) FROM job WHERE queue=? AND status='waiting' "
    f"AND priority={priority} AND run_at<=?) AS first" for priority in PRIORITIES
) + ") AS firsts"

# Stalled jobs: `lost` is "lease_until<?" (upkeep's sweep) or "owner=?" (an instance gone);
# both read job_lease, the index of active jobs only
REQUEUE_STALLED = ("UPDATE job SET status='waiting', stalled_count=stalled_count+1, "
                   "attempts_made=attempts_made-1, owner=NULL, lease_until=NULL "
                   "WHERE queue=? AND status='active' AND {lost} AND stalled_count<? "
                   "RETURNING id")
FAIL_STALLED = ("UPDATE job SET status='failed', stalled_count=stalled_count+1, "
                "failed_reason='job stalled more than allowable limit', finished_at=?, "
                "owner=NULL, lease_until=NULL "
                "WHERE queue=? AND status='active' AND {lost} AND stalled_count>=? "
                "RETURNING id")


class JobStore:
    """Statements over the `job` table that the workers and upkeep run all the time."""

    def __init__(self, db: Database):
        self.db = db
        self.postgres = isinstance(db, PostgresqlDatabase)
        self.notifier: Notifier | None = None  # set when PostgreSQL rings other instances
        # PostgreSQL: single adds that arrive together share a commit (SQLite's adds are
        # serialised by its write lock in this process and commit without a round trip)
        self.grouped: GroupCommit[NewJob] | None = (GroupCommit(self.insert) if self.postgres
                                                    else None)
        due = ("SELECT id FROM job WHERE queue=:queue AND status='waiting' AND run_at<=:now "
               "AND NOT EXISTS (SELECT 1 FROM queue_state WHERE name=:queue AND paused=:yes) "
               "ORDER BY priority DESC, run_at, id LIMIT :limit")
        claim = ("UPDATE job SET status='active', attempts_made=job.attempts_made+1, "
                 "started_at=:now, lease_until=:lease, owner=:owner ")
        returning = "RETURNING " + ", ".join(f"job.{c}" for c in CLAIMED_COLUMNS)
        if self.postgres:
            # A CTE runs once; an IN (... FOR UPDATE SKIP LOCKED) subquery may be rescanned
            # within the statement and then skip the rows it locked itself (seen: a job
            # claimed out of FIFO order). The rows it locks were waiting when locked and
            # stay so until this update. Saying status='waiting' again here let the
            # planner, while the table's statistics still called it empty, look each one
            # up through the claim index of waiting jobs (a scan of it per row), not by id.
            self._claim_sql = re.sub(r":(\w+)", r"%(\1)s", (
                f"WITH picked AS MATERIALIZED ({due} FOR UPDATE SKIP LOCKED) {claim}"
                f"FROM picked WHERE job.id=picked.id {returning}"))
        else:
            # One statement under SQLite's write lock: the subquery cannot race.
            self._claim_sql = f"{claim}WHERE id IN ({due}) {returning}"
            # claim(): the due jobs first, so a claim that finds none writes nothing
            self._due_sql = due
            self._claim_ids_sql = f"{claim}WHERE id IN ({{marks}}) AND status='waiting' {returning}"
        # A claim is (owner, started_at): a run whose lease lapsed and whose job was claimed
        # again, even by this same instance, finds its claim gone and changes nothing.
        mine = "WHERE id=? AND status='active' AND owner=? AND started_at=?"
        self.tallies = Tallies(db)
        self._retry_sql = self._sql(
            "UPDATE job SET status='waiting', run_at=?, failed_reason=?, lease_until=NULL, "
            f"owner=NULL {mine}")
        self._fail_sql = self._sql(
            "UPDATE job SET status='failed', failed_reason=?, finished_at=?, lease_until=NULL, "
            f"owner=NULL {mine}")
        self._defer_sql = self._sql(
            "UPDATE job SET status='waiting', run_at=?, attempts_made=attempts_made-1, "
            f"lease_until=NULL, owner=NULL {mine}")
        self._insert_one_sql = self._sql(INSERT_JOB + INSERT_VALUES + " RETURNING id")
        self.add_one = (Prepared(db, "synthbox_add_job", INSERT_JOB + INSERT_VALUES +
                                 " RETURNING id", len(NewJob._fields)) if self.postgres
                        else None)
        self._attempt_sql = self._sql(
            "INSERT INTO job_attempt (job_id, attempt, started_at, finished_at, error, traceback) "
            "VALUES (?, ?, ?, ?, ?, ?)")

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.postgres else text

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.db.execute_sql(self._sql(sql), params)

    def batch(self) -> ExitStack:
        """One transaction for several claims and finishes: they join it (no savepoint
        each) and their counts are written once, netted, when it ends."""
        stack = ExitStack()
        stack.enter_context(self.db.atomic())
        stack.enter_context(BatchCounts(self.db))
        return stack

    def _transaction(self) -> AbstractContextManager[Any]:
        """A transaction of its own, or the caller's open one joined (see batch())."""
        return nullcontext() if self.db.in_transaction() else self.db.atomic()

    def insert(self, rows: Sequence[NewJob]) -> list[int]:
        """New jobs (without a key) in one statement; their ids, in the rows' order."""
        if len(rows) == 1:  # a single add: its statement is ready, its parameters the row
            prepared = self.add_one.statement() if self.add_one is not None else None
            sql, params = self.notifying(prepared or self._insert_one_sql, rows[0], rows)
            try:
                return [self.db.execute_sql(sql, params).fetchone()[0]]
            except Exception as exc:
                if prepared is None or not self.add_one.lost(exc):  # type: ignore[union-attr]
                    raise
            sql, params = self.notifying(self._insert_one_sql, rows[0], rows)
            return [self.db.execute_sql(sql, params).fetchone()[0]]
        sql, params = self.notifying(
            INSERT_JOB + ",".join([INSERT_VALUES] * len(rows)) + " RETURNING id",
            [v for row in rows for v in row], rows)
        # ids come from one sequence in insertion order: sorted, they match the rows
        return sorted(r[0] for r in self.execute(sql, params))

    def notifying(self, sql: str, params: Sequence[Any],
                  rows: Sequence[NewJob]) -> tuple[str, Sequence[Any]]:
        """An adding statement that also NOTIFYs the other instances of the queues of its
        due rows, when PostgreSQL is the doorbell between them (pgbell.py)."""
        if self.notifier is None:
            return sql, params
        now = time.time()
        due = [row.queue for row in rows if row.run_at <= now]
        if not due:
            return sql, params
        prefix, payloads = self.notifier.prefix(due)
        return prefix + sql, [*payloads, *params]

    # -- claiming -----------------------------------------------------------------------

    def claim(self, queue: str, limit: int, owner: str, lease: float,
              now: float | None = None) -> list[ClaimedJob]:
        """Take up to `limit` due jobs of `queue`, highest priority first, FIFO within one."""
        now = time.time() if now is None else now
        params = self._claim_params(queue, limit, owner, lease, now)
        if self.postgres:
            # one statement is its own transaction: no BEGIN and COMMIT round trips
            rows = self.db.execute_sql(self._claim_sql, params).fetchall()
        else:
            with self._transaction():
                rows = self._claim_counted(queue, params)
        return self._claimed(queue, rows, now)

    def _claim_counted(self, queue: str, params: dict[str, Any]) -> list[Sequence[Any]]:
        """SQLite, under its write lock: read the due jobs, then claim them, counting the
        batch here rather than per row in the trigger. Finding none writes nothing."""
        ids = [row[0] for row in self.db.execute_sql(self._due_sql, params)]
        if not ids:
            return []
        with BatchCounts(self.db) as counts:
            marks = {f"id{i}": job_id for i, job_id in enumerate(ids)}
            rows: list[Sequence[Any]] = self.db.execute_sql(
                self._claim_ids_sql.format(marks=",".join(f":{name}" for name in marks)),
                {**params, **marks}).fetchall()
            counts.move(queue, "waiting", "active", len(rows))
        return rows

    @staticmethod
    def _claim_params(queue: str, limit: int, owner: str, lease: float,
                      now: float) -> dict[str, Any]:
        return {"queue": queue, "now": now, "yes": True, "limit": limit, "lease": now + lease,
                "owner": owner}

    def claim_limited(self, queue: str, limit: int, owner: str, lease: float,
                      rate_max: int, rate_window: float) -> tuple[list[ClaimedJob], float]:
        """Claim under a rate limit kept in the records database (no Redis).

        Returns the jobs and, when the limit allowed none, how long until it allows one.
        """
        with self.db.atomic():
            if self.postgres:
                # Serialise claimers of this queue across hosts for the count-then-claim.
                self.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"rate:{queue}",))
            now = time.time()
            since = now - rate_window
            self.execute("DELETE FROM rate_hit WHERE queue=? AND at<?", (queue, since))
            rows = self.execute("SELECT at FROM rate_hit WHERE queue=? ORDER BY at",
                                (queue,)).fetchall()
            allowed = min(limit, rate_max - len(rows))
            if allowed <= 0:
                return [], max(rows[0][0] + rate_window - now, 0.001)
            claimed = self.db.execute_sql(self._claim_sql, self._claim_params(
                queue, allowed, owner, lease, now)).fetchall()
            if claimed:
                self.db.cursor().executemany(
                    self._sql("INSERT INTO rate_hit (queue, at) VALUES (?, ?)"),
                    [(queue, now)] * len(claimed))
            return self._claimed(queue, claimed, now), 0.0

    @staticmethod
    def _claimed(queue: str, rows: Iterable[tuple[Any, ...]], now: float) -> list[ClaimedJob]:
        jobs = [ClaimedJob(*(*r, queue, now)) for r in rows]
        # RETURNING has no order: restore the claim's.
        jobs.sort(key=lambda j: (-j.priority, j.run_at, j.id))
        return jobs

    # -- finishing ----------------------------------------------------------------------

    def finish(self, owner: str, completed: Sequence[tuple[ClaimedJob, str | None, float]],
               failures: Sequence[Failure]) -> None:
        """Record a batch of outcomes in one transaction (a group commit).

        `completed` holds (job, result as JSON text, finished at).
        """
        if not completed and not failures:
            return
        if self.postgres and not failures:
            # the usual batch: one statement, its own transaction, tallies included
            self._complete(owner, completed)
            return
        # Everything that needs no database is done before the write lock is taken: on
        # SQLite one writer at a time is the drain's bottleneck.
        counted = [failure for failure in failures if failure.uses_attempt]
        tallies = tally(completed, counted)
        with self._transaction(), BatchCounts(self.db) as counts:
            cursor = self.db.cursor()
            all_completed = len(completed)
            if completed:
                completed = self._complete(owner, completed)
            if self.postgres:  # the completions were counted by their statement
                all_completed, tallies = len(completed), tally([], counted)
            for job, _, _ in completed:
                counts.move(job.queue, "active", "completed")
            recorded = []
            for failure in failures:
                job = failure.job
                if not failure.uses_attempt:
                    cursor.execute(self._defer_sql, (failure.retry_at, job.id, owner,
                                                     job.started_at))
                    counts.move(job.queue, "active", "waiting", cursor.rowcount)
                    continue
                cursor.execute(self._attempt_sql, (
                    job.id, job.attempts_made, job.started_at, failure.finished_at,
                    failure.error, failure.traceback))
                if failure.retry_at is not None:
                    cursor.execute(self._retry_sql, (
                        failure.retry_at, failure.error, job.id, owner, job.started_at))
                else:
                    cursor.execute(self._fail_sql, (
                        failure.error, failure.finished_at, job.id, owner, job.started_at))
                if cursor.rowcount:
                    recorded.append(failure)
                    counts.move(job.queue, "active",
                                "waiting" if failure.retry_at is not None else "failed")
            # only outcomes this call recorded count (a stale claim changed nothing), in
            # key order, so concurrent transactions lock the counter rows in one order
            if len(completed) != all_completed or len(recorded) != len(counted):
                tallies = tally([] if self.postgres else completed, recorded)
            self.tallies.record(*tallies)

    def oldest_due(self, queue: str, now: float) -> float | None:
        """When the longest-waiting due job of `queue` became due, or None."""
        row = self.execute(_OLDEST_DUE, (queue, now) * len(PRIORITIES)).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def _complete(self, owner: str, completed: Sequence[tuple[ClaimedJob, str | None, float]]
                  ) -> list[tuple[ClaimedJob, str | None, float]]:
        """A batch's completions: on PostgreSQL one statement that tallies them too
        (COUNTED_COMPLETION), on SQLite one per 500; those this call wrote (a stale claim
        changes nothing)."""
        if self.postgres:
            written = {r[0] for r in self.db.execute_sql(
                COUNTED_COMPLETION, completion_params(owner, completed)).fetchall()}
            return [item for item in completed if item[0].id in written]
        written = set()
        for start in range(0, len(completed), 500):
            chunk = completed[start:start + 500]
            written.update(r[0] for r in self.db.execute_sql(
                _COMPLETE.format(rows=",".join(["(?, ?, ?, ?, ?)"] * len(chunk))),
                [value for job, result, finished in chunk
                 for value in (result, finished, job.id, owner, job.started_at)]
            ).fetchall())
        return [item for item in completed if item[0].id in written]

    def release(self, owner: str, job_ids: Sequence[int]) -> int:
        """Hand claimed jobs that never started back to the queue, as if never claimed."""
        if not job_ids:
            return 0
        with self.db.atomic():
            return self.execute(
                "UPDATE job SET status='waiting', attempts_made=attempts_made-1, "
                "lease_until=NULL, owner=NULL, started_at=NULL "
                f"WHERE status='active' AND owner=? AND id IN ({','.join('?' * len(job_ids))})",
                (owner, *job_ids)).rowcount

    # -- upkeep -------------------------------------------------------------------------

    def renew_leases(self, owner: str, held: dict[str, tuple[float, Sequence[int]]]) -> int:
        """Extend the leases of the jobs this instance holds: {queue: (lease, job ids)}.

        Only held jobs: a claim abandoned after an error is left to expire and stall back.
        """
        if not any(ids for _, ids in held.values()):
            return 0  # no write transaction: on SQLite it would keep the writers out
        now = time.time()
        renewed = 0
        with self.db.atomic():
            for seconds, ids in held.values():
                for start in range(0, len(ids), 500):
                    chunk = ids[start:start + 500]
                    renewed += self.execute(
                        f"UPDATE job SET lease_until=? WHERE owner=? AND status='active' "
                        f"AND id IN ({','.join('?' * len(chunk))})",
                        (now + seconds, owner, *chunk)).rowcount
        return renewed

    def recover_stalled(self, queue: str, max_stalled: int,
                        owner: str | None = None) -> tuple[list[int], list[int]]:
        """Jobs whose lease ran out (or, with `owner`, every active job of that instance):
        back to waiting, or failed past `max_stalled` stalls."""
        now = time.time()
        lost, param = ("owner=?", owner) if owner is not None else ("lease_until<?", now)
        with self.db.atomic():
            requeued = [r[0] for r in self.execute(
                REQUEUE_STALLED.format(lost=lost), (queue, param, max_stalled)).fetchall()]
            failed = [r[0] for r in self.execute(
                FAIL_STALLED.format(lost=lost), (now, queue, param, max_stalled)).fetchall()]
            if requeued or failed:
                self.tallies.count(queue, "stalled", len(requeued) + len(failed), now)
            if failed:
                self.tallies.count(queue, "failed", len(failed), now)
        return requeued, failed

    def has_due_work(self, queue: str, before: float) -> bool:
        """Due waiting jobs in a queue that is not paused."""
        row = self.execute(
            "SELECT 1 FROM job WHERE queue=? AND status='waiting' AND run_at<=? "
            "AND NOT EXISTS (SELECT 1 FROM queue_state WHERE name=? AND paused=?) LIMIT 1",
            (queue, before, queue, True)).fetchone()
        return row is not None

    def delete_jobs(self, ids: Sequence[int]) -> int:
        """Delete jobs with their history; an active one (claimed meanwhile) is kept."""
        marks = ",".join("?" * len(ids))
        with self.db.atomic():
            deleted = [r[0] for r in self.execute(
                f"DELETE FROM job WHERE id IN ({marks}) AND status<>'active' RETURNING id",
                ids).fetchall()]
            if deleted:
                marks = ",".join("?" * len(deleted))
                self.execute(f"DELETE FROM job_attempt WHERE job_id IN ({marks})", deleted)
                self.execute(f"DELETE FROM job_log WHERE job_id IN ({marks})", deleted)
        return len(deleted)
