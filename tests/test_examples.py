"""The README's "Your own queues" walk-through with the files of examples/, as a user runs
it: the Flask receiver (checking signatures), `synthbox serve` started from that directory
with its synthbox.toml, a job added to each queue with the API, each one completed."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import ROOT, free_port, remember_secret, wait_for

SECRET = "walk-through-secret-0123456789abcdef"


def call(url: str, body: dict | None = None, token: str | None = None,
         headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=None if body is None else json.dumps(
        body).encode(), method="GET" if body is None else "POST")
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, {}


def eventually(predicate, timeout: float, detail) -> None:
    try:
        wait_for(predicate, timeout)
    except AssertionError:
        raise AssertionError(detail()) from None


@pytest.fixture
def walk_through(tmp_path):
    """examples/ copied, its receiver and `synthbox serve` started there."""
    work = tmp_path / "demo"
    shutil.copytree(ROOT / "examples", work)
    receiver_port, port = free_port(), free_port()
    config = (work / "synthbox.toml").read_text()
    (work / "synthbox.toml").write_text(config.replace("127.0.0.1:8080",
                                                       f"127.0.0.1:{receiver_port}"))
    remember_secret(SECRET)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNTHBOX_")
           and k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(THUMBS_SECRET=SECRET, PORT=str(receiver_port), PYTHONUNBUFFERED="1",
               SYNTHBOX_DATA_DIR=str(tmp_path / "data"), SYNTHBOX_PORT=str(port),
               PATH=f"{os.path.dirname(sys.executable)}:{env.get('PATH', '')}")
    log = (tmp_path / "walk.log").open("wb")
    started = [subprocess.Popen([sys.executable, "http_receiver.py"], cwd=work, env=env,
                                stdout=log, stderr=subprocess.STDOUT),
               subprocess.Popen([sys.executable, "-m", "synthbox", "--config",
                                 "synthbox.toml"], cwd=work, env=env, stdout=log,
                                stderr=subprocess.STDOUT)]
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return call(f"{base}/healthz")[0] == 200 and call(
                f"http://127.0.0.1:{receiver_port}/jobs/thumbnail", {})[0] == 401
        except (urllib.error.URLError, OSError):
            return False

    try:
        eventually(healthy, 30, (tmp_path / "walk.log").read_text)
        token = (tmp_path / "data" / "admin-token").read_text().strip()
        remember_secret(token)
        yield base, token, receiver_port
    finally:
        for process in started:
            process.terminate()
            process.wait(30)
        log.close()


def test_the_walk_through_runs_a_job_on_each_kind(walk_through):
    base, token, receiver_port = walk_through
    jobs = {queue: call(f"{base}/api/v1/queues/{queue}/jobs",
                        {"name": "resize", "data": {"image": "cat.png", "width": 800},
                         "opts": {"jobId": "cat"}},  # the README's curl
                        token) for queue in ("thumbnails", "reports", "images")}
    assert {queue: status for queue, (status, _) in jobs.items()} == dict.fromkeys(jobs, 201)

    def finished(queue: str) -> dict:
        return call(f"{base}/api/v1/queues/{queue}/jobs/cat", token=token)[1]["data"]

    eventually(lambda: all(finished(q)["state"] == "completed" for q in jobs), 30,
               lambda: json.dumps({q: finished(q) for q in jobs}))
    assert finished("thumbnails")["returnvalue"] == {"thumbnail": "cat.png@200w"}
    assert finished("reports")["returnvalue"] == {"resized": "cat.png", "width": 400}
    assert finished("images")["returnvalue"] == {"resized": "cat.png", "width": 400}

    # the receiver refuses what SynthBox did not sign
    body = json.dumps({"data": {"image": "x"}}).encode()
    stamp = str(int(time.time()))
    forged = "v1=" + hmac.new(b"guess", stamp.encode() + b"." + body,
                              hashlib.sha256).hexdigest()
    status, _ = call(f"http://127.0.0.1:{receiver_port}/jobs/thumbnail",
                     {"data": {"image": "x"}},
                     headers={"X-SynthBox-Timestamp": stamp, "X-SynthBox-Signature": forged})
    assert status == 401
