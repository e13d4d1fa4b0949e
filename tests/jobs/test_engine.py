"""The engine's promises, on SQLite, on Redis, and with the records in PostgreSQL."""

from __future__ import annotations

import json
import time

import pytest

from synthbox.jobs.errors import JobOptionError
from tests.conftest import finished_jobs, wait_for


def states(service, ids):
    return [service.get_job(i)["state"] for i in ids]


def all_done(service, ids, final=("completed", "failed")):
    return all(state in final for state in states(service, ids))


def test_priority_order_then_fifo(make_engine):
    engine = make_engine({"diagnostics": {"concurrency": 1}}, workers=False)
    service = engine.service("diagnostics")
    service.pause()
    plan = [(0, "a"), (5, "b"), (10, "c"), (5, "d"), (0, "e"), (10, "f"), (3, "g")]
    ids = {}
    for priority, label in plan:
        ids[label] = service.add("sleep", {"seconds": 0.002, "label": label},
                                 priority=priority)["id"]
    engine.start_workers()
    time.sleep(0.3)
    assert service.get_stats()["completed"] == 0, "a paused queue must not start jobs"
    assert service.get_stats()["paused"] == len(plan)
    service.resume()
    wait_for(lambda: all_done(service, ids.values()), message="all jobs done")
    jobs = [service.get_job(i) for i in ids.values()]
    order = [j["data"]["label"] for j in sorted(jobs, key=lambda j: j["finishedOn"])]
    assert order == ["c", "f", "b", "d", "g", "a", "e"]


def test_delayed_jobs_never_start_early(make_engine):
    engine = make_engine()
    service = engine.service("diagnostics")
    delays = [0.3, 0.6, 1.0]
    jobs = [service.add("noop", {}, delay=d) for d in delays]
    assert [j["state"] for j in jobs] == ["delayed"] * 3
    assert service.get_stats()["delayed"] == 3
    wait_for(lambda: all_done(service, [j["id"] for j in jobs]), message="delayed jobs")
    for job, delay in zip(jobs, delays, strict=True):
        done = service.get_job(job["id"])
        assert done["processedOn"] >= job["runAt"], "started before its run_at"
        assert done["processedOn"] - job["timestamp"] >= delay * 1000
        # picked up promptly once due (the local timer, not a polling tick)
        assert done["processedOn"] - job["runAt"] < 1000


def test_retries_follow_the_backoff_then_complete(make_engine):
    engine = make_engine()
    service = engine.service("diagnostics")
    job = service.add("fail", {"times": 2, "message": "flaky"}, attempts=3,
                      backoff={"type": "exponential", "delay": 0.4})
    wait_for(lambda: service.get_job(job["id"])["state"] == "completed", message="completion")
    done = service.get_job(job["id"])
    assert done["attemptsMade"] == 3
    assert done["returnvalue"] == {"succeededOnAttempt": 3}
    errors = done["errors"]
    assert [e["attempt"] for e in errors] == [1, 2]
    assert all(e["error"] == "flaky" for e in errors)
    # exponential 0.4 s: 0.4 s after the first failure, 0.8 s after the second
    gap1 = errors[1]["startedOn"] - errors[0]["finishedOn"]
    gap2 = done["processedOn"] - errors[1]["finishedOn"]
    assert 400 <= gap1 < 1400, gap1
    assert 800 <= gap2 < 1800, gap2


def test_fixed_backoff(make_engine):
    engine = make_engine()
    service = engine.service("diagnostics")
    job = service.add("fail", {"times": 1}, attempts=2, backoff={"type": "fixed", "delay": 0.5})
    wait_for(lambda: service.get_job(job["id"])["state"] == "completed", message="completion")
    done = service.get_job(job["id"])
    gap = done["processedOn"] - done["errors"][0]["finishedOn"]
    assert 500 <= gap < 1500, gap


def test_exhausted_attempts_keep_every_error_and_can_be_retried(make_engine):
    engine = make_engine()
    service = engine.service("diagnostics")
    failing = [service.add("fail", {"times": 5, "message": f"boom {i}"}, attempts=2,
                           backoff={"type": "fixed", "delay": 0.05}) for i in range(3)]
    ids = [j["id"] for j in failing]
    wait_for(lambda: states(service, ids) == ["failed"] * 3, message="three failures")
    first = service.get_job(ids[0])
    assert first["failedReason"] == "boom 0"
    assert first["attemptsMade"] == 2
    assert [e["attempt"] for e in first["errors"]] == [1, 2]
    assert all("DiagnosticFailure" in e["stacktrace"] for e in first["errors"])
    failed = service.get_failed_jobs()
    assert {j["id"] for j in failed} == set(ids)
    assert service.get_stats()["failed"] == 3

    # retry one: it runs again (2 more attempts, fails again: 4 errors kept)
    assert service.retry_job(ids[0]) is True
    wait_for(lambda: len(service.get_job(ids[0])["errors"]) == 4, message="second round")
    wait_for(lambda: service.get_job(ids[0])["state"] == "failed", message="failed again")

    # retry all: the diagnostics job succeeds once attempts exceed `times`
    for job_id in ids:
        service.store.execute("UPDATE job SET data=? WHERE id=?",
                              ('{"times": 0}', int(job_id)))
    assert service.retry_all_failed() == 3
    wait_for(lambda: states(service, ids) == ["completed"] * 3, message="retried jobs")
    assert service.get_stats()["failed"] == 0
    assert service.retry_job(ids[0]) is False, "only a failed job can be retried"


def test_same_job_id_twice_gives_one_job(make_engine):
    engine = make_engine(workers=False)
    service = engine.service("diagnostics")
    first = service.add("noop", {"n": 1}, key="order-42")
    second = service.add("noop", {"n": 2}, key="order-42")
    assert first["id"] == second["id"]
    assert second["data"] == {"n": 1}
    assert service.get_job("order-42")["id"] == first["id"]
    bulk = service.add_bulk([{"name": "noop", "key": "order-42"},
                             {"name": "noop", "key": "order-43"}])
    assert bulk[0]["id"] == first["id"]
    assert bulk[1]["id"] != first["id"]
    assert service.get_stats()["total"] == 2


def test_timeout_fails_the_job_and_frees_its_slot(make_engine):
    engine = make_engine({"diagnostics": {"concurrency": 1}})
    service = engine.service("diagnostics")
    slow = service.add("sleep", {"seconds": 30}, timeout=0.5, attempts=3)
    quick = service.add("noop", {})
    wait_for(lambda: service.get_job(slow["id"])["state"] == "failed", 10, message="timeout")
    job = service.get_job(slow["id"])
    assert job["failedReason"] == "timed out after 0.5 s"
    assert job["attemptsMade"] == 1, "a timeout fails the job for good"
    wait_for(lambda: service.get_job(quick["id"])["state"] == "completed", 5,
             message="the next job in the freed slot")


def test_pause_stops_claims_and_resume_restarts_them(make_engine):
    engine = make_engine(workers=False)
    service = engine.service("diagnostics")
    service.pause()
    assert service.is_paused()
    job = service.add("noop", {})
    assert engine.drain("diagnostics") == 0
    assert service.get_job(job["id"])["state"] == "waiting"
    service.resume()
    assert engine.drain("diagnostics") == 1
    assert service.get_job(job["id"])["state"] == "completed"


def test_a_drain_runs_due_jobs_in_this_thread_in_priority_order(make_engine):
    """engine.drain(queue): a deterministic run with no worker threads. Due jobs run highest
    priority first, FIFO within one; a delayed job stays; a failing one retries later."""
    engine = make_engine(workers=False)
    service = engine.service("diagnostics")
    low, high = service.add("noop", {"n": 1}), service.add("noop", {"n": 2}, priority=9)
    later = service.add("noop", {"n": 3}, delay=3600)
    flaky = service.add("fail", {"times": 1}, attempts=2, backoff={"type": "fixed",
                                                                   "delay": 3600})
    assert engine.drain("diagnostics") == 3
    done = [service.get_job(j["id"]) for j in (low, high, later, flaky)]
    assert [j["state"] for j in done] == ["completed", "completed", "delayed", "delayed"]
    assert done[1]["processedOn"] <= done[0]["processedOn"]
    assert done[3]["attemptsMade"] == 1 and done[3]["failedReason"]


def test_retention_deletes_what_the_policy_says_and_nothing_more(make_engine):
    engine = make_engine({"diagnostics": {"keep_completed_count": 5,
                                          "keep_completed_age": 3600,
                                          "keep_failed_age": 60}}, workers=False)
    service = engine.service("diagnostics")
    store = engine.store
    # 10 completed (finished 1..10 s ago), 1 failed 2 min ago, 1 failed 10 s ago
    ids = finished_jobs(engine, "diagnostics", [("completed", n) for n in range(1, 11)]
                        + [("failed", 120), ("failed", 10)])
    waiting = service.add("noop", {}, delay=3600)
    engine.start_workers()
    engine.upkeep.apply_retention(engine.queues["diagnostics"].runner)
    remaining = {int(r[0]) for r in store.execute("SELECT id FROM job").fetchall()}
    # the 5 newest completed, the recent failure, and the delayed job
    assert remaining == set(ids[:5]) | {ids[11], int(waiting["id"])}


def test_retention_by_age(make_engine):
    engine = make_engine({"diagnostics": {"keep_completed_age": 60}}, workers=False)
    service = engine.service("diagnostics")
    ids = finished_jobs(engine, "diagnostics", [("completed", age) for age in (10, 59, 61)])
    engine.start_workers()
    engine.upkeep.apply_retention(engine.queues["diagnostics"].runner)
    assert service.get_job(ids[0]) and service.get_job(ids[1])
    assert service.get_job(ids[2]) is None


def test_retention_deletes_a_job_with_its_attempts_and_logs(make_engine):
    """A deleted job leaves no history rows behind; a kept job keeps its own."""
    engine = make_engine({"diagnostics": {"keep_completed_count": 1, "backoff_delay": 0}})
    service = engine.service("diagnostics")
    old = service.add("fail", {"times": 1}, attempts=2)
    wait_for(lambda: service.get_job(old["id"])["state"] == "completed", message="old done")
    new = service.add("sleep", {"seconds": 0.01})
    wait_for(lambda: service.get_job(new["id"])["state"] == "completed", message="new done")
    history = lambda table, job: engine.store.execute(  # noqa: E731
        f"SELECT COUNT(*) FROM {table} WHERE job_id=?", (int(job["id"]),)).fetchone()[0]
    assert history("job_attempt", old) == 1 and history("job_log", new) == 1  # its failure
    engine.upkeep.apply_retention(engine.queues["diagnostics"].runner)
    assert service.get_job(old["id"]) is None
    assert history("job_attempt", old) == 0
    assert service.get_job(new["id"])["logs"] == ["attempt 1: sleeping 0.01 s"]


def test_retention_deletes_in_small_batches_and_says_when_it_is_behind(make_engine,
                                                                       monkeypatch):
    """A pass stops at its cap (so one pass never holds the writer long) and says more is
    left; the next pass, a second later in the upkeep loop, goes on from there."""
    from synthbox.jobs import retention

    monkeypatch.setattr(retention, "RETENTION_BATCH", 5)
    monkeypatch.setattr(retention, "RETENTION_BATCHES_PER_PASS", 2)
    engine = make_engine({"diagnostics": {"keep_completed_count": 3}}, workers=False)
    ids = finished_jobs(engine, "diagnostics", [("completed", 100 - n) for n in range(25)])
    engine.start_workers()
    runner = engine.queues["diagnostics"].runner
    kept = lambda: sorted(int(r[0]) for r in engine.store.execute(  # noqa: E731
        "SELECT id FROM job").fetchall())
    assert engine.upkeep.apply_retention(runner) is True
    assert len(kept()) == 15  # 2 batches of 5
    assert engine.upkeep.apply_retention(runner) is True
    assert engine.upkeep.apply_retention(runner) is False  # 2 deleted, then none left
    assert kept() == ids[-3:]


def test_doorbells_rung_before_an_empty_claim_cost_no_claim(make_engine, monkeypatch):
    """Adds to a queue with no idle worker leave a doorbell each in the broker. Once a
    worker has drained the queue, those doorbells are answered: they are dropped when
    read, instead of each waking a worker for a claim that finds nothing."""
    from synthbox.jobs import doorbell

    monkeypatch.setattr(doorbell, "PLENTY", 1000)  # this test's doorbells all stay
    engine = make_engine(workers=False)
    service = engine.service("diagnostics")
    service.doorbell.window = 0  # every add's ring publishes a doorbell of its own
    for _ in range(100):
        service.add("noop")
    assert service.doorbell.pending_in_broker() == 100
    claims: list[int] = []
    claim = engine.store.claim
    monkeypatch.setattr(engine.store, "claim",
                        lambda *args, **kwargs: claims.append(len(found := claim(
                            *args, **kwargs))) or found)
    engine.start_workers()
    wait_for(lambda: service.doorbell.pending_in_broker() == 0, message="doorbells read")
    time.sleep(0.5)  # the workers settle
    assert service.get_stats()["completed"] == 100
    assert claims.count(0) <= 20, claims  # one empty claim per worker, about: not 100
    late = service.add("noop")  # and a job added now is still picked up at once
    wait_for(lambda: service.get_job(late["id"])["state"] == "completed", message="late job")


def test_a_ring_adds_no_doorbell_beyond_plenty_waiting(make_engine):
    """Adds while no worker is idle leave at most PLENTY doorbells of the queue in the
    broker (each wakes a worker that drains it all), and every job still runs."""
    from synthbox.jobs.doorbell import PLENTY

    engine = make_engine(workers=False)
    service = engine.service("diagnostics")
    service.doorbell.window = 0
    for _ in range(PLENTY + 30):
        service.add("noop")
    assert service.doorbell.pending_in_broker() == PLENTY
    engine.start_workers()
    wait_for(lambda: service.get_stats()["completed"] == PLENTY + 30, message="all ran")


def test_progress_and_log_reach_the_record(make_engine):
    engine = make_engine()
    service = engine.service("diagnostics")
    job = service.add("sleep", {"seconds": 1.0})
    running = wait_for(lambda: (lambda j: j if j["progress"] == 50 else None)(
        service.get_job(job["id"])), message="progress reported half-way")
    assert running["state"] == "active"
    assert running["logs"] == ["attempt 1: sleeping 1.0 s"]
    wait_for(lambda: service.get_job(job["id"])["state"] == "completed", message="done")
    assert service.get_job(job["id"])["progress"] == 100


def test_promote_remove_clean_and_list(make_engine):
    engine = make_engine(workers=False)
    service = engine.service("diagnostics")
    later = service.add("noop", {}, delay=3600)
    assert service.promote(later["id"]) is True
    assert service.get_job(later["id"])["state"] == "waiting"
    assert service.promote(later["id"]) is False
    jobs = service.add_bulk([{"name": "noop", "data": {"i": i}} for i in range(7)])
    page, cursor = service.list_jobs("waiting", limit=3)
    assert [j["id"] for j in page] == [jobs[6]["id"], jobs[5]["id"], jobs[4]["id"]]
    seen = [j["id"] for j in page]
    while cursor:
        page, cursor = service.list_jobs("waiting", limit=3, before=int(cursor))
        seen += [j["id"] for j in page]
    assert len(seen) == 8 and len(set(seen)) == 8
    assert service.remove(jobs[0]["id"]) is True
    assert service.get_job(jobs[0]["id"]) is None
    assert service.clean("waiting", 0) == 7
    assert service.get_stats()["total"] == 0


def test_bad_options_name_the_field(make_engine):
    engine = make_engine(workers=False)
    service = engine.service("diagnostics")
    cases = [({"priority": 11}, "priority"), ({"priority": "x"}, "priority"),
             ({"delay": -1}, "delay"), ({"attempts": 0}, "attempts"),
             ({"backoff": {"type": "linear"}}, "backoff.type"), ({"timeout": 0}, "timeout")]
    for opts, field in cases:
        with pytest.raises(JobOptionError) as caught:
            service.add("noop", {}, **opts)
        assert caught.value.field == field
    with pytest.raises(JobOptionError) as caught:
        service.add("nope", {})
    assert caught.value.field == "name"
    with pytest.raises(JobOptionError):
        service.add_bulk([{"name": "noop"}, {"name": "noop", "priority": 99}])
    assert service.get_stats()["total"] == 0, "a rejected bulk writes nothing"


def test_heartbeat_renews_leases_of_long_jobs(make_engine):
    engine = make_engine({"diagnostics": {"stalled_interval": 0.6, "concurrency": 1}})
    service = engine.service("diagnostics")
    job = service.add("sleep", {"seconds": 2.0})
    wait_for(lambda: service.get_job(job["id"])["state"] == "completed", 10, message="done")
    done = service.get_job(job["id"])
    assert done["stalledCount"] == 0, "a live instance's job must not be taken as stalled"
    assert done["attemptsMade"] == 1


def test_a_claim_takes_no_more_than_its_limit_in_priority_order(make_engine):
    engine = make_engine(workers=False)
    service = engine.service("diagnostics")
    added = service.add_bulk([{"name": "noop", "priority": p} for p in [0, 5, 10, 5, 0, 10, 3] * 5])
    store = engine.store
    taken = []
    for limit in (1, 1, 4, 4, 10):
        jobs = store.claim("diagnostics", limit, "tester", 30)
        assert len(jobs) == limit
        taken += jobs
    expected = sorted(added, key=lambda j: (-j["priority"], j["runAt"], int(j["id"])))
    assert [j.id for j in taken] == [int(j["id"]) for j in expected[:20]]
    assert service.get_stats()["active"] == 20


def test_concurrency_is_the_number_of_jobs_running_at_once(make_engine):
    engine = make_engine({"diagnostics": {"concurrency": 3}})
    service = engine.service("diagnostics")
    jobs = service.add_bulk([{"name": "sleep", "data": {"seconds": 0.4}}] * 9)
    ids = [j["id"] for j in jobs]
    wait_for(lambda: all_done(service, ids), 30, message="nine sleeps")
    spans = [(j["processedOn"], j["finishedOn"]) for j in (service.get_job(i) for i in ids)]
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running, most = 0, 0
    for _, step in edges:
        running += step
        most = max(most, running)
    assert most == 3, f"{most} jobs ran at once with concurrency 3"


def test_high_priority_jumps_the_queue(make_engine):
    engine = make_engine({"diagnostics": {"concurrency": 1}}, workers=False)
    service = engine.service("diagnostics")
    normal = service.add_bulk([{"name": "noop"}] * 3)
    urgent = service.add_high_priority("noop", {"urgent": True})
    assert urgent["priority"] == 10
    first = engine.store.claim("diagnostics", 1, "tester", 30)
    assert first[0].id == int(urgent["id"]) and first[0].id > int(normal[-1]["id"])


def test_a_stale_run_cannot_finish_a_job_claimed_again(make_engine):
    engine = make_engine(workers=False)
    service = engine.service("diagnostics")
    store = engine.store
    job = service.add("noop", {})
    old = store.claim("diagnostics", 1, "me", lease=0.0)[0]
    time.sleep(0.01)
    assert store.recover_stalled("diagnostics", 5)[0] == [old.id]  # its lease lapsed
    new = store.claim("diagnostics", 1, "me", lease=30)[0]  # the same instance claims again
    store.finish("me", [(old, '"stale"', time.time())], [])
    assert service.get_job(job["id"])["state"] == "active", "the stale run changed the job"
    store.finish("me", [(new, '"fresh"', time.time())], [])
    done = service.get_job(job["id"])
    assert done["state"] == "completed" and done["returnvalue"] == "fresh"


def test_a_batch_of_results_is_stored_as_returned(make_engine):
    """Every result of a batch comes back as the handler returned it, whatever characters
    its JSON holds (PostgreSQL takes a batch's results as one array literal)."""
    engine = make_engine(workers=False)
    service = engine.service("diagnostics")
    values = [None, "NULL", "", 'quote " and \\ backslash', "{braces}, commas,", "naïve ☃",
              "it's", {"nested": ['a"b', "c\\d", None]}, [1, 2.5, "x y"], 0, "\t\n"]
    service.add_bulk([{"name": "noop"}] * len(values))
    jobs = engine.store.claim("diagnostics", len(values), "me", 30)
    now = time.time()
    engine.store.finish("me", [(job, None if value is None else json.dumps(value), now)
                               for job, value in zip(jobs, values, strict=True)], [])
    assert [service.get_job(job.id)["returnvalue"] for job in jobs] == values
    assert service.get_stats()["completed"] == len(values)


def test_a_batch_that_cannot_be_recorded_stalls_back_and_completes(make_engine, monkeypatch):
    engine = make_engine({"diagnostics": {"stalled_interval": 0.5}}, workers=False)
    service = engine.service("diagnostics")
    real_finish = engine.store.finish
    failures = []

    def finish_fails_once(*args, **kwargs):
        if not failures:
            failures.append(1)
            raise RuntimeError("records database went away")  # fault injection
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(engine.store, "finish", finish_fails_once)
    job = service.add("noop", {})
    engine.start_workers()
    wait_for(lambda: service.get_job(job["id"])["state"] == "completed", 15,
             message="recovered job")
    done = service.get_job(job["id"])
    assert failures and done["stalledCount"] == 1 and done["attemptsMade"] == 1


def test_bulk_with_several_delays_rings_for_each(make_engine):
    engine = make_engine()
    service = engine.service("diagnostics")
    jobs = service.add_bulk([{"name": "noop", "delay": d} for d in (0.2, 0.5, 0.8)])
    wait_for(lambda: all_done(service, [j["id"] for j in jobs]), message="delayed bulk")
    for job in jobs:
        late = service.get_job(job["id"])["processedOn"] - job["runAt"]
        assert 0 <= late < 500, f"job due at {job['runAt']} started {late} ms late"


def test_stats_come_from_kept_counts_and_match_the_jobs(make_engine):
    """The counts the database keeps (triggers) equal a count of the rows, through adds,
    claims, completions, failures, retries, deletes and a second instance."""
    from synthbox.records.counts import fold

    first = make_engine({"diagnostics": {"concurrency": 4}})
    second = make_engine({"diagnostics": {"concurrency": 4}})
    service = first.service("diagnostics")

    def truth():
        rows = first.store.execute(
            "SELECT status, CASE WHEN status='waiting' AND run_at>? THEN 1 ELSE 0 END, "
            "COUNT(*) FROM job WHERE queue='diagnostics' GROUP BY 1, 2",
            (time.time(),)).fetchall()
        found = dict.fromkeys(("waiting", "active", "completed", "failed", "delayed"), 0)
        for status, later, count in rows:
            found["delayed" if later else status] += count
        return found

    def stats():
        fold(first.db)  # what the maintenance loop does every second
        return {k: v for k, v in service.get_stats().items()
                if k not in ("paused", "total")}

    service.add_bulk([{"name": "noop"}] * 200 + [{"name": "sleep", "data": {"seconds": 0.2}}]
                     * 6 + [{"name": "fail", "data": {"times": 9}, "attempts": 1}] * 15
                     + [{"name": "noop", "delay": 120}] * 5)
    second.service("diagnostics").add_bulk([{"name": "noop"}] * 100)
    wait_for(lambda: stats()["completed"] == 306 and stats()["failed"] == 15, 30)
    assert stats() == truth()
    assert service.retry_all_failed() == 15
    wait_for(lambda: stats()["failed"] == 15 and stats()["waiting"] == 0, 30)
    service.clean("completed", 0, limit=50)
    delayed = service.list_jobs("delayed")[0]
    assert service.remove(delayed[0]["id"])
    assert stats() == truth() == {"waiting": 0, "active": 0, "completed": 256, "failed": 15,
                                  "delayed": 4}


def _kept_counts(engine):
    from synthbox.records.counts import READ, fold

    fold(engine.db)
    rows = engine.store.execute(READ, ("diagnostics", "diagnostics")).fetchall()
    return {status: int(n) for status, n in rows if n}


def _row_counts(engine):
    rows = engine.store.execute("SELECT status, COUNT(*) FROM job WHERE queue='diagnostics' "
                                "GROUP BY status").fetchall()
    return {status: int(n) for status, n in rows}


def test_claims_and_finishes_count_their_own_batch_exactly(make_engine):
    """Claim and finish count a batch's moves themselves (on SQLite the row trigger stands
    aside for them): completions, retries, final failures, deferrals (RetryLater) and a
    stale claim, which changes nothing, all leave the counts equal to the rows."""
    from synthbox.jobs.rows import Failure

    engine = make_engine(workers=False)
    store = engine.store
    engine.service("diagnostics").add_bulk([{"name": "noop"}] * 12)
    jobs = store.claim("diagnostics", 10, "me", 30)
    assert len(jobs) == 10
    assert _kept_counts(engine) == _row_counts(engine) == {"waiting": 2, "active": 10}
    now = time.time()
    stale = jobs[9]
    store.execute("UPDATE job SET owner='someone else' WHERE id=?", (stale.id,))
    store.finish("me", [(job, None, now) for job in jobs[:5]] + [(stale, None, now)], [
        Failure(jobs[5], "again", None, now, now + 60),
        Failure(jobs[6], "for good", None, now, None),
        Failure(jobs[7], "later", None, now, now + 60, uses_attempt=False),
    ])
    assert _kept_counts(engine) == _row_counts(engine) == {
        "waiting": 4, "active": 2, "completed": 5, "failed": 1}
    # and a change by any other path still goes through the trigger
    store.execute("UPDATE job SET status='waiting', owner=NULL WHERE id=?", (jobs[8].id,))
    assert _kept_counts(engine) == _row_counts(engine)


def test_one_update_moving_jobs_both_ways_keeps_the_counts(make_engine):
    """One statement that moves jobs in and out of the same states (and one that changes
    no state) leaves the counts equal to the rows; on PostgreSQL a statement that nets
    to nothing appends no count row."""
    engine = make_engine(workers=False)
    store = engine.store
    engine.service("diagnostics").add_bulk([{"name": "noop"}] * 7)
    store.claim("diagnostics", 3, "me", 30)
    store.execute("UPDATE job SET status=CASE WHEN status='waiting' THEN 'active' "
                  "ELSE 'waiting' END WHERE queue='diagnostics'")
    assert _kept_counts(engine) == _row_counts(engine) == {"waiting": 3, "active": 4}
    store.execute("UPDATE job SET status=CASE WHEN status='waiting' THEN 'active' "
                  "ELSE 'waiting' END WHERE id IN (SELECT id FROM job ORDER BY id LIMIT 6)")
    assert _kept_counts(engine) == _row_counts(engine) == {"waiting": 3, "active": 4}
    if store.postgres:  # _kept_counts folded the deltas: none is left
        store.execute("UPDATE job SET lease_until=lease_until")
        assert store.execute("SELECT COUNT(*) FROM job_count_delta").fetchone()[0] == 0


def test_a_claim_that_finds_nothing_writes_nothing(tmp_path):
    """SQLite: every worker's drain ends with a claim that finds nothing, and so does a
    doorbell rung for work another worker took: such a claim changes no row and appends
    nothing to the WAL."""
    from synthbox.jobs.store import JobStore
    from synthbox.records.database import migrate, open_database

    db = open_database("", tmp_path)
    migrate(db)
    store = JobStore(db)
    changes = db.connection().total_changes
    assert store.claim("diagnostics", 50, "me", 30) == []
    assert db.connection().total_changes == changes
    db.close()


def test_an_older_database_keeps_its_counts_through_the_batch_counting_migration(tmp_path):
    from synthbox.app import DOMAIN_MIGRATIONS
    from synthbox.records import database as records

    db = records.open_database("", tmp_path)
    steps = {m.name: m.apply for m in (*records.JOB_MIGRATIONS, *DOMAIN_MIGRATIONS)}
    ten = [steps[name] for name in records.NUMBERED_BEFORE[:10]]
    with db.atomic():
        db.create_tables([records.SchemaVersion], safe=True)
        for number, step in enumerate(ten, start=1):
            step(db)
            records.SchemaVersion.create(version=number, applied_at=time.time())
    db.execute_sql("DROP TRIGGER job_count_update")  # as version 10 made it
    db.execute_sql("DROP TABLE job_count_by_batch")
    db.execute_sql(
        "CREATE TRIGGER job_count_update AFTER UPDATE OF status ON job "
        "WHEN OLD.status <> NEW.status BEGIN "
        "UPDATE job_count SET n = n - 1 WHERE queue = OLD.queue AND status = OLD.status; "
        "INSERT INTO job_count (queue, status, n) VALUES (NEW.queue, NEW.status, 1) "
        "ON CONFLICT (queue, status) DO UPDATE SET n = n + 1; END;")
    for status in ("waiting", "waiting", "active", "completed"):
        db.execute_sql("INSERT INTO job (queue, name, data, status, priority, run_at, "
                       "attempts_made, attempts_max, backoff_type, backoff_delay, "
                       "stalled_count, progress, created_at) VALUES ('diagnostics', 'noop', "
                       "'null', ?, 0, 0, 0, 1, 'fixed', 0, 0, 0, 0)", (status,))
    assert records.migrate(db, DOMAIN_MIGRATIONS) == len(steps)
    trigger = db.execute_sql("SELECT sql FROM sqlite_master WHERE name='job_count_update'"
                             ).fetchone()[0]
    assert "job_count_by_batch" in trigger
    db.execute_sql("UPDATE job SET status='failed' WHERE status='active'")
    rows = dict(db.execute_sql("SELECT status, n FROM job_count WHERE n<>0").fetchall())
    assert rows == {"waiting": 2, "completed": 1, "failed": 1}
    db.close()


def test_each_domain_brings_its_migrations_and_a_numbered_schema_is_read_by_name(tmp_path):
    """A database made when the schema was one numbered list (11 steps) is read as having
    applied those steps by name: nothing runs twice, a new step runs once, and the
    numbered rows keep up for an instance of the version before."""
    from synthbox.app import DOMAIN_MIGRATIONS
    from synthbox.records import database as records

    made: list[str] = []
    db = records.open_database("", tmp_path)
    steps = {m.name: m for m in (*records.JOB_MIGRATIONS, *DOMAIN_MIGRATIONS)}
    with db.atomic():
        db.create_tables([records.SchemaVersion], safe=True)
        for number, name in enumerate(records.NUMBERED_BEFORE, start=1):
            steps[name].apply(db)
            records.SchemaVersion.create(version=number, applied_at=time.time())
    later = records.Migration("later.step", lambda _db: made.append("later.step"))
    assert records.migrate(db, [*DOMAIN_MIGRATIONS, later]) == len(steps) + 1
    assert records.migrate(db, [*DOMAIN_MIGRATIONS, later]) == len(steps) + 1
    assert made == ["later.step"]
    names = {row[0] for row in db.execute_sql("SELECT name FROM schema_migration")}
    assert names == {*steps, "later.step"}
    assert db.execute_sql("SELECT count(*) FROM schema_version").fetchone()[0] == len(steps) + 1
    tables = {row[0] for row in db.execute_sql(
        "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"job", "user", "email", "project", "alert_rule"} <= tables
    db.close()


def test_the_engine_alone_makes_only_its_own_tables(tmp_path):
    """The engine knows no domain: with the diagnostics queue alone it makes the job
    tables and none of the domains'."""
    from synthbox.config import load_settings
    from synthbox.jobs.engine import Engine
    from synthbox.jobs.spec import QueueRegistry
    from synthbox.queues.diagnostics import DIAGNOSTICS

    registry = QueueRegistry()
    registry.register(DIAGNOSTICS)
    engine = Engine(load_settings({"data_dir": str(tmp_path)}, env={}), registry)
    try:
        job = engine.service("diagnostics").add("noop", {})
        assert engine.service("diagnostics").get_job(job["id"])["state"] == "waiting"
        tables = {row[0] for row in engine.db.execute_sql(
            "SELECT name FROM sqlite_master WHERE type='table'")}
        assert "job" in tables and "email" not in tables and "user" not in tables
        assert list(engine.queues) == ["diagnostics"]
    finally:
        engine.close()


def test_sqlite_writers_of_one_process_take_turns_and_a_rollback_lets_go(tmp_path):
    """The in-process writer lock: 8 threads of write transactions all commit, and a
    transaction that failed does not keep the others out."""
    import threading

    from synthbox.records.database import SqliteRecords

    db = SqliteRecords(str(tmp_path / "turns.db"), timeout=5, lock_type="IMMEDIATE",
                       pragmas=(("journal_mode", "wal"),))
    db.execute_sql("CREATE TABLE t (n INTEGER)")
    with pytest.raises(ZeroDivisionError), db.atomic():
        db.execute_sql("INSERT INTO t VALUES (-1)")
        1 / 0  # noqa: B018

    def write() -> None:
        for i in range(100):
            with db.atomic():
                db.execute_sql("INSERT INTO t VALUES (?)", (i,))
        db.close()

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert db.execute_sql("SELECT COUNT(*), MIN(n) FROM t").fetchone() == (800, 0)


def test_sqlite_wal_is_checkpointed_in_the_background_then_the_thread_rests(tmp_path,
                                                                           monkeypatch):
    """Commits never checkpoint (no 4-6 ms stall in whichever commit crossed 1,000
    pages): a thread of the database's own folds the WAL into the file, and ends once
    no commit has come for a while."""
    import threading

    from synthbox.records import database as records

    monkeypatch.setattr(records, "CHECKPOINTER_IDLE", 0.5)
    db = records.SqliteRecords(str(tmp_path / "wal.db"), timeout=5, lock_type="IMMEDIATE",
                               pragmas=records.SQLITE_PRAGMAS)
    db.execute_sql("CREATE TABLE t (s TEXT)")
    main_file = tmp_path / "wal.db"
    before = main_file.stat().st_size
    for _ in range(20):
        with db.atomic():
            db.execute_sql("INSERT INTO t VALUES (?)", ("x" * 100_000,))
    assert db.execute_sql("PRAGMA wal_autocheckpoint").fetchone() == (10000,)  # fallback
    wait_for(lambda: main_file.stat().st_size > before + 1_500_000, 10,
             message="the rows reach the database file without a checkpoint by hand")
    wait_for(lambda: not any(t.name == "sqlite-checkpoint" and t.is_alive()
                             for t in threading.enumerate()), 10,
             message="the checkpoint thread ends when commits stop")
    with db.atomic():
        db.execute_sql("INSERT INTO t VALUES ('again')")
    assert any(t.name == "sqlite-checkpoint" for t in threading.enumerate())
    db.close()  # ends it too: nothing touches the files once the database is closed
    assert not any(t.name == "sqlite-checkpoint" for t in threading.enumerate())


def test_closing_while_a_commit_starts_the_checkpoint_thread_waits_for_it(tmp_path,
                                                                          monkeypatch):
    """close() in one thread while a commit in another is starting the checkpoint
    thread: close waits for it to start, then ends it (it used to join a thread not yet
    started, and raised)."""
    import threading

    from synthbox.records import database as records

    db = records.SqliteRecords(str(tmp_path / "wal.db"), timeout=5, lock_type="IMMEDIATE",
                               pragmas=records.SQLITE_PRAGMAS)
    db.execute_sql("CREATE TABLE t (s TEXT)")
    starting = threading.Event()
    start = threading.Thread.start

    def slow_start(thread):
        if thread.name == "sqlite-checkpoint":
            starting.set()
            time.sleep(0.3)  # the window between creating the thread and starting it
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", slow_start)

    def commit():
        with db.atomic():
            db.execute_sql("INSERT INTO t VALUES ('x')")

    committer = threading.Thread(target=commit)
    committer.start()
    assert starting.wait(5)
    db.close()
    committer.join(5)
    assert not any(t.name == "sqlite-checkpoint" and t.is_alive()
                   for t in threading.enumerate())


def test_a_job_timeout_waits_for_a_held_block_to_end():
    """A JobTimeout lands in a job's thread between any two instructions, except inside
    `with TIMEOUTS_HELD:` (an agent starting a child and recording it): the runner raises
    it once that block has ended."""
    from synthbox.jobs.errors import TIMEOUTS_HELD, JobTimeout
    from synthbox.jobs.runner import TimedSlot

    marks: list[str] = []

    def job():
        try:
            with TIMEOUTS_HELD:
                time.sleep(0.5)  # past the job's timeout of 0.1 s
                marks.append("the held block ran to its end")
            while True:
                time.sleep(0.01)
        except JobTimeout:
            marks.append("then the timeout")
            raise

    assert TimedSlot().run(job, timeout=0.1) is None
    wait_for(lambda: len(marks) == 2, 5)
    assert marks == ["the held block ran to its end", "then the timeout"]


def test_a_held_back_ring_goes_out_when_the_window_since_the_last_message_ends(tmp_path):
    """One broker message per window at most; a ring held back is sent when the window
    since the last message ends, not a whole window after itself (which pushed every
    later message back too: a steady 100 jobs/s waited 6 ms each)."""
    from synthbox.jobs.broker import build_huey
    from synthbox.jobs.doorbell import Doorbell
    from synthbox.jobs.waker import Waker

    huey = build_huey("bell", None, tmp_path)
    bell = Doorbell("bell", huey, Waker(), window=1.0)
    first = time.monotonic()
    bell.ring()
    assert huey.storage.queue_size() == 1, "the first ring goes out at once"
    time.sleep(0.6)
    for _ in range(50):
        bell.ring()
    assert huey.storage.queue_size() == 1, "held back, all 50 in one message"
    wait_for(lambda: huey.storage.queue_size() == 2, 5, interval=0.01)
    assert 0.95 <= time.monotonic() - first < 1.45  # held until 1.0 s, not 1.6 s
    time.sleep(1.2)
    assert huey.storage.queue_size() == 2


def test_a_busy_instance_leaves_the_doorbell_to_an_idle_one(redis_url, pg_url, tmp_path,
                                                           engine_builder):
    """Two instances on one Redis and one records database. An instance reads the broker
    only while one of its workers waits: a job rung in by a busy instance stays rung in
    the broker, and runs on the idle instance."""
    shared = {"redis_url": redis_url, "database_url": pg_url}
    queues = {"diagnostics": {"concurrency": 1}}
    busy = engine_builder(shared, queues)
    service = busy.service("diagnostics")
    long_job = service.add("sleep", {"seconds": 20})["id"]
    wait_for(lambda: service.get_job(long_job)["state"] == "active", 10, message="long job")
    quick = service.add("noop")["id"]  # rung in by the busy instance
    time.sleep(0.5)
    assert busy.queues["diagnostics"].runner.doorbell.pending_in_broker() >= 1
    assert service.get_job(quick)["state"] == "waiting"
    engine_builder(shared, queues, data_dir=tmp_path / "idle")
    wait_for(lambda: service.get_job(quick)["state"] == "completed", 10,
             message="the idle instance answers the doorbell")
    assert service.get_job(long_job)["state"] == "active"


def test_the_local_bell_hands_a_doorbell_only_to_a_worker_with_no_turn():
    """The listener gives a doorbell read from the broker to a waiting worker that has no
    turn yet; when a local ring took that worker meanwhile, it puts the doorbell back in
    the broker for another instance."""
    import threading

    from synthbox.jobs.doorbell import LocalBell

    bell = LocalBell()
    assert not bell.hand_over(), "no worker waits"
    assert not bell.take(), "and none was given a turn"
    taken = []
    worker = threading.Thread(target=lambda: taken.append(bell.wait(5)))
    worker.start()
    stop = threading.Event()
    assert bell.wait_for_idle(5, stop), "a worker waits"
    bell.set()  # a local ring: the waiting worker has a turn now
    assert not bell.wait_for_idle(0.1, stop)
    assert not bell.hand_over(), "that worker is taken"
    worker.join(5)
    assert taken == [True] and not bell.take()


def test_a_job_added_here_does_not_wait_for_the_broker(redis_url, monkeypatch, engine_builder):
    """A job added in this process goes to an idle worker here through the local bell,
    and no doorbell goes to the broker: with every read of the broker stalled, it still
    runs."""
    import threading

    from synthbox.jobs.broker import ClientRedisStorage

    released = threading.Event()

    def stalled_read(self):
        released.wait(30)
        time.sleep(0.1)  # released: a broker that answers nothing
        return None

    monkeypatch.setattr(ClientRedisStorage, "dequeue", stalled_read)
    engine = engine_builder({"redis_url": redis_url})
    service = engine.service("diagnostics")
    try:
        time.sleep(0.5)  # every reader is inside a stalled read
        bell = engine.queues["diagnostics"].runner.doorbell
        in_broker = bell.pending_in_broker()  # (the start-up ring's, if no worker waited yet)
        job = service.add("noop")["id"]
        wait_for(lambda: service.get_job(job)["state"] == "completed", 10,
                 message="picked up without the broker")
        # and nothing went through it: the idle worker here answers for the whole queue
        assert bell.pending_in_broker() == in_broker
    finally:
        released.set()


def test_the_job_row_names_the_job_tables_columns():
    """JobRow is the one description of a stored job: every column of the table but the
    lease's own (lease_until, owner), and a new job's INSERT is made from NewJob."""
    from synthbox.jobs.rows import INSERT_JOB, JobRow, NewJob
    from synthbox.records.models import Job

    assert set(JobRow._fields) | {"lease_until", "owner"} == set(Job._meta.fields)
    assert set(NewJob._fields) <= set(JobRow._fields)
    assert all(name in INSERT_JOB for name in NewJob._fields)
    new = NewJob("q", "noop", "{}", 3, 10.0, 2, "fixed", 1.5, None, 9.0, "k")
    stored = new.stored(5)._asdict()
    assert {name: stored[name] for name in NewJob._fields} == new._asdict()
    assert (stored["id"], stored["status"], stored["attempts_made"], stored["result"]) == (
        5, "waiting", 0, None)
