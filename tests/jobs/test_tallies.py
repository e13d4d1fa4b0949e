"""The tallies behind the charts and /metrics (completed, failed, retried, waits and run
times per queue): equal to what the workers recorded, on SQLite and with PostgreSQL
records, where transactions append them to insert-only deltas that upkeep folds in."""

from __future__ import annotations

import threading
import time

import pytest

from synthbox.jobs.rows import Failure
from synthbox.jobs.tallies import tally


def _histogram(engine):
    return sorted((q, m, b, n, round(t, 6)) for q, m, b, n, t in engine.store.tallies.histogram())


def _deltas(engine):
    return [engine.store.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("queue_minute_delta", "job_histogram_delta")]


def test_a_batch_is_tallied_as_recorded_before_and_after_folding(make_engine):
    """Completions of many run and wait times, a retry, a final failure, a deferral and a
    stale claim: the tallies count what the rows say (the deferral and the stale claim
    not at all), in the buckets Python's tally() gives, before upkeep folds and after."""
    engine = make_engine(workers=False)
    store = engine.store
    engine.service("diagnostics").add_bulk([{"name": "noop"}] * 14)
    jobs = store.claim("diagnostics", 14, "me", 30)
    assert len(jobs) == 14
    stale = jobs[13]
    store.execute("UPDATE job SET owner='someone else' WHERE id=?", (stale.id,))
    runs = [0.0, 0.001, 0.004, 0.02, 0.07, 0.3, 0.9, 2.0, 4.0, 20.0]
    completed = [(job, None, job.started_at + run) for job, run in zip(jobs, runs, strict=False)]
    now = time.time()
    failures = [Failure(jobs[10], "again", None, now, now + 60),
                Failure(jobs[11], "for good", None, now, None),
                Failure(jobs[12], "later", None, now, now + 60, uses_attempt=False)]
    store.finish("me", [*completed, (stale, None, now)], failures)

    minutes, buckets = tally(completed, failures[:2])
    expected = sorted((q, m, b, n, round(t, 6)) for q, m, b, n, t in buckets)
    for folded in (False, True):
        if folded:
            store.tallies.fold()
        totals = store.tallies.totals()["diagnostics"]
        assert (totals["completed"], totals["failed"], totals["retried"], totals["picked"]) \
            == (10, 1, 1, 12), folded
        assert totals["wait_ms"] == pytest.approx(sum(row[4] for row in minutes))
        assert _histogram(engine) == expected, folded
        this_minute = [m for m in store.tallies.minutes(int(now // 60) - 5)
                       if m.queue == "diagnostics"]
        assert sum(m.completed for m in this_minute) == 10
        assert all(isinstance(m.completed, int) for m in this_minute)
    if store.postgres:
        assert _deltas(engine) == [0, 0]


def test_postgres_completions_append_their_tallies_in_the_same_statement(pg_url,
                                                                         engine_builder):
    """One statement completes a batch and appends its tallies: nothing touches the
    shared per-minute row until upkeep folds."""
    engine = engine_builder({"database_url": pg_url}, workers=False)
    store = engine.store
    engine.service("diagnostics").add_bulk([{"name": "noop"}] * 5)
    jobs = store.claim("diagnostics", 5, "me", 30)
    store.finish("me", [(job, '{"ok": 1}', time.time()) for job in jobs], [])
    assert store.execute("SELECT COUNT(*) FROM queue_minute").fetchone()[0] == 0
    assert _deltas(engine) == [1, 2]  # one minute; one bucket each of run and wait time
    assert store.tallies.totals()["diagnostics"]["completed"] == 5
    assert {row[0] for row in store.execute(
        "SELECT status FROM job").fetchall()} == {"completed"}


def test_concurrent_workers_and_folds_lose_and_double_nothing(pg_url, engine_builder):
    """Eight threads claiming and completing batches of one queue while two others fold
    the deltas over and over: the totals end equal to the jobs."""
    engine = engine_builder({"database_url": pg_url}, workers=False)
    store = engine.store
    total = 800
    engine.service("diagnostics").add_bulk([{"name": "noop"}] * total)
    done = threading.Event()
    errors: list[BaseException] = []

    def work(owner: str) -> None:
        try:
            while jobs := store.claim("diagnostics", 7, owner, 30):
                store.finish(owner, [(job, None, time.time()) for job in jobs], [])
        except BaseException as exc:  # reported below
            errors.append(exc)

    def fold() -> None:
        try:
            while not done.is_set():
                store.tallies.fold()
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(8)]
    folders = [threading.Thread(target=fold) for _ in range(2)]
    for thread in [*workers, *folders]:
        thread.start()
    for thread in workers:
        thread.join(60)
    done.set()
    for thread in folders:
        thread.join(60)
    assert not errors, errors
    assert store.tallies.totals()["diagnostics"]["completed"] == total
    assert sum(n for q, m, b, n, t in store.tallies.histogram() if m == "duration") == total
    store.tallies.fold()
    assert store.tallies.totals()["diagnostics"]["completed"] == total
    assert _deltas(engine) == [0, 0]
