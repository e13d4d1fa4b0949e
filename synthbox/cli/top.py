"""`synthbox top`: the dashboard in a terminal, refreshed in place."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from synthbox.cli.base import with_engine
from synthbox.metrics import describe
from synthbox.records.models import STATES

COLUMNS = (*STATES, "paused")


def render(engine: Any) -> str:
    """One screen: each queue's counts and its last minute, then the instances."""
    figures = describe(engine)
    backends = engine.backends()
    lines = [f"SynthBox top  {time.strftime('%H:%M:%S')}   records: {backends['records']}",
             f"transport: {backends['transport']}", ""]
    header = f"{'queue':<16}" + "".join(f"{s:>11}" for s in COLUMNS) + f"{'done 2m':>10}" \
        f"{'failed 2m':>11}"
    lines += [header, "-" * len(header)]
    for queue in figures["queues"]:
        stats = queue["stats"]
        # the last full minute and this one ("2m")
        recent = [r for r in engine.store.tallies.minutes(int(time.time() // 60) - 1)
                  if r.queue == queue["name"]]
        done, failed = sum(r.completed for r in recent), sum(r.failed for r in recent)
        name = queue["name"] + (" (paused)" if queue["paused"] else "")
        lines.append(f"{name:<16}" + "".join(f"{stats[s]:>11}" for s in COLUMNS)
                     + f"{done:>10}{failed:>11}")
    lines += ["", f"instances ({len(figures['instances'])})"]
    for instance in figures["instances"]:
        lines.append(f"  {instance['id']:<40} pid {instance['pid']:<8} heartbeat "
                     f"{instance['secondsSinceSeen']:.0f} s ago   jobs done "
                     f"{instance['jobsDone']}")
    if not figures["instances"]:
        lines.append("  none running workers")
    return "\n".join(lines)


@click.command("top")
@click.option("--interval", type=float, default=2.0, help="Seconds between refreshes.")
@click.option("--once", is_flag=True, help="Print one screen and exit.")
@with_engine
def top_command(engine: Any, interval: float, once: bool, **_: Any) -> None:
    """A live view of queues, rates and instances (Ctrl-C to leave)."""
    if once or not sys.stdout.isatty():
        click.echo(render(engine))
        return
    try:
        while True:
            click.echo("\x1b[H\x1b[2J" + render(engine), nl=True)
            time.sleep(max(interval, 0.2))
    except KeyboardInterrupt:
        pass
