"""Jobs a queue of your own adds itself: a signed webhook maps its body to the job's data,
and a cron schedule fires each due time once however many instances look."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from synthbox.actors import CLI
from synthbox.userqueues import manage, triggers
from synthbox.userqueues.catalog import user_queues

SECRET = "a-webhook-secret-of-length"


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    stamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
    return {"X-SynthBox-Timestamp": stamp, "X-SynthBox-Signature": "v1=" + digest.hexdigest()}


def test_a_signed_webhook_adds_a_job_mapping_its_body_once(in_process, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    manage.create(in_process.engine, "images", {
        "handler": "remote", "webhook": {"secret": "${HOOK_SECRET}", "job": "resize",
                                         "data": {"url": "/image/url", "who": "/sender/0"}}},
                  CLI)
    body = json.dumps({"image": {"url": "https://x/a.png"}, "sender": ["ann"]}).encode()
    client = in_process.client
    answer = client.post("/api/v1/queues/images/webhook", data=body, headers=signed(body))
    assert answer.status_code == 200, answer.data
    job_id = answer.json["data"]["jobId"]
    job = in_process.engine.service("images").get_job(job_id)
    assert (job["name"], job["data"]) == ("resize", {"url": "https://x/a.png", "who": "ann"})
    again = client.post("/api/v1/queues/images/webhook", data=body, headers=signed(body))
    assert again.json["data"] == {"jobId": job_id, "duplicate": True}
    forged = client.post("/api/v1/queues/images/webhook", data=body,
                         headers=signed(body, "not-the-secret-at-all"))
    assert forged.status_code == 401
    assert forged.json["error"]["message"] == \
        "signature: X-SynthBox-Signature does not match"
    assert client.post("/api/v1/queues/email/webhook", data=body,
                       headers=signed(body)).status_code == 404
    assert in_process.engine.service("images").get_stats()["waiting"] == 1


def test_a_cron_schedule_fires_each_due_time_once(engine_builder, tmp_path):
    """(One engine a process: the records' models follow the process's database. The
    conditional UPDATE that makes a due time fire once is the orchestration schedules'
    one, tested across instances in tests/orchestration/test_triggers.py.)"""
    first = engine_builder({}, workers=False, data_dir=tmp_path / "data")
    manage.create(first, "nightly", {"handler": "remote", "schedules": [
        {"name": "tick", "cron": "* * * * *", "data": {"full": True}}]}, CLI)
    schedules = user_queues(first).definitions["nightly"].config["schedules"]
    now = time.time()
    assert triggers.fire_due(schedules, first.service("nightly"), now) == 0  # starts here
    due = now + 61
    fired = [triggers.fire_due(schedules, first.service("nightly"), due) for _ in range(3)]
    assert fired == [1, 0, 0]
    jobs, _ = first.service("nightly").list_jobs(None)
    assert [(j["name"], j["data"]) for j in jobs] == [("tick", {"full": True})]
    assert first.service("nightly").spec.periodic[0].name == "cron"
