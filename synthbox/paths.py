"""Where things are: bundled resources (read-only) and the data directory (writable)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from synthbox.errors import SynthBoxError


def resource_root() -> Path:
    """The folder holding `templates/`, `static/` and `packaging/systemd/`: the package
    itself when installed from a wheel (pyproject.toml maps them in), the bundle when
    frozen, the top of the checkout when run from source (an editable install)."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle)
    package = Path(__file__).resolve().parent
    if (package / "templates").is_dir():
        return package
    return package.parent


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "synthbox"


class DataDirError(SynthBoxError, OSError):
    """The data directory cannot be created or written; the message names it."""

    exit_code = 2


def data_dir(configured: str = "") -> Path:
    """The data directory, created (mode 0700) if it does not exist yet, and writable."""
    path = (Path(configured).expanduser() if configured else default_data_dir()).absolute()
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        probe = path / f".write-check-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise DataDirError(f"data_dir: cannot write to {path} ({exc.strerror}); choose "
                           "another with --data-dir or SYNTHBOX_DATA_DIR") from None
    return path.resolve()


def self_command(*args: str) -> list[str]:
    """This program with `args`: the one-file binary itself, or python -m synthbox."""
    import sys

    if getattr(sys, "frozen", False):
        return [sys.executable, *args]
    return [sys.executable, "-m", "synthbox", *args]
