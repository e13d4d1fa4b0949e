"""A `synthbox serve` with the Faktory listener on, a raw protocol client, and the test
workers on the real clients (py_worker.py, node_worker.js)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import Serve, free_port, wait_for

HERE = Path(__file__).resolve().parent


def faktory_serve(tmp_path: Path, config: str = "", password: str = "",
                  env: dict[str, str] | None = None) -> tuple[Serve, int]:
    """A started serve whose Faktory listener is on a free loopback port."""
    port = free_port()
    settings = {"SYNTHBOX_FAKTORY_ADDRESS": f"127.0.0.1:{port}", **(env or {})}
    if password:
        settings["SYNTHBOX_FAKTORY_PASSWORD"] = password
    if config:
        path = tmp_path / "synthbox.toml"
        path.write_text(config)
        settings["SYNTHBOX_CONFIG"] = str(path)
    serve = Serve(tmp_path / "data", settings).start()
    return serve, port


class Raw:
    """Faktory's protocol by hand: send a line, read one reply."""

    def __init__(self, port: int, hello: dict[str, Any] | None = None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.greeting = self.reply()
        if hello is not None:
            assert self.command("HELLO " + json.dumps(hello)) == "OK"

    def send(self, line: str | bytes) -> None:
        data = line if isinstance(line, bytes) else line.encode()
        self.sock.sendall(data + b"\r\n")

    def reply(self) -> Any:
        line = self.file.readline()
        if not line:
            raise ConnectionError("closed")
        line = line.rstrip(b"\r\n")
        kind, rest = line[:1], line[1:].decode()
        if kind == b"+":
            return rest
        if kind == b"-":
            return ("error", rest)
        if kind == b"$":
            if int(rest) < 0:
                return None
            data = self.file.read(int(rest) + 2)[:-2]
            return json.loads(data)
        raise AssertionError(f"not a reply: {line[:100]!r}")

    def command(self, line: str | bytes) -> Any:
        self.send(line)
        return self.reply()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def wait_for_state(serve: Serve, queue: str, state: str, count: int,
                   timeout: float = 60) -> dict[str, Any]:
    def stats() -> dict[str, Any] | None:
        status, body = serve.request("GET", f"/api/v1/queues/{queue}/stats")
        if status != 200:
            return None
        found = body["data"]
        return found if found.get(state, 0) >= count else None

    return wait_for(stats, timeout, interval=0.2, message=f"{count} {state} in {queue}")


def jobs_of(serve: Serve, queue: str, state: str | None = None) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    before = None
    while True:
        query = f"?limit=1000{'&state=' + state if state else ''}" \
                f"{'&before=' + before if before else ''}"
        status, body = serve.request("GET", f"/api/v1/queues/{queue}/jobs{query}")
        assert status == 200, body
        jobs += body["data"]["jobs"]
        before = body["data"]["nextCursor"]
        if not before:
            return jobs


def settle(seconds: float) -> None:
    time.sleep(seconds)


def node(node_modules: Path, script: str, *args: str, **popen: Any) -> subprocess.Popen:
    """A script of this folder run by Node with the npm client `faktory-worker`."""
    env = {**os.environ, "NODE_PATH": str(node_modules)}
    return subprocess.Popen(["node", str(HERE / script), *args], env=env, **popen)


def _started(process: subprocess.Popen, out: Path) -> subprocess.Popen:
    wait_for(lambda: out.exists() and "started" in out.read_text(), 20, message="worker")
    return process


def start_python_worker(url: str, queues: str, out: Path,
                        concurrency: int = 4) -> subprocess.Popen:
    """py_worker.py (the PyPI client) on `queues`, once it says it started."""
    return _started(subprocess.Popen([sys.executable, str(HERE / "py_worker.py"), url,
                                      queues, str(out), str(concurrency)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                    out)


def start_node_worker(node_modules: Path, url: str, queues: str,
                      out: Path) -> subprocess.Popen:
    """node_worker.js (the npm client) on `queues`, once it says it started."""
    return _started(node(node_modules, "node_worker.js", url, queues, str(out),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out)


def lines(out: Path, kind: str) -> list[list]:
    """The args of each job of type `kind` a test worker ran, from its output file."""
    return [json.loads(line.split(" ", 1)[1]) for line in out.read_text().splitlines()
            if line.split(" ", 1)[0] == kind]


def stop(process: subprocess.Popen) -> None:
    """SIGTERM (both clients stop gracefully on it), then SIGKILL after 30 s."""
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
