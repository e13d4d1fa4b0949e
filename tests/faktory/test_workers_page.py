"""The Workers page in a real Chromium: a Node and a Python worker listed, quiet and stop
pressed by an operator, and each client honouring what its next BEAT tells it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import create_user, remember_secret, wait_for
from tests.faktory.helpers import HERE, Raw, faktory_serve

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    if os.environ.get("REQUIRE_BROWSER_TESTS"):
        raise RuntimeError(f"the UI tests need Debian's chromium at {CHROMIUM}")
    pytest.skip("the UI tests need Debian's chromium (apt-get install chromium)",
                allow_module_level=True)
PASSWORD = "workers page password 1"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("page")
    (folder / "data").mkdir()
    create_user(folder / "data", "boss", "admin", PASSWORD)
    serve, port = faktory_serve(folder)
    remember_secret(serve.token)
    yield serve, port
    serve.stop()


@pytest.fixture(scope="module")
def page(server):
    serve, _ = server
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = chromium.new_context(base_url=f"http://127.0.0.1:{serve.port}")
        page = context.new_page()
        page.goto("/login")
        page.get_by_label("Name").fill("boss")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r"/$"))
        yield page
        context.close()
        chromium.close()


def started_wid(out: Path) -> str:
    wait_for(lambda: out.exists() and "started" in out.read_text(), 20, message="worker")
    line = next(line for line in out.read_text().splitlines() if line.startswith("started"))
    return line.split('"')[1]


def row(page, wid: str):
    page.goto("/workers")
    return page.locator(f"tr[data-wid='{wid}']")


def press(page, wid: str, button: str) -> None:
    row(page, wid).get_by_role("button", name=button).click()
    page.wait_for_load_state()


def audited(serve, action: str, wid: str) -> bool:
    entries = serve.request("GET", "/api/v1/admin/audit")[1]["data"]["entries"]
    return any(e["action"] == action and e["target"] == f"worker:{wid}" for e in entries)


def test_quiet_then_stop_a_node_worker_from_the_page(server, page, node_modules, tmp_path):
    serve, port = server
    out = tmp_path / "out"
    env = {**os.environ, "NODE_PATH": str(node_modules)}
    process = subprocess.Popen(["node", str(HERE / "node_worker.js"), f"tcp://127.0.0.1:{port}",
                                "page-node", str(out)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wid = started_wid(out)
        wait_for(lambda: row(page, wid).count() == 1, 20, message="the worker listed")
        assert "node" in row(page, wid).inner_text()
        press(page, wid, "Quiet")
        assert audited(serve, "worker.quiet", wid)
        # the client hears it at its next beat and fetches no more: a job pushed now waits
        wait_for(lambda: "quiet" in row(page, wid).locator(".state").inner_text(), 10)
        raw = Raw(port, {"v": 2})
        assert raw.command('PUSH {"jid": "after-quiet", "jobtype": "add", "args": [1, 2], '
                           '"queue": "page-node"}') == "OK"
        raw.close()
        press(page, wid, "Stop")
        assert audited(serve, "worker.stop", wid)
        process.wait(30)  # the Node worker stops when told to terminate
        stats = serve.request("GET", "/api/v1/queues/page-node/stats")[1]["data"]
        assert stats["waiting"] == 1 and "add" not in out.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_stop_a_python_worker_from_the_page(server, page, tmp_path):
    serve, port = server
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, str(HERE / "py_worker.py"),
                                f"tcp://127.0.0.1:{port}", "page-python", str(out), "1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wid = started_wid(out)
        wait_for(lambda: row(page, wid).count() == 1, 20, message="the worker listed")
        press(page, wid, "Stop")
        process.wait(60)  # the PyPI client disconnects and exits on terminate
        wait_for(lambda: row(page, wid).count() == 0, 10, message="the worker gone")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
