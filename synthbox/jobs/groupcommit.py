"""Group commit of single adds on PostgreSQL: adds that arrive together share one INSERT
and one commit, and each caller returns once its own job is committed.

No timer: the first add to find no commit in flight leads at once (a lone add is not
delayed); the adds that arrive while its commit is in flight wait, and the first of them
leads the next commit with all of them. Durability is unchanged: every caller's row is
committed before it returns, in a statement of its own or shared with others.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from synthbox.jobs.rows import NewJob

Insert = Callable[[Sequence[NewJob]], list[int]]  # the rows' ids, in their order


class _Waiting:
    __slots__ = ("row", "job_id", "error", "leads", "done")

    def __init__(self, row: NewJob):
        self.row = row
        self.job_id = 0
        self.error: BaseException | None = None
        self.leads = False  # handed the next commit by the one before
        self.done = threading.Event()


class GroupCommit:
    def __init__(self, insert: Insert):
        """`insert` writes and commits rows in one statement (outside any transaction)."""
        self._insert = insert
        self._lock = threading.Lock()
        self._waiting: list[_Waiting] = []
        self._in_flight = False
        self.commits = 0  # statements run, and the rows they carried (for benchmarks)
        self.rows = 0

    def add(self, row: NewJob) -> int:
        """Insert `row` with whatever else is waiting; its id once committed."""
        me = _Waiting(row)
        with self._lock:
            self._waiting.append(me)
            follow, self._in_flight = self._in_flight, True
        if follow:
            me.done.wait()
        if not follow or me.leads:
            self._commit_waiting()
        if me.error is not None:
            raise me.error
        return me.job_id

    def _commit_waiting(self) -> None:
        with self._lock:
            batch, self._waiting = self._waiting, []
        try:
            ids = self._insert([waiting.row for waiting in batch])
        except BaseException as exc:  # every caller of the batch sees its failure
            for waiting in batch:
                waiting.error = exc
        else:
            for waiting, job_id in zip(batch, ids, strict=True):
                waiting.job_id = job_id
        with self._lock:
            self.commits += 1
            self.rows += len(batch)
            if self._waiting:  # arrived during this commit: the first leads the next
                self._waiting[0].leads = True
                self._waiting[0].done.set()
            else:
                self._in_flight = False
        for waiting in batch:
            waiting.done.set()
