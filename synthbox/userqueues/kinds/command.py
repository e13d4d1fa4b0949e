"""The `command` kind: each job runs a program with the job as JSON on its standard input.

Exit status 0 completes the job, and the last line of standard output is its result when
that line is JSON; any other status fails the attempt with the tail of standard error.
The program runs in a process group of its own, which is killed when the job's timeout
passes or SynthBox stops. It gets a small environment (PATH, HOME, LANG, TZ) plus the
variables the definition's `env` lets through or sets, never SynthBox's own settings.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import threading
from collections.abc import Mapping
from typing import Any

from synthbox.jobs.context import JobContext
from synthbox.jobs.errors import TIMEOUTS_HELD
from synthbox.userqueues.environment import DeliveryFailed, expand_env

BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
TAIL = 2048
POLL = 0.25  # seconds between looks at a running program (a timeout can stop it between)


class CommandFailed(Exception):
    """The program failed, or could not be started; the message says which and why."""


def _environment(env: list[str] | Mapping[str, str]) -> dict[str, str]:
    base = {name: os.environ[name] for name in BASE_ENV if name in os.environ}
    base.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    if isinstance(env, Mapping):
        try:
            base.update({name: expand_env(value, f"env.{name}")
                         for name, value in env.items()})
        except DeliveryFailed as exc:
            raise CommandFailed(str(exc)) from None
    else:
        base.update({name: os.environ[name] for name in env if name in os.environ})
    return base


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class CommandRunner:
    """The handler of one `command` queue; `stop()` kills what it is running."""

    def __init__(self, config: Mapping[str, Any]):
        self.argv: list[str] = list(config["command"])
        self.cwd: str | None = config.get("cwd")
        self.env = config.get("env") or []
        self.user: str | None = config.get("user")
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    def _identity(self) -> dict[str, Any]:
        if self.user is None:
            return {}
        try:
            account = pwd.getpwnam(self.user)
        except KeyError:
            raise CommandFailed(f"user: no user {self.user!r} on this host") from None
        if os.geteuid() == account.pw_uid:
            return {}
        if os.geteuid() != 0:
            raise CommandFailed(f"user: running as {self.user!r} needs SynthBox to run as "
                                "root")
        return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}

    def __call__(self, job: JobContext) -> Any:
        payload = json.dumps({"id": str(job.id), "queue": job.queue, "name": job.name,
                              "data": job.data, "attempt": job.attempt}).encode()
        environment = _environment(self.env)
        identity = self._identity()
        with TIMEOUTS_HELD:  # started and recorded, or neither
            try:
                process = subprocess.Popen(
                    self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, cwd=self.cwd, env=environment,
                    start_new_session=True, **identity)
            except FileNotFoundError as exc:
                missing = self.cwd if exc.filename == self.cwd else self.argv[0]
                raise CommandFailed(f"command: {missing!r} not found") from None
            except OSError as exc:
                raise CommandFailed(f"command: cannot run {self.argv[0]!r} "
                                    f"({exc.strerror or exc})") from None
            with self._lock:
                self._running.add(process)
        try:
            stdout, stderr = self._communicate(process, payload)
        finally:
            if process.poll() is None:
                _kill_group(process)
                process.wait()
            for stream in (process.stdin, process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
            with self._lock:
                self._running.discard(process)
        if process.returncode != 0:
            tail = stderr[-TAIL:].decode("utf-8", errors="replace").strip()
            status = (f"killed by signal {-process.returncode}" if process.returncode < 0
                      else f"exit status {process.returncode}")
            raise CommandFailed(f"{self.argv[0]}: {status}" + (f": {tail}" if tail else ""))
        lines = stdout.decode("utf-8", errors="replace").strip().splitlines()
        if lines:
            try:
                return json.loads(lines[-1])
            except ValueError:
                return None
        return None

    def _communicate(self, process: subprocess.Popen[bytes],
                     payload: bytes) -> tuple[bytes, bytes]:
        """Its output, waiting in short steps so that the job's timeout can stop it."""
        given: bytes | None = payload
        while True:
            try:
                stdout, stderr = process.communicate(given, timeout=POLL)
                return stdout or b"", stderr or b""
            except subprocess.TimeoutExpired:
                given = None  # already on its way to the program

    def stop(self) -> None:
        with self._lock:
            running = list(self._running)
        for process in running:
            _kill_group(process)
