"""`synthbox doctor` and `bench`: whether this copy works, and how fast."""

from __future__ import annotations

import sys
from typing import Any

import click

from synthbox.bench.engine import run_bench
from synthbox.cli.base import BadInput, resolve_settings, settings_options
from synthbox.host.doctor import run_doctor


@click.command()
@settings_options
def doctor(**options: Any) -> None:
    """Check the configured backends with a real job round trip."""
    sys.exit(run_doctor(resolve_settings(options)))


@click.command()
@click.option("--backend", type=click.Choice(["sqlite", "redis"]), default="sqlite",
              show_default=True, help="The queue transport to measure.")
@click.option("--jobs", "job_count", type=click.IntRange(1, 10_000_000), default=20000,
              show_default=True, help="How many no-op jobs to enqueue and drain.")
@click.option("--records-url", default="",
              help="Records in this PostgreSQL database instead of a temporary SQLite file "
                   "(give it a throwaway database: the bench's jobs stay there).")
@click.option("--served", is_flag=True,
              help="Measure a real `synthbox serve` over HTTP (enqueue, bulk, drain, pickup, "
                   "idle and loaded RSS) instead of the engine in this process.")
@click.option("--instances", type=click.IntRange(1, 64), default=1, show_default=True,
              help="With --served: more than 1 runs cluster mode (`synthbox start -i N`).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@settings_options
def bench(backend: str, job_count: int, records_url: str, served: bool, instances: int,
          as_json: bool, **options: Any) -> None:
    """Measure enqueue and drain rates, pickup latency and memory with the real engine."""
    if instances > 1 and not served:
        raise BadInput("instances: more than 1 needs --served (cluster mode is measured "
                       "over HTTP)")
    settings = resolve_settings(options)
    sys.exit(run_bench(settings, backend, job_count, as_json, records_url, served,
                       instances))
