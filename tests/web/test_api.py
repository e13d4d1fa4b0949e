"""The JSON API over real waitress: enqueue, inspect, manage, and every bad input."""

from __future__ import annotations

import json

import pytest

from tests.conftest import wait_for


@pytest.fixture(scope="module")
def server(served):
    return served({"SYNTHBOX_QUEUES": json.dumps({"diagnostics": {"concurrency": 2}})})


def test_health_and_ready_need_no_token(server):
    status, body = server.request("GET", "/healthz", token=None)
    assert status == 200 and body["status"] == "ok"
    status, body = server.request("GET", "/readyz", token=None)
    assert status == 200 and body["checks"] == {"records": "ok", "transport": "ok"}


def test_add_and_get_a_job(server):
    status, body = server.request("POST", "/api/v1/queues/diagnostics/jobs", {
        "name": "sleep", "data": {"seconds": 0.01},
        "opts": {"priority": 7, "attempts": 2, "backoff": {"type": "fixed", "delay": 1500}}})
    assert status == 201 and body["success"] is True
    job = body["data"]
    assert job["name"] == "sleep" and job["priority"] == 7 and job["attempts"] == 2
    assert job["backoff"] == {"type": "fixed", "delay": 1500}
    assert job["state"] == "waiting"
    path = f"/api/v1/queues/diagnostics/jobs/{job['id']}"
    wait_for(lambda: server.request("GET", path)[1]["data"]["state"] == "completed",
             message="job completed")
    status, body = server.request("GET", path)
    assert body["data"]["returnvalue"] == {"slept": 0.01, "finished": True}
    assert body["data"]["processedOn"] >= job["timestamp"]


def test_delay_is_in_milliseconds_and_job_id_dedups(server):
    first = server.request("POST", "/api/v1/queues/diagnostics/jobs",
                           {"name": "noop", "opts": {"delay": 60000, "jobId": "abc"}})[1]["data"]
    assert first["state"] == "delayed"
    assert 59000 <= first["runAt"] - first["timestamp"] <= 61000
    again = server.request("POST", "/api/v1/queues/diagnostics/jobs",
                           {"name": "noop", "opts": {"jobId": "abc"}})[1]["data"]
    assert again["id"] == first["id"]
    status, body = server.request("GET", "/api/v1/queues/diagnostics/jobs/abc")
    assert status == 200 and body["data"]["id"] == first["id"]
    status, body = server.request("POST", f"/api/v1/admin/jobs/{first['id']}/promote")
    assert status == 200 and body["data"]["state"] in ("waiting", "active", "completed")


def test_bulk_add_list_stats_and_retry(server):
    jobs = [{"name": "fail", "data": {"times": 9}, "opts": {"attempts": 1}} for _ in range(3)]
    status, body = server.request("POST", "/api/v1/queues/diagnostics/jobs/bulk", {"jobs": jobs})
    assert status == 201 and len(body["data"]) == 3
    ids = {job["id"] for job in body["data"]}
    wait_for(lambda: ids <= {j["id"] for j in server.request(
        "GET", "/api/v1/queues/diagnostics/jobs?state=failed&limit=100")[1]["data"]["jobs"]},
        message="three failed jobs listed")
    status, body = server.request("GET", "/api/v1/queues/diagnostics/stats")
    assert status == 200 and body["data"]["failed"] >= 3
    assert set(body["data"]) == {"waiting", "active", "completed", "failed", "delayed",
                                 "paused", "total"}
    status, body = server.request("POST", "/api/v1/admin/queues/diagnostics/retry-failed")
    assert status == 200 and body["data"]["retried"] >= 3
    status, body = server.request("GET", "/api/v1/queues")
    assert [q["name"] for q in body["data"]] == ["diagnostics", "email", "orchestration"]


def test_pause_resume_and_clean(server):
    assert server.request("POST", "/api/v1/admin/queues/diagnostics/pause")[1]["data"] == {
        "paused": True}
    job = server.request("POST", "/api/v1/queues/diagnostics/jobs", {"name": "noop"})[1]["data"]
    status, body = server.request("GET", "/api/v1/queues/diagnostics/stats")
    assert body["data"]["paused"] >= 1 and body["data"]["waiting"] == 0
    server.request("POST", "/api/v1/admin/queues/diagnostics/resume")
    path = f"/api/v1/queues/diagnostics/jobs/{job['id']}"
    wait_for(lambda: server.request("GET", path)[1]["data"]["state"] == "completed",
             message="job after resume")
    status, body = server.request("POST", "/api/v1/admin/queues/diagnostics/clean",
                                  {"state": "completed", "grace": 0})
    assert status == 200 and body["data"]["removed"] >= 1
    assert server.request("GET", path)[0] == 404


BAD_REQUESTS = [
    ("POST", "/api/v1/queues/nope/jobs", {"name": "noop"}, 404, "queue: no queue named 'nope'"),
    ("POST", "/api/v1/queues/diagnostics/jobs", {"name": "noop", "opts": {"priority": 11}}, 400,
     "opts.priority: must be a whole number from 0 to 10"),
    ("POST", "/api/v1/queues/diagnostics/jobs", {"name": "noop", "opts": {"priority": "x"}}, 400,
     "opts.priority: must be a whole number from 0 to 10"),
    ("POST", "/api/v1/queues/diagnostics/jobs", {"name": "noop", "opts": {"delay": -5}}, 400,
     "opts.delay: must be 0 or more"),
    ("POST", "/api/v1/queues/diagnostics/jobs", {"name": "noop", "opts": {"color": 1}}, 400,
     "opts.color: unknown option"),
    ("POST", "/api/v1/queues/diagnostics/jobs", {"name": "nope"}, 400, "name: queue diagnostics"),
    ("POST", "/api/v1/queues/diagnostics/jobs", {"data": {}}, 400, "name: must be"),
    ("POST", "/api/v1/queues/diagnostics/jobs", [1, 2], 400, "body: must be a JSON object"),
    ("POST", "/api/v1/queues/diagnostics/jobs/bulk",
     {"jobs": [{"name": "noop"}, {"name": "noop", "opts": {"attempts": 0}}]}, 400,
     "jobs[1].opts.attempts: must be a whole number"),
    ("POST", "/api/v1/queues/diagnostics/jobs/bulk", {"jobs": []}, 400, "jobs: must be"),
    ("GET", "/api/v1/queues/diagnostics/jobs/999999", None, 404, "job: no job"),
    ("GET", "/api/v1/queues/diagnostics/jobs?state=sleeping", None, 400, "state: must be one of"),
    ("GET", "/api/v1/queues/diagnostics/jobs?limit=lots", None, 400, "limit: must be"),
    ("GET", "/api/v1/nothing-here", None, 404, ""),
    ("DELETE", "/api/v1/queues/diagnostics/stats", None, 405, ""),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), BAD_REQUESTS)
def test_bad_input_gets_the_json_envelope(in_process, method, path, body, status, message):
    """The app in-process (the checks are the same in a served one: the other tests here)."""
    got, reply = in_process.request(method, path, body)
    assert got == status, reply
    assert reply["success"] is False
    assert set(reply["error"]) in ({"code", "message"}, {"code", "message", "field"})
    assert reply["error"]["message"].startswith(message), reply
    if "field" in reply["error"]:
        assert reply["error"]["message"].startswith(reply["error"]["field"] + ": ")


def test_malformed_json_is_400(server):
    status, reply = server.request("POST", "/api/v1/queues/diagnostics/jobs",
                                   raw=b'{"name": "noop",')
    assert status == 400
    assert reply == {"success": False, "error": {
        "code": "invalid_input", "message": "body: malformed JSON", "field": "body"}}


def test_a_rejected_bulk_writes_nothing(server):
    before = server.request("GET", "/api/v1/queues/diagnostics/stats")[1]["data"]["total"]
    server.request("POST", "/api/v1/queues/diagnostics/jobs/bulk",
                   {"jobs": [{"name": "noop"}] * 5 + [{"name": "noop", "opts": {"priority": 99}}]})
    after = server.request("GET", "/api/v1/queues/diagnostics/stats")[1]["data"]["total"]
    assert after == before


@pytest.mark.parametrize("token", [None, "wrong-token", ""])
def test_missing_or_wrong_token_is_401(server, token):
    status, reply = server.request("POST", "/api/v1/queues/diagnostics/jobs", {"name": "noop"},
                                   token=token)
    assert status == 401
    assert reply["success"] is False and reply["error"]["code"] == "unauthorized"
    assert reply["error"]["message"].startswith("authorization:")


def test_token_file_is_private(server):
    assert (server.data_dir / "admin-token").stat().st_mode & 0o777 == 0o600
    assert server.token not in server.output(), "the token must never be logged"


@pytest.mark.parametrize(("path", "status"), [
    ("/api/v1/queues/diagnostics/jobs/%C2%B2", 404),
    ("/api/v1/queues/diagnostics/jobs/99999999999999999999999", 404),
    ("/api/v1/queues/diagnostics/jobs?before=99999999999999999999999", 400),
    ("/api/v1/queues/diagnostics/jobs?limit=%C2%B2", 400),
    ("/api/v1/queues/diagnostics/jobs?state=failed&limit=0", 400),
])
def test_odd_paths_and_queries_are_answered_not_crashed(server, path, status):
    got, reply = server.request("GET", path)
    assert got == status, reply
    assert reply["success"] is False


@pytest.mark.parametrize("opts", [{"runAt": 1e300}, {"delay": 1e17}, {"timeout": -1},
                                  {"backoff": {"type": "fixed", "delay": "soon"}}])
def test_impossible_times_are_refused_before_anything_is_written(server, opts):
    before = server.request("GET", "/api/v1/queues/diagnostics/stats")[1]["data"]["total"]
    status, reply = server.request("POST", "/api/v1/queues/diagnostics/jobs",
                                   {"name": "noop", "opts": opts})
    assert status == 400, reply
    assert reply["error"]["message"].startswith("opts.")
    assert server.request("GET", "/api/v1/queues/diagnostics/stats")[1]["data"]["total"] == before


def test_deeply_nested_json_is_400(server):
    status, reply = server.request("POST", "/api/v1/queues/diagnostics/jobs",
                                   raw=b"[" * 100000 + b"]" * 100000)
    assert status == 400 and reply["error"]["message"].startswith("body: malformed JSON")


def test_run_at_in_milliseconds(server):
    import time

    when = int((time.time() + 3600) * 1000)
    status, reply = server.request("POST", "/api/v1/queues/diagnostics/jobs",
                                   {"name": "noop", "opts": {"runAt": when}})
    assert status == 201 and reply["data"]["state"] == "delayed"
    assert abs(reply["data"]["runAt"] - when) <= 1


def test_one_vocabulary_key_cursor_and_limits(server):
    """`opts.key` is another name for the deduplication key `opts.jobId`; every list pages
    with `cursor` (the job list's older `before` still works); a limit outside 1-1000 is
    refused naming `limit`, not quietly clamped."""
    base = "/api/v1/queues/diagnostics/jobs"
    first = server.request("POST", base, {"name": "noop", "opts": {"delay": 60000,
                                                                   "key": "vocab"}})[1]["data"]
    again = server.request("POST", base, {"name": "noop", "opts": {"delay": 60000,
                                                                   "jobId": "vocab"}})[1]["data"]
    assert again["id"] == first["id"] and first["jobId"] == "vocab"
    bad = server.request("POST", base, {"name": "noop", "opts": {"key": ""}})
    assert bad[0] == 400 and bad[1]["error"]["field"] == "opts.jobId"
    for _ in range(2):
        server.request("POST", base, {"name": "noop", "opts": {"delay": 60000}})
    page = server.request("GET", f"{base}?state=delayed&limit=1")[1]["data"]
    cursor = page["nextCursor"]
    for name in ("cursor", "before"):
        following = server.request("GET", f"{base}?state=delayed&limit=1&{name}={cursor}")
        assert following[0] == 200
        assert int(following[1]["data"]["jobs"][0]["id"]) < int(cursor)
    for path in (f"{base}?limit=1001", "/api/v1/admin/audit?limit=5000",
                 "/api/v1/emails?limit=0"):
        status, body = server.request("GET", path)
        assert (status, body["error"]["field"]) == (400, "limit"), path
        assert body["error"]["message"] == "limit: must be a whole number from 1 to 1000"
