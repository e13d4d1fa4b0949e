"""Triggers: cron schedules across instances and webhooks with signatures and replays."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import threading
import time

from synthbox.orchestration import projects, triggers
from synthbox.services import get_orchestration_queue_service
from tests.conftest import remember_secret, wait_for
from tests.orchestration.conftest import (
    FAST,
    _engine,
    call,
    created,
    deliver,
    wait_run,
)


def test_a_due_schedule_fires_once_across_instances(make_engine):
    """Eight upkeep loops look at the same moment (an injected clock), each on its own
    database connection: one run. (Two serve processes: the test below.)"""
    service = get_orchestration_queue_service(make_engine(FAST, workers=False))
    projects.create_project({"slug": "nightly"})
    schedule = triggers.save_schedule("nightly", {"cron": "0 3 * * *",
                                                  "timezone": "Europe/Paris"})
    due = schedule["nextRunAt"] / 1000
    barrier = threading.Barrier(8)
    fired = []

    def look():
        barrier.wait()
        fired.append(triggers.fire_due_schedules(service, now=due + 1))
        service.db.close()

    threads = [threading.Thread(target=look) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(fired) == 1
    [run] = service.list_runs("nightly")[0]
    assert run["triggeredBy"] == "cron"
    # 03:00 in Paris is 01:00 or 02:00 UTC; the next one is a day later
    assert time.gmtime(due).tm_hour in (1, 2) and time.gmtime(due).tm_min == 0
    after = triggers.list_schedules("nightly")[0]
    assert after["nextRunAt"] / 1000 - due in (23 * 3600, 24 * 3600, 25 * 3600)
    assert triggers.fire_due_schedules(service, now=due + 2) == 0


def test_missed_times_are_caught_up_once_after_downtime(engine_builder):
    engine, service = _engine(engine_builder)
    engine.stop()
    projects.create_project({"slug": "hourly"})
    schedule = triggers.save_schedule("hourly", {"cron": "0 * * * *"})
    due = schedule["nextRunAt"] / 1000
    assert triggers.fire_due_schedules(service, now=due + 5 * 3600 + 60) == 1
    [run] = service.list_runs("hourly")[0]
    assert run["triggeredBy"] == "system"
    job = engine.find_job(int(run["jobId"]))
    assert job["data"]["context"] == {"catchUp": True, "dueAt": int(due * 1000)}
    assert triggers.list_schedules("hourly")[0]["nextRunAt"] / 1000 == due + 6 * 3600


def test_schedules_fire_in_serve_processes_and_edits_apply_at_once(serve_factory, tmp_path):
    data = tmp_path / "shared"
    env = {"SYNTHBOX_QUEUES": json.dumps(FAST)}
    one = serve_factory(env, data_dir=data)
    two = serve_factory(env, data_dir=data)
    created(one, "/projects", {"slug": "cron"})
    created(one, "/projects/cron/agents", {"slug": "tick", "kind": "command",
                                            "config": {"command": ["true"]}})
    schedule = created(one, "/projects/cron/schedules", {"cron": "*/5 * * * *"})
    assert schedule["nextRunAt"] > time.time() * 1000
    # the schedule is edited while both instances run: the next time follows the new rule
    status, edited = call(two, "PATCH", f"/projects/cron/schedules/{schedule['id']}",
                          {"cron": "0 0 1 1 *"})
    assert status == 200
    new_year = time.gmtime(edited["data"]["nextRunAt"] / 1000)
    assert (new_year.tm_mon, new_year.tm_mday, new_year.tm_hour) == (1, 1, 0)

    # make it due now (the clock is the database's: both instances see the same row)
    with sqlite3.connect(data / "synthbox.db") as db:
        db.execute("UPDATE schedule SET next_run_at=?", (time.time() - 1,))

    def runs():
        _, reply = call(one, "GET", "/projects/cron/runs")
        return reply["data"]["runs"]

    wait_for(lambda: runs(), 15, message="the schedule fired")
    time.sleep(3)  # both instances have looked several times since
    [run] = runs()
    assert run["triggeredBy"] == "cron"
    wait_run(one, "cron", run["jobId"])
    _, listed = call(two, "GET", "/projects/cron/schedules")
    assert listed["data"][0]["nextRunAt"] > time.time() * 1000
    one.stop()
    two.stop()


def test_webhooks_verify_signatures_and_ignore_replays(serve_factory):
    serve = serve_factory({"SYNTHBOX_QUEUES": json.dumps(FAST)})
    created(serve, "/projects", {"slug": "hooked"})
    created(serve, "/projects/hooked/agents", {"slug": "echo", "kind": "command",
                                               "config": {"command": ["cat"]}})
    hook = created(serve, "/projects/hooked/hooks", {"slug": "github"})
    secret = hook["secret"]
    remember_secret(secret)
    assert hook["path"] == "/api/v1/hooks/hooked/github"
    _, listed = call(serve, "GET", "/projects/hooked/hooks")
    assert "secret" not in listed["data"][0], "the secret is shown once"

    body = json.dumps({"ref": "refs/heads/main", "commits": 3}).encode()
    good = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature-256": good, "X-GitHub-Delivery": "d-1",
               "X-GitHub-Event": "push"}
    status, first = deliver(serve, "hooked/github", body, headers)
    assert status == 200 and first["data"]["duplicate"] is False
    status, replay = deliver(serve, "hooked/github", body, headers)
    assert status == 200 and replay["data"] == {"jobId": first["data"]["jobId"],
                                                "duplicate": True}

    run = wait_run(serve, "hooked", first["data"]["jobId"])
    assert run["triggeredBy"] == "webhook" and run["state"] == "succeeded"
    seen = json.loads(run["agentRuns"][0]["output"])  # `cat` hands back its context
    assert seen["context"]["webhook"] == {"hook": "github", "deliveryId": "d-1",
                                          "event": "push",
                                          "payload": {"ref": "refs/heads/main", "commits": 3}}

    tampered = body.replace(b"3", b"4")
    stamp = str(int(time.time()))
    signed = "v1=" + hmac.new(secret.encode(), f"{stamp}.".encode() + body,
                              hashlib.sha256).hexdigest()
    stale_stamp = str(int(time.time()) - 301)
    stale = "v1=" + hmac.new(secret.encode(), f"{stale_stamp}.".encode() + body,
                             hashlib.sha256).hexdigest()
    for refused in ({"X-Hub-Signature-256": good, "X-GitHub-Delivery": "d-2"},  # tampered
                    {},
                    {"X-Hub-Signature-256": "sha256=" + "0" * 64},
                    {"X-SynthBox-Timestamp": stale_stamp, "X-SynthBox-Signature": stale}):
        status, reply = deliver(serve, "hooked/github", tampered if refused.get(
            "X-GitHub-Delivery") == "d-2" else body, refused)
        assert status == 401 and reply["success"] is False, refused
        assert reply["error"]["message"].startswith("signature:")
    status, timed = deliver(serve, "hooked/github", body,
                            {"X-SynthBox-Timestamp": stamp, "X-SynthBox-Signature": signed})
    assert status == 200 and timed["data"]["duplicate"] is False
    status, again = deliver(serve, "hooked/github", body,
                            {"X-SynthBox-Timestamp": stamp, "X-SynthBox-Signature": signed})
    assert again["data"]["duplicate"] is True, "the same signed request is a replay"
    status, missing = deliver(serve, "hooked/nope", body, headers)
    assert status == 404

    _, runs = call(serve, "GET", "/projects/hooked/runs")
    assert len(runs["data"]["runs"]) == 2
    serve.stop()


def test_a_local_time_that_comes_twice_fires_once():
    import datetime
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("America/New_York")
    before = datetime.datetime(2025, 11, 2, 0, 0, tzinfo=zone).timestamp()
    first = triggers.next_due("30 1 * * *", "America/New_York", before)
    following = triggers.next_due("30 1 * * *", "America/New_York", first + 1, first)
    assert following - first == 25 * 3600, "01:30 EST (the second 01:30) is skipped"


def test_a_replayed_delivery_with_a_new_id_is_still_a_replay(serve_factory):
    serve = serve_factory({"SYNTHBOX_QUEUES": json.dumps(FAST)})
    created(serve, "/projects", {"slug": "replayed"})
    hook = created(serve, "/projects/replayed/hooks", {"slug": "gh"})
    remember_secret(hook["secret"])
    body = b'{"ref": "main"}'
    signature = "sha256=" + hmac.new(hook["secret"].encode(), body, hashlib.sha256).hexdigest()
    answers = [deliver(serve, "replayed/gh", body, {"X-Hub-Signature-256": signature,
                                                    "X-GitHub-Delivery": delivery})[1]["data"]
               for delivery in ("d1", "d2", "d3")]
    assert [a["duplicate"] for a in answers] == [False, True, True]
    status, reply = deliver(serve, "replayed/gh", body, {
        "X-SynthBox-Timestamp": "²", "X-SynthBox-Signature": "v1=00"})
    assert status == 401
    serve.stop()
