"""`synthbox doctor`: check the configured backends with a real job round trip."""

from __future__ import annotations

import platform
import shutil
import stat
import sys
import time
from pathlib import Path

import click

from synthbox import __version__
from synthbox.app import build_engine
from synthbox.config import Settings

LOW_DISK_BYTES = 1 << 30


def describe_data_dir(path: Path) -> list[str]:
    """Where the data lives, who may read it, and how much room is left."""
    info = path.stat()
    mode = stat.S_IMODE(info.st_mode)
    lines = [f"data directory: {path} (mode {mode:04o}"
             + (", readable by other users: consider chmod 700)" if mode & 0o007 else ")")]
    free = shutil.disk_usage(path).free
    warning = " (LOW)" if free < LOW_DISK_BYTES else ""
    lines.append(f"free disk:      {free / (1 << 30):.1f} GiB{warning}")
    return lines


def run_doctor(settings: Settings, wait: float = 15.0) -> int:
    """Print what was found; 0 when a diagnostics job went through, 1 otherwise."""
    engine = build_engine(settings)
    try:
        backends = engine.backends()
        how = "single binary" if getattr(sys, "frozen", False) else "Python package"
        click.echo(f"synthbox:       {__version__} ({how})")
        click.echo(f"python:         {platform.python_version()} ({sys.executable})")
        for line in describe_data_dir(engine.data_path):
            click.echo(line)
        click.echo(f"records:        {backends['records']}")
        click.echo(f"transport:      {backends['transport']}")
        checks = engine.readiness()
        for name, state in checks.items():
            click.echo(f"{name + ' up:':<16}{state}")
        service = engine.service("diagnostics")
        started = time.monotonic()
        job = service.add("noop", {"doctor": True})
        engine.start_workers(["diagnostics"])  # never the production queues
        deadline = started + wait
        while time.monotonic() < deadline:
            current = service.get_job(job["id"])
            if current and current["state"] == "completed":
                elapsed = (time.monotonic() - started) * 1000
                click.echo(f"round trip:     ok, diagnostics job {job['id']} completed "
                           f"in {elapsed:.0f} ms")
                return 0 if all(v == "ok" for v in checks.values()) else 1
            time.sleep(0.02)
        click.echo(f"round trip:     FAILED, job {job['id']} did not complete in {wait:.0f} s "
                   f"(state: {current['state'] if current else 'missing'})")
        return 1
    finally:
        engine.stop(timeout=5)
        engine.close()
