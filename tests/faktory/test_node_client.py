"""The npm `faktory-worker` client against SynthBox's listener: 1,000 jobs pushed and
processed, a failing job retried with its backtrace kept, a job pushed by Node processed by
the Python client's worker."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.faktory.helpers import (
    faktory_serve,
    jobs_of,
    lines,
    node,
    start_node_worker,
    start_python_worker,
    stop,
    wait_for_state,
)

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


def push(node_modules: Path, url: str, queue: str, jobtype: str, count: int,
         bulk: bool = False) -> None:
    process = node(node_modules, "node_push.js", url, queue, jobtype, str(count),
                   *(["bulk"] if bulk else []), stderr=subprocess.PIPE)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err.decode()


@pytest.mark.parametrize("bulk", [False, True], ids=["push", "pushb"])
def test_a_thousand_jobs_pushed_and_processed(server, node_modules, tmp_path, bulk):
    serve, url = server
    queue = "node-bulk" if bulk else "node-one"
    push(node_modules, url, queue, "add", 1000, bulk)
    assert serve.request("GET", f"/api/v1/queues/{queue}/stats")[1]["data"]["waiting"] == 1000
    out = tmp_path / "out"
    worker = start_node_worker(node_modules, url, queue, out)
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
    worker = start_node_worker(node_modules, url, "node-flaky", out)
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
    worker = start_python_worker(url, "mixed", out, 2)
    try:
        wait_for_state(serve, "mixed", "completed", 5, 60)
    finally:
        stop(worker)
    assert sorted(args for args in lines(out, "from_node")) == [[n, 1] for n in range(5)]
