"""A single add on PostgreSQL is prepared once per connection and then only executed; a
connection that loses the statement (DISCARD ALL, a pooler in transaction mode) still
adds every job, and after a few losses adds are sent whole for good."""

from __future__ import annotations

from synthbox.jobs.prepared import LOSSES_TO_GIVE_UP


def _prepared(engine) -> list[str]:
    return [row[0] for row in engine.db.execute_sql(
        "SELECT name FROM pg_prepared_statements").fetchall()]


def _count(engine) -> int:
    return int(engine.db.execute_sql("SELECT COUNT(*) FROM job").fetchone()[0])


def test_a_single_add_is_prepared_once_and_survives_losing_it(pg_url, engine_builder):
    engine = engine_builder({"database_url": pg_url}, workers=False)
    service = engine.service("diagnostics")
    first = service.add("noop", {"n": 1})
    assert _prepared(engine) == ["synthbox_add_job"]
    second = service.add("noop", {"n": 2})
    assert second["id"] > first["id"]

    for n in range(LOSSES_TO_GIVE_UP):
        engine.db.execute_sql("DEALLOCATE ALL")  # what a pooler's DISCARD ALL does
        job = service.add("noop", {"n": n})  # the EXECUTE fails: sent whole instead
        assert service.get_job(job["id"])["data"] == {"n": n}
        assert _prepared(engine) == []
        service.add("noop")  # prepared again (until given up)
    assert _count(engine) == 2 + 2 * LOSSES_TO_GIVE_UP, "every add landed, once"
    assert _prepared(engine) == [], "given up: adds are sent whole"
    assert service.add("noop")["id"] > job["id"]
    assert _prepared(engine) == []


def test_an_add_inside_a_transaction_is_sent_whole(pg_url, engine_builder):
    engine = engine_builder({"database_url": pg_url}, workers=False)
    service = engine.service("diagnostics")
    with engine.db.atomic() as transaction:
        service.add("noop")
        assert _prepared(engine) == []
        transaction.rollback()
    assert _count(engine) == 0
