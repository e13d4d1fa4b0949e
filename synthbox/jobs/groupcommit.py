"""Group commit: requests from many threads done together, in one statement or one
transaction, and each caller returns once its own request is done.

No timer: the first request to find nothing in flight leads at once (a lone request is
not delayed); requests that arrive while a batch is in flight wait, and the first of them
leads the next batch with all of them. Used for single adds on PostgreSQL (one INSERT
and one commit for the adds of many API threads) and for the HTTP worker API's fetches
and acknowledgements (SQLite has one writer: eight request threads each committing
alone wait in line for its lock; together they share one commit). The Faktory
protocol's loop batches by itself: one thread answers every connection in rounds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")


class _Waiting:
    __slots__ = ("item", "result", "leads", "done")

    def __init__(self, item: Any):
        self.item = item
        self.result: Any = None
        self.leads = False  # handed the next batch by the one before
        # set once its batch is done: only a request that waits has one (a lone add, which
        # leads at once, would make an Event and a Condition for nothing)
        self.done: threading.Event | None = None


class GroupCommit(Generic[Item]):
    def __init__(self, run_batch: Callable[[Sequence[Item]], Sequence[Any]]):
        """`run_batch(items)` does the items together and gives one result per item. A
        result that is an exception is raised in the thread that submitted its item; an
        exception of the whole batch in every one of them."""
        self.run_batch = run_batch
        self._lock = threading.Lock()
        self._waiting: list[_Waiting] = []
        self._in_flight = False
        self.batches = 0  # batches run, and the items they carried (for benchmarks)
        self.items = 0

    def submit(self, item: Item) -> Any:
        """Do `item` with whatever else is waiting; its result once done."""
        me = _Waiting(item)
        with self._lock:
            self._waiting.append(me)
            follow, self._in_flight = self._in_flight, True
            if follow:
                done = me.done = threading.Event()
        if follow:
            done.wait()
        if not follow or me.leads:
            self._run_waiting()
        if isinstance(me.result, BaseException):
            raise me.result
        return me.result

    def _run_waiting(self) -> None:
        with self._lock:
            batch, self._waiting = self._waiting, []
        try:
            results: Sequence[Any] = list(self.run_batch([waiting.item for waiting in batch]))
        except BaseException as exc:  # every caller of the batch hears of it (none hangs)
            results = [exc] * len(batch)
        for waiting, result in zip(batch, results, strict=True):
            waiting.result = result
        with self._lock:
            self.batches += 1
            self.items += len(batch)
            if self._waiting:  # arrived during this batch (so it waits): it leads the next
                first = self._waiting[0]
                first.leads = True
                first.done.set()  # type: ignore[union-attr]
            else:
                self._in_flight = False
        for waiting in batch:
            if waiting.done is not None:  # the one that ran the batch does not wait
                waiting.done.set()
