"""PostgreSQL records going away under load: restarted, its connections terminated, down
for 30 s, a statement past statement_timeout. A private cluster (tests/faults/pg.py) that
each test stops and starts; `synthbox serve` with Redis as the doorbell."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import Records, RedisServer, wait_for
from tests.faults.load import Load, add_job, metric, page

RECOVERY_PROMISE = 5.0  # seconds from PostgreSQL accepting connections to adds succeeding


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def start(serve_factory, tmp_path, pg, redis=None, **queue):
    env = {"DATABASE_URL": pg.url,
           "SYNTHBOX_QUEUES": json.dumps({"diagnostics": {
               "concurrency": 4, "stalled_interval": 5.0, **queue}})}
    if redis is not None:
        env["REDIS_URL"] = redis.url
    server = serve_factory(env, tmp_path / "data")
    return server, Records(tmp_path / "data", pg.url)


def long_jobs(server, count: int, seconds: float) -> list[int]:
    ids = []
    for _ in range(count):
        status, reply, _ = add_job(server, {"name": "sleep", "data": {"seconds": seconds}})
        assert status == 201, reply
        ids.append(int(reply["data"]["id"]))
    return ids


def readyz(server):
    return server.request("GET", "/readyz", token=None)


def test_postgres_restart_reconnects_within_5_s(pg, serve_factory, tmp_path, own_redis):
    server, records = start(serve_factory, tmp_path, pg, own_redis)
    running = long_jobs(server, 4, 3.0)
    wait_for(lambda: records.counts().get("active", 0) == 4, message="four running jobs")
    load = Load(server).start()
    time.sleep(1.0)
    back = pg.restart()
    wait_for(lambda: [t for t in load.successes if t > back], 15, message="an add after")
    time.sleep(2.0)
    load.stop()
    recovery = load.recovered_after(back)
    load.check()
    states = load.settled(records)
    assert recovery < RECOVERY_PROMISE
    final = dict(records.query(f"SELECT id, status FROM job WHERE id IN "
                               f"({','.join(map(str, running))})"))
    assert set(final.values()) == {"completed"}, final
    assert readyz(server)[0] == 200
    log = server.output()
    assert "connection already closed" not in log, log[-3000:]
    load.report("postgres restart", records, recovery)
    assert states.get("failed", 0) == 0


def test_pg_terminate_backend_is_survived(pg, serve_factory, tmp_path, own_redis):
    server, records = start(serve_factory, tmp_path, pg, own_redis)
    load = Load(server).start()
    time.sleep(1.0)
    killed = pg.admin("SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                      "WHERE datname='synthbox' AND pid<>pg_backend_pid()")[0][0]
    after = time.monotonic()
    assert killed >= 2
    wait_for(lambda: [t for t in load.successes if t > after], 15, message="an add after")
    time.sleep(1.0)
    load.stop()
    load.check()
    recovery = load.recovered_after(after)
    assert recovery < RECOVERY_PROMISE
    load.settled(records)
    load.report("pg_terminate_backend", records, recovery, connectionsKilled=killed)


@pytest.mark.slow
def test_postgres_down_30_s_under_load(pg, serve_factory, tmp_path, own_redis):
    server, records = start(serve_factory, tmp_path, pg, own_redis, stalled_interval=10.0)
    running = long_jobs(server, 4, 6.0)
    wait_for(lambda: records.counts().get("active", 0) == 4, message="four running jobs")
    load = Load(server, pause=0.05).start()
    time.sleep(1.0)
    pg.stop()
    stopped = time.monotonic()
    wait_for(lambda: readyz(server)[0] == 503, 10, message="/readyz 503")
    status, ready = readyz(server)
    assert ready["failing"] == "records" and "unreachable" in ready["checks"]["records"]
    # the jobs that were running finish meanwhile; their outcomes wait in memory
    wait_for(lambda: metric(server, "synthbox_outcomes_unrecorded") == 4, 15,
             message="four outcomes kept in memory")
    assert metric(server, "synthbox_records_up") == 0
    shown = page(server)
    assert "Records database" in shown and "unreachable" in shown, shown[:2000]
    time.sleep(max(0.0, 30 - (time.monotonic() - stopped)))
    pg.start()
    back = time.monotonic()
    wait_for(lambda: [t for t in load.successes if t > back], 15, message="an add after")
    time.sleep(2.0)
    load.stop()
    load.check(refusals_expected=True)
    recovery = load.recovered_after(back)
    assert recovery < RECOVERY_PROMISE
    load.settled(records)
    final = dict(records.query(f"SELECT id, status FROM job WHERE id IN "
                               f"({','.join(map(str, running))})"))
    assert set(final.values()) == {"completed"}, final
    ran_again = records.query(f"SELECT SUM(stalled_count) FROM job WHERE id IN "
                              f"({','.join(map(str, running))})")[0][0]
    assert ran_again == 0, "the outcomes kept in memory were written, not run again"
    wait_for(lambda: metric(server, "synthbox_records_up") == 1, 10, message="records up")
    assert readyz(server)[0] == 200
    log = server.output()
    assert log.count("synthbox.db: records database unreachable:") == 1, log[-4000:]
    assert log.count("synthbox.db: records database reachable again") == 1, log[-4000:]
    assert "Traceback" not in log, log[-4000:]
    load.report("postgres down 30 s", records, recovery, outcomesKept=4)


def test_statement_timeout_is_a_503_not_a_500(pg, serve_factory, tmp_path, own_redis):
    # every statement past 1 ms is cancelled while a lock is held on the job table
    import psycopg2

    server, records = start(serve_factory, tmp_path, pg, own_redis)
    load = Load(server).start()
    time.sleep(0.5)
    pg.admin("ALTER DATABASE synthbox SET statement_timeout = '300ms'")
    holder = psycopg2.connect(pg.url)
    cursor = holder.cursor()
    cursor.execute("LOCK TABLE job IN ACCESS EXCLUSIVE MODE")
    # connections opened from now on get the timeout; terminate the old ones so they do
    pg.admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
             "datname='synthbox' AND pid<>pg_backend_pid() AND state<>'idle in transaction'")
    wait_for(lambda: load.statuses[503] >= 3, 20, message="adds refused with 503")
    holder.rollback()
    holder.close()
    released = time.monotonic()
    pg.admin("ALTER DATABASE synthbox RESET statement_timeout")
    wait_for(lambda: [t for t in load.successes if t > released], 15, message="an add after")
    time.sleep(1.0)
    load.stop()
    load.check(refusals_expected=True)
    assert any("statement timeout" in m for m in load.messages), load.messages
    load.settled(records)
    load.report("postgres statement_timeout", records, load.recovered_after(released))


def test_the_doorbell_listener_survives_a_postgres_restart(pg, engine_builder, tmp_path):
    """No Redis: PostgreSQL is the doorbell between instances. Restarted, it drops the
    listening connection; the listener connects again with backoff, and an add through
    another instance wakes this one's workers as before. While it is away, a job added
    is found by the upkeep sweep."""
    workers = engine_builder({"database_url": pg.url}, data_dir=tmp_path / "workers")
    adder = engine_builder({"database_url": pg.url}, workers=False, data_dir=tmp_path / "adds")
    listener = workers.listener
    assert listener is not None and listener.connected.wait(10)
    first = listener.backend_pid
    pg.restart()
    wait_for(lambda: listener.connections >= 2 and listener.connected.is_set(), 30,
             message="the listener connected again")
    assert listener.backend_pid != first
    service = adder.service("diagnostics")
    job = None

    def added() -> bool:  # the adder's own pooled connection finds its way back too
        nonlocal job
        try:
            job = service.add("noop", {})
        except Exception:
            return False
        return True

    wait_for(added, 15, message="an add after the restart")
    assert job is not None
    wait_for(lambda: listener.notifications.get("diagnostics", 0) >= 1, 20,
             message="the add heard on the new connection")
    wait_for(lambda: service.get_job(job["id"])["state"] == "completed", 20,
             message="the job run by the listening instance")
