"""Running one agent of kind `http`, `command` or `python` (`agent_kinds.py` picks).

Every kind ends in an AgentOutcome. An agent reports work as a JSON object
`{"tasks": [...], "suggestions": [...]}`: the reply body (`http`), standard output
(`command`, or its last line), or the return value (`python`). Child processes run in
their own process group, which is killed when the agent's time runs out or the job is
stopped, so nothing an agent started outlives it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthbox.config import SETTINGS
from synthbox.jobs.errors import TIMEOUTS_HELD, JobTimeout
from synthbox.outbound import Network, OutboundRefused, post_json
from synthbox.paths import self_command

OUTPUT_CAP = 64 * 1024  # characters of output kept with an agent run
REPORT_ITEMS_CAP = 1000
ENTRY_POINT_GROUP = "synthbox.agents"

MAX_OUTPUT_BYTES = 4 * 1024 * 1024  # an agent that prints more has failed


class AgentProcesses:
    """The child processes one instance's agents run. `stop()` (the instance is stopping;
    the jobs are handed back) kills them all and lets no new one start."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    def start(self, argv: list[str], **options: Any) -> subprocess.Popen[bytes]:
        with self._lock:
            if self.stopping.is_set():
                raise AgentStopped()
            process = subprocess.Popen(argv, start_new_session=True, **options)
            self._running.add(process)
            return process

    def end(self, process: subprocess.Popen[bytes]) -> None:
        """Kill its whole process group (whatever it left running too)."""
        _kill_group(process)  # first: a JobTimeout may land anywhere after it
        with self._lock:
            self._running.discard(process)

    def stop(self) -> None:
        with self._lock:
            self.stopping.set()
            running = list(self._running)
        for process in running:
            _kill_group(process)


@dataclass
class AgentOutcome:
    status: str  # succeeded, failed, timed_out
    output: str = ""
    error: str | None = None
    tasks: list[dict[str, Any]] = field(default_factory=list)
    suggestions: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class AgentCall:
    """What an agent needs: its configuration, the context, and when its time is up."""

    slug: str
    kind: str
    config: dict[str, Any]
    context: dict[str, Any]
    deadline: float  # time.monotonic()
    timeout: float
    cancelled: threading.Event
    processes: AgentProcesses = field(default_factory=lambda: AgentProcesses())
    allow: Sequence[Network] = ()
    repository: str | None = None
    repository_roots: Sequence[Path] = ()
    workdir: Path | None = None


class AgentTimedOut(Exception):
    pass


class AgentStopped(Exception):
    pass


class OutputTooLarge(Exception):
    pass


def parse_report(text: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Tasks and suggestions from an agent's output: the whole of it as JSON, or its last
    line. Items are strings (a title) or objects with a `title`; anything else is skipped."""
    report: Any = None
    for candidate in (text, text.strip().rsplit("\n", 1)[-1]):
        try:
            report = json.loads(candidate)
            break
        except ValueError:
            continue
    if not isinstance(report, dict):
        return [], []
    return _items(report.get("tasks")), _items(report.get("suggestions"))


def _items(raw: Any) -> list[dict[str, Any]]:
    items = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, str) and item.strip():
            items.append({"title": item.strip()[:500]})
        elif isinstance(item, dict) and isinstance(item.get("title"), str) and item["title"]:
            items.append({**item, "title": item["title"][:500]})
    return items[:REPORT_ITEMS_CAP]


def _finish(output: str, error: str | None = None) -> AgentOutcome:
    if error is not None:
        return AgentOutcome("failed", output[-OUTPUT_CAP:], error)
    tasks, suggestions = parse_report(output)
    return AgentOutcome("succeeded", output[-OUTPUT_CAP:], None, tasks, suggestions)


# -- http ---------------------------------------------------------------------------------

def run_http(call: AgentCall) -> AgentOutcome:
    config = call.config
    try:
        status, reply = post_json(config["url"], call.context, dict(config.get("headers", {})),
                                  call.deadline, call.allow)
    except OutboundRefused as exc:
        return AgentOutcome("failed", error=str(exc))
    except TimeoutError:
        raise AgentTimedOut() from None
    except OSError as exc:  # refused, reset, TLS: the call failed
        return AgentOutcome("failed", error=f"request failed: {exc}")
    except Exception as exc:  # http.client's protocol errors
        return AgentOutcome("failed", error=f"request failed: {type(exc).__name__}: {exc}")
    if not 200 <= status < 300:
        return _finish(reply, f"the agent answered HTTP {status}")
    return _finish(reply)


# -- command and python -------------------------------------------------------------------

def command_line(config: dict[str, Any]) -> list[str]:
    """A `command` agent's argv: its list of arguments, or its one shell line when
    `shell` is true."""
    if config.get("shell"):
        return ["/bin/sh", "-c", config["command"]]
    return list(config["command"])


def python_agent_argv(entry_point: str) -> list[str]:
    """This program, asked to run one `synthbox.agents` entry point in a child process."""
    return self_command("run-agent", entry_point)


def _child_environment(extra: dict[str, str]) -> dict[str, str]:
    """Our environment without SynthBox's own settings (database and Redis passwords,
    secrets), plus the agent's."""
    ours = {name for setting in SETTINGS for name in setting.env_names} | {"SYNTHBOX_CONFIG"}
    environment = {k: v for k, v in os.environ.items()
                   if k not in ours and not k.startswith("SYNTHBOX_")}
    environment.update(extra)
    return environment


def run_process(call: AgentCall, argv: list[str], stdin: bytes | None, env: dict[str, str],
                cwd: str | None) -> tuple[int, bytes, bytes]:
    """(exit code, stdout, stderr) of a child in its own process group. AgentTimedOut when
    the deadline passes or the job is stopped first; OutputTooLarge past
    MAX_OUTPUT_BYTES. Either way the whole group is killed at the end, so nothing it
    started in the background lives on."""
    process: subprocess.Popen[bytes] | None = None
    captures: list[_Capture] = []
    try:  # whatever is raised from here on (a JobTimeout anywhere), a started group is killed
        with TIMEOUTS_HELD:  # a JobTimeout lands before the child starts or once it is known
            process = call.processes.start(
                argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env)
        assert process.stdout is not None and process.stderr is not None
        out, err = _Capture(process.stdout), _Capture(process.stderr)
        captures += (out, err)
        if stdin is not None:
            threading.Thread(target=_feed, args=(process, stdin), daemon=True).start()
        while True:
            remaining = call.deadline - time.monotonic()
            if remaining <= 0 or call.cancelled.is_set() or call.processes.stopping.is_set():
                raise AgentTimedOut()
            if out.too_large or err.too_large:
                raise OutputTooLarge()
            try:
                code = process.wait(timeout=min(remaining, 0.25))
                break
            except subprocess.TimeoutExpired:
                continue
    finally:
        if process is not None:
            call.processes.end(process)  # also closes pipes its background children held
        for capture in captures:
            capture.join()
    if out.too_large or err.too_large:
        raise OutputTooLarge()
    return code, out.data(), err.data()


class _Capture:
    """Reads a pipe in a thread, keeping at most MAX_OUTPUT_BYTES."""

    def __init__(self, pipe: Any):
        self.pipe = pipe
        self.chunks: list[bytes] = []
        self.size = 0
        self.too_large = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for chunk in iter(lambda: self.pipe.read1(65536), b""):
                if self.size + len(chunk) > MAX_OUTPUT_BYTES:
                    self.too_large = True
                    continue  # drain, keep nothing more
                self.chunks.append(chunk)
                self.size += len(chunk)
        except (OSError, ValueError):
            pass
        finally:
            self.pipe.close()

    def join(self) -> None:
        self.thread.join(5)

    def data(self) -> bytes:
        return b"".join(self.chunks)


def _feed(process: subprocess.Popen[bytes], data: bytes) -> None:
    assert process.stdin is not None
    try:
        process.stdin.write(data)
    except (BrokenPipeError, OSError, ValueError):
        pass  # it exited without reading it all
    finally:
        try:
            process.stdin.close()
        except (BrokenPipeError, OSError):
            pass


def run_command(call: AgentCall, argv: list[str]) -> AgentOutcome:
    try:
        code, out, err = run_process(call, argv, json.dumps(call.context).encode(),
                                     _child_environment(call.config.get("env", {})),
                                     call.config.get("cwd") or None)
    except OSError as exc:
        return AgentOutcome("failed", error=f"cannot start {argv[0]!r}: {exc.strerror}")
    output = out.decode("utf-8", errors="replace")
    if code != 0:
        last = err.decode("utf-8", errors="replace").strip().rsplit("\n", 1)[-1][:500]
        return _finish(output, f"exited with code {code}" + (f": {last}" if last else ""))
    return _finish(output)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the child's process group and reap the child. The runner raises JobTimeout in
    this thread at whatever instruction it is on when the job's time runs out; one that
    lands here waits until the child is reaped, or it would be left a zombie."""
    timed_out: JobTimeout | None = None
    while process.returncode is None:
        try:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except JobTimeout as exc:
            timed_out = exc
    if timed_out is not None:
        raise timed_out
