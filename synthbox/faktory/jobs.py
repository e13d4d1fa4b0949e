"""The jobs of `remote` queues as workers elsewhere see them: push, fetch (a claim with a
lease), ack, fail, and lease extension. The Faktory protocol and the HTTP worker API both
call these; the job record stays the truth (a pushed job is a row before the reply)."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from peewee import IntegrityError

from synthbox.actors import Actor
from synthbox.errors import Conflict, InputError, NotFound
from synthbox.faktory.fields import DEFAULT_RESERVE, PushedJob, fetched_job, read_job
from synthbox.jobs.engine import Engine
from synthbox.jobs.groupcommit import GroupCommit
from synthbox.jobs.options import job_row
from synthbox.jobs.rows import ClaimedJob, Failure, NewJob
from synthbox.jobs.spec import QueueSpec
from synthbox.userqueues import manage
from synthbox.userqueues.catalog import user_queues

log = logging.getLogger("synthbox.faktory")

POLL = 0.1  # seconds between looks for jobs that did not arrive by a push here
NEW_QUEUE = {"handler": "remote", "backoff": {"type": "faktory"}}
# A job's extras are those of the job with its id *and* creation time: SQLite hands a
# deleted job's id to the next job, while the extras' row waits for forget_gone()
SAME_JOB = "f.job_id=j.id AND f.created_at=j.created_at"
_CLAIMED = ("id, name, data, attempts_made, attempts_max, backoff_type, backoff_delay, "
            "timeout, priority, run_at, queue, started_at, owner")
_FETCHED = ("SELECT j.id, j.queue, j.name, j.data, j.priority, j.attempts_made, "
            "j.attempts_max, j.created_at, j.run_at, f.jid, f.custom, f.reserve_for, f.retry, "
            f"f.backtrace FROM job j LEFT JOIN faktory_job f ON {SAME_JOB} "
            "WHERE j.id IN ({marks})")
_BY_ENGINE: weakref.WeakKeyDictionary[Engine, RemoteJobs] = weakref.WeakKeyDictionary()


class NotUnique(Conflict):
    """A pushed jid that a job already has."""


class RemoteJobs:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.store = engine.store
        self.arrived = threading.Condition()  # a push here wakes the HTTP workers' fetches
        self.pushed = 0
        self._handed: dict[str, tuple[ClaimedJob, str]] = {}  # jid -> claim, until ACK
        self._acks: GroupCommit[tuple[str, tuple[ClaimedJob, str | None, float]]] = \
            GroupCommit(self._complete)
        self._claims: GroupCommit[tuple[str, ...]] = GroupCommit(self.claim_for)

    # -- push ---------------------------------------------------------------------------

    def prepare(self, raw_jobs: Sequence[Any], actor: Actor
                ) -> tuple[list[tuple[PushedJob, NewJob]], dict[str, str]]:
        """The pushed jobs checked and made rows, and {jid: why} for those refused (a
        single job's InputError raises)."""
        refused: dict[str, str] = {}
        ready: list[tuple[PushedJob, NewJob]] = []
        now = time.time()
        for index, raw in enumerate(raw_jobs):
            try:
                job = read_job(raw)
                spec = self.ensure_queue(job.queue, actor)
                ready.append((job, job_row(spec, job.options, now)))
            except InputError as exc:
                if len(raw_jobs) == 1:
                    raise
                jid = raw.get("jid") if isinstance(raw, dict) else None
                refused[str(jid if isinstance(jid, str) else index)] = str(exc)
        return ready, refused

    @staticmethod
    def outcome(raw_jobs: Sequence[Any], refused: dict[str, str]) -> dict[str, str]:
        """What a push answers once stored: a single job refused raises NotUnique."""
        if len(raw_jobs) == 1 and refused:
            raise NotUnique(next(iter(refused.values())))
        return refused

    def ensure_queue(self, name: str, actor: Actor) -> QueueSpec:
        """The queue `name`, made a `remote` queue with default options on first use."""
        handle = self.engine.queues.get(name)
        if handle is None:
            try:
                manage.create(self.engine, name, dict(NEW_QUEUE), actor)
            except Conflict:  # made meanwhile by another connection or instance
                user_queues(self.engine).sync()
            handle = self.engine.queues.get(name)
            if handle is None:
                raise NotFound(f"queue: {name!r} could not be made")
        if handle.service.spec.local_consumer:
            raise InputError("queue", f"{name!r} is not a remote queue: its jobs run in "
                                      "SynthBox (push to a queue with handler = remote)")
        return handle.service.spec

    def _taken(self, jids: list[str]) -> set[str]:
        """The jids a live job holds; a jid whose job is gone (retention) is freed here."""
        taken: set[str] = set()
        for start in range(0, len(jids), 500):
            chunk = jids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.store.execute(
                f"SELECT f.jid, j.id FROM faktory_job f LEFT JOIN job j ON {SAME_JOB} "
                f"WHERE f.jid IN ({marks})", chunk).fetchall()
            gone = [jid for jid, job_id in rows if job_id is None]
            taken.update(jid for jid, job_id in rows if job_id is not None)
            if gone:
                self.store.execute(f"DELETE FROM faktory_job WHERE jid IN "
                                   f"({','.join('?' * len(gone))})", gone)
        return taken

    def store_batches(self, requests: Sequence[list[tuple[PushedJob, NewJob]]]
               ) -> list[dict[str, str]]:
        """Several connections' pushes in one transaction: for each, the jids refused."""
        outcomes: list[dict[str, str]] = [{} for _ in requests]
        try:
            with self.store.db.atomic():
                taken = self._taken([job.jid for ready in requests for job, _ in ready])
                chosen: list[tuple[PushedJob, NewJob]] = []
                for outcome, ready in zip(outcomes, requests, strict=True):
                    for job, row in ready:
                        if job.jid in taken:
                            outcome[job.jid] = f"jid: {job.jid} is taken by another job"
                        else:
                            taken.add(job.jid)  # the same jid twice in this batch
                            chosen.append((job, row))
                self._insert(chosen)
        except IntegrityError:
            # a jid pushed at this moment by another instance, or an API jobId
            if len(requests) > 1:
                return [self.store_batches([ready])[0] for ready in requests]
            return [{job.jid: f"jid: {job.jid} is taken by another job"
                     for job, _ in requests[0]}]
        with self.arrived:
            self.pushed += sum(len(ready) for ready in requests)
            self.arrived.notify_all()
        return outcomes

    def _insert(self, chosen: list[tuple[PushedJob, NewJob]]) -> None:
        ids: list[int] = []
        for start in range(0, len(chosen), 500):
            ids += self.store.insert([row for _, row in chosen[start:start + 500]])
        self.store.db.cursor().executemany(self.store._sql(
            "INSERT INTO faktory_job (jid, job_id, custom, reserve_for, retry, backtrace, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"),
            [(job.jid, job_id, job.custom, job.reserve_for, job.retry, job.backtrace,
              row.created_at) for (job, row), job_id in zip(chosen, ids, strict=True)])

    # -- fetch --------------------------------------------------------------------------

    def fetch(self, queues: Sequence[str]) -> dict[str, Any] | None:
        """The first due job of the first queue that has one, claimed with its lease."""
        return self._claims.submit(tuple(queues))

    def claim_for(self, requests: Sequence[tuple[str, ...]], look: bool = True
                  ) -> list[dict[str, Any] | None]:
        """Several FETCHes served together: for each list of queues, a job claimed from
        the first queue that has one due (None when none has). With `look`, a queue is
        claimed from only if a read finds due jobs in it (no write lock taken for an
        empty queue)."""
        now = time.time()
        due = {name: self._is_remote(name) and (not look or self.store.has_due_work(name, now))
               for name in {name for queues in requests for name in queues}}
        wanted = [tuple(name for name in queues if due[name]) for queues in requests]
        if not any(wanted):
            return [None] * len(requests)
        return self._handed_out(self._claim_batch(wanted))

    def _is_remote(self, name: str) -> bool:
        handle = self.engine.queues.get(name)
        return handle is not None and not handle.service.spec.local_consumer

    def _claim_batch(self, requests: Sequence[tuple[str, ...]]
                     ) -> list[tuple[ClaimedJob, float] | None]:
        """Several connections' FETCHes claimed together: per list of queues, as many jobs
        as there are FETCHes, from the first queue that has them on."""
        given: list[tuple[ClaimedJob, float] | None] = [None] * len(requests)
        for queues in dict.fromkeys(requests):
            waiting = [i for i, wanted in enumerate(requests) if wanted == queues]
            for name in queues:
                if not waiting:
                    break
                handle = self.engine.queues.get(name)
                if handle is None:
                    continue
                spec, lease = handle.service.spec, DEFAULT_RESERVE
                if spec.rate_limit_max and handle.runner is not None:
                    jobs = handle.runner.claim(len(waiting))[0]  # the rate limit, at FETCH
                    lease = spec.stalled_interval
                else:
                    jobs = self.store.claim(name, len(waiting), self.engine.instance_id,
                                            lease)
                for job in jobs:
                    given[waiting.pop(0)] = (job, lease)
        return given

    def _handed_out(self, claims: Sequence[tuple[ClaimedJob, float] | None]
                    ) -> list[dict[str, Any] | None]:
        """The claimed jobs as workers get them (read together), each job's own
        reserve_for as its lease."""
        ids = [claim[0].id for claim in claims if claim is not None]
        if not ids:
            return [None] * len(claims)
        rows = {row[0]: tuple(row) for row in self.store.execute(
            _FETCHED.format(marks=",".join("?" * len(ids))), ids).fetchall()}
        handed: list[dict[str, Any] | None] = []
        leases: list[tuple[float, int, float]] = []
        for claim in claims:
            if claim is None or claim[0].id not in rows:
                handed.append(None)
                continue
            claimed, lease = claim
            row = rows[claimed.id]
            reserve = row[11] or DEFAULT_RESERVE
            if reserve != lease:  # the job's own reserve_for
                leases.append((claimed.started_at + reserve, claimed.id, claimed.started_at))
            failure = None
            if claimed.attempts_made > 1:
                failure = self.store.execute(
                    "SELECT finished_at, error, traceback FROM job_attempt WHERE job_id=? "
                    "ORDER BY id DESC LIMIT 1", (claimed.id,)).fetchone()
            job = fetched_job(row, None if failure is None else tuple(failure))
            if len(self._handed) > 100_000:  # claims never acknowledged (jobs deleted)
                self._handed.clear()
            self._handed[job["jid"]] = (claimed, self.engine.instance_id)
            handed.append(job)
        if leases:
            self.store.db.cursor().executemany(self.store._sql(
                "UPDATE job SET lease_until=? WHERE id=? AND started_at=?"), leases)
        return handed

    def fetch_within(self, queues: Sequence[str], wait: float,
                     stopping: Callable[[], bool] = lambda: False) -> dict[str, Any] | None:
        """fetch(), waiting up to `wait` seconds for a job: woken at once by a push to this
        instance, and looking every POLL seconds for jobs that came another way."""
        deadline = time.monotonic() + wait
        seen = self.pushed
        while True:
            job = self.fetch(queues)
            if job is not None:
                return job
            remaining = deadline - time.monotonic()
            if remaining <= 0 or stopping():
                return None
            with self.arrived:
                if self.pushed == seen:
                    self.arrived.wait(min(POLL, remaining))
                seen = self.pushed

    # -- outcomes -----------------------------------------------------------------------

    def job_id(self, jid: str) -> int | None:
        row = self.store.execute(f"SELECT f.job_id FROM faktory_job f JOIN job j ON "
                                 f"{SAME_JOB} WHERE f.jid=?", (jid,)).fetchone()
        if row is not None:
            return int(row[0])
        if jid.isdigit() and len(jid) <= 18:
            mine = self.store.execute(f"SELECT 1 FROM faktory_job f JOIN job j ON "
                                      f"{SAME_JOB} WHERE j.id=?", (int(jid),)).fetchone()
            return None if mine is not None else int(jid)
        return None

    def _active(self, jid: str) -> tuple[ClaimedJob, str] | None:
        job_id = self.job_id(jid)
        if job_id is None:
            return None
        row = self.store.execute(f"SELECT {_CLAIMED} FROM job WHERE id=? AND status='active'",
                                 (job_id,)).fetchone()
        if row is None or row[10] not in self.engine.queues \
                or self.engine.queues[row[10]].service.spec.local_consumer:
            return None
        return ClaimedJob(*row[:12]), row[12]

    def ack(self, jid: str, result: str | None = None, confirm: bool = True) -> bool:
        """Complete a fetched job (`result` as JSON text); False when none is held.
        Without `confirm`, a claim this process handed out is completed as it was claimed
        (two reads fewer; a claim that lapsed meanwhile then changes nothing)."""
        found = self._held(jid, confirm)
        if found is None:
            return False
        job, owner = found
        self._acks.submit((owner, (job, result, time.time())))
        return True

    def ack_all(self, acks: Sequence[tuple[str, str | None]]) -> list[bool]:
        """Several ACKs of claims this process handed out, recorded together; for each,
        False when no worker held that job."""
        held = [self._held(jid, confirm=False) for jid, _ in acks]
        now = time.time()
        self._complete([(found[1], (found[0], result, now))
                        for found, (_, result) in zip(held, acks, strict=True) if found])
        return [found is not None for found in held]

    def settle(self, acks: Sequence[tuple[str, str | None]],
               requests: Sequence[tuple[str, ...]]
               ) -> tuple[list[bool], list[dict[str, Any] | None]]:
        """ack_all() and claim_for() in one transaction: a round of the Faktory loop
        commits once for the jobs its workers finished and the jobs they fetch next."""
        with self.store.batch():
            held = self.ack_all(acks) if acks else []
            return held, self.claim_for(requests, look=False) if requests else []

    def _held(self, jid: str, confirm: bool) -> tuple[ClaimedJob, str] | None:
        cached = self._handed.pop(jid, None)
        return self._active(jid) if confirm or cached is None else cached

    def _complete(self, acks: Sequence[tuple[str, tuple[ClaimedJob, str | None, float]]]
                  ) -> list[None]:
        """Several connections' ACKs recorded together (one transaction per owner)."""
        owners: dict[str, list[tuple[ClaimedJob, str | None, float]]] = {}
        for owner, done in acks:
            owners.setdefault(owner, []).append(done)
        for owner, completed in owners.items():
            self.store.finish(owner, completed, [])
        return [None] * len(acks)

    def fail(self, jid: str, errtype: str, message: str, backtrace: Sequence[str],
             retry_in: float | None = None) -> bool:
        """Fail a fetched job's attempt: retried after the queue's backoff (or `retry_in`
        seconds) while attempts are left; a job pushed with retry -1 is then dropped."""
        self._handed.pop(jid, None)
        found = self._active(jid)
        if found is None:
            return False
        job, owner = found
        now = time.time()
        spec = self.engine.queues[job.queue].service.spec
        retry_at = None
        if job.attempts_made < job.attempts_max:
            retry_at = now + (retry_in if retry_in is not None else spec.backoff_seconds(
                job.backoff_type, job.backoff_delay, job.attempts_made))
        error = f"{errtype}: {message}" if errtype else message
        self.store.finish(owner, [], [Failure(job, error, "\n".join(backtrace) or None, now,
                                              retry_at)])
        if retry_at is None:
            dropped = self.store.execute(f"SELECT f.retry FROM faktory_job f JOIN job j ON "
                                         f"{SAME_JOB} WHERE j.id=?", (job.id,)).fetchone()
            if dropped is not None and dropped[0] == -1:
                self.store.delete_jobs([job.id])
        return True

    def give_back(self, jid: str) -> None:
        """A fetched job no worker will run: waiting again, as if never fetched."""
        self._handed.pop(jid, None)
        found = self._active(jid)
        if found is not None:
            self.store.release(found[1], [found[0].id])

    def extend(self, jid: str, seconds: float | None = None) -> float | None:
        """Renew a fetched job's lease by `seconds` (its reserve_for); the new end."""
        found = self._active(jid)
        if found is None:
            return None
        job, _ = found
        if seconds is None:
            row = self.store.execute(f"SELECT f.reserve_for FROM faktory_job f JOIN job j "
                                     f"ON {SAME_JOB} WHERE j.id=?", (job.id,)).fetchone()
            seconds = float(row[0]) if row else DEFAULT_RESERVE
        until = time.time() + seconds
        self.store.execute("UPDATE job SET lease_until=? WHERE id=? AND status='active' "
                           "AND started_at=?", (until, job.id, job.started_at))
        return until

    def forget_gone(self) -> None:
        """Drop the extras of jobs that retention or a person deleted."""
        self.store.execute("DELETE FROM faktory_job WHERE NOT EXISTS (SELECT 1 FROM job "
                           "WHERE job.id=faktory_job.job_id "
                           "AND job.created_at=faktory_job.created_at)")


def remote_jobs(engine: Engine) -> RemoteJobs:
    """The one RemoteJobs of an engine (the listener and the HTTP API share its wake-ups)."""
    found = _BY_ENGINE.get(engine)
    if found is None:
        found = _BY_ENGINE[engine] = RemoteJobs(engine)
    return found
