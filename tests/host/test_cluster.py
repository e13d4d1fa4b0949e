"""Cluster mode: `synthbox start` with real serve children, real signals and kill -9."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg2
import pytest

from synthbox.host.cluster.control import NoSupervisor, request
from tests.conftest import free_port, remember_secret, run_cli, wait_for

FAST_STALLS = {"diagnostics": {"stalled_interval": 2.0}}


class Cluster:
    """`python -m synthbox start` on a free port with its own data directory."""

    def __init__(self, tmp_path: Path, instances: int | None = 2, config: str = "",
                 env: dict[str, str] | None = None):
        self.data_dir = tmp_path / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        args = ["start", "--port", str(self.port)]
        if instances is not None:
            args += ["-i", str(instances)]
        if config:
            (tmp_path / "synthbox.toml").write_text(config)
            args += ["--config", str(tmp_path / "synthbox.toml")]
        base = {k: v for k, v in os.environ.items() if not k.startswith("SYNTHBOX_")
                and k not in ("REDIS_URL", "DATABASE_URL")}
        self.log = (tmp_path / "supervisor.out").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "synthbox", *args],
            env={**base, "SYNTHBOX_DATA_DIR": str(self.data_dir), "SYNTHBOX_SHUTDOWN_TIMEOUT": "3",
                 **(env or {})}, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self.answers, 30, message="the control socket")

    def answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the supervisor exited with {self.process.returncode}")
        try:
            request(self.data_dir, {"command": "ping"}, timeout=2)
            return True
        except (NoSupervisor, OSError):
            return False

    def status(self) -> list[dict]:
        return request(self.data_dir, {"command": "status"})["instances"]

    def online(self, count: int, timeout: float = 30) -> list[dict]:
        return wait_for(lambda: (lambda rows: rows if len(rows) == count and all(
            r["state"] == "online" for r in rows) else None)(self.status()), timeout,
            message=f"{count} instance(s) online")

    @property
    def token(self) -> str:
        value = (self.data_dir / "admin-token").read_text().strip()
        remember_secret(value)
        return value

    def http(self, method: str, path: str, body=None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method=method,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def stop(self) -> None:
        if self.process.poll() is None:
            result = run_cli("stop", env={"SYNTHBOX_DATA_DIR": str(self.data_dir)})
            assert result.returncode == 0, result.stderr
            self.process.wait(60)
        self.log.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            for row in self.status():
                if row["pid"]:
                    try:
                        os.kill(row["pid"], signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            self.process.kill()
            self.process.wait(10)
        self.log.close()


@pytest.fixture
def clusters(tmp_path):
    started: list[Cluster] = []

    def make(*args, **kwargs) -> Cluster:
        cluster = Cluster(tmp_path / f"c{len(started)}", *args, **kwargs)
        started.append(cluster)
        return cluster

    yield make
    for cluster in started:
        cluster.kill()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


class Hammer:
    """Requests in a loop from a thread: every answer is counted, every failure kept."""

    def __init__(self, cluster: Cluster, add_jobs: bool = False):
        self.cluster = cluster
        self.add_jobs = add_jobs
        self.failures: list[str] = []
        self.answers = 0
        self.pids: set[int] = set()
        self.job_ids: list[str] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            try:
                status, reply = self.cluster.http("GET", "/healthz")
                self.pids.add(reply["pid"])
                if self.add_jobs:
                    status, reply = self.cluster.http("POST", "/api/v1/queues/diagnostics/jobs",
                                                      {"name": "sleep", "data": {"seconds": 0.2}})
                    if status != 201:
                        raise AssertionError(f"{status} {reply}")
                    self.job_ids.append(reply["data"]["id"])
                self.answers += 1
            except Exception as exc:  # every failed request is a finding
                self.failures.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.01)

    def stop(self) -> None:
        self.done.set()
        self.thread.join(30)


def test_two_instances_serve_and_status_lists_them(clusters):
    cluster = clusters(2)
    rows = cluster.online(2)
    pids = {row["pid"] for row in rows}
    seen = set()
    wait_for(lambda: seen.update([cluster.http("GET", "/healthz")[1]["pid"]]) or seen == pids,
             20, message="both children answer")
    shown = run_cli("status", env={"SYNTHBOX_DATA_DIR": str(cluster.data_dir)})
    assert shown.returncode == 0
    lines = shown.stdout.splitlines()
    assert lines[1].split()[:4] == ["id", "pid", "state", "uptime"]
    assert {int(line.split()[1]) for line in lines[2:]} == pids
    assert all(line.split()[2] == "online" for line in lines[2:])
    assert stat.S_IMODE((cluster.data_dir / "synthbox.sock").stat().st_mode) == 0o600
    monit = run_cli("monit", "--once", env={"SYNTHBOX_DATA_DIR": str(cluster.data_dir)})
    assert monit.returncode == 0 and str(min(pids)) in monit.stdout
    children = [row["pid"] for row in rows]
    cluster.stop()
    assert cluster.process.returncode == 0
    assert not any(alive(pid) for pid in children), "stop leaves no process behind"
    assert not (cluster.data_dir / "synthbox.sock").exists()


def test_a_killed_child_is_replaced_and_its_jobs_recovered(clusters):
    cluster = clusters(2, env={"SYNTHBOX_QUEUES": json.dumps(FAST_STALLS)})
    before = cluster.online(2)
    ids = [cluster.http("POST", "/api/v1/queues/diagnostics/jobs",
                        {"name": "sleep", "data": {"seconds": 2}})[1]["data"]["id"]
           for _ in range(12)]
    wait_for(lambda: any(r["jobsDone"] == 0 for r in cluster.status()), 5)
    wait_for(lambda: cluster.http("GET", "/api/v1/queues/diagnostics/stats")[1]["data"][
        "active"] > 0, 10, message="jobs running")
    victim = before[0]["pid"]
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(lambda: (lambda rows: len(rows) == 2 and all(r["state"] == "online" for r in rows)
                      and victim not in {r["pid"] for r in rows})(cluster.status()), 5,
             message="a new child within 5 s")
    assert time.monotonic() - killed_at < 5
    assert cluster.http("GET", "/healthz")[0] == 200
    wait_for(lambda: all(cluster.http("GET", f"/api/v1/admin/jobs/{j}")[1]["data"]["state"]
                         == "completed" for j in ids), 60, message="every job completed")
    restarted = [r for r in cluster.status() if r["restarts"] == 1]
    assert len(restarted) == 1
    cluster.stop()


def test_scale_up_and_down_without_dropping_a_request(clusters):
    cluster = clusters(1)
    cluster.online(1)
    hammer = Hammer(cluster)
    assert run_cli("scale", "3", env={"SYNTHBOX_DATA_DIR": str(cluster.data_dir)}
                   ).returncode == 0
    cluster.online(3)
    wait_for(lambda: len(hammer.pids) >= 2, 20, message="requests reach the new children")
    assert run_cli("scale", "-2", env={"SYNTHBOX_DATA_DIR": str(cluster.data_dir)}
                   ).returncode == 0
    cluster.online(1)
    time.sleep(1)
    hammer.stop()
    assert hammer.failures == [] and hammer.answers > 50
    bad = run_cli("scale", "lots", env={"SYNTHBOX_DATA_DIR": str(cluster.data_dir)})
    assert bad.returncode == 2 and bad.stderr.startswith("Error: INSTANCES:")
    cluster.stop()


def test_reload_under_requests_and_jobs_drops_nothing(clusters):
    cluster = clusters(2)
    old = {row["pid"] for row in cluster.online(2)}
    hammer = Hammer(cluster, add_jobs=True)
    time.sleep(1)
    reloaded = run_cli("reload", env={"SYNTHBOX_DATA_DIR": str(cluster.data_dir)})
    assert reloaded.returncode == 0 and reloaded.stdout.strip() == "reloaded 2 instance(s)"
    time.sleep(1)
    hammer.stop()
    new = {row["pid"] for row in cluster.online(2)}
    assert not new & old, "every child was replaced"
    assert hammer.failures == [], hammer.failures[:5]
    assert len(hammer.job_ids) > 20
    wait_for(lambda: all(cluster.http("GET", f"/api/v1/admin/jobs/{j}")[1]["data"]["state"]
                         == "completed" for j in hammer.job_ids), 60,
             message="every job accepted during the reload completed")
    logs = run_cli("logs", "--lines", "400", env={"SYNTHBOX_DATA_DIR": str(cluster.data_dir)})
    assert logs.returncode == 0
    assert {line[1:line.index("]")] for line in logs.stdout.splitlines()} == {"0", "1"}
    cluster.stop()


def test_a_child_that_crashes_at_start_is_backed_off_and_reported(clusters):
    cluster = clusters(1, config='[cluster]\nmax_restarts = 3\n'
                                 '[cluster.env]\nSYNTHBOX_DATABASE_URL = "mysql://nowhere/x"\n')
    rows = wait_for(lambda: (lambda rows: rows if rows and rows[0]["state"] == "errored"
                             else None)(cluster.status()), 30,
                    message="the crash loop is reported")
    assert rows[0]["restarts"] == 3
    assert cluster.answers(), "the supervisor stays up"
    log = (cluster.data_dir.parent / "supervisor.out").read_text()
    assert "restarting in 0.1 s" in log and "restarting in 0.4 s" in log
    assert "not restarting it (a crash loop)" in log
    cluster.stop()


def test_max_memory_restart_replaces_a_child_that_grows(clusters):
    cluster = clusters(1, config='[cluster]\nmax_memory_restart = "250M"\n')
    [before] = cluster.online(1)
    cluster.http("POST", "/api/v1/queues/diagnostics/jobs",
                 {"name": "hold", "data": {"megabytes": 300, "seconds": 60}})
    after = wait_for(lambda: (lambda rows: rows[0] if rows[0]["pid"] != before["pid"]
                              and rows[0]["state"] == "online" else None)(cluster.status()),
                     30, message="the child is replaced")
    assert after["restarts"] >= 1
    log = (cluster.data_dir.parent / "supervisor.out").read_text()
    assert "over max_memory_restart 250 MB" in log
    wait_for(lambda: not alive(before["pid"]), 20, message="the old child stopped")
    cluster.stop()


def test_autoscaling_follows_the_backlog(clusters):
    config = ("[cluster.autoscale]\nmin = 1\nmax = 3\ntarget = 5\nup_after = 0\n"
              "down_after = 2\ncooldown = 1\ncheck_every = 0.5\n")
    cluster = clusters(None, config=config, env={"SYNTHBOX_QUEUES": json.dumps(
        {"diagnostics": {"concurrency": 1}})})
    cluster.online(1)
    for _ in range(40):
        cluster.http("POST", "/api/v1/queues/diagnostics/jobs",
                     {"name": "sleep", "data": {"seconds": 0.5}})
    wait_for(lambda: len(cluster.status()) == 3, 30, message="scaled up to the max")
    wait_for(lambda: cluster.http("GET", "/api/v1/queues/diagnostics/stats")[1]["data"][
        "waiting"] == 0, 60, message="the backlog drains")
    wait_for(lambda: len(cluster.status()) == 1, 30, message="back to the min")
    log = (cluster.data_dir.parent / "supervisor.out").read_text()
    assert "autoscale: 1 -> 2 instance(s)" in log and "autoscale: 3 -> 2 instance(s)" in log
    cluster.stop()


def test_instances_on_two_hosts_share_redis_and_postgresql(serve_factory, redis_url, pg_url,
                                                           tmp_path):
    env = {"REDIS_URL": redis_url, "DATABASE_URL": pg_url}
    one = serve_factory(env, data_dir=tmp_path / "host-a")
    two = serve_factory(env, data_dir=tmp_path / "host-b")
    remember_secret(two.token)
    ids = []
    for _ in range(10):
        status, reply = one.request("POST", "/api/v1/queues/diagnostics/jobs/bulk",
                                    {"jobs": [{"name": "sleep", "data": {"seconds": 0.05}}]
                                     * 20})
        assert status == 201
        ids += [job["id"] for job in reply["data"]]
    wait_for(lambda: one.request("GET", "/api/v1/queues/diagnostics/stats")[1]["data"][
        "completed"] == 200, 60, message="every job completed")
    for job_id in ids[::17]:
        assert two.request("GET", f"/api/v1/admin/jobs/{job_id}")[1]["data"][
            "attemptsMade"] == 1, "no job ran twice"

    def jobs_done_per_instance() -> dict[str, int]:
        with psycopg2.connect(pg_url) as db, db.cursor() as cursor:
            cursor.execute("SELECT id, queues FROM instance")
            return {instance: json.loads(queues).get("diagnostics", 0)
                    for instance, queues in cursor.fetchall()}

    done = wait_for(lambda: (lambda d: d if len(d) == 2 and all(d.values()) else None)(
        jobs_done_per_instance()), 30, message="both hosts ran jobs (their heartbeats say)")
    assert sum(done.values()) == 200
    one.stop()
    two.stop()


def test_a_child_that_stops_heartbeating_is_replaced(clusters):
    cluster = clusters(1, config="[cluster]\nheartbeat_timeout = 3\n")
    [before] = cluster.online(1)
    os.kill(before["pid"], signal.SIGSTOP)  # alive, but silent
    after = wait_for(lambda: (lambda rows: rows[0] if rows[0]["pid"] != before["pid"]
                              and rows[0]["state"] == "online" else None)(cluster.status()),
                     20, message="the silent child is replaced")
    assert after["restarts"] == 1 and not alive(before["pid"])
    assert cluster.http("GET", "/healthz")[1]["pid"] == after["pid"]
    cluster.stop()


def test_daemon_mode_detaches_and_stops(tmp_path):
    data = tmp_path / "data"
    env = {"SYNTHBOX_DATA_DIR": str(data), "SYNTHBOX_PORT": str(free_port()),
           "SYNTHBOX_SHUTDOWN_TIMEOUT": "3"}
    started = run_cli("start", "-i", "1", "--daemon", env=env)
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith("supervisor started (pid ")
    supervisor = int(started.stdout.split("pid ")[1].split(")")[0])
    assert alive(supervisor)
    wait_for(lambda: [i["state"] for i in request(data, {"command": "status"})["instances"]]
             == ["online"], 30)  # the list is empty until the supervisor starts the child
    child = request(data, {"command": "status"})["instances"][0]["pid"]
    remember_secret((data / "admin-token").read_text().strip())
    stopped = run_cli("stop", env=env)
    assert stopped.returncode == 0 and stopped.stdout.strip() == "stopped"
    wait_for(lambda: not alive(supervisor) and not alive(child), 20)
    assert "supervisor stopped" in (data / "logs" / "supervisor.log").read_text()


def test_the_service_can_run_the_supervisor(tmp_path):
    from synthbox.host.install import unit_text

    assert "ExecStart=/usr/local/bin/synthbox start --config" in unit_text(cluster=True)
    assert "ExecStart=/usr/local/bin/synthbox serve --config" in unit_text()
    fake = tmp_path / "synthbox-binary"
    fake.write_text("#!/bin/sh\n")
    result = run_cli("install", "--root", str(tmp_path / "root"), "--binary", str(fake),
                     "--cluster")
    assert result.returncode == 0, result.stderr  # under --root, systemctl is not called
    unit = (tmp_path / "root" / "etc/systemd/system/synthbox.service").read_text()
    assert "synthbox start --config /etc/synthbox/synthbox.toml" in unit


def test_children_stop_when_their_supervisor_is_killed(clusters):
    cluster = clusters(2)
    children = [row["pid"] for row in cluster.online(2)]
    cluster.process.kill()  # kill -9 of the supervisor
    cluster.process.wait(10)
    wait_for(lambda: not any(alive(pid) for pid in children), 20,
             message="no orphan keeps serving")
