"""Instance secrets, generated at first start into the data directory (mode 0600)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ADMIN_TOKEN_FILE = "admin-token"


def read_or_create_secret(data_path: Path, name: str) -> tuple[str, bool]:
    """The secret stored in `data_path/name`, created if missing. (value, created now)."""
    path = data_path / name
    try:
        return path.read_text().strip(), False
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(32)
    # Written whole under a name of its own, then linked into place: the file appears
    # complete or not at all. (Created in place, another instance starting at the same
    # moment could read it empty, and sign every JWT with an empty key.)
    draft = path.with_name(f".{name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    try:
        os.link(draft, path)
    except FileExistsError:  # another process made it first
        return path.read_text().strip(), False
    finally:
        draft.unlink()
    return value, True

