"""Sends per recipient domain (e.g. gmail.com 20 a minute), across every instance that
shares the records database: a sliding-window log in the `rate_hit` table."""

from __future__ import annotations

import time

from peewee import PostgresqlDatabase

from synthbox.records.models import RateHit, database


def take_domain_slot(domain: str, limit: int, window: float) -> float:
    """Count one send to `domain`: 0.0 if allowed now, else the seconds until it would be."""
    key = f"mail:{domain[:59]}"
    with database.atomic():
        if isinstance(database.obj, PostgresqlDatabase):
            database.execute_sql("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))
        now = time.time()
        RateHit.delete().where(RateHit.queue == key, RateHit.at < now - window).execute()
        hits = [h.at for h in RateHit.select(RateHit.at).where(RateHit.queue == key)
                .order_by(RateHit.at)]
        if len(hits) >= limit:
            return max(hits[-limit] + window - now, 0.001)
        RateHit.create(queue=key, at=now)
        return 0.0
