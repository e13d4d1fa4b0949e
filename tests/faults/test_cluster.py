"""Processes dying under load in cluster mode (`synthbox start`): kill -9 of one child,
kill -9 of the supervisor (then started again), and a poison job whose every run kills
the child that runs it (it outgrows max_memory_restart). SIGTERM with long jobs is in
test_processes.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import Records, wait_for
from tests.faults.load import Load, add_job
from tests.host.test_cluster import Cluster, alive, clusters  # noqa: F401 - the fixture

QUEUES = {"SYNTHBOX_QUEUES": json.dumps({"diagnostics": {
    "stalled_interval": 2.0, "concurrency": 4}})}


def test_kill_9_of_a_child_under_load(clusters):  # noqa: F811
    cluster: Cluster = clusters(2, env=QUEUES)
    before = cluster.online(2)
    records = Records(cluster.data_dir)
    load = Load(cluster, {"name": "sleep", "data": {"seconds": 0.3}}).start()
    wait_for(lambda: records.counts().get("active", 0) >= 2, 20, message="jobs running")
    victim = before[0]["pid"]
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: (lambda rows: len(rows) == 2 and all(r["state"] == "online" for r in rows)
                      and victim not in {r["pid"] for r in rows})(cluster.status()), 20,
             message="the child replaced")
    replaced = time.monotonic()
    time.sleep(1.0)
    load.stop()
    load.check()
    load.settled(records, 90)
    # a request the killed child was answering gets a broken connection, never a 5xx
    figures = load.report("kill -9 of a cluster child", records, replaced - killed,
                          brokenConnections=load.statuses[0],
                          recoveryMeans="seconds until the child is replaced")
    assert figures["runTwice"] <= 4 * 2, "only the jobs the child was running run again"
    cluster.stop()


def test_kill_9_of_the_supervisor_then_started_again(clusters):  # noqa: F811
    cluster: Cluster = clusters(2, env=QUEUES)
    children = [row["pid"] for row in cluster.online(2)]
    records = Records(cluster.data_dir)
    load = Load(cluster, {"name": "sleep", "data": {"seconds": 0.3}}).start()
    wait_for(lambda: len(load.accepted) >= 20, 20, message="jobs accepted")
    cluster.process.kill()
    cluster.process.wait(10)
    wait_for(lambda: not any(alive(pid) for pid in children), 20, message="children gone")
    load.stop()
    # the operator (or systemd) starts it again on the same data directory
    started = time.monotonic()
    again = _restart(cluster)
    try:
        again.online(2)
        after = Load(again, {"name": "noop"}).start()
        time.sleep(1.0)
        after.stop()
        after.check()
        load.accepted += after.accepted
        load.settled(records, 90)
        load.report("kill -9 of the supervisor", records, time.monotonic() - started,
                    brokenConnections=load.statuses[0],
                    recoveryMeans="seconds from the new start to every job final")
        again.stop()
    finally:
        again.kill()


def _restart(cluster: Cluster) -> Cluster:
    """`synthbox start` again on the first one's port and data directory."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SYNTHBOX_")
            and k not in ("REDIS_URL", "DATABASE_URL")}
    again = Cluster.__new__(Cluster)
    again.data_dir, again.port = cluster.data_dir, cluster.port
    again.log = (cluster.data_dir.parent / "supervisor-again.out").open("ab")
    again.process = subprocess.Popen(
        [sys.executable, "-m", "synthbox", "start", "--port", str(cluster.port), "-i", "2"],
        env={**base, "SYNTHBOX_DATA_DIR": str(cluster.data_dir),
             "SYNTHBOX_SHUTDOWN_TIMEOUT": "3", **QUEUES},
        stdout=again.log, stderr=subprocess.STDOUT)
    wait_for(again.answers, 30, message="the control socket")
    return again


def test_a_poison_job_that_kills_its_worker_process(clusters):  # noqa: F811
    env = {"SYNTHBOX_QUEUES": json.dumps({"diagnostics": {
        "stalled_interval": 2.0, "max_stalled_count": 2, "concurrency": 4}})}
    cluster: Cluster = clusters(1, config='[cluster]\nmax_memory_restart = "250M"\n', env=env)
    cluster.online(1)
    records = Records(cluster.data_dir)
    status, poison, _ = add_job(cluster, {"name": "hold",
                                          "data": {"megabytes": 300, "seconds": 30}})
    assert status == 201
    load = Load(cluster, {"name": "noop"}).start()
    wait_for(lambda: records.query(f"SELECT status FROM job WHERE id={poison['data']['id']}")
             [0][0] == "failed", 120, interval=0.5, message="the poison job failed for good")
    time.sleep(1.0)
    load.stop()
    load.check()
    load.settled(records, 60)
    reason, stalls = records.query(f"SELECT failed_reason, stalled_count FROM job "
                                   f"WHERE id={poison['data']['id']}")[0]
    assert reason == "job stalled more than allowable limit" and stalls == 3
    restarts = cluster.status()[0]["restarts"]
    assert restarts == 3, "the child was killed once per run of the poison job"
    load.report("poison job kills its worker", records, None, childRestarts=restarts)
    cluster.stop()
