"""The HTTP worker API (fetch with a lease, ack, fail, beat) under a `worker` token that can
do nothing else, and GET /api/v1/workers listing the connected worker processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import wait_for
from tests.faktory.helpers import HERE, Raw, faktory_serve

QUEUES = """
[queues.by-http]
handler = "remote"
backoff = { type = "fixed", delay = 60 }
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    serve, port = faktory_serve(tmp_path_factory.mktemp("http"), QUEUES)
    status, body = serve.request("POST", "/api/v1/admin/tokens",
                                 {"name": "remote-worker", "scopes": ["worker"]})
    assert status == 201, body
    yield serve, port, body["data"]["token"]
    serve.stop()


def add(serve, name: str, data) -> str:
    status, body = serve.request("POST", "/api/v1/queues/by-http/jobs",
                                 {"name": name, "data": data})
    assert status == 201, body
    return body["data"]["id"]


def state(serve, job_id: str) -> dict:
    return serve.request("GET", f"/api/v1/queues/by-http/jobs/{job_id}")[1]["data"]


def test_fetch_ack_with_a_result(server):
    serve, _, token = server
    job_id = add(serve, "resize", {"image": 7})
    status, body = serve.request("POST", "/api/v1/queues/by-http/fetch",
                                 {"count": 5, "wid": "curl-1", "hostname": "box"}, token=token)
    assert status == 200, body
    jobs = body["data"]["jobs"]
    assert [j["jid"] for j in jobs] == [job_id]
    assert jobs[0]["jobtype"] == "resize" and jobs[0]["args"] == [{"image": 7}]
    assert jobs[0]["leaseUntil"] > time.time() * 1000
    assert state(serve, job_id)["state"] == "active"
    listed = serve.request("GET", "/api/v1/workers")[1]["data"]
    assert [(w["hostname"], w["protocol"], w["jobs"]) for w in listed
            if w["wid"] == "curl-1"] == [("box", "http", [job_id])]
    status, body = serve.request("POST", f"/api/v1/jobs/{job_id}/ack",
                                 {"result": {"width": 100}}, token=token)
    assert status == 200, body
    job = state(serve, job_id)
    assert job["state"] == "completed" and job["returnvalue"] == {"width": 100}
    # twice: the job is no longer held
    assert serve.request("POST", f"/api/v1/jobs/{job_id}/ack", {}, token=token)[0] == 409


def test_a_quieted_http_worker_is_told_so_and_fetches_nothing(server):
    serve, _, token = server
    asked = {"wid": "curl-quiet", "hostname": "box", "wait": 0}
    status, body = serve.request("POST", "/api/v1/queues/by-http/fetch", asked, token=token)
    assert status == 200 and body["data"] == {"jobs": [], "state": ""}, body
    status, body = serve.request("POST", "/api/v1/workers/curl-quiet/quiet")
    assert status == 200, body
    job_id = add(serve, "resize", {"image": 8})
    status, body = serve.request("POST", "/api/v1/queues/by-http/fetch", asked, token=token)
    assert status == 200 and body["data"] == {"jobs": [], "state": "quiet"}, body
    assert state(serve, job_id)["state"] == "waiting"
    [worker] = [w for w in serve.request("GET", "/api/v1/workers")[1]["data"]
                if w["wid"] == "curl-quiet"]
    assert (worker["protocol"], worker["state"]) == ("http", "quiet")
    serve.request("DELETE", f"/api/v1/admin/jobs/{job_id}")


def test_fail_with_a_retry_delay_and_beat_extends_the_lease(server):
    serve, _, token = server
    job_id = add(serve, "flaky", [1])
    jobs = serve.request("POST", "/api/v1/queues/by-http/fetch", {}, token=token)[1]
    assert jobs["data"]["jobs"][0]["jid"] == job_id
    status, beat = serve.request("POST", f"/api/v1/jobs/{job_id}/beat", {"extendBy": 600},
                                 token=token)
    assert status == 200, beat
    assert beat["data"]["leaseUntil"] >= (time.time() + 590) * 1000
    status, body = serve.request("POST", f"/api/v1/jobs/{job_id}/fail",
                                 {"message": "disk full", "errtype": "IOError",
                                  "backtrace": "main.go:10\nmain.go:3", "retryIn": 0},
                                 token=token)
    assert status == 200, body
    job = state(serve, job_id)
    assert job["state"] == "waiting" and job["failedReason"] == "IOError: disk full"
    assert job["errors"][0]["stacktrace"] == "main.go:10\nmain.go:3"
    again = serve.request("POST", "/api/v1/queues/by-http/fetch", {}, token=token)[1]
    assert again["data"]["jobs"][0]["failure"]["message"] == "disk full"  # retried now
    assert serve.request("POST", f"/api/v1/jobs/{job_id}/ack", {}, token=token)[0] == 200


def test_a_long_poll_gets_a_job_added_while_it_waits(server):
    serve, _, token = server
    answer: list = []
    waiter = threading.Thread(target=lambda: answer.append(serve.request(
        "POST", "/api/v1/queues/by-http/fetch", {"wait": 10}, token=token, timeout=20)))
    waiter.start()
    time.sleep(0.5)
    job_id = add(serve, "late", {})
    waiter.join(20)
    status, body = answer[0]
    assert status == 200 and [j["jid"] for j in body["data"]["jobs"]] == [job_id]
    assert serve.request("POST", f"/api/v1/jobs/{job_id}/ack", {}, token=token)[0] == 200


def test_an_empty_fetch_waits_then_answers_no_jobs(server):
    serve, _, token = server
    started = time.monotonic()
    status, body = serve.request("POST", "/api/v1/queues/by-http/fetch", {"wait": 1},
                                 token=token)
    assert status == 200 and body["data"]["jobs"] == []
    assert time.monotonic() - started >= 0.9


@pytest.mark.parametrize("path, body, field", [
    ("/api/v1/queues/by-http/fetch", {"wait": 31}, "wait"),
    ("/api/v1/queues/by-http/fetch", {"count": 0}, "count"),
    ("/api/v1/queues/by-http/fetch", {"wid": ""}, "wid"),
    ("/api/v1/jobs/1/fail", {"backtrace": 5}, "backtrace"),
    ("/api/v1/jobs/1/beat", {"extendBy": -1}, "extendBy"),
])
def test_bad_input_is_a_400_naming_the_field(server, path, body, field):
    serve, _, token = server
    status, answer = serve.request("POST", path, body, token=token)
    assert status == 400, answer
    assert answer["error"]["field"] == field


def test_fetching_from_a_queue_synthbox_runs_itself_is_a_409_naming_it(server):
    serve, _, token = server
    status, answer = serve.request("POST", "/api/v1/queues/diagnostics/fetch", {},
                                   token=token)
    assert status == 409, answer
    assert answer["error"]["field"] == "queue"
    assert "'diagnostics' is not a remote queue" in answer["error"]["message"]


def test_unknown_queue_and_job_are_404(server):
    serve, _, token = server
    assert serve.request("POST", "/api/v1/queues/nope/fetch", {}, token=token)[0] == 404
    assert serve.request("POST", "/api/v1/jobs/no-such-jid/ack", {}, token=token)[0] == 404


def test_a_worker_token_can_do_nothing_else(server):
    serve, _, token = server
    assert serve.request("GET", "/api/v1/queues", token=token)[0] == 403
    assert serve.request("POST", "/api/v1/queues/by-http/jobs", {"name": "x"},
                         token=token)[0] == 403
    assert serve.request("GET", "/api/v1/workers", token=token)[0] == 403
    assert serve.request("POST", "/api/v1/queues/by-http/fetch", {})[0] == 200  # admin too


def test_workers_lists_a_faktory_client_with_the_jobs_it_holds(server, tmp_path):
    serve, port, _ = server
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, str(HERE / "py_worker.py"),
                                f"tcp://127.0.0.1:{port}", "held-here", str(out), "1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        raw = Raw(port, {"v": 2})
        assert raw.command('PUSH {"jid": "listed-1", "jobtype": "hold", "args": [60], '
                           '"queue": "held-here"}') == "OK"
        raw.close()

        def listed():
            return [w for w in serve.request("GET", "/api/v1/workers")[1]["data"]
                    if w["protocol"] == "faktory" and w["jobs"] == ["listed-1"]]

        worker = wait_for(listed, 30, message="the worker holding its job")[0]
        assert worker["pid"] == process.pid and worker["labels"] == ["python", "test"]
        assert worker["hostname"] and worker["secondsSinceBeat"] < 10
        assert worker["state"] == "running"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
