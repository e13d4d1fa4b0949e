"""Agents of every kind: a batch over http, command and python agents, timeouts, outbound
addresses, the retry job type, and what a review found."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from synthbox.jobs.errors import JobTimeout
from synthbox.orchestration import projects
from synthbox.orchestration.agents.base import AgentProcesses
from tests.conftest import remember_secret, wait_for
from tests.orchestration.conftest import (
    FAST,
    _alive,
    _engine,
    _finished_job,
    call,
    created,
    wait_run,
)
from tests.receiver import Receiver


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


def test_python_agents_run_in_a_child_process(agent_package):
    context = {"project": {"slug": "kid"}}
    result = subprocess.run([sys.executable, "-m", "synthbox", "run-agent", "review"],
                            input=json.dumps(context), capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(agent_package)}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tasks"] == ["Review kid"]
    assert "noise on stdout" in result.stderr


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
