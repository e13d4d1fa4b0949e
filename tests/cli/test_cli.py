"""The `synthbox` command, run as a user would, on the configured backends directly."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Records, run_cli, wait_for


@pytest.fixture
def env(tmp_path):
    return {"SYNTHBOX_DATA_DIR": str(tmp_path / "data")}


def test_add_show_stats_pause_resume_clean(env, serve_factory, tmp_path):
    added = run_cli("jobs", "add", "diagnostics", "noop", "--data", '{"x": 1}', "--priority", "4",
                    env=env)
    assert added.returncode == 0, added.stderr
    job_id = added.stdout.strip()
    assert job_id.isdigit()

    shown = run_cli("jobs", "show", job_id, "--json", env=env)
    job = json.loads(shown.stdout)
    assert job["data"] == {"x": 1} and job["priority"] == 4 and job["state"] == "waiting"

    stats = json.loads(run_cli("queue", "stats", "--json", env=env).stdout)
    assert stats["diagnostics"]["waiting"] == 1 and stats["diagnostics"]["total"] == 1
    assert set(stats["diagnostics"]) >= {"waiting", "active", "completed", "failed", "delayed",
                                         "total"}

    assert run_cli("queue", "pause", "diagnostics", env=env).returncode == 0
    server = serve_factory({}, tmp_path / "data")
    human = run_cli("queue", "stats", "diagnostics", env=env).stdout
    assert "diagnostics" in human and "paused" in human
    assert run_cli("queue", "resume", "diagnostics", env=env).returncode == 0
    path = f"/api/v1/queues/diagnostics/jobs/{job_id}"
    wait_for(lambda: server.request("GET", path)[1]["data"]["state"] == "completed",
             message="job run by serve after resume from the CLI")

    cleaned = run_cli("queue", "clean", "diagnostics", "--state", "completed", "--grace", "24h",
                      env=env)
    assert cleaned.stdout.strip() == "removed 0 completed job(s)"
    cleaned = run_cli("queue", "clean", "diagnostics", "--state", "completed", "--grace", "0s",
                      env=env)
    assert cleaned.stdout.strip() == "removed 1 completed job(s)"


def test_add_with_delay_and_attempts(env):
    added = run_cli("jobs", "add", "diagnostics", "noop", "--delay", "120", "--attempts", "4",
                    "--json", env=env)
    job = json.loads(added.stdout)
    assert job["state"] == "delayed" and job["attempts"] == 4
    assert 119_000 <= job["runAt"] - job["timestamp"] <= 121_000
    again = run_cli("jobs", "add", "diagnostics", "noop", "--job-id", "k1", env=env).stdout
    assert run_cli("jobs", "add", "diagnostics", "noop", "--job-id", "k1", env=env).stdout == again


def test_retry_failed(env, tmp_path, engine_builder):
    added = run_cli("jobs", "add", "diagnostics", "fail", "--attempts", "1", env=env)
    job_id = int(added.stdout)
    worker = engine_builder({}, workers=False, data_dir=tmp_path / "data")
    assert worker.drain("diagnostics") == 1  # it fails, for good: one attempt
    assert worker.service("diagnostics").get_job(job_id)["state"] == "failed"
    result = run_cli("queue", "retry-failed", "diagnostics", env=env)
    assert result.stdout.strip() == "retried 1 job(s)"
    assert json.loads(run_cli("jobs", "show", str(job_id), "--json", env=env).stdout)[
        "state"] == "waiting"


@pytest.mark.parametrize(("args", "message"), [
    (("jobs", "add", "diagnostics", "noop", "--data", "{x"), "--data: not valid JSON"),
    (("jobs", "add", "diagnostics", "noop", "--priority", "11"),
     "--priority: must be a whole number from 0 to 10"),
    (("jobs", "add", "diagnostics", "nope"), "name: queue diagnostics has no job named"),
    (("jobs", "add", "diagnostics", "noop", "--priority", "x"), "Invalid value for '--priority'"),
    (("queue", "clean", "diagnostics", "--grace", "soon"), "--grace: must be a duration"),
    (("queue", "stats", "--port", "99999"), "port (from command line): must be a port number"),
    (("jobs", "show", "abc"), "ID: must be a job id"),
    (("jobs", "show", "²"), "ID: must be a job id"),
    (("jobs", "add", "diagnostics", "noop", "--delay", "1e300"), "--delay: is too far"),
])
def test_bad_input_exits_2_with_one_line(env, args, message):
    result = run_cli(*args, env=env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("jobs", "add", "nope", "noop"), "Error: queue: no queue named 'nope'"),
    (("queue", "pause", "nope"), "Error: queue: no queue named 'nope'"),
    (("jobs", "show", "999"), "Error: job: no job '999'"),
    (("projects", "delete", "nowhere", "--yes"), "Error: project: no project 'nowhere'"),
])
def test_an_unknown_name_exits_1_with_one_line(env, args, message):
    """Every NotFound, whichever command meets it, is one line and exit code 1."""
    result = run_cli(*args, env=env)
    assert (result.returncode, result.stderr.strip()) == (1, message)


def test_bad_environment_setting_exits_2(env):
    result = run_cli("queue", "stats", env={**env, "SYNTHBOX_SHUTDOWN_TIMEOUT": "-1"})
    assert result.returncode == 2
    assert result.stderr.strip() == ("Error: shutdown_timeout (from environment "
                                     "SYNTHBOX_SHUTDOWN_TIMEOUT): must be a number greater than 0")


def test_doctor_round_trip(env):
    result = run_cli("doctor", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "round trip:     ok" in result.stdout
    assert "records:        SQLite" in result.stdout


def test_bench_smoke(env, redis_url):
    result = run_cli("bench", "--jobs", "300", "--json", env=env)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["jobs"] == 300 and figures["backend"] == "sqlite"
    for key in ("enqueue_per_s", "drain_per_s", "pickup_p50_ms", "pickup_p99_ms", "peak_rss_mb"):
        assert figures[key] > 0, key
    result = run_cli("bench", "--backend", "redis", "--jobs", "300", "--json",
                     env={**env, "REDIS_URL": redis_url})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["backend"] == "redis"


def test_serve_prints_where_things_are(serve_factory, tmp_path):
    server = serve_factory({}, tmp_path / "data")
    wait_for(lambda: "API token" in server.output(), message="start block")
    out = server.output()
    assert f"URL:        http://127.0.0.1:{server.port}/" in out
    assert f"Data:       {tmp_path / 'data'}" in out
    assert "embedded default: DATABASE_URL is not set" in out
    assert "embedded default: REDIS_URL is not set" in out
    assert server.stop() == 0


def test_what_the_cli_changes_is_in_the_audit_log_as_cli(env, tmp_path):
    """The CLI calls the same operations as the API and the UI, so its changes leave the
    same audit lines, by actor `cli`."""
    steps = [("queue", "pause", "diagnostics"), ("queue", "resume", "diagnostics"),
             ("queue", "retry-failed", "diagnostics"),
             ("queue", "clean", "diagnostics", "--state", "failed"),
             ("projects", "create", "audited"),
             ("agents", "add", "audited", "echo", "--kind", "command", "--command", "echo {}"),
             ("agents", "disable", "audited", "echo"),
             ("email", "suppress", "nobody@example.com")]
    for step in steps:
        done = run_cli(*step, env=env)
        assert done.returncode == 0, (step, done.stderr)
    lines = Records(tmp_path / "data").query(
        "SELECT actor, action, target FROM audit_entry ORDER BY id")
    assert lines == [("cli", "queue.pause", "queue:diagnostics"),
                     ("cli", "queue.resume", "queue:diagnostics"),
                     ("cli", "queue.retry-failed", "queue:diagnostics"),
                     ("cli", "queue.clean", "queue:diagnostics"),
                     ("cli", "project.create", "project:audited"),
                     ("cli", "agent.create", "agent:audited/echo"),
                     ("cli", "agent.update", "agent:audited/echo"),
                     ("cli", "email.suppress", "suppression:nobody@example.com")]


def test_command_groups_are_plural_and_the_singular_still_works(env):
    listed = [line.split()[0] for line in run_cli("--help", env=env).stdout.splitlines()
              if line.startswith("  ") and not line.strip().startswith("-")]
    assert {"queues", "jobs", "emails", "projects", "agents", "users"} <= set(listed)
    assert not {"queue", "job", "email", "project", "agent", "user"} & set(listed)
    for group in ("queues", "queue"):
        done = run_cli(group, "pause", "diagnostics", env=env)
        assert (done.returncode, done.stdout.strip()) == (0, "diagnostics paused")
    added = run_cli("job", "add", "diagnostics", "noop", "--key", "k-plural", env=env).stdout
    assert run_cli("jobs", "add", "diagnostics", "noop", "--job-id", "k-plural",
                   env=env).stdout == added
