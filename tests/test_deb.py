"""The .deb, as a VPS owner installs it: built by packaging/build-deb.sh from the one-file
binary, checked by lintian, installed, run, upgraded over a running installation with
the records of release 0.1.0, removed and purged with dpkg on this machine.

These tests need root, dpkg, lintian, setpriv and a machine where systemd does not run
(a container, like CI). Without them they are skipped, unless REQUIRE_PACKAGING_TESTS=1
(set by .ci/run), where a missing one fails them. The installed binary is started as its
unit starts it (ExecStart, as User=synthbox).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import subprocess
from pathlib import Path

import pytest

import synthbox
from tests.conftest import SERVE_LOGS, wait_for
from tests.host.test_appliance import BinaryServe
from tests.test_upgrade import (
    FAST_STALL_CONFIG,
    PREVIOUS,
    assert_upgraded,
    restore_previous_records,
    schema_versions,
)

ROOT = Path(__file__).resolve().parent.parent
DATA = Path("/var/lib/synthbox")
CONFIG = Path("/etc/synthbox/synthbox.toml")
UNIT = Path("/lib/systemd/system/synthbox.service")
# Where a package's files and its maintainer scripts' traces can be. Other programs write
# to /var/lib meanwhile: there only its top level is compared (/var/lib/synthbox).
WATCHED = [Path(p) for p in ("/etc", "/usr/bin", "/usr/sbin", "/lib/systemd", "/usr/lib/systemd",
                             "/usr/share/doc", "/usr/share/man/man1", "/var/lib/systemd")]
# Left after purge on purpose: the system user (Debian keeps system accounts) and the
# backups adduser makes of the account files.
ALLOWED_AFTER_PURGE = {Path(f"/etc/{name}-") for name in ("passwd", "group", "shadow", "gshadow")}

missing = [tool for tool in ("dpkg", "dpkg-deb", "lintian", "setpriv", "adduser")
           if shutil.which(tool) is None]
if os.geteuid() != 0:
    missing.append("root")
if Path("/run/systemd/system").exists():  # postinst would start the real service
    missing.append("a machine where systemd does not run (a container)")
if missing and os.environ.get("REQUIRE_PACKAGING_TESTS") != "1":
    pytest.skip(f"the .deb tests need {', '.join(missing)}", allow_module_level=True)


@pytest.fixture(autouse=True)
def tools_present() -> None:
    if missing:
        pytest.fail(f"the .deb tests need {', '.join(missing)} (REQUIRE_PACKAGING_TESTS=1)")


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=300,
                            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if check:
        assert result.returncode == 0, f"{argv}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    return result


def installed_version() -> str | None:
    result = run("dpkg-query", "-W", "-f=${Status} ${Version}", "synthbox", check=False)
    words = result.stdout.split()
    return words[-1] if result.returncode == 0 and "installed" in words[:3] else None


def files_under_watch() -> set[Path]:
    found = set(Path("/var/lib").iterdir())
    for top in WATCHED:
        for folder, dirs, files in os.walk(top):
            found.update(Path(folder) / name for name in dirs + files)
    return found


@pytest.fixture(scope="module")
def deb(release) -> Path:
    """The .deb packaging/release.sh made with packaging/build-deb.sh."""
    return release.deb


@pytest.fixture
def clean_system():
    """No synthbox package before and after (a failed test must not leave one)."""
    if run("dpkg-query", "-W", "synthbox", check=False).returncode == 0:
        run("dpkg", "--purge", "synthbox")
    for path in (DATA, CONFIG.parent):
        if path.exists():
            pytest.fail(f"{path} exists and belongs to no synthbox package (a `synthbox "
                        "install`?); this test installs and purges the package: move it away")
    yield
    if run("dpkg-query", "-W", "synthbox", check=False).returncode == 0:
        run("dpkg", "--purge", "synthbox", check=False)


def newer(deb: Path, where: Path) -> Path:
    """The same package as the next version up, as the next release's .deb arrives."""
    tree = where / "tree"
    where.mkdir()
    run("dpkg-deb", "-R", str(deb), str(tree))
    control = tree / "DEBIAN" / "control"
    version = f"{synthbox.__version__}+1"
    control.write_text(control.read_text().replace(f"Version: {synthbox.__version__}\n",
                                                   f"Version: {version}\n"))
    target = where / f"synthbox_{version}_amd64.deb"
    run("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(target))
    return target


class InstalledService(BinaryServe):
    """The installed binary started as its systemd unit starts it, on a free port."""

    def __init__(self, log_dir: Path):
        super().__init__(Path("/usr/bin/synthbox"), DATA)
        SERVE_LOGS.remove(self.log_path)  # not under /var/lib: purge checks what is left
        self.log_path = log_dir / f"service-{self.port}.log"
        SERVE_LOGS.append(self.log_path)

    def start(self, wait: bool = True) -> InstalledService:
        exec_start = next(line.split("=", 1)[1] for line in UNIT.read_text().splitlines()
                          if line.startswith("ExecStart="))
        user = pwd.getpwnam("synthbox")
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": user.pw_dir, "LANG": "C.UTF-8"}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                ["setpriv", "--reuid=synthbox", "--regid=synthbox", "--clear-groups",
                 *exec_start.split(), "--port", str(self.port)],
                env=env, cwd="/", stdout=log, stderr=subprocess.STDOUT)
        if wait:
            wait_for(self.healthy, 60, message=f"the installed service\n{self.output()}")
        return self


def test_lintian_finds_no_error(deb):
    result = run("lintian", "--fail-on", "error", "--suppress-tags",
                 "spelling-error-in-binary", str(deb), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not [line for line in result.stdout.splitlines() if line.startswith("E:")]


def test_the_deb_installs_runs_upgrades_removes_and_purges(deb, clean_system, tmp_path):
    before = files_under_watch()
    run("dpkg", "-i", str(deb))
    assert installed_version() == synthbox.__version__

    binary = Path("/usr/bin/synthbox")
    assert stat.S_IMODE(binary.stat().st_mode) == 0o755
    version = run(str(binary), "version").stdout
    assert version.startswith(f"synthbox {synthbox.__version__} (single binary")
    unit = UNIT.read_text().splitlines()
    assert "ExecStart=/usr/bin/synthbox serve --config /etc/synthbox/synthbox.toml" in unit
    for line in ("User=synthbox", "ProtectSystem=strict", "ReadWritePaths=/var/lib/synthbox",
                 "NoNewPrivileges=yes", "CapabilityBoundingSet=", "Type=notify"):
        assert line in unit, line
    assert "/etc/synthbox/synthbox.toml" in run(
        "dpkg-query", "-W", "-f=${Conffiles}", "synthbox").stdout
    user = pwd.getpwnam("synthbox")
    assert user.pw_uid < 1000 and user.pw_shell == "/usr/sbin/nologin"
    assert user.pw_dir == str(DATA)
    for path, mode, group in ((DATA, 0o750, "synthbox"), (CONFIG.parent, 0o750, "synthbox"),
                              (CONFIG, 0o640, "synthbox")):
        info = path.stat()
        assert stat.S_IMODE(info.st_mode) == mode, path
        assert info.st_gid == user.pw_gid, (path, group)
    assert (DATA.stat().st_uid, CONFIG.stat().st_uid) == (user.pw_uid, 0)
    assert 'data_dir = "/var/lib/synthbox"' in CONFIG.read_text()

    # The records of release 0.1.0 (as `synthbox install` left them in /var/lib/synthbox),
    # and a setting the operator changed: both must live through the upgrade.
    restore_previous_records(DATA)
    shutil.chown(DATA / "synthbox.db", "synthbox", "synthbox")
    operator_config = CONFIG.read_text() + "\n" + FAST_STALL_CONFIG
    CONFIG.write_text(operator_config)

    server = InstalledService(tmp_path).start()
    try:
        assert_upgraded(server)
        status, reply = server.request("POST", "/api/v1/queues/diagnostics/jobs",
                                       {"name": "sleep", "data": {"seconds": 0.5},
                                        "opts": {"jobId": "during-upgrade"}})
        assert status == 201, reply

        # A newer .deb over the running installation.
        upgrade = newer(deb, tmp_path / "newer")
        run("dpkg", "-i", str(upgrade))
        assert installed_version() == f"{synthbox.__version__}+1"
        assert CONFIG.read_text() == operator_config
        assert not list(CONFIG.parent.glob("*.dpkg-*"))
        assert (DATA / "synthbox.db").exists()
        server.signal(signal.SIGTERM)
        assert server.process.wait(60) == 0, server.output()
        server.start()  # what postinst's restart does under systemd
        path = "/api/v1/queues/diagnostics/jobs/during-upgrade"
        wait_for(lambda: server.request("GET", path)[1]["data"]["state"] == "completed",
                 message="a job added before the upgrade")
        status, stats = server.request("GET", "/api/v1/queues/diagnostics/stats")
        assert stats["data"]["total"] == len(PREVIOUS) + 1
        versions = schema_versions(DATA)
        assert versions == sorted(set(versions)), "a migration ran twice"
    finally:
        server.stop()

    run("dpkg", "-r", "synthbox")
    assert not binary.exists() and not UNIT.exists()
    assert (DATA / "synthbox.db").exists(), "removing the package deleted the data"
    assert CONFIG.read_text() == operator_config, "removing the package changed the settings"

    run("dpkg", "--purge", "synthbox")
    assert not DATA.exists() and not CONFIG.parent.exists()
    assert "synthbox" not in run("dpkg-statoverride", "--list").stdout
    left = sorted(str(path) for path in files_under_watch() - before
                  if path not in ALLOWED_AFTER_PURGE)
    assert not left, f"left behind after purge: {left}"
