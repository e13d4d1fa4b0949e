"""What the orchestration tests share: a package of python agents, the loosened limits,
a served API with a project, and small helpers over the API."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from synthbox.services import get_orchestration_queue_service
from tests.conftest import wait_for

FAST = {"orchestration": {"rate_limit_max": 0, "backoff_delay": 0.2}}


@pytest.fixture
def agent_package(tmp_path):
    """An installed package that registers a `synthbox.agents` entry point."""
    root = tmp_path / "agentpkg"
    root.mkdir()
    (root / "reviewagents.py").write_text(
        "def review(context):\n"
        "    print('noise on stdout is kept out of the report')\n"
        "    return {'tasks': ['Review ' + context['project']['slug']],\n"
        "            'suggestions': [{'title': 'Pin dependencies', 'severity': 'low'}]}\n")
    info = root / "reviewagents-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: reviewagents\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[synthbox.agents]\nreview = reviewagents:review\n")
    return root


def call(serve, method, path, body=None, token="default"):
    return serve.request(method, f"/api/v1{path}", body, token=token)


def created(serve, path, body):
    status, reply = call(serve, "POST", path, body)
    assert status == 201, reply
    return reply["data"]


def wait_run(serve, project, job_id, states=("succeeded", "failed"), timeout=60):
    def finished():
        status, reply = call(serve, "GET", f"/projects/{project}/runs/{job_id}")
        assert status == 200, reply
        return reply["data"] if reply["data"]["state"] in states else None

    return wait_for(finished, timeout, interval=0.1, message=f"run {job_id}")


def _engine(engine_builder, queues=None, **settings):
    engine = engine_builder(settings, {"orchestration": {**FAST["orchestration"],
                                                         **(queues or {})}})
    return engine, get_orchestration_queue_service(engine)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone for our purposes
        return stat.read().split(")")[-1].split()[0] != "Z"


def _finished_job(engine, job_id, timeout=30):
    return wait_for(lambda: (lambda j: j if j["state"] in ("completed", "failed") else None)(
        engine.find_job(int(job_id))), timeout, message=f"job {job_id}")


def _git(repo: Path, *args: str, author: str = "Ann <ann@example.com>") -> None:
    name, email = author[:-1].split(" <")
    env = {**os.environ, "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
           "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def deliver(serve, path, body: bytes, headers: dict[str, str]):
    request = urllib.request.Request(f"http://127.0.0.1:{serve.port}/api/v1/hooks/{path}",
                                     data=body, method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def api(served):
    serve = served()
    created(serve, "/projects", {"slug": "base", "repository": "https://example.com/r.git"})
    created(serve, "/projects/base/agents", {"slug": "only", "kind": "command",
                                              "config": {"command": ["true"]}})
    return serve
