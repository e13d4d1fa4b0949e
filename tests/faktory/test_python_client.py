"""The PyPI `faktory` client against SynthBox's listener: jobs pushed and processed, a
failing job retried with its backtrace kept, a worker killed with kill -9 while holding a
job, a wrong password refused."""

from __future__ import annotations

import faktory
import pytest
from faktory.exceptions import FaktoryAuthenticationError

from tests.conftest import wait_for
from tests.faktory.helpers import (
    faktory_serve,
    jobs_of,
    lines,
    start_python_worker,
    stop,
    wait_for_state,
)

QUEUES = """
[queues.flaky]
handler = "remote"
backoff = { type = "fixed", delay = 1 }

[queues.leased]
handler = "remote"
stalled_interval = 1
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    serve, port = faktory_serve(tmp_path_factory.mktemp("faktory"), QUEUES)
    yield serve, f"tcp://127.0.0.1:{port}"
    serve.stop()


def test_a_thousand_jobs_pushed_and_processed(server, tmp_path):
    serve, url = server
    with faktory.connection(url) as client:
        for n in range(1000):
            assert client.queue("add", args=(n, 1), queue="bulk", custom={"n": n})
    # each is a record before the client had its OK, in a remote queue made on first use
    stats = serve.request("GET", "/api/v1/queues/bulk/stats")[1]["data"]
    assert stats["waiting"] == 1000
    out = tmp_path / "out"
    worker = start_python_worker(url, "bulk", out)
    try:
        wait_for_state(serve, "bulk", "completed", 1000, 120)
    finally:
        stop(worker)
    assert sorted(args[0] for args in lines(out, "add")) == list(range(1000))
    jobs = jobs_of(serve, "bulk", "completed")
    assert len(jobs) == 1000 and {j["name"] for j in jobs} == {"add"}
    assert sorted(j["data"][0] for j in jobs) == list(range(1000))
    status, queue = serve.request("GET", "/api/v1/queues/bulk")
    assert status == 200 and queue["data"]["handler"] == "remote"


def test_a_failing_job_is_retried_with_its_backtrace_kept(server, tmp_path):
    serve, url = server
    with faktory.connection(url) as client:
        assert client.queue("boom", args=("twice",), queue="flaky", jid="boom-1", retry=1)
    out = tmp_path / "out"
    worker = start_python_worker(url, "flaky", out)
    try:
        wait_for_state(serve, "flaky", "failed", 1, 60)
    finally:
        stop(worker)
    assert lines(out, "boom") == [["twice"], ["twice"]]  # retried once, as retry=1 says
    status, body = serve.request("GET", "/api/v1/queues/flaky/jobs/boom-1")
    assert status == 200, body
    job = body["data"]
    assert job["state"] == "failed" and job["attemptsMade"] == 2
    assert "boom: twice" in job["failedReason"]
    assert len(job["errors"]) == 2
    # this client sends errtype and message only (the Node client's backtraces are kept:
    # test_node_client.py)
    assert all(e["error"] == "ValueError: boom: twice" for e in job["errors"])


def test_a_job_held_by_a_killed_worker_comes_back_after_reserve_for(server, tmp_path):
    serve, url = server
    with faktory.connection(url) as client:
        assert client.queue("hold", args=(3600,), queue="leased", jid="held-1",
                            reserve_for=3)
    first = tmp_path / "first"
    worker = start_python_worker(url, "leased", first, 1)
    wait_for(lambda: lines(first, "hold"), 20, message="the job to be held")
    assert serve.request("GET", "/api/v1/queues/leased/stats")[1]["data"]["active"] == 1
    worker.kill()  # kill -9
    worker.wait(10)
    wait_for_state(serve, "leased", "waiting", 1, 30)  # the lease ran out: handed out again
    second = tmp_path / "second"
    worker = start_python_worker(url, "leased", second, 1)
    try:
        wait_for(lambda: lines(second, "hold"), 20, message="the job to come back")
    finally:
        worker.kill()
        worker.wait(10)
    job = serve.request("GET", "/api/v1/queues/leased/jobs/held-1")[1]["data"]
    assert job["stalledCount"] >= 1


def test_a_wrong_password_is_refused(tmp_path):
    serve, port = faktory_serve(tmp_path, password="right-horse")
    try:
        with pytest.raises(FaktoryAuthenticationError):
            with faktory.connection(f"tcp://:wrong@127.0.0.1:{port}") as client:
                client.queue("add", args=(1, 2))
        with faktory.connection(f"tcp://:right-horse@127.0.0.1:{port}") as client:
            assert client.queue("add", args=(1, 2))
        assert "Invalid password" in serve.output()
    finally:
        serve.stop()
