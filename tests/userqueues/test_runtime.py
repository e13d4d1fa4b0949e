"""Queues defined at run time: records every instance applies within 2 s, without a
restart; bad definitions refused naming the field; delete refused while jobs wait."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time

import pytest

from synthbox.actors import CLI
from synthbox.app import build_engine, definitions_sync
from synthbox.config import SettingsError, load_settings
from synthbox.errors import Conflict, InputError
from synthbox.userqueues import manage
from tests.conftest import free_port, run_cli, wait_for


def running(engine_builder, data_dir, **backend):
    engine = engine_builder(backend, workers=False, data_dir=data_dir)
    engine.add_periodic(definitions_sync(engine))
    engine.start_workers()
    return engine


def test_a_queue_made_on_one_instance_runs_on_another_within_2_s(engine_builder, tmp_path):
    (tmp_path / "funcs.py").write_text(textwrap.dedent("""
        import os
        def double(data):
            return {"value": data["value"] * 2, "pid": os.getpid()}
        def triple(data):
            return {"value": data["value"] * 3}
    """))
    first = running(engine_builder, tmp_path / "data")
    second = running(engine_builder, tmp_path / "data")
    definition = {"handler": "python", "function": "funcs:double",
                  "python_path": str(tmp_path), "concurrency": 2}
    manage.create(first, "maths", definition, CLI)
    started = time.monotonic()
    wait_for(lambda: "maths" in second.queues, 2.0, message="the other instance has it")
    assert time.monotonic() - started < 2.0
    job = second.service("maths").add("go", {"value": 21})
    wait_for(lambda: second.service("maths").get_job(job["id"])["state"] == "completed", 10)
    assert second.service("maths").get_job(job["id"])["returnvalue"]["value"] == 42

    manage.edit(first, "maths", {"function": "funcs:triple"}, CLI, merge=True)
    wait_for(lambda: second.queues["maths"].service.spec.concurrency == 2
             and "triple" in repr(second.queues["maths"].service.spec.handlers["*"].reference),
             2.0, message="the change reached the running instance")
    job = second.service("maths").add("go", {"value": 2})
    wait_for(lambda: second.service("maths").get_job(job["id"])["state"] == "completed", 10)
    assert second.service("maths").get_job(job["id"])["returnvalue"] == {"value": 6}

    manage.delete(first, "maths", CLI)
    wait_for(lambda: "maths" not in second.queues, 2.0, message="gone everywhere")
    audit = [row[0] for row in first.store.execute(
        "SELECT action FROM audit_entry WHERE target='queue:maths' ORDER BY id").fetchall()]
    assert audit == ["queue.create", "queue.edit", "queue.delete"]


def test_delete_refuses_while_jobs_wait_unless_drain_or_discard(engine_builder, tmp_path):
    engine = engine_builder({}, workers=False, data_dir=tmp_path / "data")
    manage.create(engine, "later", {"handler": "remote"}, CLI)
    engine.service("later").add_bulk([{"name": "x"}] * 3)
    with pytest.raises(Conflict, match="has 3 job"):
        manage.delete(engine, "later", CLI)
    with pytest.raises(Conflict, match="did not finish within 0.3 s; ask again"):
        manage.delete(engine, "later", CLI, drain=True, wait=0.3)
    assert manage.delete(engine, "later", CLI, discard=True)["discarded"] == 3
    assert "later" not in engine.queues


def test_drain_and_discard_together_wait_then_discard_what_is_left(engine_builder, tmp_path):
    """Both flags are a valid request (the OpenAPI document allows them together): the
    workers get their time, then what still waits goes with the queue."""
    engine = engine_builder({}, workers=False, data_dir=tmp_path / "data")
    manage.create(engine, "later", {"handler": "remote", "attempts": 3.0}, CLI)
    assert engine.service("later").spec.attempts == 3  # 3.0 is a whole number in JSON
    engine.service("later").add_bulk([{"name": "x"}] * 2)
    done = manage.delete(engine, "later", CLI, drain=True, discard=True, wait=0.3)
    assert done == {"name": "later", "deleted": True, "discarded": 2}
    assert "later" not in engine.queues


def test_bad_definitions_name_the_field(engine_builder, tmp_path):
    engine = engine_builder({}, workers=False)
    cases = [
        ({"handler": "ftp"}, 'queues.thumbnails.handler: unknown kind "ftp"; one of http, '
                             'command, python, remote'),
        ({"handler": "http"}, "queues.thumbnails.url: required: an http:// or https:// URL"),
        ({"handler": "http", "url": "ftp://x"}, "queues.thumbnails.url: required: an http://"),
        ({"handler": "command"}, "queues.thumbnails.command: required"),
        ({"handler": "python", "function": "nocolon"}, "queues.thumbnails.function: required"),
        ({"handler": "remote", "concurrency": 0}, "queues.thumbnails.concurrency: must be a "
                                                  "whole number from 1 to 256"),
        ({"handler": "remote", "timeout": "soon"}, "queues.thumbnails.timeout: must be a "
                                                   "duration"),
        ({"handler": "remote", "backoff": {"type": "linear"}},
         "queues.thumbnails.backoff.type: must be one of fixed, exponential"),
        ({"handler": "remote", "url": "http://x"}, "queues.thumbnails.url: unknown field"),
    ]
    for table, message in cases:
        with pytest.raises(InputError) as caught:
            manage.create(engine, "thumbnails", table, CLI)
        assert str(caught.value).startswith(message), (table, str(caught.value))
    assert "thumbnails" not in engine.queues
    with pytest.raises(Conflict, match="exists already"):
        manage.create(engine, "email", {"handler": "remote"}, CLI)


def test_a_bad_queue_in_the_settings_file_stops_the_start_naming_the_field(tmp_path):
    settings = load_settings({"data_dir": str(tmp_path / "d"), "queues": {
        "thumbnails": {"handler": "ftp"}}}, env={})
    with pytest.raises(SettingsError, match='queues.thumbnails.handler: unknown kind "ftp"; '
                                            'one of http, command, python, remote'):
        build_engine(settings)
    (tmp_path / "synthbox.toml").write_text(textwrap.dedent("""
        [queues.thumbnails]
        handler = "ftp"
    """))
    result = run_cli("serve", "--port", str(free_port()),
                     env={"SYNTHBOX_DATA_DIR": str(tmp_path / "d"),
                          "SYNTHBOX_CONFIG": str(tmp_path / "synthbox.toml")})
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        'queues.thumbnails.handler: unknown kind "ftp"; one of http, command, python, remote')


def test_the_issue_example_from_synthbox_toml(tmp_path):
    (tmp_path / "synthbox.toml").write_text(textwrap.dedent("""
        [queues.thumbnails]
        handler = "http"
        url = "http://127.0.0.1:8080/jobs/thumbnail"
        concurrency = 4
        attempts = 3
        backoff = { type = "exponential", delay = "10s" }
        timeout = "2m"
        rate_limit = { max = 50, per = "1s" }
    """))
    settings = load_settings({"data_dir": str(tmp_path / "d")}, env={},
                             config_path=str(tmp_path / "synthbox.toml"))
    engine = build_engine(settings)
    try:
        spec = engine.service("thumbnails").spec
        assert (spec.concurrency, spec.attempts, spec.backoff_type, spec.backoff_delay,
                spec.timeout, spec.rate_limit_max, spec.rate_limit_duration) == (
            4, 3, "exponential", 10.0, 120.0, 50, 1.0)
        assert manage.describe(engine, "thumbnails")["source"] == "synthbox.toml"
        with pytest.raises(Conflict, match="defined in synthbox.toml"):
            manage.edit(engine, "thumbnails", {"handler": "remote"}, CLI)
    finally:
        engine.close()


def test_command_queue_uses_the_same_python(engine_builder):
    """(A command queue made at run time: `true`, as the benchmark runs it.)"""
    engine = engine_builder({}, workers=False)
    manage.create(engine, "truth", {"handler": "command", "command": [sys.executable, "-c",
                                                                      "pass"]}, CLI)
    engine.service("truth").add("x", {})
    assert engine.drain("truth") == 1
    assert engine.service("truth").get_stats()["completed"] == 1


def test_two_served_instances_share_run_time_queues_and_keep_them_over_a_restart(
        serve_factory, tmp_path):
    """Real `synthbox serve` processes on one data directory (as cluster children are):
    a queue made through one instance's API takes jobs through the other's within 2 s,
    a change reaches it within 2 s, and a restarted instance still has the queue."""
    (tmp_path / "served_funcs.py").write_text(textwrap.dedent("""
        def double(data):
            return {"value": data["value"] * 2}
        def triple(data):
            return {"value": data["value"] * 3}
    """))
    first = serve_factory()
    second = serve_factory(data_dir=first.data_dir)
    status, made = first.request("POST", "/api/v1/queues", {
        "name": "maths", "handler": "python", "function": "served_funcs:double",
        "python_path": str(tmp_path)})
    assert status == 201, made
    started = time.monotonic()
    wait_for(lambda: second.request("GET", "/api/v1/queues/maths")[0] == 200, 2.0,
             message="the other instance knows the queue")
    assert time.monotonic() - started < 2.0

    def result_through(server, value):
        status, job = server.request("POST", "/api/v1/queues/maths/jobs",
                                     {"name": "go", "data": {"value": value}})
        assert status == 201, job
        path = f"/api/v1/queues/maths/jobs/{job['data']['id']}"
        return wait_for(lambda: server.request("GET", path)[1]["data"]["returnvalue"], 10)

    assert result_through(second, 21) == {"value": 42}
    status, _ = first.request("PUT", "/api/v1/queues/maths", {
        "handler": "python", "function": "served_funcs:triple", "python_path": str(tmp_path)})
    assert status == 200
    # the version this instance runs (its API and its workers: one sync applies both)
    wait_for(lambda: second.request("GET", "/api/v1/queues/maths")[1]["data"][
        "runningVersion"] == 2, 2.0, message="the change reached the other instance")
    wait_for(lambda: first.request("GET", "/api/v1/queues/maths")[1]["data"][
        "runningVersion"] == 2, 2.0, message="and the first one")
    assert result_through(second, 2) == {"value": 6}
    assert second.stop() == 0
    restarted = serve_factory(data_dir=first.data_dir)
    assert restarted.request("GET", "/api/v1/queues/maths")[1]["data"]["version"] == 2
    assert first.request("DELETE", "/api/v1/queues/maths")[0] == 200
    wait_for(lambda: restarted.request("GET", "/api/v1/queues/maths")[0] == 404, 2.0,
             message="gone everywhere")


def test_a_change_lets_running_jobs_finish_and_new_ones_use_it(engine_builder, tmp_path):
    (tmp_path / "slow_funcs.py").write_text(textwrap.dedent("""
        import time
        def slow(data):
            time.sleep(1.5)
            return {"version": 1}
        def fast(data):
            return {"version": 2}
    """))
    engine = running(engine_builder, tmp_path / "data")
    manage.create(engine, "work", {"handler": "python", "function": "slow_funcs:slow",
                                   "python_path": str(tmp_path)}, CLI)
    service = engine.service("work")
    first = service.add("go", {})
    wait_for(lambda: service.get_job(first["id"])["state"] == "active", 5)
    manage.edit(engine, "work", {"function": "slow_funcs:fast", "concurrency": 2}, CLI,
                merge=True)
    second = service.add("go", {})
    wait_for(lambda: service.get_job(second["id"])["state"] == "completed", 5)
    assert service.get_job(second["id"])["returnvalue"] == {"version": 2}
    assert service.get_job(first["id"])["state"] == "active"  # still running, not handed back
    wait_for(lambda: service.get_job(first["id"])["state"] == "completed", 5)
    done = service.get_job(first["id"])
    assert done["returnvalue"] == {"version": 1} and done["stalledCount"] == 0


def test_the_python_api_and_the_cli_add_to_a_user_queue(tmp_path):
    """`synthbox.services` over the configured settings (a process of its own, as a
    user's script is) and `synthbox jobs add` both see a queue made at run time."""
    import subprocess

    data = tmp_path / "data"
    assert run_cli("queues", "create", "scripted", "--handler", "remote",
                   env={"SYNTHBOX_DATA_DIR": str(data)}).returncode == 0
    script = ("from synthbox.services import get_queue_service\n"
              "print(get_queue_service('scripted').add('hello', {'n': 1})['id'])\n")
    env = {**{k: v for k, v in os.environ.items()
              if not k.startswith("SYNTHBOX_")}, "SYNTHBOX_DATA_DIR": str(data)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    added = run_cli("jobs", "add", "scripted", "hello", "--data", '{"n": 2}',
                    env={"SYNTHBOX_DATA_DIR": str(data)})
    assert added.returncode == 0, added.stderr
    stats = run_cli("queues", "stats", "scripted", "--json",
                    env={"SYNTHBOX_DATA_DIR": str(data)})
    assert json.loads(stats.stdout)["scripted"]["waiting"] == 2


def test_an_instance_without_workers_sees_new_queues_too(serve_factory):
    workers = serve_factory()
    web_only = serve_factory({"SYNTHBOX_WORKERS": "false"}, data_dir=workers.data_dir)
    assert workers.request("POST", "/api/v1/queues",
                           {"name": "later", "handler": "remote"})[0] == 201
    wait_for(lambda: web_only.request("GET", "/api/v1/queues/later")[0] == 200, 2.5,
             message="the web-only instance knows the queue")
    status, job = web_only.request("POST", "/api/v1/queues/later/jobs", {"name": "x"})
    assert status == 201 and job["data"]["queue"] == "later"
