"""Cron times: when a schedule fires next, in its time zone (orchestration's schedules and
the schedules of queues of your own)."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo


def next_due(cron: str, timezone: str, after: float, fired: float | None = None) -> float:
    """The first time after `after` (Unix seconds) that `cron` matches in `timezone`. When
    the clocks go back an hour, a local time that comes twice fires once (as in cron):
    a time with the same wall-clock reading as `fired`, the one just fired, is skipped."""
    from croniter import croniter  # with dateutil, 0.6 MB: loaded once a schedule exists

    zone = ZoneInfo(timezone)
    due = float(croniter(cron, datetime.datetime.fromtimestamp(after, zone)).get_next(float))
    if fired is not None and _wall(due, zone) == _wall(fired, zone):
        due = float(croniter(cron, datetime.datetime.fromtimestamp(due, zone)).get_next(float))
    return due


def _wall(moment: float, zone: ZoneInfo) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(moment, zone).replace(tzinfo=None, fold=0)
