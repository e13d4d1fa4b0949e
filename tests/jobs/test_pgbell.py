"""PostgreSQL's LISTEN/NOTIFY as the doorbell between instances that share PostgreSQL
records and have no Redis: an add through one instance wakes the workers of another,
the listener comes back after its connection is terminated, and with Redis configured
Huey stays the doorbell and nothing is notified."""

from __future__ import annotations

import json
import socket
import urllib.request

import psycopg2

from tests.conftest import Records, wait_for


def _terminate(pg_url: str, pid: int) -> None:
    conn = psycopg2.connect(pg_url)
    conn.autocommit = True
    try:
        conn.cursor().execute("SELECT pg_terminate_backend(%s)", (pid,))
    finally:
        conn.close()


def _state(service, job_id):
    return service.get_job(job_id)["state"]


def test_an_add_in_one_instance_wakes_the_workers_of_another(pg_url, engine_builder,
                                                            tmp_path):
    """The adding instance runs no workers; the other one is told at once, and its
    listener counts the notification (its own adds it ignores)."""
    workers = engine_builder({"database_url": pg_url}, data_dir=tmp_path / "workers")
    adder = engine_builder({"database_url": pg_url}, workers=False, data_dir=tmp_path / "adds")
    listener = workers.listener
    assert listener is not None and adder.listener is None
    assert listener.connected.wait(10)
    job = adder.service("diagnostics").add("noop", {})
    wait_for(lambda: _state(workers.service("diagnostics"), job["id"]) == "completed", 20,
             message="the job added elsewhere run here")
    assert listener.notifications.get("diagnostics", 0) >= 1
    heard = listener.notifications["diagnostics"]
    mine = workers.service("diagnostics").add("noop", {})
    wait_for(lambda: _state(workers.service("diagnostics"), mine["id"]) == "completed", 20,
             message="a job added here")
    assert listener.notifications["diagnostics"] == heard  # its own add: not counted
    assert "LISTEN/NOTIFY" in workers.backends()["transport"]


def test_a_bulk_add_and_a_keyed_add_notify_too_and_a_delayed_one_does_not(pg_url,
                                                                         engine_builder,
                                                                         tmp_path):
    workers = engine_builder({"database_url": pg_url}, data_dir=tmp_path / "workers")
    adder = engine_builder({"database_url": pg_url}, workers=False, data_dir=tmp_path / "adds")
    listener = workers.listener
    assert listener is not None and listener.connected.wait(10)
    service = adder.service("diagnostics")
    jobs = service.add_bulk([{"name": "noop"}] * 3)
    wait_for(lambda: listener.notifications.get("diagnostics") == 1, 20,
             message="one notification for the bulk (one transaction, one queue)")
    keyed = service.add("noop", {}, key="once")
    wait_for(lambda: listener.notifications.get("diagnostics") == 2, 20,
             message="the keyed add's notification")
    service.add("noop", {}, delay=3600)
    for job in [*jobs, keyed]:
        wait_for(lambda job=job: _state(service, job["id"]) == "completed", 20,
                 message="every due job run by the other instance")
    assert listener.notifications["diagnostics"] == 2


def test_the_listener_reconnects_after_its_connection_is_terminated(pg_url, engine_builder,
                                                                   tmp_path):
    workers = engine_builder({"database_url": pg_url}, data_dir=tmp_path / "workers")
    adder = engine_builder({"database_url": pg_url}, workers=False, data_dir=tmp_path / "adds")
    listener = workers.listener
    assert listener is not None and listener.connected.wait(10)
    first = listener.backend_pid
    assert first is not None
    _terminate(pg_url, first)
    wait_for(lambda: listener.connections >= 2 and listener.connected.is_set(), 20,
             message="the listener connected again")
    assert listener.backend_pid not in (None, first)
    job = adder.service("diagnostics").add("noop", {})
    wait_for(lambda: listener.notifications.get("diagnostics", 0) >= 1, 20,
             message="the add heard on the new connection")
    wait_for(lambda: _state(adder.service("diagnostics"), job["id"]) == "completed", 20,
             message="the job run")


def test_with_redis_huey_stays_the_doorbell_and_nothing_is_notified(pg_url, redis_url,
                                                                    engine_builder):
    engine = engine_builder({"database_url": pg_url, "redis_url": redis_url})
    assert engine.store.notifier is None and engine.listener is None
    assert "LISTEN" not in engine.backends()["transport"]


def _metric(port: int, name: str, label: str = "") -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(name + "{") and label in line:
                return float(line.rsplit(" ", 1)[1])
    return None


def test_two_served_instances_share_work_through_postgresql_without_redis(pg_url,
                                                                          serve_factory,
                                                                          tmp_path):
    """Two `synthbox serve` on one PostgreSQL database, no Redis, one worker each. The
    first one's worker is busy with a long job; a job added through its API is run by
    the second instance, which was notified of it."""
    env = {"DATABASE_URL": pg_url,
           "SYNTHBOX_QUEUES": json.dumps({"diagnostics": {"concurrency": 1}})}
    first = serve_factory(env, tmp_path / "first")
    records = Records(tmp_path / "first", pg_url)
    status, reply = first.request("POST", "/api/v1/queues/diagnostics/jobs",
                                  {"name": "sleep", "data": {"seconds": 20}})
    assert status == 201, reply
    long_job = int(reply["data"]["id"])
    wait_for(lambda: records.query("SELECT status FROM job WHERE id=?", (long_job,))
             == [("active",)], 20, message="the first instance busy with the long job")
    second = serve_factory(env, tmp_path / "second")
    wait_for(lambda: _metric(second.port, "synthbox_doorbell_listener_up") == 1, 20,
             message="the second instance listening")
    status, reply = first.request("POST", "/api/v1/queues/diagnostics/jobs",
                                  {"name": "sleep", "data": {"seconds": 1.0}})
    assert status == 201, reply
    job = int(reply["data"]["id"])
    owners: list[str] = []

    def running_elsewhere() -> bool:
        row = records.query("SELECT status, owner FROM job WHERE id=?", (job,))[0]
        if row[0] == "active":
            owners.append(row[1])
        return bool(owners)

    wait_for(running_elsewhere, 20, message="the job running")
    assert owners[0].startswith(f"{socket.gethostname()}-{second.process.pid}-"), owners
    wait_for(lambda: records.query("SELECT status FROM job WHERE id=?", (job,))
             == [("completed",)], 20, message="the job completed")
    assert (_metric(second.port, "synthbox_doorbell_notifications_total",
                    'queue="diagnostics"') or 0) >= 1
    assert records.query("SELECT status FROM job WHERE id=?", (long_job,)) == [("active",)]
