"""The appliance: the one-file binary, first run, the systemd unit and `install`.

The binary is built once per test session by packaging/release.sh (the `binary` fixture
in conftest.py), so a template, static file or import missing from the
bundle fails here, not for a user.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

import synthbox
from synthbox.config import load_settings
from tests.conftest import ROOT, Serve, free_port, run_cli, wait_for

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@pytest.fixture
def open_dir():
    """A folder other users can reach (pytest's own tmp folders are root-only)."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="synthbox-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


class BinaryServe(Serve):
    """The built binary, run like `synthbox serve`, optionally as another user and cwd."""

    def __init__(self, binary: Path, data_dir: Path, prefix: list[str] | None = None,
                 cwd: Path | None = None, env: dict[str, str] | None = None):
        super().__init__(data_dir, env)
        self.binary = binary
        self.prefix = prefix or []
        self.cwd = cwd

    def start(self, wait: bool = True) -> BinaryServe:
        env = {"PATH": os.environ["PATH"], "HOME": str(self.data_dir.parent),
               "SYNTHBOX_DATA_DIR": str(self.data_dir), "SYNTHBOX_PORT": str(self.port),
               **self.env}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([*self.prefix, str(self.binary)], env=env,
                                            cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT)
        if wait:
            wait_for(self.healthy, 60, message=f"binary on {self.port}\n{self.output()}")
        return self


def test_binary_serves_runs_jobs_pages_and_stops_cleanly(binary, tmp_path):
    size_mb = binary.stat().st_size / 1e6
    assert size_mb <= 25, f"the binary grew to {size_mb:.1f} MB (a release allows 25 MB)"
    version = subprocess.run([str(binary), "version"], capture_output=True, text=True)
    assert version.returncode == 0 and "single binary" in version.stdout

    server = BinaryServe(binary, tmp_path / "data").start()
    try:
        status, reply = server.request("POST", "/api/v1/queues/diagnostics/jobs",
                                       {"name": "sleep", "data": {"seconds": 0.1}})
        assert status == 201, reply
        path = f"/api/v1/queues/diagnostics/jobs/{reply['data']['id']}"
        wait_for(lambda: server.request("GET", path)[1]["data"]["state"] == "completed",
                 message="a job run by the binary")
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/login") as page:
            html = page.read().decode()
        assert "<h1>Sign in</h1>" in html and "/static/synthbox.css" in html
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/static/synthbox.css") as css:
            assert b"--accent" in css.read()
        doctor = subprocess.run([str(binary), "doctor", "--data-dir", str(tmp_path / "d2")],
                                capture_output=True, text=True, timeout=60)
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert "single binary" in doctor.stdout and "free disk:" in doctor.stdout
    finally:
        server.signal(signal.SIGTERM)
        assert server.process.wait(30) == 0, server.output()


def test_binary_runs_from_a_read_only_cwd_and_a_path_with_spaces(binary, open_dir):
    tmp_path = open_dir
    home = tmp_path / "dir with spaces"
    home.mkdir()
    copy = home / "synthbox"
    shutil.copy2(binary, copy)
    readonly = tmp_path / "read only"
    readonly.mkdir()
    readonly.chmod(0o555)
    data = tmp_path / "nobody data"
    data.mkdir()
    shutil.chown(data, "nobody", "nogroup")
    server = BinaryServe(copy, data, prefix=NOBODY, cwd=readonly).start()
    try:
        assert server.request("GET", "/readyz", token=None)[0] == 200
        assert not any(readonly.iterdir()), "nothing may be written to the current directory"
    finally:
        server.signal(signal.SIGTERM)
        assert server.process.wait(30) == 0, server.output()


def test_a_data_directory_it_cannot_write_is_named(binary, open_dir):
    data = open_dir / "locked"
    data.mkdir(mode=0o755)
    result = subprocess.run([*NOBODY, str(binary), "serve", "--data-dir", str(data), "--port",
                             str(free_port())], capture_output=True, text=True, timeout=60,
                            cwd="/", env={"PATH": os.environ["PATH"], "HOME": str(open_dir)})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"Error: data_dir: cannot write to {data} (Permission denied); choose "
                     "another with --data-dir or SYNTHBOX_DATA_DIR"]


def test_a_busy_port_gives_one_clear_line(serve_factory, tmp_path):
    first = serve_factory({}, tmp_path / "data")
    result = run_cli("serve", "--data-dir", str(tmp_path / "other"), "--port", str(first.port))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: port {first.port} on 127.0.0.1 is already in use (is SynthBox already "
        "running?); choose another with --port"]


def test_first_run_with_nothing_configured(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNTHBOX_", "XDG_"))}
    env.update({"HOME": str(home), "SYNTHBOX_PORT": str(port)})
    process = subprocess.Popen([sys.executable, "-m", "synthbox"], env=env, cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    data = home / ".local" / "share" / "synthbox"
    try:
        wait_for(lambda: (data / "synthbox.log").exists(), 30, message="the start log")
        block = (data / "synthbox.log").read_text()
        assert f"URL:        http://127.0.0.1:{port}/" in block
        assert f"Data:       {data}" in block
        assert "Records:    SQLite" in block and "Transport:  SQLite" in block
        assert f"API token:  in {data / 'admin-token'}" in block
        token = (data / "admin-token")
        assert stat.S_IMODE(token.stat().st_mode) == 0o600
        assert token.read_text().strip() not in block
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0
    assert f"SynthBox {synthbox.__version__} is running" in err


def _notify_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(30)
    return sock


def _receive(sock: socket.socket, wanted: str, deadline: float) -> list[str]:
    seen = []
    while time.monotonic() < deadline:
        message = sock.recv(4096).decode()
        seen.append(message)
        if wanted in message.split("\n"):
            return seen
    raise AssertionError(f"{wanted} not received; got {seen}")


def test_systemd_notify_ready_watchdog_and_stopping(tmp_path):
    sock = _notify_socket(tmp_path / "notify.sock")
    server = Serve(tmp_path / "data", {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
                                       "WATCHDOG_USEC": "400000"})
    server.start(wait=False)
    try:
        _receive(sock, "READY=1", time.monotonic() + 60)
        # READY means serving: the very next request is answered.
        assert server.healthy()
        _receive(sock, "WATCHDOG=1", time.monotonic() + 10)
        server.signal(signal.SIGTERM)
        _receive(sock, "STOPPING=1", time.monotonic() + 10)
        assert server.process.wait(30) == 0
    finally:
        sock.close()
        if server.process.poll() is None:
            server.process.kill()


def test_install_writes_the_service_tree(tmp_path):
    root = tmp_path / "target root"
    fake_binary = tmp_path / "synthbox-binary"
    fake_binary.write_bytes(b"#!/bin/sh\nexit 0\n")
    result = run_cli("install", "--root", str(root), "--binary", str(fake_binary))
    assert result.returncode == 0, result.stderr

    def mode(relative: str) -> int:
        return stat.S_IMODE((root / relative).stat().st_mode)

    assert (root / "usr/local/bin/synthbox").read_bytes() == fake_binary.read_bytes()
    assert mode("usr/local/bin/synthbox") == 0o755
    assert mode("var/lib/synthbox") == 0o750
    assert mode("etc/synthbox") == 0o750
    assert mode("etc/synthbox/synthbox.toml") == 0o640
    assert mode("etc/systemd/system/synthbox.service") == 0o644

    config_text = (root / "etc/synthbox/synthbox.toml").read_text()
    tomllib.loads(config_text)
    from synthbox.config import SETTINGS

    for setting in SETTINGS:
        assert setting.help in config_text, f"{setting.name} is not explained in the config"
    settings = load_settings(env={}, config_path=str(root / "etc/synthbox/synthbox.toml"))
    assert settings.data_dir == "/var/lib/synthbox" and settings.host == "127.0.0.1"

    unit = (root / "etc/systemd/system/synthbox.service").read_text()
    for line in ("Type=notify", "User=synthbox", "Group=synthbox", "Restart=on-failure",
                 "ReadWritePaths=/var/lib/synthbox", "ProtectSystem=strict", "ProtectHome=yes",
                 "PrivateTmp=yes", "PrivateDevices=yes", "NoNewPrivileges=yes",
                 "CapabilityBoundingSet=",
                 "ExecStart=/usr/local/bin/synthbox serve --config /etc/synthbox/synthbox.toml"):
        assert line in unit.splitlines(), line
    stop_seconds = int(next(x for x in unit.splitlines() if x.startswith("TimeoutStopSec="))
                       .split("=")[1])
    assert stop_seconds > settings.shutdown_timeout + 5

    # a second install keeps the operator's config
    operator_config = 'port = 4000\ndata_dir = "/var/lib/synthbox"\n'
    (root / "etc/synthbox/synthbox.toml").write_text(operator_config)
    assert run_cli("install", "--root", str(root), "--binary", str(fake_binary)).returncode == 0
    assert "port = 4000" in (root / "etc/synthbox/synthbox.toml").read_text()

    kept = run_cli("uninstall", "--root", str(root))
    assert kept.returncode == 0
    assert not (root / "usr/local/bin/synthbox").exists()
    assert not (root / "etc/systemd/system/synthbox.service").exists()
    assert (root / "var/lib/synthbox").is_dir() and (root / "etc/synthbox").is_dir()
    run_cli("install", "--root", str(root), "--binary", str(fake_binary))
    purged = run_cli("uninstall", "--root", str(root), "--purge")
    assert purged.returncode == 0
    assert not (root / "var/lib/synthbox").exists() and not (root / "etc/synthbox").exists()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_unit_passes_systemd_analyze_verify(tmp_path):
    unit = (ROOT / "packaging/systemd/synthbox.service").read_text()
    # verify checks that ExecStart exists: point it at a real executable, nothing else changes
    stand_in = tmp_path / "synthbox"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    checked = tmp_path / "synthbox.service"
    checked.write_text(unit.replace("/usr/local/bin/synthbox ", f"{stand_in} "))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(checked)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "synthbox.service" not in result.stderr, result.stderr


def test_install_needs_a_binary_when_run_from_source(tmp_path):
    result = run_cli("install", "--root", str(tmp_path / "r"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: --binary: needed when not run from the built binary (packaging/build.sh "
        "builds dist/synthbox)"]


def test_startup_benchmark_times_the_binary(binary):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "startup.py"),
                             str(binary), "1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith("cold start to /healthz: median ")
    assert lines[2].startswith("idle RSS: server median ") and "launcher" in lines[2]
