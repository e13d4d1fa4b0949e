"""Keyset pages over account records (users, tokens, audit entries)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from peewee import Model


def page_by_id(model: type[Model], render: Callable[[Any], dict[str, Any]], limit: int,
               cursor: int | None, newest_first: bool = False
               ) -> tuple[list[dict[str, Any]], int | None]:
    """Up to `limit` rows after `cursor` (an id), and the cursor of the next page or None."""
    field = model.id  # type: ignore[attr-defined]
    query = model.select().order_by(field.desc() if newest_first else field).limit(limit + 1)
    if cursor is not None:
        query = query.where(field < cursor if newest_first else field > cursor)
    rows = list(query)
    more = len(rows) > limit
    return [render(row) for row in rows[:limit]], (rows[limit - 1].get_id() if more else None)
