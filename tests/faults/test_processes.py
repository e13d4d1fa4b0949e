"""Nothing is lost: kill -9, Redis losing its data, Redis down, two processes sharing a limit.

Every test here runs real `synthbox serve` processes and real redis-servers.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import Records, RedisServer, wait_for


def counts(data_dir: Path) -> dict[str, int]:
    return Records(data_dir).counts()


def queues_env(**options) -> dict[str, str]:
    return {"SYNTHBOX_QUEUES": json.dumps({"diagnostics": options})}


@pytest.fixture
def own_redis(tmp_path: Path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.mark.parametrize("backend", ["sqlite", "redis", "postgres"])
def test_kill_9_loses_no_job(backend, serve_factory, tmp_path, own_redis, request):
    env = queues_env(concurrency=4, stalled_interval=2.0, max_stalled_count=2)
    if backend != "sqlite":
        env["REDIS_URL"] = own_redis.url
    if backend == "postgres":
        env["DATABASE_URL"] = request.getfixturevalue("pg_url")
    data = tmp_path / "data"
    db = Records(data, env.get("DATABASE_URL"))
    first = serve_factory(env, data)
    jobs = [{"name": "sleep", "data": {"seconds": 1.5}} for _ in range(20)]
    status, reply = first.request("POST", "/api/v1/queues/diagnostics/jobs/bulk", {"jobs": jobs})
    assert status == 201, reply
    ids = [int(job["id"]) for job in reply["data"]]
    wait_for(lambda: db.counts().get("active", 0) >= 4, message="four active jobs")
    first.kill9()
    assert db.counts().get("active", 0) >= 1, "the kill must leave jobs mid-run"

    serve_factory(env, data)
    wait_for(lambda: db.counts().get("completed", 0) == 20, 90, interval=0.2,
             message=f"all 20 jobs completed, have {db.counts()}")
    for job_id in ids:
        runs = db.query("SELECT COUNT(*) FROM job_log WHERE job_id=?", (job_id,))[0][0]
        assert 1 <= runs <= 3, f"job {job_id} ran {runs} times (maxStalledCount is 2)"
    stalled = db.query("SELECT COUNT(*) FROM job WHERE stalled_count > 0")[0][0]
    assert stalled >= 1, "the jobs active at the kill were recovered as stalled"


@pytest.mark.parametrize("how", ["flushall", "restart"])
def test_redis_losing_its_data_loses_no_job(how, serve_factory, tmp_path, own_redis):
    env = {"REDIS_URL": own_redis.url, **queues_env(concurrency=4)}
    data = tmp_path / "data"
    worker = serve_factory(env, data)
    # Another instance (no workers) accepts 1,000 jobs due in 2 s: their doorbells wait in
    # Redis's schedule, which we then wipe.
    front = serve_factory({**env, "SYNTHBOX_WORKERS": "false"}, data)
    jobs = [{"name": "noop", "data": {"i": i}, "opts": {"delay": 2000}} for i in range(1000)]
    status, reply = front.request("POST", "/api/v1/queues/diagnostics/jobs/bulk", {"jobs": jobs})
    assert status == 201, reply
    assert own_redis.client().zcard("huey.schedule.{synthbox.diagnostics}") >= 1
    if how == "flushall":
        own_redis.client().flushall()
    else:
        own_redis.stop()
        own_redis.start()
    assert own_redis.client().dbsize() == 0
    wait_for(lambda: counts(data).get("completed", 0) == 1000, 60, interval=0.2,
             message=f"1,000 completed, have {counts(data)}")
    assert worker.healthy()


def test_redis_down_during_enqueue_answers_2xx_or_503_and_loses_nothing(
        serve_factory, tmp_path, own_redis):
    env = {"REDIS_URL": own_redis.url, **queues_env(concurrency=4)}
    data = tmp_path / "data"
    server = serve_factory(env, data)
    statuses: list[int] = []
    accepted: list[int] = []
    errors: list[object] = []

    def enqueue(count: int) -> None:
        for i in range(count):
            status, reply = server.request("POST", "/api/v1/queues/diagnostics/jobs",
                                           {"name": "noop", "data": {"i": i}})
            statuses.append(status)
            if status == 201:
                accepted.append(int(reply["data"]["id"]))
            elif not (status == 503 and reply["success"] is False and reply["error"]["message"]):
                errors.append((status, reply))

    enqueue(50)
    thread = threading.Thread(target=enqueue, args=(150,))
    thread.start()
    time.sleep(0.1)
    own_redis.stop()
    thread.join(60)
    during = len(statuses)
    enqueue(50)  # Redis still down
    assert not errors, errors[:3]
    assert 500 not in statuses
    assert all(s in (201, 503) for s in statuses)
    # graceful degradation: jobs accepted while Redis is down are processed from the records
    wait_for(lambda: counts(data).get("completed", 0) >= len(accepted), 60, interval=0.2,
             message=f"accepted jobs completed while Redis is down: {counts(data)}")
    status, ready = server.request("GET", "/readyz", token=None)
    # jobs still flow through the records: ready, with the broker named as degraded
    assert status == 200 and ready["degraded"] == ["broker"], ready
    assert ready["checks"]["transport"].startswith("unreachable")
    own_redis.start()
    enqueue(20)
    wait_for(lambda: counts(data).get("completed", 0) == len(accepted), 60, interval=0.2,
             message="every accepted job completed")
    assert during >= 200 and len(accepted) >= 200
    assert Records(data).query("SELECT COUNT(*) FROM job")[0][0] == len(accepted), \
        "no half-written job from a refused request"


@pytest.mark.parametrize("backend", ["sqlite", "redis", "postgres", "postgres-no-redis"])
def test_rate_limit_holds_across_two_processes(backend, serve_factory, tmp_path, own_redis,
                                               request):
    limit, window = 5, 1.0
    env = queues_env(concurrency=4, rate_limit_max=limit, rate_limit_duration=window)
    if backend in ("redis", "postgres"):
        env["REDIS_URL"] = own_redis.url
    if backend.startswith("postgres"):
        env["DATABASE_URL"] = request.getfixturevalue("pg_url")
    data = tmp_path / "data"
    db = Records(data, env.get("DATABASE_URL"))
    one = serve_factory(env, data)
    serve_factory(env, data)
    jobs = [{"name": "noop", "data": {"i": i}} for i in range(25)]
    status, _ = one.request("POST", "/api/v1/queues/diagnostics/jobs/bulk", {"jobs": jobs})
    assert status == 201
    wait_for(lambda: db.counts().get("completed", 0) == 25, 30, interval=0.2,
             message=f"25 completed, have {db.counts()}")
    starts = sorted(r[0] for r in db.query("SELECT started_at FROM job"))
    assert db.counts() == {"completed": 25}
    for i, start in enumerate(starts):
        in_window = [t for t in starts[i:] if t <= start + window]
        assert len(in_window) <= limit, f"{len(in_window)} starts within {window} s of {start}"
    # and the limit is used, not merely respected: 25 jobs at 5/s take about 4 s
    assert starts[-1] - starts[0] >= (25 / limit - 1) * window * 0.95


def test_sigterm_leaves_no_job_active(serve_factory, tmp_path):
    env = {**queues_env(concurrency=3), "SYNTHBOX_SHUTDOWN_TIMEOUT": "1"}
    data = tmp_path / "data"
    server = serve_factory(env, data)
    jobs = [{"name": "sleep", "data": {"seconds": 20}} for _ in range(5)]
    status, reply = server.request("POST", "/api/v1/queues/diagnostics/jobs/bulk", {"jobs": jobs})
    assert status == 201
    wait_for(lambda: counts(data).get("active", 0) == 3, message="three active jobs")
    # running, not only claimed (a job claimed but not started is handed back unstalled)
    wait_for(lambda: Records(data).query("SELECT COUNT(*) FROM job_log")[0][0] == 3,
             message="three jobs running their handler")
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    assert server.process.wait(15) == 0
    assert time.monotonic() - started < 10
    assert counts(data) == {"waiting": 5}, "running jobs are handed back, none left active"
    records = Records(data)
    assert {r[0] for r in records.query("SELECT attempts_made FROM job")} == {0}
    # the three that were running count a stall (maxStalledCount bounds restarts too)
    assert sorted(r[0] for r in records.query("SELECT stalled_count FROM job")) == [
        0, 0, 1, 1, 1]
    assert records.query("SELECT COUNT(*) FROM instance")[0][0] == 0


def test_sigterm_lets_short_jobs_finish(serve_factory, tmp_path):
    env = {**queues_env(concurrency=3), "SYNTHBOX_SHUTDOWN_TIMEOUT": "10"}
    data = tmp_path / "data"
    server = serve_factory(env, data)
    jobs = [{"name": "sleep", "data": {"seconds": 1}} for _ in range(3)]
    server.request("POST", "/api/v1/queues/diagnostics/jobs/bulk", {"jobs": jobs})
    wait_for(lambda: counts(data).get("active", 0) == 3, message="three active jobs")
    server.signal(signal.SIGINT)
    assert server.process.wait(15) == 0
    assert counts(data) == {"completed": 3}
