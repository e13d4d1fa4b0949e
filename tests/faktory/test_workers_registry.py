"""The registry of connected workers, and group commit, on their own."""

from __future__ import annotations

import threading
import time

import pytest

from synthbox.faktory.workers import STALE_AFTER, WorkerRegistry
from synthbox.jobs.groupcommit import GroupCommit


def test_a_worker_silent_for_60_seconds_disappears():
    registry = WorkerRegistry()
    registry.hello("w1", "box", 10, ["go"], "faktory")
    registry.hello("w2", "box", 11, [], "http")
    assert [w["wid"] for w in registry.listing()] == ["w1", "w2"]
    registry._workers["w1"].last_beat = time.time() - STALE_AFTER - 1  # its last beat, 61 s ago
    assert [w["wid"] for w in registry.listing()] == ["w2"]
    assert registry.beat("w1") == ""  # beating again: known again
    assert {w["wid"] for w in registry.listing()} == {"w1", "w2"}


def test_quiet_then_terminate_is_told_at_each_beat_and_never_undone_by_quiet():
    registry = WorkerRegistry()
    registry.hello("w1", "box", 10, [], "faktory")
    assert registry.beat("w1") == ""
    assert registry.signal("w1", "quiet") and registry.beat("w1") == "quiet"
    assert registry.signal("w1", "terminate") and registry.beat("w1") == "terminate"
    assert registry.signal("w1", "quiet") and registry.beat("w1") == "terminate"
    assert not registry.signal("nobody", "quiet")


def test_a_worker_whose_last_connection_closes_holding_nothing_is_gone():
    registry = WorkerRegistry()
    registry.hello("w1", "box", 10, [], "faktory")
    registry.hold("w1", "job-1")
    registry.disconnected("w1")
    assert [w["jobs"] for w in registry.listing()] == [["job-1"]]  # until its lease ends
    registry.hello("w2", "box", 11, [], "faktory")
    registry.disconnected("w2")
    assert [w["wid"] for w in registry.listing()] == ["w1"]


def test_group_commit_runs_concurrent_requests_together_and_reports_each_outcome():
    batches: list[list[int]] = []
    gate = threading.Event()

    def run(items):
        gate.wait(5)  # the first batch holds the others back, so they gather
        batches.append(list(items))
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]

    group: GroupCommit[int] = GroupCommit(run)
    results: dict[int, object] = {}

    def submit(i: int) -> None:
        try:
            results[i] = group.submit(i)
        except ValueError as exc:
            results[i] = str(exc)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
        time.sleep(0.01)
    gate.set()
    for thread in threads:
        thread.join(5)
    assert results == {i: f"odd {i}" if i % 2 else i * 10 for i in range(8)}
    assert sorted(i for batch in batches for i in batch) == list(range(8))
    assert len(batches) < 8  # some shared a batch


def test_group_commit_hands_a_batch_failure_to_every_request_in_it():
    def run(items):
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError, match="went away"):
        GroupCommit(run).submit(1)
