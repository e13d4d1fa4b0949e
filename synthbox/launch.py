"""The process entry point (`synthbox`, `python -m synthbox`, the binary).

Two things happen before anything else is imported, both to keep an instance small
(the target: at most 60 MB idle):

glibc gives each thread that allocates its own malloc arena, and an instance runs about
30 threads (HTTP, workers, upkeep); two arenas serve them as well under the GIL and
save about 1 MB, the setting Sidekiq's deployments make with MALLOC_ARENA_MAX=2. And
big blocks are always given back when freed (see tune_malloc).

Drivers: peewee imports psycopg2 as soon as it is imported, when psycopg2 is installed,
and psycopg2 maps libpq with its own OpenSSL: 5 to 9 MB in every process. Huey imports
redis the same way, and redis-py 8 brings asyncio and ssl along: 15 MB. A SynthBox whose
records are in SQLite never uses psycopg2, one without Redis never uses redis; unless
the settings could name it (the command line, the environment, the config file), each
is hidden from its importer while that is imported, and only then (an agent's own code
may still import it). When in doubt it is loaded.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from synthbox.config import SETTINGS, SettingsError, find_config_file
from synthbox.imports import without

POSTGRES_DRIVERS = ("psycopg2", "psycopg")
REDIS_DRIVERS = ("redis",)


def config_file_named(argv: Sequence[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.partition("=")[2]
    return None


def settings_may_name(word: str, argv: Sequence[str], env: Mapping[str, str]) -> bool:
    """Whether `word` ("postgres", "redis") is in the command line, a setting's
    environment variable or the config file: where a database or Redis URL could be."""
    read = {var for setting in SETTINGS for var in setting.env_names}
    named = [value for var, value in env.items() if var in read]
    if any(word in text.lower() for text in [*argv, *named]):
        return True
    try:
        config = find_config_file(config_file_named(argv), env)
    except SettingsError:
        return False  # the command will say the file is missing
    try:
        return config is not None and word in config.read_text(errors="replace").lower()
    except OSError:
        return True


M_MMAP_THRESHOLD = -3  # glibc's mallopt() parameter numbers
M_ARENA_MAX = -8


def tune_malloc() -> None:
    """Two malloc arenas, and blocks of 1 MiB or more always mapped apart, so freeing one
    gives it back: otherwise glibc raises that threshold after the first big free, and
    each sign-in's 19 MiB argon2 buffer stays in the heap for good. The environment
    (MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_, GLIBC_TUNABLES) overrides either."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc (musl, say)
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if "MALLOC_ARENA_MAX" not in os.environ and "arena_max" not in tunables:
        libc.mallopt(M_ARENA_MAX, 2)
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ and "mmap_threshold" not in tunables:
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 20)


def main() -> None:
    tune_malloc()
    unused = [*([] if settings_may_name("postgres", sys.argv[1:], os.environ)
                else POSTGRES_DRIVERS),
              *([] if settings_may_name("redis", sys.argv[1:], os.environ) else REDIS_DRIVERS)]
    with without(*unused):  # each importer looks for them once, when imported
        import huey  # noqa: F401
        import peewee  # noqa: F401
    from synthbox.cli import main as cli_main  # once the unused drivers are hidden

    cli_main()
