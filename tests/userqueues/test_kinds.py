"""Each handler kind against real parts: an HTTP receiver on a free port, real programs,
real child processes. Queues defined as a user would, in the settings' `[queues.NAME]`."""

from __future__ import annotations

import gc
import hashlib
import hmac
import os
import socket
import sys
import textwrap
import time
import warnings

import pytest

from tests.conftest import wait_for
from tests.userqueues.receiver import JobReceiver


@pytest.fixture
def receiver():
    server = JobReceiver()
    yield server
    server.stop()


def http_queue(url: str, **more):
    return {"hooks": {"handler": "http", "url": url, "allow_loopback": True, **more}}


def test_http_delivers_signed_json_over_one_kept_alive_connection(engine_builder, receiver,
                                                                  monkeypatch):
    monkeypatch.setenv("THUMBS_TOKEN", "t0k3n")
    engine = engine_builder({}, http_queue(receiver.url, secret="s3cret",
                                           headers={"Authorization": "Bearer ${THUMBS_TOKEN}"}),
                            workers=False)
    service = engine.service("hooks")
    jobs = [service.add("resize", {"image": f"{n}.png"}) for n in range(5)]
    assert engine.drain("hooks") == 5
    assert len(receiver.deliveries) == 5
    assert len(receiver.connections) == 1  # kept alive from job to job
    first = receiver.deliveries[0]
    assert first["json"] == {"id": jobs[0]["id"], "queue": "hooks", "name": "resize",
                             "data": {"image": "0.png"}, "attempt": 1}
    headers = first["headers"]
    assert headers["Authorization"] == "Bearer t0k3n"
    stamp = headers["X-SynthBox-Timestamp"]
    expected = hmac.new(b"s3cret", stamp.encode() + b"." + first["body"], hashlib.sha256)
    assert headers["X-SynthBox-Signature"] == "v1=" + expected.hexdigest()
    assert service.get_job(jobs[0]["id"])["state"] == "completed"
    assert service.get_job(jobs[0]["id"])["returnvalue"] == {"ok": True}


def test_http_statuses_retry_after_and_failures(engine_builder, receiver):
    engine = engine_builder({}, {**http_queue(receiver.url, attempts=1)}, workers=False)
    service = engine.service("hooks")
    receiver.answer(503, b"busy", Retry_After="1")
    receiver.answer(500, b"x" * 5000)
    job = service.add("a", {})
    engine.drain("hooks")
    found = service.get_job(job["id"])
    # 503 with Retry-After: waits, and the one attempt allowed is still there
    assert found["state"] == "delayed" and found["attemptsMade"] == 0
    assert found["logs"] == [f"HTTP 503 from {receiver.url}, Retry-After 1 s: busy"]
    time.sleep(1.1)
    engine.drain("hooks")
    found = service.get_job(job["id"])
    assert found["state"] == "failed" and found["attemptsMade"] == 1
    assert found["failedReason"].startswith(f"HTTP 500 from {receiver.url}: xxx")
    assert len(found["failedReason"]) < 2200  # the reply's first 2 KB are kept


def test_http_timeout_fails_the_attempt_and_the_pool_stays_healthy(engine_builder, receiver):
    """A receiver slower than the queue's timeout: that attempt fails as timed out, its
    connection is closed (not pooled, not left to the garbage collector), and the next
    jobs, on a slow-but-in-time receiver and a quick one, are delivered."""
    engine = engine_builder({}, http_queue(receiver.url, attempts=1, timeout="1s"),
                            workers=False)
    service = engine.service("hooks")
    receiver.answer(200, b'{"late": true}', X_Delay="3")
    receiver.answer(200, b'{"slow": true}', X_Delay="0.3")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        late = service.add("late", {})
        engine.drain("hooks")
        found = service.get_job(late["id"])
        assert found["state"] == "failed" and found["attemptsMade"] == 1
        assert "timed out" in found["failedReason"]
        slow = service.add("slow", {})
        quick = service.add("quick", {})
        engine.drain("hooks")
        assert service.get_job(slow["id"])["returnvalue"] == {"slow": True}
        assert service.get_job(quick["id"])["returnvalue"] == {"ok": True}
        assert [d["json"]["name"] for d in receiver.deliveries] == ["late", "slow", "quick"]
        assert len(receiver.connections) == 2  # the timed-out one was not handed on
        time.sleep(2.5)  # the abandoned delivery's thread has finished by now
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_http_timeout_while_connecting_leaves_no_socket_behind(engine_builder):
    """A receiver whose accept queue is full: connecting hangs past the queue's timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port))  # fills the accept queue
    try:
        engine = engine_builder({}, http_queue(f"http://127.0.0.1:{port}/jobs", attempts=1,
                                               timeout="1s"), workers=False)
        service = engine.service("hooks")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            job = service.add("a", {})
            engine.drain("hooks")
            assert "timed out" in service.get_job(job["id"])["failedReason"]
            time.sleep(1.5)  # the abandoned delivery's thread has finished by now
            gc.collect()
        assert [str(w.message) for w in caught
                if issubclass(w.category, ResourceWarning)] == []
    finally:
        filler.close()
        listener.close()


def test_http_refuses_loopback_unless_the_definition_allows_it(engine_builder, receiver):
    engine = engine_builder({}, {"hooks": {"handler": "http", "url": receiver.url,
                                           "attempts": 1}}, workers=False)
    job = engine.service("hooks").add("a", {})
    engine.drain("hooks")
    found = engine.service("hooks").get_job(job["id"])
    assert found["state"] == "failed"
    assert "127.0.0.1 is a loopback address" in found["failedReason"]
    assert receiver.deliveries == []


def test_http_unreachable_url_is_a_job_failure_not_a_start_error(engine_builder):
    engine = engine_builder({}, http_queue("http://127.0.0.1:1/x", attempts=1), workers=False)
    job = engine.service("hooks").add("a", {})
    engine.drain("hooks")
    assert "cannot connect" in engine.service("hooks").get_job(job["id"])["failedReason"]


SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    job = json.load(sys.stdin)
    data = job["data"]
    if data.get("fail"):
        print("bad input: " + data["fail"], file=sys.stderr)
        sys.exit(3)
    if data.get("hang"):
        child = os.fork()
        if child == 0:
            time.sleep(60)
            os._exit(0)
        open(data["hang"], "w").write(str(child))
        time.sleep(60)
    print("working")
    print(json.dumps({"got": data, "attempt": job["attempt"], "secret": os.environ.get("SECRET"),
                      "shared": os.environ.get("SHARED")}))
""")


def test_command_stdin_result_stderr_env_and_timeout(engine_builder, tmp_path, monkeypatch):
    (tmp_path / "work.py").write_text(SCRIPT)
    monkeypatch.setenv("SECRET", "not passed")
    monkeypatch.setenv("SHARED", "passed")
    engine = engine_builder({}, {"scripts": {
        "handler": "command", "command": [sys.executable, "work.py"], "cwd": str(tmp_path),
        "env": ["SHARED"], "attempts": 1, "timeout": "2s"}}, workers=False)
    service = engine.service("scripts")
    done = service.add("run", {"n": 1})
    failed = service.add("run", {"fail": "no image"})
    engine.drain("scripts")
    assert service.get_job(done["id"])["returnvalue"] == {
        "got": {"n": 1}, "attempt": 1, "secret": None, "shared": "passed"}
    reason = service.get_job(failed["id"])["failedReason"]
    assert "exit status 3" in reason and "bad input: no image" in reason

    pid_file = tmp_path / "hung.pid"
    hung = service.add("run", {"hang": str(pid_file)})
    engine.drain("scripts")
    assert service.get_job(hung["id"])["failedReason"] == "timed out after 2 s"
    grandchild = int(pid_file.read_text())
    wait_for(lambda: not _alive(grandchild), 5, message="the process group was killed")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead too
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_command_missing_program_is_a_job_failure(engine_builder):
    engine = engine_builder({}, {"scripts": {"handler": "command",
                                             "command": ["no-such-program-here"],
                                             "attempts": 1}}, workers=False)
    job = engine.service("scripts").add("run", {})
    engine.drain("scripts")
    assert engine.service("scripts").get_job(job["id"])["failedReason"] == \
        "command: 'no-such-program-here' not found"


FUNCTIONS = textwrap.dedent("""
    import os, time

    def resize(data):
        return {"width": data["width"] // 2, "pid": os.getpid()}

    def crash(data):
        os._exit(9)

    def hang(data):
        time.sleep(60)
""")


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_python_function_from_python_path(engine_builder, tmp_path, isolation):
    (tmp_path / "myjobs.py").write_text(FUNCTIONS)
    engine = engine_builder({}, {"images": {
        "handler": "python", "function": "myjobs:resize", "python_path": str(tmp_path),
        "isolation": isolation}}, workers=False)
    job = engine.service("images").add("resize", {"width": 640})
    engine.drain("images")
    result = engine.service("images").get_job(job["id"])["returnvalue"]
    assert result["width"] == 320
    assert (result["pid"] == os.getpid()) == (isolation == "thread")


def test_a_crash_or_hang_in_a_process_function_costs_only_that_job(engine_builder, tmp_path):
    (tmp_path / "myjobs2.py").write_text(FUNCTIONS.replace("myjobs", "myjobs2"))
    queues = {name: {"handler": "python", "function": f"myjobs2:{name}",
                     "python_path": str(tmp_path), "isolation": "process", "attempts": 1,
                     "timeout": "3s"} for name in ("crash", "hang", "resize")}
    engine = engine_builder({}, queues, workers=False)
    crashed = engine.service("crash").add("x", {})
    hung = engine.service("hang").add("x", {})
    engine.drain("crash")
    engine.drain("hang")
    assert "process died (exit code 9)" in engine.service("crash").get_job(
        crashed["id"])["failedReason"]
    assert engine.service("hang").get_job(hung["id"])["failedReason"] == "timed out after 3 s"
    fine = engine.service("resize").add("x", {"width": 10})
    engine.drain("resize")
    assert engine.service("resize").get_job(fine["id"])["returnvalue"]["width"] == 5


def test_remote_jobs_wait_for_a_worker_elsewhere(engine_builder):
    engine = engine_builder({}, {"far": {"handler": "remote"}})
    job = engine.service("far").add("x", {"n": 1})
    time.sleep(1.0)  # local workers run; none of them takes it
    assert engine.service("far").get_job(job["id"])["state"] == "waiting"
    claimed = engine.claim("far", 10, "remote-worker-1", 30.0)
    assert [c.id for c in claimed] == [int(job["id"])]
    assert engine.service("far").get_job(job["id"])["state"] == "active"


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_command_runs_as_the_user_the_definition_names(engine_builder):
    import pwd

    engine = engine_builder({}, {"scripts": {"handler": "command", "command": ["id", "-u"],
                                             "user": "nobody", "attempts": 1}},
                            workers=False)
    job = engine.service("scripts").add("run", {})
    engine.drain("scripts")
    assert engine.service("scripts").get_job(job["id"])["returnvalue"] == \
        pwd.getpwnam("nobody").pw_uid


def test_every_queue_option_applies_to_a_user_queue(engine_builder, tmp_path):
    """Priority, dedup key, delay, pause and resume, attempts with backoff and retention
    work on a user queue as on the built-in ones."""
    (tmp_path / "optfuncs.py").write_text(textwrap.dedent("""
        ORDER = []
        def record(data):
            ORDER.append(data["n"])
            if data.get("fail"):
                raise RuntimeError("planned")
            return data["n"]
    """))
    engine = engine_builder({}, {"opts": {
        "handler": "python", "function": "optfuncs:record", "python_path": str(tmp_path),
        "attempts": 2, "backoff": {"type": "fixed", "delay": "1s"},
        "keep_completed": {"count": 1}, "max_stalled_count": 5}}, workers=False)
    service = engine.service("opts")
    assert (service.spec.attempts, service.spec.backoff_delay, service.spec.max_stalled_count,
            service.spec.keep_completed_count) == (2, 1.0, 5, 1)
    service.pause()
    low = service.add("x", {"n": 1})
    high = service.add("x", {"n": 2}, priority=5)
    assert service.add("x", {"n": 3}, key="once")["id"] == \
        service.add("x", {"n": 4}, key="once")["id"]
    later = service.add("x", {"n": 5}, delay=60)
    assert engine.drain("opts") == 0  # paused: nobody claims
    service.resume()
    assert engine.drain("opts") == 3
    import optfuncs

    assert optfuncs.ORDER == [2, 1, 3]  # higher priority first, then FIFO
    assert service.get_job(later["id"])["state"] == "delayed"
    assert service.get_job(low["id"])["state"] == service.get_job(high["id"])["state"] == \
        "completed"
    failing = service.add("x", {"n": 6, "fail": True})
    engine.drain("opts")
    assert service.get_job(failing["id"])["state"] == "delayed"  # backoff, 1 attempt left
    time.sleep(1.1)
    engine.drain("opts")
    found = service.get_job(failing["id"])
    assert found["state"] == "failed" and found["attemptsMade"] == 2
