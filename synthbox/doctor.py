"""`synthbox doctor`: check the configured backends with a real job round trip."""

from __future__ import annotations

import time

import click

from synthbox.config import Settings
from synthbox.jobs.engine import Engine


def run_doctor(settings: Settings, wait: float = 15.0) -> int:
    """Print what was found; 0 when a diagnostics job went through, 1 otherwise."""
    engine = Engine(settings)
    try:
        backends = engine.backends()
        click.echo(f"data directory: {engine.data_path}")
        click.echo(f"records:        {backends['records']}")
        click.echo(f"transport:      {backends['transport']}")
        checks = engine.readiness()
        for name, state in checks.items():
            click.echo(f"{name + ' check:':<16}{state}")
        service = engine.service("diagnostics")
        started = time.monotonic()
        job = service.add("noop", {"doctor": True})
        engine.start_workers()
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
