"""QueueService: what the API, the CLI and Python callers do with a queue.

Mirrors the seed's queue services (add, stats, failed jobs, retry, cleanup) and
BullMQ's Queue (bulk add, job by id, pause, resume, promote, clean, remove).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import Any

from synthbox.checks import check_seconds, check_whole
from synthbox.jobs.doorbell import Doorbell
from synthbox.jobs.errors import JobOptionError
from synthbox.jobs.options import HIGH_PRIORITY, job_option_errors, job_row
from synthbox.jobs.rows import INSERT_JOB, INSERT_VALUES, JOB_COLUMNS, JobRow, NewJob
from synthbox.jobs.spec import QueueSpec
from synthbox.jobs.store import PRIORITIES, JobStore
from synthbox.records.counts import READ as COUNTS
from synthbox.records.models import ACTIVE, COMPLETED, DELAYED, FAILED, PAUSED, STATES, WAITING

# Naming every priority lets the claim index (queue, status, priority, run_at) seek the
# delayed jobs of each one, instead of reading every waiting job (10 ms -> 0.2 ms a
# queue with a million records on PostgreSQL, which has no skip scan).
_EACH_PRIORITY = ",".join(str(p) for p in PRIORITIES)
JOB_ID = re.compile(r"[0-9]{1,18}")
_INSERT_CHUNK = 500


def milliseconds(seconds: float | None) -> int | None:
    """Unix seconds as the API's milliseconds (None stays None)."""
    return None if seconds is None else round(seconds * 1000)  # round(float) is an int


def job_dict(row: JobRow, now: float | None = None) -> dict[str, Any]:
    """A job as the API shows it: BullMQ's field names, times in Unix milliseconds."""
    # unpacked at once, in JobRow's order: every add and every page builds this, and
    # reading twenty named fields one by one costs a tenth of a bulk add
    (job_id, queue, name, data, status, priority, run_at, attempts_made, attempts_max,
     backoff_type, backoff_delay, timeout, stalled_count, result, progress, failed_reason,
     created_at, started_at, finished_at, job_key) = row
    now = time.time() if now is None else now
    state = DELAYED if status == WAITING and run_at > now else status
    return {
        "id": str(job_id), "queue": queue, "name": name,
        "data": {} if data == "{}" else json.loads(data),  # "{}": a job added without data
        "state": state, "priority": priority, "attemptsMade": attempts_made,
        "attempts": attempts_max,
        "backoff": {"type": backoff_type, "delay": milliseconds(backoff_delay)},
        "timeout": milliseconds(timeout), "jobId": job_key, "stalledCount": stalled_count,
        "progress": progress, "returnvalue": None if result is None else json.loads(result),
        "failedReason": failed_reason,
        "timestamp": milliseconds(created_at), "runAt": milliseconds(run_at),
        "processedOn": milliseconds(started_at), "finishedOn": milliseconds(finished_at),
    }


class QueueService:
    def __init__(self, spec: QueueSpec, store: JobStore, doorbell: Doorbell,
                 local_workers: bool = False):
        self.spec = spec
        self.name = spec.name
        self.store = store
        self.doorbell = doorbell
        self.local_workers = local_workers

    # -- adding -------------------------------------------------------------------------

    def add(self, name: str, data: Any = None, **opts: Any) -> dict[str, Any]:
        """Add one job. Options: priority (0-10, higher first), delay (s) or run_at (Unix s),
        attempts, backoff ({"type", "delay"} in s), timeout (s), job_id (dedup key)."""
        return self._add_one({"name": name, "data": data, **opts}, True)

    def add_high_priority(self, name: str, data: Any = None, **opts: Any) -> dict[str, Any]:
        return self.add(name, data, **{**opts, "priority": HIGH_PRIORITY})

    def add_bulk(self, jobs: Sequence[Mapping[str, Any]],
                 announce: bool = True) -> list[dict[str, Any]]:
        """Add many jobs in one transaction; all or none. Returns them in the order given.

        Inside a caller's transaction pass `announce=False` and call `announce()` with the
        jobs' run times after the commit, so no worker looks before they are visible."""
        if len(jobs) == 1:  # the API's single add
            return [self._add_one(jobs[0], announce)]
        now = time.time()
        rows = [job_row(self.spec, job, now, f"jobs[{i}].") for i, job in enumerate(jobs)]
        return self._add_rows(rows, now, announce)

    def _add_one(self, job: Mapping[str, Any], announce: bool) -> dict[str, Any]:
        """One job: what most callers add, so its usual case skips the bulk add's lists."""
        now = time.time()
        row = job_row(self.spec, job, now)
        grouped = self.store.grouped
        if grouped is None or row.job_key is not None or self.store.db.in_transaction():
            return self._add_rows([row], now, announce)[0]
        added = job_dict(row.stored(grouped.submit(row)), now)  # with other threads' adds
        if announce:  # last, so the woken worker does not wait for this thread's work
            self.announce((row.run_at,), now)
        return added

    def _add_rows(self, rows: Sequence[NewJob], now: float,
                  announce: bool) -> list[dict[str, Any]]:
        ids: list[int] = [0] * len(rows)
        keyed = [i for i, row in enumerate(rows) if row.job_key is not None]
        self._insert(rows, keyed, ids)
        existing = ({int(job["id"]): job for job in self.get_jobs([ids[i] for i in keyed])}
                    if keyed else {})
        added = [existing.get(job_id) or job_dict(row.stored(job_id), now)
                 for job_id, row in zip(ids, rows, strict=True)]
        if announce:  # last, so the woken worker does not wait for this thread's work
            self.announce([row.run_at for row in rows], now)
        return added

    def _insert(self, rows: Sequence[NewJob], keyed: list[int], ids: list[int]) -> None:
        """Write `rows`, all or none, their ids into `ids`; `keyed`: the ones with a key."""
        # On PostgreSQL one job is one INSERT, atomic on its own, without the BEGIN and
        # COMMIT round trips (a third of a single add's time). SQLite keeps its
        # BEGIN IMMEDIATE: in-process, and it takes the write lock before any read.
        alone = len(rows) == 1 and self.store.postgres
        with nullcontext() if alone else self.store.db.atomic():
            skip = set(keyed)
            plain = [i for i in range(len(rows)) if i not in skip] if skip else range(len(rows))
            for start in range(0, len(plain), _INSERT_CHUNK):
                chunk = plain[start:start + _INSERT_CHUNK]
                for i, job_id in zip(chunk, self.store.insert([rows[i] for i in chunk]),
                                     strict=True):
                    ids[i] = job_id
            for i in keyed:
                ids[i] = self._insert_keyed(rows[i])

    def _insert_keyed(self, row: NewJob) -> int:
        inserted = self.store.execute(*self.store.notifying(
            INSERT_JOB + INSERT_VALUES + " ON CONFLICT (queue, job_key) DO NOTHING RETURNING id",
            list(row), [row])).fetchall()
        if inserted:
            return int(inserted[0][0])
        existing = self.store.execute("SELECT id FROM job WHERE queue=? AND job_key=?",
                                      (self.name, row.job_key)).fetchone()
        return int(existing[0])

    def announce(self, run_times: Sequence[float], now: float | None = None) -> None:
        """Ring the doorbell for new work: now for due jobs, and at each later run time
        (to 10 ms; past 1,000 distinct times the upkeep sweep rings for the rest)."""
        now = time.time() if now is None else now
        if min(run_times) <= now:
            self.doorbell.ring()
            if len(run_times) == 1:  # a single add, due: nothing later to ring for
                return
        for when in sorted({math.ceil(t * 100) / 100 for t in run_times if t > now})[:1000]:
            self.doorbell.ring_at(when, here=self.local_workers)

    # -- reading ------------------------------------------------------------------------

    def get_job(self, job_id: int | str) -> dict[str, Any] | None:
        """A job by its id, or by the jobId it was added with."""
        if isinstance(job_id, int) or JOB_ID.fullmatch(str(job_id)):
            row = self.store.execute(f"SELECT {JOB_COLUMNS} FROM job WHERE id=? AND queue=?",
                                     (int(job_id), self.name)).fetchone()
            if row is not None:
                return self._with_history(job_dict(JobRow(*row)))
        row = self.store.execute(f"SELECT {JOB_COLUMNS} FROM job WHERE queue=? AND job_key=?",
                                 (self.name, str(job_id))).fetchone()
        return None if row is None else self._with_history(job_dict(JobRow(*row)))

    def get_jobs(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        found: dict[int, dict[str, Any]] = {}
        for start in range(0, len(ids), _INSERT_CHUNK):
            chunk = ids[start:start + _INSERT_CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in self.store.execute(f"SELECT {JOB_COLUMNS} FROM job WHERE id IN ({marks})",
                                          chunk).fetchall():
                found[row[0]] = job_dict(JobRow(*row))
        return [found[i] for i in ids]

    def _with_history(self, job: dict[str, Any]) -> dict[str, Any]:
        attempts = self.store.execute(
            "SELECT attempt, started_at, finished_at, error, traceback FROM job_attempt "
            "WHERE job_id=? ORDER BY id", (int(job["id"]),)).fetchall()
        job["errors"] = [{"attempt": a, "startedOn": milliseconds(s), "finishedOn": milliseconds(f),
                          "error": e, "stacktrace": t} for a, s, f, e, t in attempts]
        job["stacktrace"] = [t for *_, t in attempts if t]
        job["logs"] = [line for (line,) in self.store.execute(
            "SELECT line FROM job_log WHERE job_id=? ORDER BY id", (int(job["id"]),)).fetchall()]
        return job

    def is_paused(self) -> bool:
        row = self.store.execute("SELECT paused FROM queue_state WHERE name=?",
                                 (self.name,)).fetchone()
        return bool(row and row[0])

    def get_stats(self) -> dict[str, Any]:
        """Counts by state (BullMQ's names), with total; waiting jobs of a paused queue count
        as paused. From the counts the database keeps (synthbox.records.counts), so the cost does
        not grow with the number of jobs; only delayed jobs are counted here."""
        counts = dict.fromkeys((WAITING, ACTIVE, COMPLETED, FAILED, DELAYED, PAUSED), 0)
        for status, count in self.store.execute(COUNTS, (self.name, self.name)).fetchall():
            counts[status] = max(int(count), 0)
        counts[DELAYED] = int(self.store.execute(
            "SELECT COUNT(*) FROM job WHERE queue=? AND status='waiting' "
            f"AND priority IN ({_EACH_PRIORITY}) AND run_at>?",
            (self.name, time.time())).fetchone()[0])
        counts[WAITING] = max(counts[WAITING] - counts[DELAYED], 0)
        if self.is_paused():
            counts[PAUSED], counts[WAITING] = counts[WAITING], 0
        counts["total"] = sum(counts.values())
        return counts

    def _matching(self, state: str | None, search: str | None,
                  now: float) -> tuple[str, list[Any]]:
        """The WHERE clause for jobs of this queue in `state` (any if None) whose id is
        `search`, or whose jobId (a Faktory jid), name, data or error contains it
        (case-insensitive)."""
        where = "queue=?"
        params: list[Any] = [self.name]
        if state is not None:
            if state not in STATES:
                raise JobOptionError("state", f"must be one of {', '.join(STATES)}")
            # a literal, so that SQLite may read the claim index (waiting jobs only)
            where += f" AND status='{WAITING if state in (WAITING, DELAYED) else state}'"
            if state in (WAITING, DELAYED):
                where += " AND run_at<=?" if state == WAITING else " AND run_at>?"
                params.append(now)
        if search:
            if len(search) > 200:
                raise JobOptionError("search", "must be at most 200 characters")
            pattern = "%" + re.sub(r"([\\%_])", r"\\\1", search.lower()) + "%"
            like = " OR ".join(f"LOWER({column}) LIKE ? ESCAPE '\\'"
                               for column in ("job_key", "name", "data", "failed_reason"))
            where += f" AND (id=? OR {like})"
            params += [int(search) if JOB_ID.fullmatch(search) else -1,
                       pattern, pattern, pattern, pattern]
        return where, params

    def list_jobs(self, state: str | None, limit: int = 50, before: int | None = None,
                  search: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Jobs in `state` (any if None), newest first, optionally matching `search`; pass
        the returned cursor as `before` for the next page."""
        with job_option_errors():
            limit = check_whole(limit, "limit", 1, 1000)
        now = time.time()
        where, params = self._matching(state, search, now)
        if before is not None:
            where += " AND id<?"
            params.append(before)
        rows = self.store.execute(
            f"SELECT {JOB_COLUMNS} FROM job WHERE {where} ORDER BY id DESC LIMIT ?",
            (*params, limit + 1)).fetchall()
        more = len(rows) > limit
        jobs = [job_dict(JobRow(*row), now) for row in rows[:limit]]
        return jobs, (jobs[-1]["id"] if more else None)

    def count_matching(self, state: str | None, search: str | None) -> int:
        where, params = self._matching(state, search, time.time())
        return int(self.store.execute(f"SELECT COUNT(*) FROM job WHERE {where}",
                                      params).fetchone()[0])

    def retry_matching(self, search: str | None) -> int:
        """Retry the failed jobs that match `search`."""
        where, params = self._matching(FAILED, search, time.time())
        return self._retry(where.removeprefix("queue=? AND "), params[1:])

    def delete_matching(self, state: str | None, search: str | None) -> int:
        """Delete the jobs that match (never an active one)."""
        where, params = self._matching(state, search, time.time())
        ids = [r[0] for r in self.store.execute(f"SELECT id FROM job WHERE {where}",
                                                params).fetchall()]
        return sum(self.store.delete_jobs(ids[start:start + _INSERT_CHUNK])
                   for start in range(0, len(ids), _INSERT_CHUNK))

    def get_failed_jobs(self, limit: int = 50) -> list[dict[str, Any]]:
        return self.list_jobs(FAILED, limit)[0]

    # -- changing -----------------------------------------------------------------------

    def retry_job(self, job_id: int | str) -> bool:
        """Send a failed job back to waiting with a fresh set of attempts."""
        job = self.get_job(job_id)
        if job is None or job["state"] != FAILED:
            return False
        return self._retry("id=?", (int(job["id"]),)) > 0

    def retry_with_data(self, job_id: int | str, data: Any) -> bool:
        """Give a failed job new data and send it back to waiting (fresh attempts)."""
        job = self.get_job(job_id)
        if job is None or job["state"] != FAILED:
            return False
        text = json.dumps({} if data is None else data)
        with self.store.db.atomic():
            self.store.execute("UPDATE job SET data=? WHERE id=? AND status='failed'",
                               (text, int(job["id"])))
            return self._retry("id=?", (int(job["id"]),)) > 0

    def retry_all_failed(self) -> int:
        return self._retry("1=1", ())

    def _retry(self, condition: str, params: Sequence[Any]) -> int:
        now = time.time()
        with self.store.db.atomic():
            count = self.store.execute(
                "UPDATE job SET status='waiting', attempts_made=0, stalled_count=0, run_at=?, "
                "failed_reason=NULL, finished_at=NULL, started_at=NULL "
                f"WHERE queue=? AND status='failed' AND {condition}",
                (now, self.name, *params)).rowcount
        if count:
            self.doorbell.ring()
        return count

    def promote(self, job_id: int | str) -> bool:
        """Make a delayed job due now."""
        job = self.get_job(job_id)
        if job is None or job["state"] != DELAYED:
            return False
        count = self.store.execute(
            "UPDATE job SET run_at=? WHERE id=? AND status='waiting'",
            (time.time(), int(job["id"]))).rowcount
        if count:
            self.doorbell.ring()
        return count > 0

    def remove(self, job_id: int | str) -> bool:
        """Delete a job that is not running."""
        job = self.get_job(job_id)
        if job is None or job["state"] == ACTIVE:
            return False
        self.store.delete_jobs([int(job["id"])])
        return True

    def clean(self, state: str, grace: float = 0.0, limit: int = 10000) -> int:
        """Delete up to `limit` jobs in `state` (completed or failed) finished over `grace`
        seconds ago; waiting and delayed jobs by their creation time."""
        if state not in (COMPLETED, FAILED, WAITING, DELAYED):
            raise JobOptionError("state", "must be one of completed, failed, waiting, delayed")
        with job_option_errors():
            grace = check_seconds(grace, "grace", allow_zero=True)
            limit = check_whole(limit, "limit", 1, 1_000_000)
        cutoff = time.time() - grace
        if state in (COMPLETED, FAILED):
            where = "status=? AND finished_at<?"
            params: list[Any] = [state, cutoff]
        else:
            where = "status='waiting' AND created_at<? AND run_at" + (
                "<=?" if state == WAITING else ">?")
            params = [cutoff, time.time()]
        ids = [r[0] for r in self.store.execute(
            f"SELECT id FROM job WHERE queue=? AND {where} LIMIT ?",
            (self.name, *params, limit)).fetchall()]
        for start in range(0, len(ids), _INSERT_CHUNK):
            self.store.delete_jobs(ids[start:start + _INSERT_CHUNK])
        return len(ids)

    def cleanup(self, age_ms: int = 86_400_000) -> int:
        """The seed's cleanup(grace in ms): completed and failed jobs older than that."""
        with job_option_errors():
            grace = check_seconds(age_ms, "age_ms", allow_zero=True) / 1000
        return self.clean(COMPLETED, grace) + self.clean(FAILED, grace)

    def pause(self) -> None:
        self._set_paused(True)

    def resume(self) -> None:
        self._set_paused(False)
        self.doorbell.ring()

    def _set_paused(self, paused: bool) -> None:
        with self.store.db.atomic():
            updated = self.store.execute(
                "UPDATE queue_state SET paused=?, updated_at=? WHERE name=?",
                (paused, time.time(), self.name)).rowcount
            if not updated:
                self.store.execute(
                    "INSERT INTO queue_state (name, paused, updated_at) VALUES (?, ?, ?)",
                    (self.name, paused, time.time()))


class LegacyServiceMethods:
    """The queue-service methods of the system SynthBox grew from (its seed guide's
    EmailQueueService and OrchestrationQueueService), for a service that keeps its
    QueueService in `queue`."""

    queue: QueueService

    def get_stats(self) -> dict[str, Any]:
        return self.queue.get_stats()

    def get_failed_jobs(self, limit: int = 50) -> list[dict[str, Any]]:
        return self.queue.get_failed_jobs(limit)

    def retry_job(self, job_id: str) -> bool:
        return self.queue.retry_job(job_id)

    def retry_all_failed(self) -> int:
        return self.queue.retry_all_failed()

    def cleanup(self, age_ms: int = 86_400_000) -> int:
        return self.queue.cleanup(age_ms)
