"""The registry of connected workers, and group commit, on their own."""

from __future__ import annotations

import threading
import time

import pytest

from synthbox.faktory.workers import STALE_AFTER, WorkerRegistry, worker_registry
from synthbox.jobs.groupcommit import GroupCommit
from tests.conftest import wait_for


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


@pytest.fixture(params=["sqlite", "postgres"])
def two_instances(request, engine_builder):
    """The registries of two engines on the same records, as two instances of a cluster."""
    settings = {} if request.param == "sqlite" else {
        "database_url": request.getfixturevalue("pg_url")}
    first, second = (engine_builder(settings, workers=False) for _ in range(2))
    return worker_registry(first), worker_registry(second), first.instance_id


def wids(registry):
    return [w["wid"] for w in registry.listing()]


def test_a_worker_on_one_instance_is_listed_and_quieted_through_another(two_instances):
    here, there, here_id = two_instances
    here.hello("w1", "box", 10, ["go"], "faktory", "127.0.0.1")
    here.hold("w1", "job-1")
    assert here.beat("w1", rss_kb=2048) == ""  # the held job goes with the beat
    listed = wait_for(lambda: there.listing() or None, 5, message="listed there")
    assert [(w["wid"], w["hostname"], w["pid"], w["labels"], w["jobs"], w["rssKb"],
             w["instances"]) for w in listed] == [
        ("w1", "box", 10, ["go"], ["job-1"], 2048, [here_id])]
    assert there.requested("w1") == ""  # not connected there
    assert there.signal("w1", "quiet")
    wait_for(lambda: here.requested("w1") == "quiet", 5, message="quiet heard here")
    assert here.beat("w1") == "quiet"
    assert [w["state"] for w in there.listing()] == ["quiet"]
    assert there.signal("w1", "terminate") and not there.signal("nobody", "quiet")
    wait_for(lambda: here.beat("w1") == "terminate", 5, message="terminate heard here")
    assert there.signal("w1", "quiet")  # terminate is never undone by quiet
    here.sync()
    assert here.beat("w1") == "terminate"
    here.release("job-1")
    here.disconnected("w1")
    wait_for(lambda: wids(there) == [], 5, message="gone there")
    assert wids(here) == []


def test_a_worker_with_connections_on_both_instances_is_listed_once(two_instances):
    here, there, here_id = two_instances
    here.hello("w1", "box", 10, [], "faktory")
    there.hello("w1", "box", 10, [], "faktory")
    here.hold("w1", "job-1")
    there.hold("w1", "job-2")
    here.beat("w1")
    there.beat("w1")
    both = wait_for(lambda: [w for w in here.listing() if len(w["instances"]) == 2], 5)
    assert [w["jobs"] for w in both] == [["job-1", "job-2"]]
    assert there.signal("w1", "quiet")
    wait_for(lambda: here.requested("w1") == "quiet", 5, message="quiet on both")
    assert there.requested("w1") == "quiet"


def test_rows_of_workers_silent_for_60_seconds_are_not_listed(two_instances):
    here, there, _ = two_instances
    here.hello("w1", "box", 10, [], "faktory")
    here.hello("w2", "box", 11, [], "faktory")
    wait_for(lambda: wids(there) == ["w1", "w2"], 5, message="both listed there")
    here._rows.store.execute("UPDATE faktory_worker SET last_beat=? WHERE wid='w1'",
                             (time.time() - STALE_AFTER - 1,))
    assert wids(there) == ["w2"]
    assert not there.signal("w1", "quiet")


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
