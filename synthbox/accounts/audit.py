"""The audit log: who did what to which job, queue, user or token, when, and from where."""

from __future__ import annotations

import time
from typing import Any

from synthbox.accounts.models import AuditEntry
from synthbox.accounts.paging import page_by_id
from synthbox.actors import Actor


def record(actor: str, action: str, target: str = "", detail: str = "",
           address: str = "") -> None:
    AuditEntry.create(at=time.time(), actor=actor, action=action, target=target[:255],
                      detail=detail[:2000], address=address[:64])


def record_by(actor: Actor, action: str, target: str = "", detail: str = "") -> None:
    record(actor.name, action, target, detail, actor.address)


def entries(limit: int = 50, before: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
    """Newest first; pass the returned cursor as `before` for the next page."""
    return page_by_id(AuditEntry, _entry_dict, limit, before, newest_first=True)


def _entry_dict(entry: AuditEntry) -> dict[str, Any]:
    return {"id": entry.id, "at": int(entry.at * 1000), "actor": entry.actor,
            "action": entry.action, "target": entry.target, "detail": entry.detail,
            "address": entry.address}
