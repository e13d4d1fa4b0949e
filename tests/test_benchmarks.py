"""Each benchmark once, with a tiny load, so they keep working (figures: benchmarks/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_DSN, run_cli

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run(*args: str, timeout: float = 300) -> str:
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result.stdout


def table(out: str, heading: str) -> dict[str, list[str]]:
    """The rows of the Markdown table after `heading`: label -> cells."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    rows: dict[str, list[str]] = {}
    for line in lines[start + 1:]:
        if line.startswith("###") or (rows and not line.startswith("|")):
            break
        if line.startswith("|") and not line.startswith("| ---"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def number(cell: str) -> float:
    return float(cell.replace(",", ""))


@pytest.mark.timeout(900)
def test_compare_measures_every_backend_served_and_in_cluster_mode(redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SYNTHBOX_BENCH_PG", PG_ADMIN_DSN)
    out = run(str(BENCHMARKS / "compare.py"), "--backends", "sqlite,redis,redis+pg",
              "--jobs", "300", "--rounds", "1", "--instances", "1,2", timeout=850)
    for backend in ("sqlite", "redis", "redis+pg"):
        engine = table(out, f"### {backend}: 300 no-op jobs, median of 1 rounds")
        ours, huey, ratio = engine["drain, 8 workers (jobs/s)"]
        assert number(ours) > 0 and number(huey) > 0
        assert number(ratio) == pytest.approx(number(ours) / number(huey), rel=0.02)
        assert number(engine["enqueue, add_bulk() of 1,000 (jobs/s)"][0]) > 0
        served = table(out, f"`synthbox serve` over HTTP ({backend})")
        assert served["figure"] == ["1 instance", "2 instances"]
        for label in ("HTTP enqueue, one job per request (jobs/s)",
                      "HTTP bulk enqueue, 1,000 per request (jobs/s)", "drain (jobs/s)",
                      "pickup p99 at 100 jobs/s (ms)", "idle RSS per instance (MB)",
                      "RSS after 3 sign-ins (MB)",
                      "loaded (peak) RSS per instance (MB)"):
            assert all(number(cell) > 0 for cell in served[label]), (backend, label)


def test_compare_names_an_unknown_backend():
    result = subprocess.run([sys.executable, str(BENCHMARKS / "compare.py"), "--backends",
                             "mongo"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--backends: 'mongo' is not one of sqlite, redis, redis+pg" in result.stderr


def test_pg_peers_measures_synthbox_on_postgresql_with_and_without_redis(redis_url,
                                                                         monkeypatch):
    """The peers themselves (npm and PyPI installs, about a minute) stay out of the suite;
    PostgreSQL's own commit floor (pgbench) is measured beside SynthBox."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SYNTHBOX_BENCH_PG", PG_ADMIN_DSN)
    out = run(str(BENCHMARKS / "pg_peers.py"), "--systems",
              "synthbox-pg,synthbox-redis+pg,commit-floor", "--jobs", "200", "--rounds", "1")
    figures = table(out, "### 200 no-op jobs, median of 1 rounds")
    ratios = table(out, "Ratio of synthbox-pg to each system")
    assert figures["figure"] == ["synthbox-pg", "synthbox-redis+pg", "commit-floor"]
    for label in ("enqueue, one call at a time (jobs/s)", "pickup p50 at 100 jobs/s (ms)",
                  "pickup p99 at 100 jobs/s (ms)"):
        assert all(number(cell) > 0 for cell in figures[label]), label
        assert ratios[label][0] == "1.00"
    drain = "drain of a full queue, 8 workers (jobs/s)"
    assert number(figures[drain][0]) > 0 and figures[drain][2] == "-"  # pgbench drains none
    assert "- commit-floor: pgbench (PostgreSQL) 15" in out


def test_pg_peers_names_an_unknown_system():
    result = subprocess.run([sys.executable, str(BENCHMARKS / "pg_peers.py"), "--systems",
                             "oban"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--systems: 'oban' is not one of synthbox-pg, " in result.stderr


def test_profile_pg_counts_statements_and_commit_round_trips(monkeypatch):
    monkeypatch.setenv("SYNTHBOX_BENCH_PG", PG_ADMIN_DSN)
    out = run(str(BENCHMARKS / "profile_pg.py"), "300", "--pgbench-seconds", "1")
    assert "- one add() at a time (and the pickup phase's): " in out
    assert "- drain, 8 workers: " in out
    assert "- synchronous_commit=on: " in out and "- synchronous_commit=off: " in out


def test_bench_instances_need_served():
    result = run_cli("bench", "--instances", "2")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: instances: more than 1 needs --served (cluster mode is measured over HTTP)"]


def test_pages_at_scale_times_every_page():
    out = run(str(BENCHMARKS / "pages_at_scale.py"), "3000", "2")
    labels = [line.split("  ")[0].strip() for line in out.splitlines()[1:]]
    assert labels == ["dashboard", "dashboard live", "queue page", "queue page, failed",
                      "queue page, search", "/metrics", "stats API", "queue stats API",
                      "admin queue API", "admin list API", "admin list, failed",
                      "admin list, page 2", "jobs list API"]


def test_profile_drain_shows_where_the_workers_spend_their_time():
    out = run(str(BENCHMARKS / "profile_drain.py"), "sqlite", "2000")
    assert "## drain (worker threads):" in out and "## enqueue (add and add_bulk):" in out
    drain = out.split("## drain (worker threads):")[1].split("## enqueue")[0]
    assert "QueueRunner.drain (synthbox/jobs/runner.py)" in drain
    assert "JobStore.claim (synthbox/jobs/store.py)" in drain


def test_email_send_and_login_timing_run():
    out = run(str(BENCHMARKS / "email_send.py"), "20")
    assert out.startswith("20 emails: recorded and queued ") and "sent" in out, out
    out = run(str(BENCHMARKS / "login_timing.py"), "3")
    assert "known name: median" in out and "unknown name: median" in out, out


def test_bench_of_one_job_prints_every_figure():
    result = run_cli("bench", "--jobs", "1")
    assert result.returncode == 0, result.stderr
    assert "enqueue" in result.stdout and "peak RSS" in result.stdout


def test_user_queues_measures_each_kind_against_diagnostics():
    out = run(str(BENCHMARKS / "user_queues.py"), "--jobs", "300", "--command-jobs", "30",
              "--add-jobs", "200", "--rounds", "1")
    rows = table(out, "### user queues")
    drain = number(rows["drain: diagnostics noop, 8 workers"][0])
    for label in ("drain: http to a keep-alive receiver, 16 workers",
                  "drain: python no-op in a thread, 8 workers",
                  "drain: command `true`, 8 workers", "add one at a time: user queue",
                  "add_bulk() of 1,000: user queue"):
        rate, ratio = number(rows[label][0]), number(rows[label][1])
        assert rate > 0 and ratio == pytest.approx(rate / drain, abs=0.011), label


@pytest.mark.timeout(300)
def test_the_faktory_protocol_benchmark_reports_every_figure():
    out = run(str(BENCHMARKS / "faktory_protocol.py"), "--jobs", "80", "--connections", "2",
              "--samples", "5", "--client-jobs", "20", timeout=280)
    figures = table(out, "### Faktory protocol, 80 jobs, 2 connections")
    for label in ("PUSH, one job per command (jobs/s)", "PUSHB, 1,000 per command (jobs/s)",
                  "FETCH+ACK, end to end (jobs/s)", "pickup p99, a FETCH waiting (ms)",
                  "PyPI client: queue(), one connection (jobs/s)",
                  "PyPI client: Worker, 8 threads (jobs/s)"):
        assert number(figures[label][0]) > 0, label


def test_pickup_across_instances_runs_every_job(monkeypatch):
    monkeypatch.setenv("SYNTHBOX_BENCH_PG", PG_ADMIN_DSN)
    out = run(str(BENCHMARKS / "pickup_across.py"), "20")
    assert "20 of 20 jobs run; pickup p50 " in out


def test_http_adds_counts_adds_and_the_commits_they_shared(pg_url):
    out = run(str(BENCHMARKS / "http_adds.py"), "--clients", "4", "--seconds", "1",
              "--records-url", pg_url)
    assert out.startswith("PostgreSQL records, 4 clients: ")
    assert " adds/s, server CPU " in out and " WAL flushes each" in out


@pytest.mark.parametrize("records", ["sqlite", "postgres"])
def test_drain_cost_counts_a_drained_jobs_statements(records, request):
    url = request.getfixturevalue("pg_url") if records == "postgres" else ""
    out = run(str(BENCHMARKS / "drain_cost.py"), "threads", "600", *([url] if url else []))
    figures = json.loads(out)
    assert figures["jobs"] == 600
    assert figures["statements"]["claim"] > 0 and figures["claims_by_size"]
    assert (figures["server_cpu_us"] > 0) == (records == "postgres")
    if records == "postgres":  # the completion statement is PostgreSQL's own
        assert figures["statements"]["completion"] > 0
