"""The npm `faktory-worker` client against SynthBox's listener: 1,000 jobs pushed and
processed, a failing job retried with its backtrace kept, a job pushed by Node processed by
the Python client's worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.faktory.helpers import HERE, faktory_serve, jobs_of, wait_for_state

QUEUES = """
[queues.node-flaky]
handler = "remote"
backoff = { type = "fixed", delay = 1 }
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    serve, port = faktory_serve(tmp_path_factory.mktemp("node"), QUEUES)
    yield serve, f"tcp://127.0.0.1:{port}"
    serve.stop()


def node(node_modules: Path, script: str, *args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "NODE_PATH": str(node_modules)}
    return subprocess.Popen(["node", str(HERE / script), *args], env=env, **popen)


def push(node_modules: Path, url: str, queue: str, jobtype: str, count: int,
         bulk: bool = False) -> None:
    process = node(node_modules, "node_push.js", url, queue, jobtype, str(count),
                   *(["bulk"] if bulk else []), stderr=subprocess.PIPE)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err.decode()


def start_worker(node_modules: Path, url: str, queues: str, out: Path) -> subprocess.Popen:
    process = node(node_modules, "node_worker.js", url, queues, str(out),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: out.exists() and "started" in out.read_text(), 20, message="worker")
    return process


def lines(out: Path, kind: str) -> list[list]:
    return [json.loads(line.split(" ", 1)[1]) for line in out.read_text().splitlines()
            if line.split(" ", 1)[0] == kind]


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@pytest.mark.parametrize("bulk", [False, True], ids=["push", "pushb"])
def test_a_thousand_jobs_pushed_and_processed(server, node_modules, tmp_path, bulk):
    serve, url = server
    queue = "node-bulk" if bulk else "node-one"
    push(node_modules, url, queue, "add", 1000, bulk)
    assert serve.request("GET", f"/api/v1/queues/{queue}/stats")[1]["data"]["waiting"] == 1000
    out = tmp_path / "out"
    worker = start_worker(node_modules, url, queue, out)
    try:
        wait_for_state(serve, queue, "completed", 1000, 120)
    finally:
        stop(worker)
    assert sorted(args[0] for args in lines(out, "add")) == list(range(1000))
    jobs = jobs_of(serve, queue, "completed")
    assert sorted(j["data"][0] for j in jobs) == list(range(1000))


def test_a_failing_job_is_retried_with_its_backtrace_kept(server, node_modules, tmp_path):
    serve, url = server
    push(node_modules, url, "node-flaky", "boom", 1)
    out = tmp_path / "out"
    worker = start_worker(node_modules, url, "node-flaky", out)
    try:
        wait_for(lambda: len(lines(out, "boom")) >= 2, 60, message="a retry")
    finally:
        stop(worker)
    job = [job for state in ("delayed", "waiting", "active", "failed")
           for job in jobs_of(serve, "node-flaky", state)][0]
    status, body = serve.request("GET", f"/api/v1/queues/node-flaky/jobs/{job['id']}")
    errors = body["data"]["errors"]
    assert len(errors) >= 2
    assert "boom: 0" in errors[0]["error"]
    assert "node_worker.js" in errors[0]["stacktrace"]  # the Node stack, line by line


def test_a_job_pushed_by_node_is_processed_by_python(server, node_modules, tmp_path):
    serve, url = server
    push(node_modules, url, "mixed", "from_node", 5)
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, str(HERE / "py_worker.py"), url, "mixed",
                                str(out), "2"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        wait_for_state(serve, "mixed", "completed", 5, 60)
    finally:
        process.terminate()
        process.wait(30)
    assert sorted(args for args in lines(out, "from_node")) == [[n, 1] for n in range(5)]
