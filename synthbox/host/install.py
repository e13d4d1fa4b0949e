"""`synthbox install` / `uninstall`: a downloaded binary becomes a systemd service.

The tree it writes (under `root`, `/` for a real install):

    usr/local/bin/synthbox                   the binary, 0755
    var/lib/synthbox/                        data, 0750, owned by the synthbox user
    etc/synthbox/synthbox.toml               config, every setting commented, 0640 root:synthbox
    etc/systemd/system/synthbox.service      the unit from packaging/systemd, 0644

With a root other than `/` nothing outside it is touched: no user is created and
systemd is not called (this is how the tests run it).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from synthbox.config import SETTINGS
from synthbox.paths import resource_root

SERVICE_USER = "synthbox"
BINARY = Path("usr/local/bin/synthbox")
DATA = Path("var/lib/synthbox")
CONFIG = Path("etc/synthbox/synthbox.toml")
UNIT = Path("etc/systemd/system/synthbox.service")


class InstallError(RuntimeError):
    """The install cannot go on; the message says why and what to do."""


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def render_config(data_dir: str) -> str:
    """synthbox.toml with every setting: its help as a comment, its default commented out."""
    lines = ["# SynthBox configuration, read by the service at start.",
             "# Precedence: defaults < this file < environment variables < command-line flags.",
             "# Uncomment a line to change a setting.", ""]
    for setting in SETTINGS:
        lines.append(f"# {setting.help}")
        lines.append(f"# Environment: {', '.join(setting.env_names)}")
        if setting.name == "data_dir":
            lines.append(f"data_dir = {_toml_value(data_dir)}")
        elif setting.name == "queues":
            lines += ["# [queues.diagnostics]", "# concurrency = 8"]
        else:
            lines.append(f"# {setting.name} = {_toml_value(setting.default)}")
        lines.append("")
    return "\n".join(lines)


def unit_text(cluster: bool = False) -> str:
    """The unit; with `cluster`, it runs the supervisor (`synthbox start`, instances from
    the `[cluster]` section) instead of one `serve`."""
    text = (resource_root() / "packaging" / "systemd" / "synthbox.service").read_text()
    if cluster:
        text = text.replace("/usr/local/bin/synthbox serve ", "/usr/local/bin/synthbox start ")
    return text


def _owner_ids(user: str) -> tuple[int, int] | None:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def _write(path: Path, text: str, mode: int, owner: tuple[int, int] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    if owner is not None:
        os.chown(path, *owner)


def _ensure_user() -> tuple[int, int]:
    if _owner_ids(SERVICE_USER) is None:
        subprocess.run(["useradd", "--system", "--user-group", "--home-dir", "/var/lib/synthbox",
                        "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
                       check=True)
    ids = _owner_ids(SERVICE_USER)
    assert ids is not None
    return ids


def install(root: Path, binary: Path, overwrite_config: bool = False,
            cluster: bool = False) -> list[str]:
    """Write the service tree under `root`; on `/` also create the user and start the unit.
    Returns what was done, one line each."""
    real = root.resolve() == Path("/")
    if real and os.geteuid() != 0:
        raise InstallError("install: run it as root (sudo synthbox install)")
    if not binary.is_file():
        raise InstallError(f"install: {binary} is not a file")
    done = []
    owner = _ensure_user() if real else _owner_ids(SERVICE_USER)
    root_group = None
    if owner is not None:
        root_group = (0, owner[1])

    target = root / BINARY
    target.parent.mkdir(parents=True, exist_ok=True)
    if binary.resolve() != target.resolve():
        shutil.copy2(binary, target)
    target.chmod(0o755)
    done.append(f"binary   {target}")

    data = root / DATA
    data.mkdir(parents=True, exist_ok=True)
    data.chmod(0o750)
    if owner is not None:
        os.chown(data, *owner)
    whose = f"owner {SERVICE_USER}" if owner is not None else f"for user {SERVICE_USER}"
    done.append(f"data     {data} (mode 0750, {whose})")

    config = root / CONFIG
    if config.exists() and not overwrite_config:
        done.append(f"config   {config} (kept as it was)")
    else:
        _write(config, render_config("/" + str(DATA)), 0o640, root_group)
        config.parent.chmod(0o750)
        if root_group is not None:
            os.chown(config.parent, *root_group)
        done.append(f"config   {config} (mode 0640, readable by {SERVICE_USER})")

    unit = root / UNIT
    _write(unit, unit_text(cluster), 0o644)
    done.append(f"unit     {unit}")

    if real:
        subprocess.run(["systemctl", "daemon-reload"], check=True)
        subprocess.run(["systemctl", "enable", "--now", "synthbox.service"], check=True)
        done.append("service  synthbox.service enabled and started")
    return done


def wait_until_healthy(port: int, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return True
        except OSError:
            time.sleep(0.5)
    return False


def uninstall(root: Path, purge: bool = False) -> list[str]:
    """Remove the service and the binary; the data and config too with `purge`."""
    real = root.resolve() == Path("/")
    if real and os.geteuid() != 0:
        raise InstallError("uninstall: run it as root (sudo synthbox uninstall)")
    done = []
    if real:
        subprocess.run(["systemctl", "disable", "--now", "synthbox.service"], check=False)
    for path in (root / UNIT, root / BINARY):
        if path.exists():
            path.unlink()
            done.append(f"removed  {path}")
    if real:
        subprocess.run(["systemctl", "daemon-reload"], check=False)
    if purge:
        for path in (root / DATA, (root / CONFIG).parent):
            if path.exists():
                shutil.rmtree(path)
                done.append(f"removed  {path}")
        if real and _owner_ids(SERVICE_USER) is not None:
            subprocess.run(["userdel", SERVICE_USER], check=False)
            done.append(f"removed  user {SERVICE_USER}")
    else:
        done.append(f"kept     {root / DATA} and {(root / CONFIG).parent} (--purge removes them)")
    return done

