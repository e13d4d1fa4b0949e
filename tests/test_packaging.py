"""What users install: the wheel and the sdist, built as a release builds them and
installed (never editable) into a fresh virtual environment outside the checkout.

A template, static file or module left out of the distributions fails here, not for a
user: the installed `synthbox` serves every UI page and static file, and runs jobs.
"""

from __future__ import annotations

import hashlib
import html
import http.cookiejar
import os
import re
import subprocess
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import pytest

import synthbox
from tests.conftest import wait_for
from tests.host.test_appliance import BinaryServe
from tests.test_upgrade import (
    FAST_STALL_CONFIG,
    PREVIOUS,
    assert_upgraded,
    restore_previous_records,
    schema_versions,
)

ROOT = Path(__file__).resolve().parent.parent
# Everything the code reads at run time, as it sits in the checkout and in the wheel.
RESOURCES = {"templates": "synthbox/templates", "static": "synthbox/static",
             "packaging/systemd": "synthbox/packaging/systemd"}
UI_PAGES = ["/", "/queues/diagnostics", "/emails", "/emails/compose", "/emails/templates",
            "/emails/suppressions", "/projects", "/projects/shipping", "/users", "/tokens",
            "/audit", "/alerts", "/settings"]
PASSWORD = "a packaging test password"


def shipped_files() -> dict[str, Path]:
    """Each file a distribution must carry: its path inside the wheel, and its source."""
    wanted = {}
    for source in sorted((ROOT / "synthbox").rglob("*.py")):
        wanted[source.relative_to(ROOT).as_posix()] = source
    for folder, target in RESOURCES.items():
        for source in sorted((ROOT / folder).rglob("*")):
            if source.is_file() and "__pycache__" not in source.parts:
                wanted[f"{target}/{source.relative_to(ROOT / folder).as_posix()}"] = source
    return wanted


@pytest.fixture(scope="session")
def distributions(release) -> dict[str, Path]:
    """The sdist, and the wheel built from it, as packaging/release.sh makes them."""
    return {"wheel": release.wheel, "sdist": release.sdist}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")
           and not k.startswith("SYNTHBOX_")}
    return {**env, **extra}


def fresh_venv(where: Path, *requirements: str) -> Path:
    """A new virtual environment outside the checkout with `requirements` installed the
    way a user installs them (pip install, never -e)."""
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip(venv, "install", *requirements)
    return venv


def pip(venv: Path, *args: str) -> None:
    result = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "-q", *args],
                            cwd=venv.parent, env=clean_env(), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def installed(venv: Path, *args: str, stdin: str | None = None,
              **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / "synthbox"), *args], cwd=venv.parent,
                          env=clean_env(**env), input=stdin, capture_output=True, text=True,
                          timeout=120)


class Browser:
    """Plain HTTP with a cookie jar, as a browser without JavaScript signs in."""

    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with self.opener.open(self.base + path, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def sign_in(self, name: str, password: str) -> None:
        status, page = self.get("/login")
        assert status == 200, page[:500]
        csrf = re.search(rb'name="csrf_token" value="([^"]+)"', page)
        assert csrf, page[:2000]
        form = urllib.parse.urlencode({"name": name, "password": password,
                                       "csrf_token": csrf.group(1).decode()}).encode()
        request = urllib.request.Request(self.base + "/login", data=form,
                                         headers={"Origin": self.base})
        with self.opener.open(request, timeout=30) as response:
            assert response.status == 200 and response.url == self.base + "/", response.url

    def crawl(self, start: list[str], limit: int = 200) -> dict[str, int]:
        """Every page and file of this site linked from `start`, with its status."""
        seen: dict[str, int] = {}
        todo = list(start)
        while todo and len(seen) < limit:
            path = todo.pop(0)
            if path in seen:
                continue
            status, body = self.get(path)
            seen[path] = status
            for link in re.findall(rb'(?:href|src)="(/[^"#]*)"', body):
                target = html.unescape(link.decode())
                if not target.startswith(("//", "/api/")) and target not in seen:
                    todo.append(target)
        return seen


def check_installation(venv: Path, server: BinaryServe) -> None:
    """The installed package is the one running; every page and static file answers."""
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import synthbox, sys; print(synthbox.__file__)"],
                           cwd=venv.parent, env=clean_env(), capture_output=True, text=True)
    assert where.stdout.strip().startswith(str(venv / "lib")), where
    assert not where.stdout.startswith(str(ROOT))

    created = installed(venv, "users", "create", "admin", "--role", "admin",
                        stdin=PASSWORD + "\n" + PASSWORD + "\n",
                        SYNTHBOX_DATA_DIR=str(server.data_dir))
    assert created.returncode == 0, created.stderr
    status, reply = server.request("POST", "/api/v1/projects",
                                   {"slug": "shipping", "name": "Shipping"})
    assert status == 201, reply

    browser = Browser(server.port)
    browser.sign_in("admin", PASSWORD)
    visited = browser.crawl(UI_PAGES)
    broken = {path: status for path, status in visited.items() if status != 200}
    assert not broken, broken
    assert any(path.startswith("/jobs/") for path in visited), sorted(visited)
    for source in sorted((ROOT / "static").rglob("*")):
        if source.is_file():
            path = "/static/" + source.relative_to(ROOT / "static").as_posix()
            assert browser.get(path) == (200, source.read_bytes()), path

    # `synthbox install` reads the systemd unit from the package too.
    stand_in = venv.parent / "binary"
    stand_in.write_bytes(b"#!/bin/sh\n")
    written = installed(venv, "install", "--root", str(venv.parent / "root"), "--binary",
                        str(stand_in))
    assert written.returncode == 0, written.stderr
    unit = (venv.parent / "root" / "etc/systemd/system/synthbox.service").read_text()
    assert unit == (ROOT / "packaging/systemd/synthbox.service").read_text()


def test_one_command_makes_every_artifact_with_sums_and_sizes(release):
    artifacts = [release.wheel, release.sdist, release.binary, release.deb]
    listed = {}
    for line in release.sums.read_text().splitlines():
        digest, name = line.split()
        listed[name] = digest
    assert sorted(listed) == sorted(path.name for path in artifacts)
    for path in artifacts:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == listed[path.name], path.name
        size = path.stat().st_size
        assert re.search(rf"^  {re.escape(path.name)} +{size} bytes +{size / 1e6:.1f} MB$",
                         release.printed, re.MULTILINE), release.printed
    header = release.binary.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 0x3E
    assert os.access(release.binary, os.X_OK)
    assert release.binary.stat().st_size <= 25_000_000


def test_the_wheel_and_sdist_carry_every_file_the_code_reads(distributions):
    wanted = shipped_files()
    assert any(name.startswith("synthbox/templates/ui/") for name in wanted)
    with zipfile.ZipFile(distributions["wheel"]) as wheel:
        in_wheel = set(wheel.namelist())
        missing = sorted(set(wanted) - in_wheel)
        assert not missing, f"not in the wheel (pyproject.toml [tool.setuptools]): {missing}"
        for name, source in wanted.items():
            assert wheel.read(name) == source.read_bytes(), name
    prefix = f"synthbox-{synthbox.__version__}/"
    with tarfile.open(distributions["sdist"]) as sdist:
        in_sdist = {member.name.removeprefix(prefix) for member in sdist.getmembers()}
    missing = sorted(source.relative_to(ROOT).as_posix() for source in wanted.values()
                     if source.relative_to(ROOT).as_posix() not in in_sdist)
    assert not missing, f"not in the sdist: {missing}"


def newer_wheel(sdist: Path, where: Path) -> Path:
    """The same code as the next version up, as a user's next upgrade brings it."""
    with tarfile.open(sdist) as archive:
        archive.extractall(where, filter="data")
    source = where / sdist.name.removesuffix(".tar.gz")
    init = source / "synthbox" / "__init__.py"
    init.write_text(init.read_text().replace(f'"{synthbox.__version__}"',
                                             f'"{synthbox.__version__}.post1"'))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                             "--wheel-dir", str(where), str(source)], cwd=where,
                            env=clean_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return next(where.glob("synthbox-*.post1-*.whl"))


def test_the_installed_wheel_serves_every_page_runs_jobs_and_upgrades(distributions,
                                                                       tmp_path):
    venv = fresh_venv(tmp_path, str(distributions["wheel"]))
    data = tmp_path / "data"
    restore_previous_records(data)  # this install upgrades a 0.1.0 data directory
    config = tmp_path / "synthbox.toml"
    config.write_text(FAST_STALL_CONFIG)
    server = BinaryServe(venv / "bin" / "synthbox", data, cwd=tmp_path,
                         env={"SYNTHBOX_CONFIG": str(config)}).start()
    try:
        assert_upgraded(server)
        check_installation(venv, server)

        # A newer wheel installed over the running installation, then a restart.
        newer = newer_wheel(distributions["sdist"], tmp_path / "newer")
        pip(venv, "install", str(newer))
        status, reply = server.request("POST", "/api/v1/queues/diagnostics/jobs",
                                       {"name": "noop", "opts": {"jobId": "during"}})
        assert status == 201, reply
        assert server.stop() == 0, server.output()
        server.start()
        status, health = server.request("GET", "/healthz", token=None)
        assert health["version"] == f"{synthbox.__version__}.post1"
        assert schema_versions(data) == sorted(set(schema_versions(data)))
        path = "/api/v1/queues/diagnostics/jobs/during"
        wait_for(lambda: server.request("GET", path)[1]["data"]["state"] == "completed",
                 message="a job added during the upgrade")
        status, stats = server.request("GET", "/api/v1/queues/diagnostics/stats")
        assert stats["data"]["total"] == len(PREVIOUS) + 1
    finally:
        server.stop()


def test_the_installed_sdist_serves_every_page_and_runs_a_job(distributions, tmp_path):
    venv = fresh_venv(tmp_path, str(distributions["sdist"]))
    server = BinaryServe(venv / "bin" / "synthbox", tmp_path / "data", cwd=tmp_path).start()
    try:
        status, reply = server.request("POST", "/api/v1/queues/diagnostics/jobs",
                                       {"name": "noop"})
        assert status == 201, reply
        path = f"/api/v1/queues/diagnostics/jobs/{reply['data']['id']}"
        wait_for(lambda: server.request("GET", path)[1]["data"]["state"] == "completed",
                 message="a job run by the installed sdist")
        check_installation(venv, server)
    finally:
        server.stop()
