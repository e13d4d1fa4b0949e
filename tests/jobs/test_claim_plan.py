"""The workers' one hot query keeps its plan with a million jobs waiting: the claim reads
the `job_claim` index of waiting jobs in its order (queue, status, priority DESC, run_at,
id), takes the first rows and stops; no scan of the table, no sort. Shown on PostgreSQL
and SQLite with the rows a busy deployment holds (three queues, most jobs due, some
delayed, a tail of finished ones). Stalled-job recovery, by lease or by a gone instance,
reads the index of active jobs (`job_lease`) and no other."""

from __future__ import annotations

import time

from synthbox.jobs.store import FAIL_STALLED, REQUEUE_STALLED

WAITING = 1_000_000
PG_FILL = """
INSERT INTO job (queue, name, data, status, priority, run_at, attempts_made, attempts_max,
                 backoff_type, backoff_delay, stalled_count, progress, created_at, finished_at)
SELECT (ARRAY['diagnostics', 'email', 'orchestration'])[1 + mod(g, 3)], 'noop', '{}',
       CASE WHEN mod(g, 20) = 0 THEN 'completed' ELSE 'waiting' END, mod(g, 11),
       %(now)s + CASE WHEN mod(g, 100) = 0 THEN 3600 ELSE -g / 1000.0 END, 0, 3,
       'exponential', 60, 0, 0, %(now)s - 60,
       CASE WHEN mod(g, 20) = 0 THEN %(now)s - 30 END
FROM generate_series(1, %(count)s) AS g
"""


def _claim_params(engine, limit: int = 8) -> dict:
    return engine.store._claim_params("diagnostics", limit, "bench-owner", 30.0, time.time())


def _recovery_plans(engine, explain: str) -> list[str]:
    """The plans of the four recovery statements, after some jobs of three owners are
    claimed (as a running deployment holds them)."""
    for owner in ("a", "b", "c"):
        engine.store.claim("diagnostics", 50, owner, 30.0)
    engine.db.execute_sql("ANALYZE")
    now = time.time()
    plans = []
    for lost, param in (("owner=?", "a"), ("lease_until<?", now)):
        for sql, params in ((REQUEUE_STALLED, ("diagnostics", param, 3)),
                            (FAIL_STALLED, (now, "diagnostics", param, 3))):
            plans.append(" | ".join(str(row[-1]) for row in engine.db.execute_sql(
                explain + engine.store._sql(sql.format(lost=lost)), params).fetchall()))
    return plans


def test_the_claim_reads_its_index_at_a_million_waiting_jobs_on_postgresql(pg_url,
                                                                          engine_builder):
    engine = engine_builder({"database_url": pg_url}, workers=False)
    engine.db.execute_sql(PG_FILL, {"now": time.time(), "count": WAITING + WAITING // 19})
    engine.db.execute_sql("ANALYZE job")
    plan = "\n".join(row[0] for row in engine.db.execute_sql(
        "EXPLAIN " + engine.store._claim_sql, _claim_params(engine)).fetchall())
    print(plan)  # benchmarks/README.md shows it
    assert "Index Scan using job_claim on job" in plan, plan
    assert "Seq Scan on job" not in plan and "Sort" not in plan, plan
    claimed = engine.store.claim("diagnostics", 8, "test", 30.0)
    assert [job.priority for job in claimed] == [10] * 8, "highest priority first"
    for plan in _recovery_plans(engine, "EXPLAIN "):
        assert "job_lease" in plan and "Seq Scan" not in plan, plan


def test_the_claim_reads_its_index_at_a_million_waiting_jobs_on_sqlite(engine_builder):
    engine = engine_builder({}, workers=False)
    now = time.time()
    with engine.db.atomic():
        engine.db.execute_sql(
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?) "
            "INSERT INTO job (queue, name, data, status, priority, run_at, attempts_made, "
            "attempts_max, backoff_type, backoff_delay, stalled_count, progress, created_at) "
            "SELECT CASE n % 3 WHEN 0 THEN 'diagnostics' WHEN 1 THEN 'email' "
            "ELSE 'orchestration' END, 'noop', '{}', 'waiting', n % 11, "
            "? - n / 1000.0, 0, 3, 'exponential', 60, 0, 0, ? FROM g", (WAITING, now, now))
    engine.db.execute_sql("ANALYZE")
    plan = " | ".join(row[-1] for row in engine.db.execute_sql(
        "EXPLAIN QUERY PLAN " + engine.store._due_sql, _claim_params(engine)).fetchall())
    print(plan)
    assert "SEARCH job USING COVERING INDEX job_claim (queue=? AND status=?)" in plan, plan
    assert "SCAN job" not in plan and "TEMP B-TREE" not in plan, plan
    for plan in _recovery_plans(engine, "EXPLAIN QUERY PLAN "):
        assert "job_lease" in plan and "SCAN job" not in plan, plan

