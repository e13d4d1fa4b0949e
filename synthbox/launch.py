"""The process entry point (`synthbox`, `python -m synthbox`, the binary).

peewee imports psycopg2 as soon as it is imported, when psycopg2 is installed, and
psycopg2 maps libpq with its own OpenSSL: about 9 MB in every process. A SynthBox whose
records are in SQLite never uses it, so unless PostgreSQL is named somewhere the
settings could come from (the command line, the environment, the config file), the
driver is hidden from peewee before anything imports it. When in doubt it is loaded.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from synthbox.config import SETTINGS

POSTGRES_DRIVERS = ("psycopg2", "psycopg")


def config_file_named(argv: Sequence[str], env: Mapping[str, str]) -> Path:
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--config="):
            return Path(arg.partition("=")[2])
    return Path(env.get("SYNTHBOX_CONFIG") or "synthbox.toml")


def may_use_postgres(argv: Sequence[str], env: Mapping[str, str]) -> bool:
    read = {var for setting in SETTINGS for var in setting.env_names}
    named = [value for var, value in env.items() if var in read]
    if any("postgres" in text.lower() for text in [*argv, *named]):
        return True
    config = config_file_named(argv, env)
    try:
        return "postgres" in config.read_text(errors="replace").lower()
    except FileNotFoundError:
        return False
    except OSError:
        return True


def main() -> None:
    if not may_use_postgres(sys.argv[1:], os.environ):
        for name in POSTGRES_DRIVERS:
            sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    from synthbox.cli import main as cli_main

    cli_main()
