"""Group commit: requests from many connection threads done together, in one transaction,
by whichever thread comes first (SQLite has one writer at a time: eight connections each
committing alone wait in line for the lock; together they share one commit)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")


class _Slot:
    __slots__ = ("item", "done", "result")

    def __init__(self, item: Any):
        self.item = item
        self.done = threading.Event()
        self.result: Any = None


class GroupCommit(Generic[Item]):
    def __init__(self, run_batch: Callable[[Sequence[Item]], Sequence[Any]]):
        """`run_batch(items)` gives one result per item; a result that is an exception is
        raised in the thread that submitted its item."""
        self.run_batch = run_batch
        self._lock = threading.Lock()
        self._pending: list[_Slot] = []
        self._leading = False

    def submit(self, item: Item) -> Any:
        slot = _Slot(item)
        with self._lock:
            self._pending.append(slot)
            lead = not self._leading
            self._leading = True
        if lead:
            self._lead()
        else:
            slot.done.wait()
        if isinstance(slot.result, BaseException):
            raise slot.result
        return slot.result

    def _lead(self) -> None:
        """Run what is pending, batch after batch, until nothing is."""
        while True:
            with self._lock:
                batch, self._pending = self._pending, []
                if not batch:
                    self._leading = False
                    return
            try:
                results = list(self.run_batch([slot.item for slot in batch]))
            except Exception as exc:  # every request of the batch hears of it
                results = [exc] * len(batch)
            for slot, result in zip(batch, results, strict=True):
                slot.result = result
                slot.done.set()
