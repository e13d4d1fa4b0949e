"""The workers table (models.FaktoryWorker), so that every instance of a cluster lists
every worker and passes an admin's quiet or stop on to the instance a worker is
connected to. Each instance writes one row per worker it serves, keyed (wid, instance):
a client whose connections the kernel spread over two instances has a row in each, and
the listing merges them. Rows are plain tuples in COLUMNS order (workers.py reads them)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from synthbox.jobs.store import JobStore

COLUMNS = ("wid", "instance", "hostname", "pid", "labels", "protocol", "address",
           "started_at", "last_beat", "rss_kb", "current_state", "requested", "jobs")
_KEPT = ("instance", "requested")  # not overwritten by a write: the key, and an admin's ask
# an admin's ask only grows (nothing -> quiet -> terminate), whoever writes last
_STRONGER = ("CASE WHEN faktory_worker.requested='terminate' OR excluded.requested='' "
             "THEN faktory_worker.requested ELSE excluded.requested END")
_UPSERT = (f"INSERT INTO faktory_worker ({', '.join(COLUMNS)}) "
           f"VALUES ({', '.join('?' * len(COLUMNS))}) ON CONFLICT (wid, instance) DO UPDATE "
           f"SET {', '.join(f'{c}=excluded.{c}' for c in COLUMNS[2:] if c not in _KEPT)}, "
           f"requested={_STRONGER}")
CHUNK = 500  # wids in one IN (...)


def stronger(one: str, other: str) -> str:
    """The stronger of two asks: terminate over quiet over nothing."""
    order = ("", "quiet", "terminate")
    return max(one, other, key=lambda ask: order.index(ask) if ask in order else 0)


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


class WorkerRows:
    def __init__(self, store: JobStore, instance: str):
        self.store, self.instance = store, instance

    def write(self, rows: Sequence[tuple[Any, ...]], gone: Sequence[str]) -> None:
        """This instance's rows of these workers written, and of the `gone` ones deleted."""
        if not rows and not gone:
            return
        with self.store.db.atomic():
            if rows:
                self.store.db.cursor().executemany(self.store._sql(_UPSERT), rows)
            for wids in _chunks(gone):
                self.store.execute(f"DELETE FROM faktory_worker WHERE instance=? AND wid IN "
                                   f"({','.join('?' * len(wids))})", [self.instance, *wids])

    def seen(self, wids: Sequence[str]) -> dict[str, tuple[str, float]]:
        """For each worker named, over every instance's row: the strongest ask and the
        latest beat (a worker beating through another instance is alive here too)."""
        found: dict[str, tuple[str, float]] = {}
        for chunk in _chunks(wids):
            for wid, requested, last_beat in self.store.execute(
                    f"SELECT wid, requested, last_beat FROM faktory_worker WHERE wid IN "
                    f"({','.join('?' * len(chunk))})", list(chunk)):
                before = found.get(wid, ("", 0.0))
                found[wid] = (stronger(before[0], requested), max(before[1], last_beat))
        return found

    def everyone(self, since: float) -> list[tuple[Any, ...]]:
        """Every instance's rows of workers that beat since then."""
        return [tuple(row) for row in self.store.execute(
            f"SELECT {', '.join(COLUMNS)} FROM faktory_worker WHERE last_beat>=? "
            "ORDER BY started_at, wid", (since,))]

    def signal(self, wid: str, state: str, since: float) -> bool:
        """Ask a worker, wherever it is connected, to go quiet or terminate; False when no
        instance has heard from it since then. Terminate is never undone by quiet."""
        with self.store.db.atomic():
            self.store.execute("UPDATE faktory_worker SET requested=? WHERE wid=? AND "
                               "requested<>'terminate'", (state, wid))
            return self.store.execute("SELECT 1 FROM faktory_worker WHERE wid=? AND "
                                      "last_beat>=?", (wid, since)).fetchone() is not None

    def forget_stale(self, before: float) -> None:
        """Rows of workers silent since before then, whichever instance wrote them (one
        that crashed leaves its rows behind)."""
        self.store.execute("DELETE FROM faktory_worker WHERE last_beat<?", (before,))
