"""The orchestration queue: projects, agents of every kind, job types and triggers, against
a real HTTP server, real child processes, real git repositories and real serve processes."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from synthbox.jobs.errors import JobTimeout
from synthbox.orchestration import projects, triggers
from synthbox.orchestration.agents.base import AgentProcesses
from synthbox.services import get_orchestration_queue_service
from tests.conftest import Serve, remember_secret, run_cli, wait_for
from tests.receiver import Receiver

# The seed's limits, loosened so tests do not wait minutes: no rate limit, short backoff.
FAST = {"orchestration": {"rate_limit_max": 0, "backoff_delay": 0.2}}


@pytest.fixture
def agent_package(tmp_path):
    """An installed package that registers a `synthbox.agents` entry point."""
    root = tmp_path / "agentpkg"
    root.mkdir()
    (root / "reviewagents.py").write_text(
        "def review(context):\n"
        "    print('noise on stdout is kept out of the report')\n"
        "    return {'tasks': ['Review ' + context['project']['slug']],\n"
        "            'suggestions': [{'title': 'Pin dependencies', 'severity': 'low'}]}\n")
    info = root / "reviewagents-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: reviewagents\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[synthbox.agents]\nreview = reviewagents:review\n")
    return root


def call(serve, method, path, body=None, token="default"):
    return serve.request(method, f"/api/v1{path}", body, token=token)


def created(serve, path, body):
    status, reply = call(serve, "POST", path, body)
    assert status == 201, reply
    return reply["data"]


def wait_run(serve, project, job_id, states=("succeeded", "failed"), timeout=60):
    def finished():
        status, reply = call(serve, "GET", f"/projects/{project}/runs/{job_id}")
        assert status == 200, reply
        return reply["data"] if reply["data"]["state"] in states else None

    return wait_for(finished, timeout, interval=0.1, message=f"run {job_id}")


# -- a batch over three kinds of agent, through the API of a real serve ------------------------

def test_a_batch_over_http_command_and_python_agents(serve_factory, agent_package):
    http_agent = Receiver({"tasks": ["Fix the login page"],
                              "suggestions": ["Cache the dashboard", "Add an index"]})
    remember_secret("smtp-password-9")
    serve = serve_factory({"SYNTHBOX_AGENT_HTTP_ALLOW": "127.0.0.1",
                           "SYNTHBOX_SMTP_URL": "smtp://mailer:smtp-password-9@127.0.0.1:1",
                           "SYNTHBOX_QUEUES": json.dumps(FAST),
                           "PYTHONPATH": str(agent_package)})
    try:
        created(serve, "/projects", {"slug": "shop", "name": "Shop"})
        created(serve, "/projects/shop/agents",
                {"slug": "web", "kind": "http", "config": {"url": http_agent.url}})
        created(serve, "/projects/shop/agents", {
            "slug": "lint", "kind": "command", "config": {
                "command": ["sh", "-c", 'read -r ctx; echo "{\\"tasks\\": '
                            '[\\"[$SYNTHBOX_SMTP_URL]$AGENT_COLOUR\\"]}"'],
                "env": {"AGENT_COLOUR": "blue"}}})
        created(serve, "/projects/shop/agents",
                {"slug": "review", "kind": "python", "config": {"entryPoint": "review"}})
        run = created(serve, "/projects/shop/orchestrations", {"context": {"ticket": 42}})
        assert run["triggeredBy"] == "api" and run["jobType"] == "batch"

        done = wait_run(serve, "shop", run["jobId"])
        assert done["state"] == "succeeded", done
        result = done["result"]
        assert set(result) == {"success", "jobId", "agentsExecuted", "agentsSucceeded",
                               "agentsFailed", "tasksCreated", "suggestionsCreated", "error",
                               "durationMs"}
        assert (result["success"], result["jobId"], result["agentsExecuted"],
                result["agentsSucceeded"], result["agentsFailed"], result["tasksCreated"],
                result["suggestionsCreated"]) == (True, run["jobId"], 3, 3, 0, 3, 3)
        assert {a["agentSlug"]: a["status"] for a in done["agentRuns"]} == {
            "web": "succeeded", "lint": "succeeded", "review": "succeeded"}

        _, tasks = call(serve, "GET", "/projects/shop/tasks")
        titles = {t["agentSlug"]: t["title"] for t in tasks["data"]["tasks"]}
        # the command agent got its own environment, and none of SynthBox's settings
        assert titles == {"web": "Fix the login page", "lint": "[]blue",
                          "review": "Review shop"}
        _, suggestions = call(serve, "GET", "/projects/shop/suggestions")
        assert sorted(s["title"] for s in suggestions["data"]["suggestions"]) == [
            "Add an index", "Cache the dashboard", "Pin dependencies"]
        [pinned] = [s for s in suggestions["data"]["suggestions"] if s["agentSlug"] == "review"]
        assert pinned["detail"] == {"severity": "low"}

        [sent] = http_agent.received
        assert sent["context"] == {"ticket": 42} and sent["project"]["slug"] == "shop"
        assert sent["triggeredBy"] == "api" and sent["jobId"] == run["jobId"]

        status, job = call(serve, "GET", f"/admin/jobs/{run['jobId']}")
        assert status == 200 and job["data"]["queue"] == "orchestration"
        assert job["data"]["returnvalue"] == result
        assert job["data"]["data"] == {"projectId": "1", "triggeredBy": "api",
                                       "userId": "token:bootstrap", "jobType": "batch",
                                       "agentSlug": None, "context": {"ticket": 42},
                                       "priority": 0}
        # the seed's admin endpoint for this queue
        status, seed = call(serve, "GET", "/admin/orchestration/queue")
        assert status == 200 and seed["success"] is True
        assert seed["data"]["stats"]["completed"] == 1 and seed["data"]["failedJobs"] == []
        assert set(seed["data"]["stats"]) == {"waiting", "active", "completed", "failed",
                                              "delayed", "total"}
    finally:
        http_agent.stop()
        serve.stop()


# -- limits: the job timeout kills the agent's processes ---------------------------------------

def _engine(engine_builder, queues=None, **settings):
    engine = engine_builder(settings, {"orchestration": {**FAST["orchestration"],
                                                         **(queues or {})}})
    return engine, get_orchestration_queue_service(engine)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone for our purposes
        return stat.read().split(")")[-1].split()[0] != "Z"


def _finished_job(engine, job_id, timeout=30):
    return wait_for(lambda: (lambda j: j if j["state"] in ("completed", "failed") else None)(
        engine.find_job(int(job_id))), timeout, message=f"job {job_id}")


def test_a_job_past_its_timeout_fails_and_its_processes_are_gone(engine_builder, tmp_path):
    engine, service = _engine(engine_builder, {"timeout": 2, "concurrency": 1, "attempts": 1})
    pid_file = tmp_path / "pids"
    projects.create_project({"slug": "slow"})
    projects.create_agent("slow", {"slug": "sleepy", "kind": "command", "config": {
        "command": ["sh", "-c", f"sleep 120 & echo $$ $! > {pid_file}; wait"]}})
    projects.create_agent("slow", {"slug": "quick", "kind": "command", "enabled": False,
                                   "config": {"command": ["true"]}})
    stuck = service.trigger("slow", {"agentSlug": "sleepy"}, "manual")
    after = service.trigger("slow", {"agentSlug": "quick"}, "manual")
    pids = wait_for(lambda: pid_file.exists() and pid_file.read_text().split(), 10)
    assert all(_alive(int(pid)) for pid in pids)

    job = _finished_job(engine, stuck["jobId"])
    assert job["state"] == "failed" and job["failedReason"] == "timed out after 2 s"
    wait_for(lambda: not any(_alive(int(pid)) for pid in pids), 5,
             message="the shell and its background sleep are killed")
    run = service.get_run("slow", stuck["jobId"])
    assert run["state"] == "failed" and "timed out" in run["error"]
    # the worker slot is free again: the next job runs
    assert _finished_job(engine, after["jobId"])["state"] == "completed"


def test_stopping_serve_ends_running_agents_and_hands_their_job_back(serve_factory, tmp_path):
    pid_file = tmp_path / "pids"
    serve = serve_factory({"SYNTHBOX_QUEUES": json.dumps(FAST),
                           "SYNTHBOX_SHUTDOWN_TIMEOUT": "1"})
    created(serve, "/projects", {"slug": "long"})
    created(serve, "/projects/long/agents", {"slug": "sleepy", "kind": "command", "config": {
        "command": ["sh", "-c", f"sleep 300 & echo $$ $! > {pid_file}; wait"]}})
    run = created(serve, "/projects/long/orchestrations", {})
    pids = wait_for(lambda: pid_file.exists() and pid_file.read_text().split(), 20)
    assert serve.stop() == 0
    assert not any(_alive(int(pid)) for pid in pids), "no agent outlives its instance"
    again = serve_factory({"SYNTHBOX_QUEUES": json.dumps(FAST), "SYNTHBOX_WORKERS": "false"},
                          data_dir=serve.data_dir)
    status, job = call(again, "GET", f"/admin/jobs/{run['jobId']}")
    assert status == 200 and job["data"]["state"] == "waiting", "handed back, not lost"
    again.stop()


def test_a_job_timeout_landing_while_an_agent_is_reaped_leaves_no_zombie():
    """The runner raises JobTimeout in the job's thread at whatever instruction it is on.
    Here it lands exactly in the wait that reaps a killed agent (a trace hook raises it
    there); the child is still reaped and the JobTimeout still reaches the job."""
    processes = AgentProcesses()
    process = processes.start(["sleep", "30"])
    raised = []

    def raise_in_first_wait(frame, event, arg):
        if event == "call" and frame.f_code.co_name == "wait" and not raised:
            raised.append(frame.f_code.co_filename)
            raise JobTimeout()

    sys.settrace(raise_in_first_wait)
    try:
        with pytest.raises(JobTimeout):
            processes.end(process)
    finally:
        sys.settrace(None)
    assert raised and raised[0] == subprocess.__file__
    assert process.returncode == -signal.SIGKILL


def test_an_agent_past_its_own_timeout_is_stopped_and_the_others_run(engine_builder):
    engine, service = _engine(engine_builder, {"attempts": 1})
    projects.create_project({"slug": "mixed"})
    projects.create_agent("mixed", {"slug": "a-slow", "kind": "command", "timeout": 0.5,
                                    "config": {"command": ["sleep", "30"]}})
    projects.create_agent("mixed", {"slug": "b-fast", "kind": "command",
                                    "config": {"command": ["echo", '{"tasks": ["done"]}']}})
    run = service.trigger("mixed", {}, "manual")
    job = _finished_job(engine, run["jobId"])
    assert job["state"] == "failed"
    assert job["failedReason"] == "1 of 2 agents failed: a-slow"
    agent_runs = {a["agentSlug"]: a for a in service.get_run("mixed", run["jobId"])["agentRuns"]}
    assert agent_runs["a-slow"]["status"] == "timed_out"
    assert agent_runs["a-slow"]["error"] == "timed out after 0.5 s"
    assert agent_runs["a-slow"]["durationMs"] < 5000
    assert agent_runs["b-fast"]["status"] == "succeeded"


# -- job types ---------------------------------------------------------------------------------

def test_retry_runs_only_the_agents_that_failed(engine_builder, tmp_path):
    engine, service = _engine(engine_builder, {"attempts": 2})
    flag = tmp_path / "fixed"
    projects.create_project({"slug": "flaky"})
    projects.create_agent("flaky", {"slug": "good", "kind": "command",
                                    "config": {"command": ["echo", '{"tasks": ["ok"]}']}})
    projects.create_agent("flaky", {"slug": "bad", "kind": "command", "config": {
        "command": ["sh", "-c", f"test -e {flag} || {{ echo broken >&2; exit 3; }}"]}})
    first = service.trigger("flaky", {}, "manual")
    job = _finished_job(engine, first["jobId"])
    assert job["state"] == "failed" and job["attemptsMade"] == 2
    runs = service.get_run("flaky", first["jobId"])
    # the job's second attempt ran only the agent that had failed
    assert [(a["agentSlug"], a["attempt"], a["status"]) for a in runs["agentRuns"]] == [
        ("bad", 1, "failed"), ("good", 1, "succeeded"), ("bad", 2, "failed")]
    assert runs["agentRuns"][0]["error"] == "exited with code 3: broken"
    assert runs["result"]["agentsFailed"] == 1 and runs["result"]["success"] is False

    flag.touch()
    again = service.trigger("flaky", {"jobType": "retry",
                                      "context": {"jobId": first["jobId"]}}, "manual")
    assert _finished_job(engine, again["jobId"])["state"] == "completed"
    retried = service.get_run("flaky", again["jobId"])
    assert [a["agentSlug"] for a in retried["agentRuns"]] == ["bad"]
    assert retried["result"]["agentsExecuted"] == 1 and retried["result"]["success"] is True


def _git(repo: Path, *args: str, author: str = "Ann <ann@example.com>") -> None:
    name, email = author[:-1].split(" <")
    env = {**os.environ, "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
           "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def test_github_analysis_finds_what_the_repository_holds(engine_builder, tmp_path):
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# Demo\n")
    (repo / "src" / "app.py").write_text("# TODO: split\n# TODO: name\nx = 1  # FIXME\n")
    (repo / "src" / "util.py").write_text("# TODO later\n")
    (repo / "data.bin").write_bytes(os.urandom(1_500_000))
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first")
    (repo / "src" / "more.py").write_text("y = 2\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "second", author="Bob <bob@example.com>")

    engine, service = _engine(engine_builder, {"attempts": 1}, repository_roots=str(tmp_path))
    projects.create_project({"slug": "demo", "repository": str(repo)})
    run = service.trigger("demo", {"jobType": "github_analysis"}, "manual")
    assert _finished_job(engine, run["jobId"])["state"] == "completed"
    found = service.get_run("demo", run["jobId"])
    by_kind = {s["detail"]["kind"]: s for s in found["suggestions"]}
    assert set(by_kind) == {"activity", "todo", "large-file", "licence", "tests", "ci"}
    assert by_kind["activity"]["detail"]["contributors"] == ["Ann", "Bob"]
    assert by_kind["activity"]["title"] == "2 commits by 2 contributors in the last 90 days"
    assert (by_kind["todo"]["detail"]["todo"], by_kind["todo"]["detail"]["fixme"]) == (3, 1)
    assert by_kind["todo"]["detail"]["files"][0] == {"path": "src/app.py", "count": 3}
    assert by_kind["large-file"]["detail"]["path"] == "data.bin"
    assert found["result"]["suggestionsCreated"] == 6

    # a second scan fetches into the clone it made, and sees the new commit
    (repo / "LICENSE").write_text("MIT\n")
    (repo / "tests").mkdir()
    (repo / "tests" / "test_app.py").write_text("def test(): pass\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "licence and tests")
    again = service.trigger("demo", {"jobType": "github_analysis"}, "manual")
    assert _finished_job(engine, again["jobId"])["state"] == "completed"
    kinds = {s["detail"]["kind"] for s in service.get_run("demo", again["jobId"])["suggestions"]}
    assert kinds == {"activity", "todo", "large-file", "ci"}


# -- outbound addresses ------------------------------------------------------------------------

@pytest.mark.parametrize("url, kind", [
    ("http://127.0.0.1:9/x", "loopback"),
    ("http://10.0.0.1/x", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://localhost:9/x", "loopback"),
    ("http://[::1]:9/x", "loopback"),
])
def test_an_http_agent_may_not_call_inside_addresses(engine_builder, url, kind):
    engine, service = _engine(engine_builder, {"attempts": 1})
    projects.create_project({"slug": "ssrf"})
    projects.create_agent("ssrf", {"slug": "probe", "kind": "http", "config": {"url": url}})
    run = service.trigger("ssrf", {}, "manual")
    assert _finished_job(engine, run["jobId"])["state"] == "failed"
    [agent_run] = service.get_run("ssrf", run["jobId"])["agentRuns"]
    assert agent_run["status"] == "failed"
    assert f"is a {kind} address" in agent_run["error"]


def test_the_allow_list_opens_an_address_and_redirects_are_checked_again(engine_builder):
    target = Receiver({"tasks": ["reached"]})
    bouncer = Receiver(redirect="http://169.254.169.254/latest/meta-data/")
    try:
        engine, service = _engine(engine_builder, {"attempts": 1},
                                  agent_http_allow="127.0.0.0/8")
        projects.create_project({"slug": "allowed"})
        projects.create_agent("allowed", {"slug": "a-ok", "kind": "http",
                                          "config": {"url": target.url}})
        projects.create_agent("allowed", {"slug": "b-bounce", "kind": "http",
                                          "config": {"url": bouncer.url}})
        run = service.trigger("allowed", {}, "manual")
        _finished_job(engine, run["jobId"])
        agent_runs = {a["agentSlug"]: a for a in
                      service.get_run("allowed", run["jobId"])["agentRuns"]}
        assert agent_runs["a-ok"]["status"] == "succeeded" and len(target.received) == 1
        assert agent_runs["b-bounce"]["status"] == "failed"
        assert "169.254.169.254 is a link-local address" in agent_runs["b-bounce"]["error"]
    finally:
        target.stop()
        bouncer.stop()


# -- cron --------------------------------------------------------------------------------------

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


# -- webhooks ----------------------------------------------------------------------------------

def deliver(serve, path, body: bytes, headers: dict[str, str]):
    request = urllib.request.Request(f"http://127.0.0.1:{serve.port}/api/v1/hooks/{path}",
                                     data=body, method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


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


# -- interfaces and bad input ------------------------------------------------------------------

@pytest.fixture(scope="module")
def api(tmp_path_factory):
    serve = Serve(tmp_path_factory.mktemp("orch-api") / "data").start()
    remember_secret(serve.token)
    created(serve, "/projects", {"slug": "base", "repository": "https://example.com/r.git"})
    created(serve, "/projects/base/agents", {"slug": "only", "kind": "command",
                                              "config": {"command": ["true"]}})
    yield serve
    serve.stop()


@pytest.mark.parametrize("method, path, body, status, field", [
    ("POST", "/projects/nope/orchestrations", {}, 404, None),
    ("POST", "/projects/base/orchestrations", {"agentSlug": "ghost"}, 400, "agentSlug"),
    ("POST", "/projects/base/orchestrations", {"jobType": "everything"}, 400, "jobType"),
    ("POST", "/projects/base/orchestrations", {"jobType": "retry", "context": {"jobId": "99"}},
     400, "context.jobId"),
    ("POST", "/projects/base/orchestrations", {"priority": 11}, 400, "priority"),
    ("POST", "/projects/base/schedules", {"cron": "every day"}, 400, "cron"),
    ("POST", "/projects/base/schedules", {"cron": "61 * * * *"}, 400, "cron"),
    ("POST", "/projects/base/schedules", {"cron": "0 * * * *", "timezone": "Mars/Base"}, 400,
     "timezone"),
    ("POST", "/projects", {"slug": "Bad Slug"}, 400, "slug"),
    ("POST", "/projects", {"slug": "123"}, 400, "slug"),
    ("POST", "/projects", {"slug": "base"}, 409, None),
    ("POST", "/projects", {"slug": "x", "repository": "--upload-pack=evil"}, 400, "repository"),
    ("POST", "/projects/base/agents", {"slug": "a", "kind": "ftp"}, 400, "kind"),
    ("POST", "/projects/base/agents", {"slug": "a", "kind": "http",
                                       "config": {"url": "file:///etc/passwd"}}, 400,
     "config.url"),
    ("POST", "/projects/base/agents", {"slug": "a", "kind": "command",
                                       "config": {"command": "rm -rf /"}}, 400,
     "config.command"),
    ("POST", "/projects/base/agents", {"slug": "a", "kind": "python",
                                       "config": {"entryPoint": "missing"}}, 400,
     "config.entryPoint"),
    ("POST", "/projects/base/agents", {"slug": "a", "kind": "command", "timeout": 0,
                                       "config": {"command": ["true"]}}, 400, "timeout"),
    ("PATCH", "/projects/base/agents/only", {"kind": "http"}, 400, "kind"),
    ("GET", "/projects/base/runs/12345", None, 404, None),
    ("PATCH", "/projects/base/schedules/77", {"cron": "* * * * *"}, 404, None),
])
def test_bad_input_names_the_field(api, method, path, body, status, field):
    code, reply = call(api, method, path, body)
    assert code == status, reply
    assert reply["success"] is False
    assert reply["error"].get("field") == field, reply


def test_roles_and_scopes(api):
    status, made = call(api, "POST", "/admin/tokens", {"name": "ci-trigger",
                                                        "scopes": ["orchestration:trigger"]})
    assert status == 201
    trigger_token = made["data"]["token"]
    remember_secret(trigger_token)
    status, run = call(api, "POST", "/projects/base/orchestrations", {}, token=trigger_token)
    assert status == 201 and run["data"]["triggeredBy"] == "api"
    status, _ = call(api, "POST", "/projects", {"slug": "sneaky"}, token=trigger_token)
    assert status == 403, "triggering does not let a token create projects"
    status, made = call(api, "POST", "/admin/tokens", {"name": "enqueue-only",
                                                        "scopes": ["jobs:write"]})
    remember_secret(made["data"]["token"])
    status, _ = call(api, "POST", "/projects/base/orchestrations", {},
                     token=made["data"]["token"])
    assert status == 403
    # orchestration jobs come from the project API, never from the generic job API
    status, _ = call(api, "POST", "/queues/orchestration/jobs",
                     {"name": "orchestrate", "data": {"projectId": "1"}})
    assert status in (400, 403, 404)


def test_agent_secrets_are_masked_and_kept(api):
    remember_secret("Bearer agent-header-secret")
    created(api, "/projects/base/agents", {
        "slug": "hooker", "kind": "http", "config": {
            "url": "https://agents.example.com/run",
            "headers": {"Authorization": "Bearer agent-header-secret"}}})
    status, changed = call(api, "PATCH", "/projects/base/agents/hooker", {"config": {
        "url": "https://agents.example.com/v2",
        "headers": {"Authorization": "********"}}})
    assert status == 200
    assert changed["data"]["config"]["headers"] == {"Authorization": "********"}
    with sqlite3.connect(api.data_dir / "synthbox.db") as db:  # the stored value is real
        [(config,)] = db.execute("SELECT config FROM agent WHERE slug='hooker'").fetchall()
    stored = json.loads(config)
    assert stored["headers"]["Authorization"] == "Bearer agent-header-secret"
    assert stored["url"] == "https://agents.example.com/v2"


def test_the_seed_python_service(engine_builder):
    engine, service = _engine(engine_builder, {"attempts": 1})
    projects.create_project({"slug": "seed"})
    projects.create_agent("seed", {"slug": "code-review", "kind": "command",
                                   "config": {"command": ["false"]}})
    engine.service("orchestration").pause()
    urgent = service.add_high_priority_job({"projectId": "seed", "triggeredBy": "manual",
                                            "userId": "user-123", "jobType": "single_agent",
                                            "agentSlug": "code-review"})
    batch = service.add_job({"projectId": "1", "triggeredBy": "cron", "jobType": "batch",
                             "priority": 5})
    assert engine.find_job(int(urgent["jobId"]))["priority"] == 10
    assert engine.find_job(int(batch["jobId"]))["data"]["triggeredBy"] == "cron"
    engine.service("orchestration").resume()
    for run in (urgent, batch):
        assert _finished_job(engine, run["jobId"])["state"] == "failed"
    assert service.get_stats()["failed"] == 2
    failed = service.get_failed_jobs()
    assert {j["failedReason"] for j in failed} == {"1 of 1 agents failed: code-review"}
    assert service.retry_all_failed() == 2
    for run in (urgent, batch):
        wait_for(lambda r=run: len(service.get_run("seed", r["jobId"])["agentRuns"]) == 2
                 and engine.find_job(int(r["jobId"]))["state"] == "failed", 20)
    assert service.cleanup(0) == 2 and service.get_stats()["total"] == 0
    with pytest.raises(Exception, match="projectId"):
        service.add_job({"triggeredBy": "api", "jobType": "batch"})


def test_the_seed_limits_are_the_defaults(engine_builder):
    engine = engine_builder({}, workers=False)
    spec = engine.registry.get("orchestration")
    assert (spec.concurrency, spec.rate_limit_max, spec.rate_limit_duration, spec.attempts,
            spec.backoff_type, spec.backoff_delay, spec.timeout, spec.keep_completed_age,
            spec.keep_failed_age) == (3, 5, 60.0, 3, "exponential", 30.0, 600.0, 86400.0,
                                      7 * 86400.0)


def test_the_cli_manages_projects_and_triggers_runs(tmp_path):
    env = {"SYNTHBOX_DATA_DIR": str(tmp_path / "data")}
    made = run_cli("projects", "create", "cli-demo", "--name", "CLI demo", env=env)
    assert made.returncode == 0, made.stderr
    added = run_cli("agents", "add", "cli-demo", "hello", "--kind", "command",
                    "--command", "echo '{\"tasks\": [\"hi\"]}'", env=env)
    assert added.returncode == 0, added.stderr
    listed = run_cli("agents", "list", "cli-demo", env=env)
    assert listed.stdout.split()[:2] == ["hello", "command"]
    queued = run_cli("orchestrate", "cli-demo", "--agent", "hello", env=env)
    assert queued.returncode == 0 and queued.stdout.strip().isdigit()

    bad = run_cli("agents", "add", "cli-demo", "web", "--kind", "http", "--url", "ftp://x",
                  env=env)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "Error: config.url: must be an http:// or https:// URL"]
    unknown = run_cli("orchestrate", "nowhere", env=env)
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "Error: project: no project 'nowhere'"
    ghost = run_cli("orchestrate", "cli-demo", "--agent", "ghost", env=env)
    assert ghost.returncode == 2 and "agentSlug" in ghost.stderr

    # a serve instance runs it; `--wait` prints the seed's result
    serve = Serve(tmp_path / "data").start()
    try:
        waited = run_cli("orchestrate", "cli-demo", "--wait", env=env)
        assert waited.returncode == 0, waited.stderr
        result = json.loads(waited.stdout.split("\n", 1)[1])
        assert result["success"] is True and result["tasksCreated"] == 1
    finally:
        serve.stop()
    shown = json.loads(run_cli("projects", "show", "cli-demo", env=env).stdout)
    assert [r["state"] for r in shown["runs"]] == ["succeeded", "succeeded"]


def test_python_agents_run_in_a_child_process(agent_package):
    context = {"project": {"slug": "kid"}}
    result = subprocess.run([sys.executable, "-m", "synthbox", "run-agent", "review"],
                            input=json.dumps(context), capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(agent_package)}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tasks"] == ["Review kid"]
    assert "noise on stdout" in result.stderr


# -- what a review found ----------------------------------------------------------------------

def test_agent_headers_do_not_follow_a_redirect_to_another_host(engine_builder):
    remember_secret("Bearer agent-only-secret")
    elsewhere = Receiver({"tasks": []})
    bouncer = Receiver(redirect=elsewhere.url, redirect_status=307)  # another port
    try:
        engine, service = _engine(engine_builder, {"attempts": 1}, agent_http_allow="127.0.0.0/8")
        projects.create_project({"slug": "bounce"})
        projects.create_agent("bounce", {"slug": "hop", "kind": "http", "config": {
            "url": bouncer.url, "headers": {"Authorization": "Bearer agent-only-secret"}}})
        run = service.trigger("bounce", {}, "manual")
        _finished_job(engine, run["jobId"])
        assert bouncer.headers[0]["Authorization"] == "Bearer agent-only-secret"
        assert "Authorization" not in elsewhere.headers[0], "credentials stay with the origin"
    finally:
        elsewhere.stop()
        bouncer.stop()


def test_a_slow_reply_and_a_flood_of_output_are_cut_off(engine_builder):
    slow = Receiver(trickle=True)
    try:
        engine, service = _engine(engine_builder, {"attempts": 1}, agent_http_allow="127.0.0.1")
        projects.create_project({"slug": "limits"})
        projects.create_agent("limits", {"slug": "a-slow", "kind": "http", "timeout": 1.5,
                                         "config": {"url": slow.url}})
        projects.create_agent("limits", {"slug": "b-flood", "kind": "command", "timeout": 60,
                                         "config": {"command": ["yes"]}})
        started = time.monotonic()
        run = service.trigger("limits", {}, "manual")
        _finished_job(engine, run["jobId"], timeout=60)
        agent_runs = {a["agentSlug"]: a for a in
                      service.get_run("limits", run["jobId"])["agentRuns"]}
        assert agent_runs["a-slow"]["status"] == "timed_out"
        assert agent_runs["a-slow"]["durationMs"] < 4000
        assert agent_runs["b-flood"]["error"] == "printed more than 4194304 bytes"
        assert time.monotonic() - started < 30
    finally:
        slow.stop()


def test_stopping_an_instance_starts_no_further_agent(engine_builder, tmp_path):
    engine, service = _engine(engine_builder, {"attempts": 1})
    projects.create_project({"slug": "pair"})
    for slug in ("a", "b"):
        projects.create_agent("pair", {"slug": slug, "kind": "command", "config": {
            "command": ["sh", "-c", f"echo $$ > {tmp_path / slug}; exec sleep 300"]}})
    service.trigger("pair", {}, "manual")
    wait_for(lambda: (tmp_path / "a").exists(), 10)
    engine.stop(timeout=1)
    time.sleep(1)
    pids = [int(p.read_text()) for p in tmp_path.iterdir() if p.name in ("a", "b")]
    assert not any(_alive(pid) for pid in pids)
    assert not (tmp_path / "b").exists(), "no agent starts once the instance stops"


def test_a_changed_repository_is_cloned_afresh(engine_builder, tmp_path):
    repos = []
    for name, files in (("first", {"README.md": "x"}), ("second", {"LICENSE": "MIT"})):
        repo = tmp_path / name
        repo.mkdir()
        _git(repo, "init", "-q", "-b", "main")
        for file, text in files.items():
            (repo / file).write_text(text)
        _git(repo, "add", ".")
        _git(repo, "commit", "-q", "-m", name)
        repos.append(repo)
    engine, service = _engine(engine_builder, {"attempts": 1}, repository_roots=str(tmp_path))
    projects.create_project({"slug": "moving", "repository": str(repos[0])})
    run = service.trigger("moving", {"jobType": "github_analysis"}, "manual")
    _finished_job(engine, run["jobId"])
    kinds = {s["detail"]["kind"] for s in service.get_run("moving", run["jobId"])["suggestions"]}
    assert "licence" in kinds and "readme" not in kinds
    projects.update_project("moving", {"repository": str(repos[1])})
    again = service.trigger("moving", {"jobType": "github_analysis"}, "manual")
    _finished_job(engine, again["jobId"])
    kinds = {s["detail"]["kind"] for s in service.get_run("moving", again["jobId"])["suggestions"]}
    assert "readme" in kinds and "licence" not in kinds
    projects.delete_project("moving", engine.data_path)
    assert not (engine.data_path / "repos").exists() or not any(
        (engine.data_path / "repos").iterdir()), "the clone goes with its project"


def test_a_local_time_that_comes_twice_fires_once():
    import datetime
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("America/New_York")
    before = datetime.datetime(2025, 11, 2, 0, 0, tzinfo=zone).timestamp()
    first = triggers.next_due("30 1 * * *", "America/New_York", before)
    following = triggers.next_due("30 1 * * *", "America/New_York", first + 1, first)
    assert following - first == 25 * 3600, "01:30 EST (the second 01:30) is skipped"


def test_urls_with_credentials_are_masked_and_kept(api):
    remember_secret("ghp_repotoken123")
    created(api, "/projects", {"slug": "private", "repository":
                               "https://bot:ghp_repotoken123@git.example.com/o/r.git"})
    status, shown = call(api, "GET", "/projects/private")
    assert shown["data"]["repository"] == "https://********@git.example.com/o/r.git"
    status, _ = call(api, "PATCH", "/projects/private", {
        "name": "Private", "repository": shown["data"]["repository"]})
    assert status == 200
    with sqlite3.connect(api.data_dir / "synthbox.db") as db:
        [(stored,)] = db.execute("SELECT repository FROM project WHERE slug='private'")
    assert stored == "https://bot:ghp_repotoken123@git.example.com/o/r.git"


@pytest.mark.parametrize("method, path, body, status, field", [
    ("GET", "/projects/%C2%B2", None, 404, None),
    ("POST", "/projects/base/schedules", {"cron": "0 0 31 2 *"}, 400, "cron"),
    ("POST", "/projects/base/agents", {"slug": "v6", "kind": "http",
                                       "config": {"url": "http://[::1/"}}, 400, "config.url"),
])
def test_odd_input_is_a_clear_error(api, method, path, body, status, field):
    code, reply = call(api, method, path, body)
    assert code == status and reply["error"].get("field") == field, reply


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


def test_cli_bad_agent_options_exit_2(tmp_path):
    env = {"SYNTHBOX_DATA_DIR": str(tmp_path / "data")}
    assert run_cli("projects", "create", "cli-bad", env=env).returncode == 0
    for args, message in ((["--kind", "command", "--command", '"unclosed'], "--command:"),
                          (["--kind", "http", "--agent-config", "[1]"], "--agent-config:")):
        result = run_cli("agents", "add", "cli-bad", "x", *args, env=env)
        assert result.returncode == 2 and result.stderr.startswith(f"Error: {message}"), \
            result.stderr
