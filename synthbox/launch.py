"""The process entry point (`synthbox`, `python -m synthbox`, the binary).

Two things happen before anything else is imported, both to keep an idle instance small
(issue 10: at most 60 MB):

glibc gives each thread that allocates its own malloc arena, and an instance runs about
30 threads (HTTP, workers, upkeep); two arenas serve them as well under the GIL and
save about 2 MB, the same setting Sidekiq's deployments make with MALLOC_ARENA_MAX=2.

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


M_ARENA_MAX = -8  # glibc's mallopt() parameter number


def limit_malloc_arenas(count: int = 2) -> None:
    """Cap glibc's malloc arenas unless MALLOC_ARENA_MAX already says how many."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, count)
    except (OSError, AttributeError):
        pass  # not glibc (musl, say): nothing to cap


def main() -> None:
    limit_malloc_arenas()
    if not may_use_postgres(sys.argv[1:], os.environ):
        for name in POSTGRES_DRIVERS:
            sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    from synthbox.cli import main as cli_main

    cli_main()
