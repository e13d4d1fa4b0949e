"""The orchestration API, CLI and Python service: bad input, roles, secrets masked."""

from __future__ import annotations

import json

import pytest

from synthbox.orchestration import projects
from tests.conftest import Records, Serve, remember_secret, run_cli, wait_for
from tests.orchestration.conftest import (
    _engine,
    _finished_job,
    call,
    created,
)


@pytest.mark.parametrize("method, path, body, status, field", [
    ("POST", "/projects/nope/orchestrations", {}, 404, None),
    ("POST", "/projects/base/orchestrations", {"agentSlug": "ghost"}, 404, "agentSlug"),
    ("POST", "/projects/base/orchestrations", {"jobType": "single_agent"}, 400, "agentSlug"),
    ("POST", "/projects/base/orchestrations", {"jobType": "everything"}, 400, "jobType"),
    ("POST", "/projects/base/orchestrations", {"jobType": "retry", "context": {"jobId": "99"}},
     404, "context.jobId"),
    ("POST", "/projects/base/orchestrations", {"jobType": "retry", "context": {"jobId": "x"}},
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
    ("PATCH", "/projects/base/agents/only", {"kind": "http"}, 409, "kind"),
    ("PATCH", "/projects/base/agents/only", {"config": {"url": "https://example.com/"}}, 409,
     "config"),
    ("PATCH", "/projects/base/agents/only", {"config": {"command": []}}, 400, "config.command"),
    ("POST", "/projects/base/hooks", {"slug": "h", "agentSlug": "ghost",
                                      "jobType": "single_agent"}, 404, "agentSlug"),
    ("GET", "/projects/base/runs/12345", None, 404, None),
    ("PATCH", "/projects/base/schedules/77", {"cron": "* * * * *"}, 404, None),
])
def test_bad_input_names_the_field(api, method, path, body, status, field):
    code, reply = call(api, method, path, body)
    assert code == status, reply
    assert reply["success"] is False
    assert reply["error"].get("field") == field, reply


def test_what_the_records_decide_is_a_404_or_a_409_naming_the_field(api):
    """A request the OpenAPI document calls valid is refused only by what it names that
    the records lack (404) or that clashes with them (409), never by a 400."""
    created(api, "/projects", {"slug": "bare"})  # no repository
    created(api, "/projects/base/hooks", {"slug": "twice"})
    for path, body, status, field in [
            ("/projects/bare/orchestrations", {"jobType": "github_analysis"}, 409, "jobType"),
            ("/projects/bare/schedules", {"cron": "0 * * * *", "jobType": "github_analysis"},
             409, "jobType"),
            ("/projects/base/hooks", {"slug": "twice"}, 409, "slug"),
            ("/emails", {"to": "a@example.com", "template": "ghost"}, 404, "template")]:
        code, reply = call(api, "POST", path, body)
        assert (code, reply["error"].get("field")) == (status, field), reply
    schedule = created(api, "/projects/base/schedules", {"cron": "0 * * * *",
                                                         "jobType": "single_agent",
                                                         "agentSlug": "only"})
    status, reply = call(api, "PATCH", f"/projects/base/schedules/{schedule['id']}",
                         {"jobType": "batch"})
    assert status == 200 and reply["data"]["agentSlug"] is None, "batch drops the agent"


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
    # the stored value is real
    [(config,)] = Records(api.data_dir).query("SELECT config FROM agent WHERE slug='hooker'")
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


def test_urls_with_credentials_are_masked_and_kept(api):
    remember_secret("ghp_repotoken123")
    created(api, "/projects", {"slug": "private", "repository":
                               "https://bot:ghp_repotoken123@git.example.com/o/r.git"})
    status, shown = call(api, "GET", "/projects/private")
    assert shown["data"]["repository"] == "https://********@git.example.com/o/r.git"
    status, _ = call(api, "PATCH", "/projects/private", {
        "name": "Private", "repository": shown["data"]["repository"]})
    assert status == 200
    [(stored,)] = Records(api.data_dir).query(
        "SELECT repository FROM project WHERE slug='private'")
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


def test_cli_bad_agent_options_exit_2(tmp_path):
    env = {"SYNTHBOX_DATA_DIR": str(tmp_path / "data")}
    assert run_cli("projects", "create", "cli-bad", env=env).returncode == 0
    for args, message in ((["--kind", "command", "--command", '"unclosed'], "--command:"),
                          (["--kind", "http", "--agent-config", "[1]"], "--agent-config:")):
        result = run_cli("agents", "add", "cli-bad", "x", *args, env=env)
        assert result.returncode == 2 and result.stderr.startswith(f"Error: {message}"), \
            result.stderr


@pytest.mark.parametrize("repository", ["https://host[name/r.git", "~nobody-here/r", "a\u0000b"])
def test_a_repository_that_is_no_url_or_path_is_a_400(in_process, repository):
    """Found by schemathesis: a [ in a URL made the repository-root check a 500."""
    status, reply = in_process.request("POST", "/api/v1/projects",
                                       {"slug": "odd", "repository": repository})
    assert (status, reply["error"]["field"]) == (400, "repository"), reply
