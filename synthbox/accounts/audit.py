"""The audit log: who did what to which job, queue, user or token, when, and from where."""

from __future__ import annotations

import time
from typing import Any

from synthbox.accounts.models import AuditEntry


def record(actor: str, action: str, target: str = "", detail: str = "",
           address: str = "") -> None:
    AuditEntry.create(at=time.time(), actor=actor, action=action, target=target[:255],
                      detail=detail[:2000], address=address[:64])


def entries(limit: int = 50, before: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
    """Newest first; pass the returned cursor as `before` for the next page."""
    query = AuditEntry.select().order_by(AuditEntry.id.desc()).limit(limit + 1)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    rows = list(query)
    page = [{"id": e.id, "at": int(e.at * 1000), "actor": e.actor, "action": e.action,
             "target": e.target, "detail": e.detail, "address": e.address}
            for e in rows[:limit]]
    return page, (rows[limit - 1].id if len(rows) > limit else None)
