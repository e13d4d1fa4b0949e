"""The entry point loads only the drivers a process can use (idle RSS, issue 10)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from synthbox.launch import settings_may_name


def mapped_files(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.parametrize(("word", "argv", "env", "config", "expected"), [
    ("postgres", [], {}, None, False),
    ("postgres", ["serve"], {"SYNTHBOX_PORT": "8080", "PATH": "/usr/lib/postgresql/15/bin"},
     None, False),
    ("postgres", ["serve", "--database-url", "postgresql://db/jobs"], {}, None, True),
    ("postgres", ["serve"], {"DATABASE_URL": "postgres://db/jobs"}, None, True),
    ("postgres", ["serve"], {"SYNTHBOX_DATABASE_URL": "postgresql://db/jobs"}, None, True),
    ("postgres", ["serve", "--config", "{config}"], {},
     'database_url = "postgresql://db/jobs"\n', True),
    ("postgres", ["serve", "--config={config}"], {},
     'database_url = "postgresql://db/jobs"\n', True),
    ("postgres", ["serve"], {"SYNTHBOX_CONFIG": "{config}"},
     'database_url = "postgresql://x/y"\n', True),
    ("postgres", ["serve", "--config", "{config}"], {}, 'port = 9000\n', False),
    ("postgres", ["serve", "--config", "{config}/missing.toml"], {}, None, False),
    ("redis", ["serve"], {"PATH": "/usr/bin"}, None, False),
    ("redis", ["serve", "--redis-url", "redis://r:6379/0"], {}, None, True),
    ("redis", ["serve"], {"REDIS_URL": "rediss://r:6380/0"}, None, True),
    ("redis", ["bench", "--backend", "redis"], {}, None, True),
    ("redis", ["serve", "--config", "{config}"], {}, 'redis_url = "redis://r:6379/0"\n', True),
    ("redis", ["serve", "--config", "{config}"], {}, 'port = 9000\n', False),
])
def test_a_driver_loads_only_when_the_settings_can_name_it(
        tmp_path, monkeypatch, word, argv, env, config, expected):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "synthbox.toml"
    if config is not None:
        path.write_text(config)
    argv = [arg.replace("{config}", str(path)) for arg in argv]
    env = {k: v.replace("{config}", str(path)) for k, v in env.items()}
    assert settings_may_name(word, argv, env) is expected


def after_launch(tmp_path: Path, unnamed: str, code: str) -> list[str]:
    """Standard output lines of `code`, run in a process whose entry point ran first
    (`synthbox version`) with no setting naming `unnamed`."""
    script = ("import sys\nsys.argv = ['synthbox', 'version']\nfrom synthbox import launch\n"
              "try:\n    launch.main()\nexcept SystemExit:\n    pass\n" + code)
    env = {k: v for k, v in os.environ.items() if unnamed not in v.lower()}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_redis_hidden_from_huey_still_works_when_a_redis_is_used_after_all(tmp_path):
    """No setting named Redis, so Huey was imported without redis; a Redis client built
    afterwards still gets Huey's storage the names it catches redis errors by."""
    lines = after_launch(tmp_path, "redis", (
        "import huey.storage\nprint('redis' in sys.modules, huey.storage.TimeoutError)\n"
        "from pathlib import Path\nfrom synthbox.jobs.broker import build_huey, connect_redis\n"
        "client = connect_redis('redis://127.0.0.1:6379/0')\n"
        "bell = build_huey('launch-test', client, Path('.'), namespace='launch-test')\n"
        "bell.storage.read_timeout = 0.1\nprint(bell.storage.dequeue(),"
        " huey.storage.TimeoutError.__module__)\n"))
    assert lines[-2:] == ["False None", "None redis.exceptions"]


def test_the_driver_stays_importable_for_code_of_its_own(tmp_path):
    """Hidden from peewee only: a python agent (`synthbox run-agent`) may use PostgreSQL
    for its own work."""
    lines = after_launch(tmp_path, "postgres", (
        "import peewee, psycopg2\nprint(peewee.psycopg2 is None, psycopg2.__name__)\n"))
    assert lines[-1] == "True psycopg2"


def test_a_sqlite_serve_maps_neither_libpq_nor_the_rsa_code_and_still_answers(
        serve_factory, tmp_path):
    server = serve_factory()
    maps = mapped_files(server.process.pid)
    assert "libpq" not in maps
    assert "cryptography" not in maps  # PyJWT's RSA/EC backend (a Rust extension)
    status, reply = server.request("GET", "/api/v1/queues")
    assert status == 200, reply


def test_a_pg_serve_loads_its_driver(serve_factory, tmp_path, pg_url):
    server = serve_factory({"SYNTHBOX_DATABASE_URL": pg_url})
    assert "libpq" in mapped_files(server.process.pid)
    status, reply = server.request("POST", "/api/v1/queues/diagnostics/jobs",
                                   {"name": "noop"})
    assert status == 201, reply
