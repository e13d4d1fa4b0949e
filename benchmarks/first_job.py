"""Time to first job: from a fresh clone to a job completed through the API, following
only the README, in a container-like setting (a new clone, a new virtual environment, a
new home and data directory).

Usage: python benchmarks/first_job.py [repository] [--cold]
`repository` defaults to this checkout (its committed HEAD is cloned). The README's own
commands are run, read from the clone: its first command (install and start), then its
first-job commands (curl) until the job reads completed. With --cold, pip uses no cache
(every dependency is downloaded, as on a new machine). Prints each step's time and the
total.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

README_PORT = 3003


def free_port() -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", README_PORT))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(repository: str, cold: bool) -> None:
    work = Path(tempfile.mkdtemp(prefix="synthbox-first-job-"))
    home = work / "home"
    home.mkdir()
    clone = work / "synthbox"
    port = free_port()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8"}
    if port != README_PORT:
        env["SYNTHBOX_PORT"] = str(port)
    if cold:
        env["PIP_NO_CACHE_DIR"] = "1"
    steps: list[tuple[str, float]] = []
    started = last = time.monotonic()

    def step(name: str) -> None:
        nonlocal last
        now = time.monotonic()
        steps.append((name, now - last))
        last = now

    def sh(command: str) -> str:
        return subprocess.run(["bash", "-ec", command], cwd=clone, env=env, check=True,
                              stdout=subprocess.PIPE, text=True).stdout

    subprocess.run(["git", "clone", "--quiet", repository, str(clone)], check=True)
    step("git clone")
    blocks = re.findall(r"```sh\n(.*?)```", (clone / "README.md").read_text(), re.DOTALL)
    install = blocks[0].strip()
    first_job = next(block for block in blocks if "admin-token" in block)
    first_job = first_job.replace(str(README_PORT), str(port)).strip()
    add, tail = first_job.rsplit("\ncurl", 1)  # set TOKEN and add; read it
    read = first_job.splitlines()[0] + "\ncurl" + tail
    sh("python3 -m venv .venv")
    env["PATH"] = f"{clone / '.venv' / 'bin'}:{env['PATH']}"  # . .venv/bin/activate
    env["VIRTUAL_ENV"] = str(clone / ".venv")
    step("python3 -m venv .venv")
    server = subprocess.Popen(["bash", "-ec", install.replace("pip install", "pip install -q")],
                              cwd=clone, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        token = home / ".local" / "share" / "synthbox" / "admin-token"
        while True:
            assert server.poll() is None, "the README's first command stopped"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                if token.exists():
                    break
            except OSError:
                time.sleep(0.02)
        step(install + " (until /healthz)")
        sh(add)
        while '"state":"completed"' not in sh(read).replace(" ", ""):
            time.sleep(0.01)
        step("the README's curl commands, until completed")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    total = time.monotonic() - started
    for name, seconds in steps:
        print(f"{name:<60} {seconds:6.2f} s")
    print(f"{'time to first job' + (' (no pip cache)' if cold else ''):<60} {total:6.2f} s")


if __name__ == "__main__":
    args = [arg for arg in sys.argv[1:] if arg != "--cold"]
    main(args[0] if args else str(Path(__file__).resolve().parent.parent), "--cold" in sys.argv)
