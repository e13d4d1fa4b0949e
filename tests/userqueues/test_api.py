"""POST/PUT/DELETE /api/v1/queues[/NAME] through the app, and adding jobs to a user queue
through the API's single and bulk doors."""

from __future__ import annotations


def test_define_use_change_and_delete_a_queue_over_the_api(in_process):
    status, answer = in_process.request("POST", "/api/v1/queues", {
        "name": "thumbnails", "handler": "ftp"})
    assert status == 400
    assert answer["error"]["field"] == "queues.thumbnails.handler"
    assert answer["error"]["message"] == ('queues.thumbnails.handler: unknown kind "ftp"; '
                                          'one of http, command, python, remote')

    status, made = in_process.request("POST", "/api/v1/queues", {
        "name": "thumbnails", "handler": "http", "url": "http://127.0.0.1:9/jobs",
        "allow_loopback": True, "headers": {"Authorization": "Bearer abc"},
        "concurrency": 4, "timeout": "2m"})
    assert status == 201, made
    made = made["data"]
    assert made["source"] == "api" and made["readOnly"] is False
    assert len(made["signingSecret"]) > 30
    assert made["definition"]["headers"] == {"Authorization": "********"}

    status, shown = in_process.request("GET", "/api/v1/queues/thumbnails")
    shown = shown["data"]
    assert status == 200 and "signingSecret" not in shown
    assert shown["definition"]["concurrency"] == 4

    status, job = in_process.request("POST", "/api/v1/queues/thumbnails/jobs",
                                     {"name": "resize", "data": {"image": "a.png"}})
    assert status == 201 and job["data"]["queue"] == "thumbnails"
    status, jobs = in_process.request("POST", "/api/v1/queues/thumbnails/jobs/bulk", {
        "jobs": [{"name": "resize", "data": {"n": n}} for n in range(3)]})
    assert status == 201 and len(jobs["data"]) == 3

    # the masked header sent back keeps its value
    status, changed = in_process.request("PUT", "/api/v1/queues/thumbnails", {
        **shown["definition"], "concurrency": 2})
    assert status == 200 and changed["data"]["version"] == 2
    spec = in_process.engine.service("thumbnails").spec
    assert spec.concurrency == 2
    assert spec.handlers["*"].headers == {"Authorization": "Bearer abc"}

    status, refused = in_process.request("PUT", "/api/v1/queues/thumbnails", {
        "handler": "http", "url": "http://x", "attempts": 0})
    assert status == 400 and refused["error"]["field"] == "queues.thumbnails.attempts"

    status, refused = in_process.request("DELETE", "/api/v1/queues/thumbnails")
    assert status == 409 and "has 4 job(s) waiting" in refused["error"]["message"]
    status, deleted = in_process.request("DELETE", "/api/v1/queues/thumbnails?discard=true")
    assert status == 200 and deleted["data"]["discarded"] == 4
    assert in_process.request("GET", "/api/v1/queues/thumbnails")[0] == 404

    status, log = in_process.request("GET", "/api/v1/admin/audit")
    actions = [entry["action"] for entry in log["data"]["entries"]
               if entry["target"] == "queue:thumbnails"]
    assert actions == ["queue.delete", "queue.edit", "queue.create"]


def test_built_in_and_settings_file_queues_are_read_only(in_process):
    status, answer = in_process.request("PUT", "/api/v1/queues/email", {"handler": "remote"})
    assert status == 409 and "built in" in answer["error"]["message"]
    status, answer = in_process.request("POST", "/api/v1/queues",
                                        {"name": "email", "handler": "remote"})
    assert status == 409
    status, answer = in_process.request("GET", "/api/v1/queues/email")
    assert status == 200 and answer["data"]["source"] == "built-in"
    assert answer["data"]["readOnly"] is True
