"""One `serve` child of the supervisor: started on the shared socket, its output into a
log file of its own (rotated by size), its health read from the state file it writes."""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil

from synthbox.paths import self_command
from synthbox.threads import start_thread

STATES = ("starting", "online", "stopping", "waiting restart", "errored", "stopped")


def instance_logger(log_dir: Path, slot: int, max_bytes: int, backups: int) -> logging.Logger:
    """A logger that writes a child's lines, as they are, into instance-<slot>.log."""
    logger = logging.getLogger(f"synthbox.cluster.instance-{slot}")
    logger.propagate = False
    if not logger.handlers:
        log_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            log_dir / f"instance-{slot}.log", maxBytes=max_bytes, backupCount=backups,
            encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    return logger


class Child:
    def __init__(self, slot: int, env: dict[str, str], listen_fd: int, state_dir: Path,
                 logger: logging.Logger):
        self.slot = slot
        self.state_dir = state_dir
        self.logger = logger
        self.started_at = time.time()
        self.expected_exit = False
        self.process = subprocess.Popen(
            self_command("serve"), env={**env, "SYNTHBOX_LISTEN_FD": str(listen_fd),
                                        "SYNTHBOX_STATE_DIR": str(state_dir)},
            pass_fds=(listen_fd,), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.process.pid
        self._ps: psutil.Process | None = None
        start_thread(f"log-{slot}", self._pump)

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in iter(self.process.stdout.readline, b""):
            self.logger.info(line.decode("utf-8", errors="replace").rstrip("\n"))
        self.process.stdout.close()

    # -- what it says about itself --------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.state_dir / f"{self.pid}.json"

    def report(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None

    def ready(self) -> bool:
        report = self.report()
        return bool(report and report.get("ready"))

    def heartbeat_age(self) -> float | None:
        try:
            return time.time() - self.state_file.stat().st_mtime
        except OSError:
            return None

    def alive(self) -> bool:
        return self.process.poll() is None

    def usage(self) -> tuple[float, int]:
        """(CPU percent since the last call, resident memory in bytes), with children."""
        try:
            if self._ps is None:
                self._ps = psutil.Process(self.pid)
                self._ps.cpu_percent(None)
            return self._ps.cpu_percent(None), self._ps.memory_info().rss
        except psutil.Error:
            return 0.0, 0

    # -- ending it ------------------------------------------------------------------------

    def terminate(self) -> None:
        """Ask it to stop (running jobs finish or are handed back)."""
        self.expected_exit = True
        if self.alive():
            self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.expected_exit = True
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def wait(self, timeout: float) -> bool:
        try:
            self.process.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def forget(self) -> None:
        try:
            self.state_file.unlink()
        except FileNotFoundError:
            pass
