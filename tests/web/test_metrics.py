"""/metrics, the log, and (below) alerts, against real serve processes."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT, remember_secret, run_cli, wait_for
from tests.receiver import Receiver


def scrape(serve, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{serve.port}/metrics")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by (name, sorted labels), through prometheus-client's own parser."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found, name, **labels) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def add(serve, body, queue="diagnostics"):
    status, reply = serve.request("POST", f"/api/v1/queues/{queue}/jobs", body)
    assert status == 201, reply
    return reply["data"]["id"]


def settled(serve, job_ids, state):
    wait_for(lambda: all(serve.request("GET", f"/api/v1/admin/jobs/{j}")[1]["data"]["state"]
                         == state for j in job_ids), 20, message=f"jobs {state}")


def _known_jobs(serve):
    done = [add(serve, {"name": "noop"}) for _ in range(5)]
    failed = [add(serve, {"name": "fail", "data": {"times": 5}, "opts": {"attempts": 2,
              "backoff": {"type": "fixed", "delay": 50}}}) for _ in range(2)]
    settled(serve, done, "completed")
    settled(serve, failed, "failed")
    assert serve.request("POST", "/api/v1/admin/queues/diagnostics/pause")[0] == 200
    for _ in range(3):
        add(serve, {"name": "noop"})


def test_metrics_parse_and_equal_the_stats(serve_factory):
    serve = serve_factory()
    _known_jobs(serve)
    status, text = scrape(serve)
    assert status == 200
    found = samples(text)
    stats = {q["name"]: q["stats"] for q in serve.request("GET", "/api/v1/queues")[1]["data"]}
    for queue, counts in stats.items():
        assert value(found, "queue_waiting_jobs", queue=queue) == counts["waiting"] + counts[
            "paused"]
        for state in ("waiting", "active", "completed", "failed", "delayed", "paused"):
            assert value(found, "synthbox_queue_jobs", queue=queue, state=state) == counts[
                state], (queue, state)
    assert value(found, "queue_waiting_jobs", queue="diagnostics") == 3
    assert value(found, "synthbox_queue_paused", queue="diagnostics") == 1
    assert value(found, "synthbox_jobs_completed_total", queue="diagnostics") == 5
    assert value(found, "synthbox_jobs_failed_total", queue="diagnostics") == 2
    assert value(found, "synthbox_jobs_retried_total", queue="diagnostics") == 2
    assert value(found, "synthbox_job_duration_seconds_count", queue="diagnostics") == 9
    assert value(found, "synthbox_job_wait_seconds_bucket", queue="diagnostics",
                 le="+Inf") == 9
    assert value(found, "synthbox_instances_up") == 1
    assert value(found, "synthbox_backend_up", backend="records") == 1
    assert value(found, "synthbox_queue_oldest_waiting_seconds", queue="diagnostics") >= 0
    serve.stop()


def test_two_instances_sharing_redis_report_the_same_figures(serve_factory, redis_url,
                                                             tmp_path):
    shared = tmp_path / "shared"
    env = {"REDIS_URL": redis_url}
    one = serve_factory(env, data_dir=shared)
    two = serve_factory(env, data_dir=shared)
    _known_jobs(one)
    wait_for(lambda: value(samples(scrape(one)[1]), "synthbox_instances_up") == 2, 20)
    first, second = samples(scrape(one)[1]), samples(scrape(two)[1])
    for name in ("queue_waiting_jobs", "synthbox_jobs_completed_total",
                 "synthbox_jobs_failed_total"):
        assert value(first, name, queue="diagnostics") == value(second, name,
                                                                queue="diagnostics")
    assert value(second, "synthbox_jobs_completed_total", queue="diagnostics") == 5
    assert value(second, "queue_waiting_jobs", queue="diagnostics") == 3
    one.stop()
    two.stop()


def test_metrics_through_a_proxy_need_a_token(serve_factory):
    serve = serve_factory({"SYNTHBOX_TRUST_PROXY": "true"})
    request = urllib.request.Request(f"http://127.0.0.1:{serve.port}/metrics",
                                     headers={"X-Forwarded-For": "203.0.113.9"})
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("answered a proxied scrape without a token")
    except urllib.error.HTTPError as error:
        assert error.code == 403
    assert scrape(serve)[0] == 403, "with trust_proxy, a local-looking client may be anyone"
    serve.stop()


def test_metrics_need_the_token_when_one_is_set(serve_factory):
    remember_secret("metrics-scrape-token-77")
    serve = serve_factory({"SYNTHBOX_METRICS_TOKEN": "metrics-scrape-token-77"})
    assert scrape(serve)[0] == 401
    assert scrape(serve, "wrong-token")[0] == 401
    status, text = scrape(serve, "metrics-scrape-token-77")
    assert status == 200 and "queue_waiting_jobs" in text
    serve.stop()


def test_json_logs_carry_the_events_and_no_secret(serve_factory, tmp_path):
    remember_secret("smtp-secret-pass-1")
    log_file = tmp_path / "logs" / "synthbox.log"
    log_file.parent.mkdir()
    serve = serve_factory({"SYNTHBOX_LOG_FORMAT": "json",
                           "SYNTHBOX_SMTP_URL": "smtp://mailer:smtp-secret-pass-1@127.0.0.1:1",
                           "SYNTHBOX_LOG_FILE": str(log_file),
                           "SYNTHBOX_LOG_FILE_MAX_BYTES": "4000"})
    failing = add(serve, {"name": "fail", "data": {"message": "the disk is on fire"},
                          "opts": {"attempts": 1, "priority": 7}})
    done = [add(serve, {"name": "noop"}) for _ in range(30)]
    settled(serve, [failing], "failed")
    settled(serve, done, "completed")
    serve.stop()
    lines = [json.loads(line) for line in serve.output().splitlines() if line.strip()]
    events = {line["event"] for line in lines}
    assert {"start", "queue initialized", "job completed", "job failed", "stop"} <= events
    [failed] = [line for line in lines if line["event"] == "job failed"]
    assert failed["error"] == "the disk is on fire" and failed["queue"] == "diagnostics"
    assert (failed["jobId"], failed["attempt"], failed["priority"]) == (failing, 1, 7)
    assert all(line["level"] and line["time"] for line in lines)
    output = serve.output()
    assert "smtp-secret-pass-1" not in output and serve.token not in output
    rotated = sorted(p.name for p in log_file.parent.iterdir())
    assert rotated[:2] == ["synthbox.log", "synthbox.log.1"], "rotated by size"
    assert all(json.loads(line) for line in log_file.read_text().splitlines())


# -- alerts ----------------------------------------------------------------------------------

def test_a_failure_rule_fires_once_and_clears_once(serve_factory, tmp_path):
    receiver = Receiver()
    rule = {"name": "many-failures", "kind": "failures", "queue": "diagnostics",
            "threshold": 5, "window": 60, "webhook": receiver.url}
    env = {"SYNTHBOX_ALERTS": json.dumps([rule]),
           "SYNTHBOX_OUTBOUND_ALLOW": "127.0.0.1"}  # the receiver is on loopback
    shared = tmp_path / "shared"
    one = serve_factory(env, data_dir=shared)
    two = serve_factory(env, data_dir=shared)  # two instances check: still one announcement
    try:
        failing = [add(one, {"name": "fail", "data": {"times": 9}, "opts": {"attempts": 1}})
                   for _ in range(6)]
        settled(one, failing, "failed")
        wait_for(lambda: receiver.received, 20, message="the alert fired")
        time.sleep(5)  # several checks by both instances later
        [fired] = receiver.received
        assert (fired["alert"], fired["state"], fired["value"], fired["threshold"]) == (
            "many-failures", "firing", 6, 5)
        status, reply = one.request("POST", "/api/v1/admin/queues/diagnostics/jobs/delete",
                                    {"state": "failed"})
        assert status == 200 and reply["data"]["count"] == 6
        wait_for(lambda: len(receiver.received) == 2, 20, message="the alert cleared")
        time.sleep(5)
        assert [r["state"] for r in receiver.received] == ["firing", "resolved"]
        status, history = two.request("GET", "/api/v1/admin/alerts/events")
        assert [e["state"] for e in history["data"]["events"]] == ["resolved", "firing"]
        assert history["data"]["events"][1]["delivery"] == "webhook answered 200"
        status, listed = two.request("GET", "/api/v1/admin/alerts")
        assert listed["data"][0]["firing"] is False and listed["data"][0]["source"] == "config"
    finally:
        receiver.stop()
        one.stop()
        two.stop()


def test_alert_rules_through_the_api(serve_factory):
    serve = serve_factory({"SYNTHBOX_ALERTS": json.dumps(
        [{"name": "from-file", "kind": "waiting", "threshold": 50}])})
    status, made = serve.request("POST", "/api/v1/admin/alerts", {
        "name": "backlog", "kind": "oldest_waiting", "queue": "email", "threshold": 600,
        "emails": ["ops@example.com"]})
    assert status == 201 and made["data"]["source"] == "api"
    for body, field in (({"name": "x", "kind": "vibes"}, "kind"),
                        ({"name": "x", "kind": "waiting", "queue": "nope"}, "queue"),
                        ({"name": "x", "kind": "waiting", "webhook": "ftp://x"}, "webhook"),
                        ({"name": "x", "kind": "waiting", "emails": ["not mail"]},
                         "emails[0]"),
                        ({"name": "Bad Name", "kind": "waiting"}, "name"),
                        ({"name": "x", "kind": "waiting", "webhook": "http://[x]/"}, "webhook"),
                        ({"name": "x", "kind": "instance_silent", "threshold": 300},
                         "threshold")):
        status, reply = serve.request("POST", "/api/v1/admin/alerts", body)
        assert status == 400 and reply["error"]["field"] == field, reply
    status, reply = serve.request("POST", "/api/v1/admin/alerts",
                                  raw=b'{"name": "x", "kind": "waiting", "threshold": NaN}')
    assert status == 400 and reply["error"]["field"] == "threshold"
    assert serve.request("PATCH", "/api/v1/admin/alerts/from-file",
                         {"threshold": 1})[0] == 409
    status, changed = serve.request("PATCH", "/api/v1/admin/alerts/backlog",
                                    {"threshold": 60})
    assert status == 200 and changed["data"]["threshold"] == 60
    assert serve.request("DELETE", "/api/v1/admin/alerts/backlog")[0] == 200
    assert [r["name"] for r in serve.request("GET", "/api/v1/admin/alerts")[1]["data"]] == [
        "from-file"]
    serve.stop()


def test_a_bad_alert_in_the_settings_stops_the_start_with_one_line(tmp_path):
    result = run_cli("serve", "--port", "0", env={
        "SYNTHBOX_DATA_DIR": str(tmp_path / "data"),
        "SYNTHBOX_ALERTS": json.dumps([{"name": "x", "kind": "waiting", "window": 0}])})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: alerts[0].window (from environment SYNTHBOX_ALERTS): must be 1 to 604800 "
        "seconds")


def test_top_and_the_packaging_examples_use_the_real_figures(serve_factory):
    serve = serve_factory()
    _known_jobs(serve)
    screen = run_cli("top", "--once", env={"SYNTHBOX_DATA_DIR": str(serve.data_dir)})
    assert screen.returncode == 0, screen.stderr
    [row] = [line for line in screen.stdout.splitlines() if line.startswith("diagnostics")]
    assert row.split()[:8] == ["diagnostics", "(paused)", "0", "0", "5", "2", "0", "3"]
    assert "instances (1)" in screen.stdout

    exposed = {name for name, _ in samples(scrape(serve)[1])}
    root = ROOT / "packaging"
    used = set()
    for path in [*root.glob("prometheus/*.yml"), *root.glob("kubernetes/*.yaml"),
                 root / "grafana" / "synthbox-dashboard.json"]:
        used |= set(re.findall(r"\b(queue_waiting_jobs|synthbox_[a-z_]+)\b", path.read_text()))
    json.loads((root / "grafana" / "synthbox-dashboard.json").read_text())
    assert used and used <= exposed, used - exposed
    assert "queue_waiting_jobs" in (root / "kubernetes" / "hpa.yaml").read_text()
    serve.stop()


def test_an_alert_emails_through_the_email_queue(engine_builder):
    from synthbox.alerting import rules
    from synthbox.alerting.evaluate import AlertEvaluator
    from synthbox.alerting.models import AlertEvent
    from synthbox.app import email_service

    engine = engine_builder({"mail_from": "synthbox@example.com"}, workers=False)
    emails = email_service(engine)
    rules.create_rule({"name": "backlog", "kind": "waiting", "queue": "diagnostics",
                       "threshold": 2, "emails": ["ops@example.com"]}, list(engine.queues))
    evaluator = AlertEvaluator(engine, emails.send)
    engine.service("diagnostics").add_bulk([{"name": "noop"}] * 3)
    evaluator.check_all()
    evaluator.check_all()  # still firing: nothing new
    [fired] = AlertEvent.select()
    assert fired.state == "firing" and fired.value == 3
    [sent] = emails.list_emails()[0]
    assert fired.delivery == f"email {sent['id']} queued"
    assert sent["to"] == ["ops@example.com"]
    assert sent["subject"] == ("[SynthBox] backlog firing: jobs waiting to run in queue "
                               "diagnostics is 3 (threshold 2)")


def test_each_upkeep_task_is_timed_and_its_errors_counted(engine_builder):
    """Periodic work is one declared table: a task added to the engine runs on its interval
    beside the built-in ones, and /metrics shows each task's runs, errors and time."""
    from synthbox.jobs.periodic import Periodic
    from synthbox.metrics import render

    engine = engine_builder({}, workers=False)

    def broken() -> None:
        raise RuntimeError("this task always fails")

    engine.add_periodic(Periodic("broken", 0.1, broken))
    engine.start_workers()
    tasks = {task.name: task for task in engine.periodic_tasks()}
    assert {"stalled:diagnostics", "republish:email", "retention", "fold-counts", "cron",
            "broken"} <= set(tasks)
    wait_for(lambda: tasks["broken"].errors >= 3, message="the broken task ran three times")
    families = {f.name: f for f in text_string_to_metric_families(render(engine).decode())}
    samples = {(f.name, s.labels["task"]): s.value for name in (
        "synthbox_periodic_runs", "synthbox_periodic_errors") for f in [families[name]]
        for s in f.samples}
    assert samples[("synthbox_periodic_errors", "broken")] >= 3
    assert samples[("synthbox_periodic_runs", "broken")] >= 3
    assert samples[("synthbox_periodic_errors", "fold-counts")] == 0
    assert samples[("synthbox_periodic_runs", "fold-counts")] >= 1
