"""Group commit of single adds on PostgreSQL (synthbox/jobs/groupcommit.py): adds that
arrive together share one INSERT and one commit, each caller gets its own job, committed,
and a caller's own transaction is never shared."""

from __future__ import annotations

import threading

import pytest

from synthbox.jobs.groupcommit import GroupCommit

THREADS, EACH = 16, 40


def test_concurrent_single_adds_share_commits_and_each_gets_its_own_job(pg_url,
                                                                         engine_builder):
    engine = engine_builder({"database_url": pg_url}, workers=False)
    service = engine.service("diagnostics")
    start = threading.Barrier(THREADS)
    added: dict[int, int] = {}  # job id -> the marker its caller put in its data
    errors: list[BaseException] = []

    def adder(thread: int) -> None:
        start.wait()
        try:
            for n in range(EACH):
                marker = thread * 1000 + n
                added[int(service.add("noop", {"marker": marker})["id"])] = marker
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=adder, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(added) == THREADS * EACH, "every add its own id"
    stored = dict(engine.store.execute(
        "SELECT id, (data::json->>'marker')::int FROM job WHERE queue='diagnostics'").fetchall())
    assert stored == added, "each id holds the job its caller added, committed"
    grouped = engine.store.grouped
    assert grouped.items == THREADS * EACH
    assert grouped.batches < grouped.items, "adds that arrived together shared a commit"
    print(f"{grouped.items} adds in {grouped.batches} commits")


def test_an_add_inside_the_callers_transaction_is_never_grouped(pg_url, engine_builder):
    engine = engine_builder({"database_url": pg_url}, workers=False)
    service = engine.service("diagnostics")
    with engine.db.atomic() as transaction:
        inside = service.add("noop", {"inside": True})["id"]
        other: list[str] = []
        thread = threading.Thread(target=lambda: other.append(service.add("noop")["id"]))
        thread.start()
        thread.join(10)
        transaction.rollback()
    assert other, "another thread's add does not wait for this transaction"
    assert service.get_job(inside) is None, "rolled back with the caller's transaction"
    assert service.get_job(other[0])["state"] == "waiting"


def test_a_failed_commit_fails_every_add_it_carried():
    entered, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def insert(rows):
        calls.append(len(rows))
        if len(calls) == 1:  # the first commit is in flight while the others arrive
            entered.set()
            release.wait(10)
            return [1]
        raise ConnectionError("records database unreachable")

    group = GroupCommit(insert)
    results: list[object] = []

    def add() -> None:
        try:
            results.append(group.submit(object()))  # type: ignore[arg-type]
        except ConnectionError as exc:
            results.append(exc)

    first = threading.Thread(target=add)
    first.start()
    assert entered.wait(10)
    others = [threading.Thread(target=add) for _ in range(3)]
    for thread in others:
        thread.start()
    while len(group._waiting) < 3:
        threading.Event().wait(0.01)
    release.set()
    for thread in [first, *others]:
        thread.join(10)
    assert calls == [1, 3], "the three that waited went in one statement"
    assert results.count(1) == 1
    assert [str(r) for r in results if r != 1] == ["records database unreachable"] * 3
    with pytest.raises(ConnectionError):  # and the next add leads a commit of its own
        group.submit(object())  # type: ignore[arg-type]


@pytest.mark.parametrize("records", ["sqlite", "postgres"])
def test_a_single_add_answers_the_job_as_it_is_stored(records, request, engine_builder):
    """A single add builds its answer without reading the job back: it is the job that
    get_job() then reads, field for field (PostgreSQL without Redis also rings the other
    instances in the adding statement)."""
    settings = {} if records == "sqlite" else {"database_url": request.getfixturevalue("pg_url")}
    engine = engine_builder(settings, workers=False)
    service = engine.service("diagnostics")
    answers = [service.add("noop"),
               service.add("noop", {"n": [1, 2.5, None]}, priority=3, attempts=5, timeout=2.5,
                           backoff={"type": "fixed", "delay": 4}),
               service.add("noop", delay=60),
               service.add("noop", key="once"),
               service.add_bulk([{"name": "noop", "data": {"api": True}}])[0]]
    assert [answer["state"] for answer in answers] == [
        "waiting", "waiting", "delayed", "waiting", "waiting"]
    for answer in answers:
        stored = service.get_job(answer["id"])
        for history in ("errors", "stacktrace", "logs"):
            del stored[history]
        assert answer == stored
    assert service.add("noop", key="once")["id"] == answers[3]["id"]
