"""Real servers for the tests: Redis on a free port, a throwaway PostgreSQL database,
`synthbox serve` as a subprocess, and an in-process Engine on each backend."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from synthbox.app import build_engine
from synthbox.config import load_settings
from synthbox.jobs.engine import Engine

ROOT = Path(__file__).resolve().parent.parent  # the checkout

PG_ADMIN_DSN = os.environ.get("SYNTHBOX_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


SECRETS_USED: set[str] = set()
SERVE_LOGS: list[Path] = []


def remember_secret(value: str) -> None:
    """A password, token or key a test used: no server log may contain it."""
    if value and len(value) >= 8:
        SECRETS_USED.add(value)


@pytest.fixture(scope="session", autouse=True)
def no_secret_reaches_a_log() -> Iterator[None]:
    yield
    leaks = []
    for path in SERVE_LOGS:
        if path.exists():
            text = path.read_text(errors="replace")
            leaks += [f"{path.name}: {secret[:4]}..." for secret in SECRETS_USED
                      if secret in text]
    assert not leaks, f"secrets found in server logs: {leaks}"


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With pytest-xdist (`-n`, on by default), a module's tests stay on one worker, so its
    module-scoped servers start once; the tests that need the session's release (a
    PyInstaller build) share one worker, so it is built once."""
    for item in items:
        needs_release = "release" in getattr(item, "fixturenames", ())
        group = "release" if needs_release else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05,
             message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


class RedisServer:
    """A redis-server of our own, started on a free port and stopped by pid."""

    def __init__(self, directory: Path, port: int | None = None, *extra: str):
        self.directory = directory
        self.port = port or free_port()
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory), *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.ping, 10, message=f"redis on {self.port}")
        return self

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        except redis.exceptions.ConnectionError:
            return False

    def client(self) -> Any:
        import redis

        return redis.Redis(port=self.port)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    redis_server.client().flushall()
    return redis_server.url


@pytest.fixture
def pg_url() -> Iterator[str]:
    import psycopg2

    name = f"synthbox_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(PG_ADMIN_DSN)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    yield PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


BACKENDS = ("sqlite", "redis", "postgres")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> dict[str, str]:
    """Settings for one backend: SQLite only, Redis transport, or PostgreSQL records."""
    if request.param == "sqlite":
        return {}
    url = request.getfixturevalue("redis_url")
    if request.param == "redis":
        return {"redis_url": url}
    return {"redis_url": url, "database_url": request.getfixturevalue("pg_url")}


@pytest.fixture
def engine_builder(tmp_path: Path) -> Iterator[Callable[..., Engine]]:
    """Build in-process Engines from settings (stopped at teardown); `queues` overrides
    queue options."""
    engines: list[Engine] = []

    def make(backend_settings: dict[str, Any], queues: dict[str, Any] | None = None,
             workers: bool = True, data_dir: Path | None = None) -> Engine:
        settings = load_settings({
            "data_dir": str(data_dir or tmp_path / "data"),
            "queues": queues or {},
            "shutdown_timeout": 5,
            **backend_settings,
        }, env={})
        engine = build_engine(settings)
        engines.append(engine)
        if workers:
            engine.start_workers()
        return engine

    yield make
    for engine in engines:
        engine.stop(timeout=5)
        engine.close()


@pytest.fixture
def make_engine(backend: dict[str, str],
                engine_builder: Callable[..., Engine]) -> Callable[..., Engine]:
    """Build Engines on the parametrised backend (set up first, so torn down last)."""
    return lambda *args, **kwargs: engine_builder(backend, *args, **kwargs)


# -- synthbox serve as a real process -------------------------------------------------------

class Serve:
    """`python -m synthbox serve` on a free port, with its own data directory."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None,
                 port: int | None = None):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"serve-{self.port}-{uuid.uuid4().hex[:4]}.log"
        SERVE_LOGS.append(self.log_path)

    def start(self, wait: bool = True) -> Serve:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("SYNTHBOX_") and k not in (
                   "REDIS_URL", "DATABASE_URL", "REDIS_SENTINEL_NAME", "REDIS_CLUSTER_MODE")}
        env.update({"SYNTHBOX_DATA_DIR": str(self.data_dir), "SYNTHBOX_PORT": str(self.port),
                    "PYTHONUNBUFFERED": "1", **self.env})
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "synthbox", "serve"],
                                            env=env, stdout=log, stderr=subprocess.STDOUT)
        if wait:
            wait_for(self.healthy, 30, message=f"serve on {self.port}\n{self.output()}")
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"serve exited with {self.process.returncode}:\n"
                                 f"{self.output()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
                return True
        except (urllib.error.URLError, ConnectionError, OSError):
            return False

    @property
    def token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    def request(self, method: str, path: str, body: Any = None, token: str | None = "default",
                raw: bytes | None = None, timeout: float = 10) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization",
                           f"Bearer {self.token if token == 'default' else token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            payload = error.read()
            try:
                return error.code, json.loads(payload)
            except ValueError:
                return error.code, payload.decode(errors="replace")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        assert self.process is not None
        self.process.wait(10)

    def stop(self, timeout: float = 30) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise AssertionError(f"serve did not stop on SIGTERM:\n{self.output()}") from None


@pytest.fixture
def serve_factory(tmp_path: Path) -> Iterator[Callable[..., Serve]]:
    started: list[Serve] = []

    def make(env: dict[str, str] | None = None, data_dir: Path | None = None,
             wait: bool = True) -> Serve:
        server = Serve(data_dir or tmp_path / "data", env)
        started.append(server)
        return server.start(wait=wait)

    yield make
    for server in started:
        if server.process and server.process.poll() is None:
            server.process.kill()
            server.process.wait(10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Serve]]:
    """A module's `synthbox serve`: served(env, users={name: (role, password)}) starts one
    on a data directory of its own (the accounts made first, as an operator makes them),
    its admin token kept out of logs; every one is stopped after the module."""
    started: list[Serve] = []

    def start(env: dict[str, str] | None = None,
              users: dict[str, tuple[str, str]] | None = None) -> Serve:
        data = tmp_path_factory.mktemp("served") / "data"
        data.mkdir()
        for name, (role, password) in (users or {}).items():
            create_user(data, name, role, password)
        serve = Serve(data, env).start()
        remember_secret(serve.token)
        started.append(serve)
        return serve

    yield start
    for serve in started:
        serve.stop()


@dataclass(frozen=True)
class Release:
    """What packaging/release.sh made, and what it printed."""

    wheel: Path
    sdist: Path
    binary: Path
    deb: Path
    sums: Path
    printed: str


@pytest.fixture(scope="session")
def release() -> Iterator[Release]:
    """packaging/release.sh, once per session, into a temporary DIST_DIR: the wheel, the
    sdist, the one-file binary, the .deb and SHA256SUMS. The folder is open to other
    users (tests run the binary as nobody)."""
    import tempfile

    import synthbox

    root = ROOT
    dist = Path(tempfile.mkdtemp(prefix="synthbox-release-"))
    dist.chmod(0o755)
    result = subprocess.run(["bash", str(root / "packaging" / "release.sh")], cwd=root,
                            env={**os.environ, "DIST_DIR": str(dist)},
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    version = synthbox.__version__
    yield Release(wheel=dist / f"synthbox-{version}-py3-none-any.whl",
                  sdist=dist / f"synthbox-{version}.tar.gz",
                  binary=dist / f"synthbox-{version}-linux-x86_64",
                  deb=dist / f"synthbox_{version}_amd64.deb", sums=dist / "SHA256SUMS",
                  printed=result.stdout)
    shutil.rmtree(dist, ignore_errors=True)


@pytest.fixture(scope="session")
def binary(release: Release) -> Path:
    """The one-file binary of this session's release (packaging/build.sh builds it)."""
    return release.binary


def run_cli(*args: str, env: dict[str, str] | None = None,
            input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SYNTHBOX_")
            and k not in ("REDIS_URL", "DATABASE_URL")}
    return subprocess.run([sys.executable, "-m", "synthbox", *args], env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=120, input=input_text)


# -- job factories -----------------------------------------------------------------------

def finished_jobs(engine: Engine, queue: str, states_and_ages: list[tuple[str, float]]
                  ) -> list[int]:
    """Jobs of `queue` already finished: one per (state, seconds ago), as if they had run
    then (retention and cleaning tests). The one place tests write job rows directly."""
    ids = [int(job["id"]) for job in engine.service(queue).add_bulk(
        [{"name": "noop"}] * len(states_and_ages))]
    now = time.time()
    for job_id, (state, age) in zip(ids, states_and_ages, strict=True):
        engine.store.execute("UPDATE job SET status=?, finished_at=? WHERE id=?",
                             (state, now - age, job_id))
    return ids


# -- the app in-process: input and role checks without a server process ---------------------

class InProcess:
    """The Flask app over an Engine with no workers, asked through Flask's test client.
    `request` answers like Serve.request: (status, JSON body)."""

    def __init__(self, engine: Engine):
        from synthbox.secrets import ADMIN_TOKEN_FILE, read_or_create_secret
        from synthbox.web import create_app

        self.engine = engine
        self.app = create_app(engine)  # adopts the admin token as `bootstrap`
        self.client = self.app.test_client()
        self.token = read_or_create_secret(engine.data_path, ADMIN_TOKEN_FILE)[0]

    def request(self, method: str, path: str, body: Any = None, token: str | None = "default",
                raw: bytes | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {self.token if token == 'default' else token}"
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        answer = self.client.open(path, method=method, data=data, headers=headers)
        try:
            return answer.status_code, json.loads(answer.data or b"null")
        except ValueError:
            return answer.status_code, answer.data.decode(errors="replace")


@pytest.fixture
def in_process(engine_builder: Callable[..., Engine]) -> InProcess:
    return InProcess(engine_builder({}, workers=False))


# -- what a served instance wrote, and who may sign in ----------------------------------------

class Records:
    """Reads the records a serve process wrote: SQLite in its data directory, or PostgreSQL."""

    def __init__(self, data_dir: Path, database_url: str | None = None):
        self.data_dir = data_dir
        self.database_url = database_url

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self.database_url:
            import psycopg2

            with psycopg2.connect(self.database_url) as conn, conn.cursor() as cursor:
                cursor.execute(sql.replace("?", "%s"), params)
                rows = cursor.fetchall()
            conn.close()
            return rows
        conn = sqlite3.connect(self.data_dir / "synthbox.db", timeout=10)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def counts(self) -> dict[str, int]:
        return dict(self.query("SELECT status, COUNT(*) FROM job GROUP BY status"))


def create_user(data_dir: Path, name: str, role: str, password: str) -> None:
    """An account made as an operator makes one: `synthbox users create`, the password
    typed at the prompt."""
    remember_secret(password)
    result = run_cli("users", "create", name, "--role", role,
                     env={"SYNTHBOX_DATA_DIR": str(data_dir)}, input_text=password + "\n")
    assert result.returncode == 0, result.stderr
