"""Jobs of remote queues get SynthBox's features whichever side they come from (issue 20,
point 2): cron and signed webhooks add jobs a Faktory worker fetches; failures a Faktory
worker reports fire an alert; a pushed job is found by search, retried in bulk, edited
and retried, and deleted like any other, and its attempts and counts show in its
timeline and in /metrics. Retention: test_retention.py."""

from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.conftest import create_user, remember_secret, wait_for
from tests.faktory.helpers import Raw, faktory_serve
from tests.userqueues.test_triggers import SECRET, signed

PASSWORD = "features page password 1"
QUEUES = f"""
[queues.ticking]
handler = "remote"

[[queues.ticking.schedules]]
name = "tick"
cron = "* * * * * */2"  # every 2 seconds (croniter's sixth field)
data = {{ n = 1 }}

[queues.hooked]
handler = "remote"
webhook = {{ secret = "{SECRET}", job = "resize", data = {{ url = "/image/url" }} }}
"""
HELLO = {"v": 2, "wid": "w-features", "hostname": "box", "pid": 7, "labels": ["ruby"]}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("features")
    (folder / "data").mkdir()
    create_user(folder / "data", "boss", "admin", PASSWORD)
    serve, port = faktory_serve(folder, QUEUES)
    remember_secret(serve.token)
    yield serve, port
    serve.stop()


@pytest.fixture
def worker(server):
    raw = Raw(server[1], HELLO)
    yield raw
    raw.close()


def push(raw: Raw, jid: str, queue: str, *args, **more) -> None:
    job = {"jid": jid, "jobtype": "work", "args": list(args), "queue": queue, **more}
    assert raw.command("PUSH " + json.dumps(job)) == "OK"


def fetch_and_fail(raw: Raw, queue: str, jid: str, errtype: str, message: str) -> None:
    assert raw.command(f"FETCH {queue}")["jid"] == jid
    failure = {"jid": jid, "errtype": errtype, "message": message, "backtrace": ["w.rb:1"]}
    assert raw.command("FAIL " + json.dumps(failure)) == "OK"


def job_of(serve, queue: str, jid: str) -> dict:
    status, body = serve.request("GET", f"/api/v1/queues/{queue}/jobs/{jid}")
    assert status == 200, body
    return body["data"]


def test_a_cron_schedule_adds_jobs_a_faktory_worker_fetches(server, worker):
    serve, _ = server
    fetched = wait_for(lambda: worker.command("FETCH ticking"), 20, interval=0,
                       message="a job from the schedule")
    assert (fetched["jobtype"], fetched["args"], fetched["queue"]) == ("tick", [{"n": 1}],
                                                                       "ticking")
    assert worker.command(f'ACK {{"jid": "{fetched["jid"]}"}}') == "OK"
    assert job_of(serve, "ticking", fetched["jid"])["state"] == "completed"
    again = wait_for(lambda: worker.command("FETCH ticking"), 20, interval=0,
                     message="the next due time's job")
    assert again["jid"] != fetched["jid"] and again["jobtype"] == "tick"
    assert worker.command(f'ACK {{"jid": "{again["jid"]}"}}') == "OK"


def deliver(serve, queue: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{serve.port}/api/v1/queues/{queue}"
                                     "/webhook", data=body, method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_signed_webhook_adds_a_job_a_faktory_worker_fetches_once(server, worker):
    serve, _ = server
    body = json.dumps({"image": {"url": "https://x/a.png"}}).encode()
    headers = signed(body)
    status, answer = deliver(serve, "hooked", body, headers)
    assert status == 200 and answer["data"]["duplicate"] is False, answer
    fetched = worker.command("FETCH hooked")
    assert fetched["jid"] == answer["data"]["jobId"]
    assert (fetched["jobtype"], fetched["args"]) == ("resize", [{"url": "https://x/a.png"}])
    assert worker.command(f'ACK {{"jid": "{fetched["jid"]}"}}') == "OK"
    status, again = deliver(serve, "hooked", body, headers)  # the same delivery again
    assert status == 200 and again["data"] == {"jobId": fetched["jid"], "duplicate": True}
    status, forged = deliver(serve, "hooked", body, signed(body, "not-the-secret-at-all"))
    assert status == 401, forged
    assert worker.command("FETCH hooked") is None  # nothing new to run
    assert job_of(serve, "hooked", fetched["jid"])["state"] == "completed"


def test_an_alert_fires_on_failures_a_faktory_worker_reports(server, worker):
    serve, _ = server
    push(worker, "flaky-0", "flaky", retry=0)  # makes the queue, so a rule can name it
    status, made = serve.request("POST", "/api/v1/admin/alerts", {
        "name": "flaky-failures", "kind": "failures", "queue": "flaky", "threshold": 1,
        "window": 600})
    assert status == 201, made
    push(worker, "flaky-1", "flaky", retry=0)
    for jid in ("flaky-0", "flaky-1"):
        fetch_and_fail(worker, "flaky", jid, "IOError", "disk gone")
    events = wait_for(lambda: [e for e in serve.request(
        "GET", "/api/v1/admin/alerts/events")[1]["data"]["events"]
        if e["rule"] == "flaky-failures"] or None, 20, message="the alert fired")
    assert [(e["state"], e["value"]) for e in events] == [("firing", 2)]
    assert "in queue flaky is 2" in events[0]["message"]
    [rule] = [r for r in serve.request("GET", "/api/v1/admin/alerts")[1]["data"]
              if r["name"] == "flaky-failures"]
    assert rule["firing"] is True


class SignedIn:
    """The UI over HTTP with a session cookie: forms posted with their CSRF token."""

    def __init__(self, serve, name: str, password: str):
        self.base = f"http://127.0.0.1:{serve.port}"
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.post("/login", {"name": name, "password": password}, form_page="/login")

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=10) as answer:
            return answer.read().decode()

    def post(self, path: str, fields: dict[str, str], form_page: str) -> str:
        token = re.search(r'name="csrf_token" value="([^"]+)"', self.get(form_page))
        assert token is not None, f"no form on {form_page}"
        data = urllib.parse.urlencode({**fields, "csrf_token": token.group(1)}).encode()
        with self.opener.open(self.base + path, data=data, timeout=10) as answer:
            return answer.read().decode()


def test_search_bulk_retry_edit_and_retry_and_bulk_delete_of_pushed_jobs(server, worker):
    serve, _ = server
    for n in range(3):
        push(worker, f"ops-{n}", "ops", {"order": 100 + n}, retry=0)
    fetch_and_fail(worker, "ops", "ops-0", "Timeout", "the bank did not answer")
    fetch_and_fail(worker, "ops", "ops-1", "Timeout", "the bank did not answer")
    fetch_and_fail(worker, "ops", "ops-2", "KeyError", "no such order")

    def search(text: str, state: str = "failed") -> list[str]:
        status, body = serve.request("GET", f"/api/v1/admin/queues/ops/jobs?state={state}"
                                            f"&search={urllib.parse.quote(text)}")
        assert status == 200, body
        return sorted(job["jobId"] for job in body["data"]["jobs"])

    assert search("ops-2") == ["ops-2"]  # by its jid
    assert search("timeout") == ["ops-0", "ops-1"]  # by its error
    assert search('"order": 101') == ["ops-1"]  # by its args
    status, counted = serve.request("POST", "/api/v1/admin/queues/ops/jobs/retry",
                                    {"search": "Timeout", "dryRun": True})
    assert status == 200 and counted["data"]["count"] == 2
    status, retried = serve.request("POST", "/api/v1/admin/queues/ops/jobs/retry",
                                    {"search": "Timeout"})
    assert status == 200 and retried["data"]["count"] == 2
    again = sorted(worker.command("FETCH ops")["jid"] for _ in range(2))
    assert again == ["ops-0", "ops-1"] and worker.command("FETCH ops") is None
    for jid in again:
        assert worker.command(f'ACK {{"jid": "{jid}"}}') == "OK"

    # edit and retry (the job page's form): the worker gets the new args, same jid
    failed = job_of(serve, "ops", "ops-2")
    ui = SignedIn(serve, "boss", PASSWORD)
    page = ui.post(f"/jobs/{failed['id']}/edit", {"data": '[{"order": 202}]'},
                   form_page=f"/jobs/{failed['id']}")
    assert "has new data and is waiting to run again" in page
    edited = worker.command("FETCH ops")
    assert (edited["jid"], edited["args"]) == ("ops-2", [{"order": 202}])
    assert worker.command('ACK {"jid": "ops-2"}') == "OK"
    entries = serve.request("GET", "/api/v1/admin/audit")[1]["data"]["entries"]
    assert any(e["action"] == "job.edit-retry" and e["target"] == f"job:{failed['id']}"
               for e in entries)

    status, deleted = serve.request("POST", "/api/v1/admin/queues/ops/jobs/delete",
                                    {"state": "completed", "search": "order"})
    assert status == 200 and deleted["data"]["count"] == 3
    assert all(serve.request("GET", f"/api/v1/queues/ops/jobs/ops-{n}")[0] == 404
               for n in range(3))
    push(worker, "ops-0", "ops", {"order": 300})  # its jid is free again
    assert job_of(serve, "ops", "ops-0")["data"] == [{"order": 300}]


def test_a_pushed_jobs_timeline_and_its_counts_in_the_metrics(server, worker):
    serve, _ = server
    push(worker, "timed", "measured", 1, retry=2)
    fetch_and_fail(worker, "measured", "timed", "Timeout", "gave up after 30 s")
    wait_for(lambda: job_of(serve, "measured", "timed")["state"] == "delayed"
             or None, 10, message="the failed attempt waiting for its retry")
    job_id = job_of(serve, "measured", "timed")["id"]
    assert serve.request("POST", f"/api/v1/admin/jobs/{job_id}/promote")[0] == 200
    assert worker.command("FETCH measured")["jid"] == "timed"
    assert worker.command('ACK {"jid": "timed", "result": {"ok": true}}') == "OK"
    done = job_of(serve, "measured", "timed")
    assert done["state"] == "completed" and done["attemptsMade"] == 2
    assert [(e["attempt"], e["error"]) for e in done["errors"]] == [
        (1, "Timeout: gave up after 30 s")]
    assert done["errors"][0]["stacktrace"] == "w.rb:1"
    request = urllib.request.Request(f"http://127.0.0.1:{serve.port}/metrics")
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    assert 'synthbox_jobs_completed_total{queue="measured"} 1.0' in text
    assert 'synthbox_jobs_retried_total{queue="measured"} 1.0' in text
    assert 'synthbox_queue_jobs{queue="measured",state="completed"} 1.0' in text
