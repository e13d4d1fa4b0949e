"""Retention: a queue's finished jobs past their age, or beyond the newest it keeps, are
deleted with their history in small batches, paced so that adds and claims never wait
long behind them.

SQLite: each batch holds the one write lock. 1,000 rows held it 5-17 ms, and a producer
adding a job waited that long; 200 rows take 1-2 ms. PostgreSQL: a batch is one
statement (the job rows, their attempts and their log lines together, one round trip
instead of six). A pause after each batch three times as long as it took keeps retention
to a quarter of one connection's time: the first pass after a drain of 20,000 jobs made
pickups of new jobs wait behind its WAL flushes and its CPU (benchmarks/README.md).
"""

from __future__ import annotations

import logging
import threading
import time

from synthbox.jobs.spec import QueueSpec
from synthbox.jobs.store import JobStore
from synthbox.records.models import COMPLETED, FAILED

log = logging.getLogger("synthbox.upkeep")

RETENTION_BATCH = 200
RETENTION_BATCHES_PER_PASS = 100
RETENTION_PAUSE = 0.002  # at least, after each batch: let waiting writers in
RETENTION_YIELD = 3  # and this many times as long as the batch took

_OLDER = "SELECT id FROM job WHERE queue=? AND status=? AND finished_at<? LIMIT ?"
_BEYOND_NEWEST = ("SELECT id FROM job WHERE queue=? AND status=? AND finished_at IS NOT NULL "
                  "ORDER BY finished_at DESC, id DESC LIMIT ? OFFSET ?")
# PostgreSQL: the batch chosen, deleted with its history, in one statement; it answers how
# many were chosen (a full batch: there may be more) and how many deleted
_DELETE_WITH_HISTORY = (
    "WITH chosen AS ({choose}), "
    "gone AS (DELETE FROM job WHERE id IN (SELECT id FROM chosen) AND status<>'active' "
    "RETURNING id), "
    "attempts AS (DELETE FROM job_attempt WHERE job_id IN (SELECT id FROM gone)), "
    "logs AS (DELETE FROM job_log WHERE job_id IN (SELECT id FROM gone)) "
    "SELECT (SELECT COUNT(*) FROM chosen), (SELECT COUNT(*) FROM gone)")


def delete_finished(store: JobStore, queue: str, status: str, older_than: float | None,
                    keep_newest: int, batch: int) -> tuple[int, int]:
    """Delete up to `batch` finished jobs past an age, or beyond the newest `keep_newest`:
    how many were chosen, and how many deleted (not those claimed meanwhile)."""
    if older_than is not None:
        choose, params = _OLDER, (queue, status, older_than, batch)
    else:
        choose, params = _BEYOND_NEWEST, (queue, status, batch, keep_newest)
    if store.postgres:
        chosen, deleted = store.execute(_DELETE_WITH_HISTORY.format(choose=choose),
                                        params).fetchone()
        return int(chosen), int(deleted)
    ids = [r[0] for r in store.execute(choose, params).fetchall()]
    return len(ids), store.delete_jobs(ids) if ids else 0


def apply_retention(store: JobStore, spec: QueueSpec, stopped: threading.Event) -> bool:
    """Delete what the queue's retention says, in small batches. True when a pass stopped
    at its cap with more left to delete (and False at once when `stopped` is set)."""
    now = time.time()
    passes = (
        (COMPLETED, now - spec.keep_completed_age, 0),
        (COMPLETED, None, spec.keep_completed_count),
        (FAILED, now - spec.keep_failed_age, 0),
    )
    removed, behind = 0, False
    for status, older_than, keep in passes:
        for _ in range(RETENTION_BATCHES_PER_PASS):
            started = time.perf_counter()
            chosen, deleted = delete_finished(store, spec.name, status, older_than, keep,
                                              RETENTION_BATCH)
            removed += deleted
            if chosen < RETENTION_BATCH:
                break
            took = time.perf_counter() - started
            if stopped.wait(max(RETENTION_PAUSE, RETENTION_YIELD * took)):
                return False
        else:  # the pass's last batch was full: there may be more
            behind = True
    if removed:
        log.info("retention: removed %d finished %s jobs", removed, spec.name)
    return behind
