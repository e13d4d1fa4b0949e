"""The one-time setup link: while no user exists, whoever holds it may create the first
admin. It lives in the data directory (mode 0600) and is gone once a user exists."""

from __future__ import annotations

import hmac
from pathlib import Path

from synthbox.accounts.users import count_users
from synthbox.secrets import read_or_create_secret

SETUP_FILE = "setup-token"


def setup_token(data_path: Path) -> str | None:
    """The setup token while no user exists (created if needed); None once one does."""
    if count_users():
        (data_path / SETUP_FILE).unlink(missing_ok=True)
        return None
    return read_or_create_secret(data_path, SETUP_FILE)[0]


def setup_token_matches(data_path: Path, candidate: str) -> bool:
    path = data_path / SETUP_FILE
    if count_users() or not path.exists():
        return False
    return hmac.compare_digest(path.read_text().strip().encode(), candidate.encode())


def finish_setup(data_path: Path) -> None:
    (data_path / SETUP_FILE).unlink(missing_ok=True)
