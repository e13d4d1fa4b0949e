"""Server time of the dashboard, the queue page, the stats and list APIs (the seed's admin
endpoint included) and /metrics with many job records.

Fills a fresh SQLite records database (or DATABASE_URL's) with N jobs spread over the
queues and states, signs in through the real sign-in form, then times each page through
Flask's test client (server time, no network): median and worst of several requests.

Usage: python benchmarks/pages_at_scale.py [jobs, default 1000000] [requests, default 7]
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
import time

from synthbox.accounts import tokens, users
from synthbox.app import build_engine
from synthbox.config import load_settings
from synthbox.jobs.engine import Engine
from synthbox.records.counts import fold
from synthbox.web import create_app

STATES = ("completed",) * 80 + ("failed",) * 10 + ("waiting",) * 10
QUEUES = ("diagnostics", "email", "orchestration")


def fill(engine: Engine, count: int) -> None:
    now = time.time()
    rows = []
    for i in range(count):
        status = STATES[i % len(STATES)]
        finished = now - (i % 3600) if status in ("completed", "failed") else None
        rows.append((QUEUES[i % 3], "noop", f'{{"n": {i}}}', status, 0, now - 10, 1, 1,
                     "fixed", 1.0, 0, f"boom {i}" if status == "failed" else None,
                     now - 20, finished))
    sql = ("INSERT INTO job (queue, name, data, status, priority, run_at, attempts_made, "
           "attempts_max, backoff_type, backoff_delay, stalled_count, failed_reason, "
           "created_at, finished_at, progress) VALUES ")
    row = "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,0)"
    for start in range(0, count, 50_000):
        with engine.db.atomic():
            for first in range(start, min(start + 50_000, count), 500):
                chunk = rows[first:min(first + 500, count)]
                engine.store.execute(sql + ",".join([row] * len(chunk)),
                                     [value for values in chunk for value in values])


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    requests = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    with tempfile.TemporaryDirectory() as data:
        engine = build_engine(load_settings({"data_dir": data,
                                       "database_url": os.environ.get("DATABASE_URL", "")},
                                      env={}))
        started = time.perf_counter()
        fill(engine, count)
        fold(engine.db)  # what upkeep does every second
        if engine.store.postgres:  # what autovacuum does soon after a bulk load
            engine.db.execute_sql("VACUUM ANALYZE job, job_count_delta")
        print(f"{count:,} job records written in {time.perf_counter() - started:.1f} s "
              f"({engine.backends()['records']})")
        users.create_user("bench", "a bench password 1", "admin")
        api_token = tokens.create_token("bench", ["admin"], "bench")[1]
        client = create_app(engine).test_client()
        form = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        client.post("/login", data={"name": "bench", "password": "a bench password 1",
                                    "csrf_token": token})
        for label, path in (("dashboard", "/"), ("dashboard live", "/ui/live/dashboard"),
                            ("queue page", "/queues/diagnostics"),
                            ("queue page, failed", "/queues/diagnostics?state=failed"),
                            ("queue page, search", "/queues/diagnostics?search=boom+77"),
                            ("/metrics", "/metrics"),
                            ("stats API", "/api/v1/queues"),
                            ("queue stats API", "/api/v1/queues/diagnostics/stats"),
                            ("admin queue API", "/api/v1/admin/diagnostics/queue"),
                            ("admin list API", "/api/v1/admin/queues/diagnostics/jobs"),
                            ("admin list, failed",
                             "/api/v1/admin/queues/diagnostics/jobs?state=failed"),
                            ("admin list, page 2", "/api/v1/admin/queues/diagnostics/jobs"
                                                   "?state=completed&cursor={cursor}"),
                            ("jobs list API",
                             "/api/v1/queues/diagnostics/jobs?state=completed")):
            spent = []
            headers = {"Authorization": f"Bearer {api_token}"} if path.startswith("/api") else {}
            if "{cursor}" in path:  # the second page: where the first one ended
                first = client.get(path.split("&cursor")[0], headers=headers).get_json()
                path = path.format(cursor=first["data"]["nextCursor"])
            for _ in range(requests):
                began = time.perf_counter()
                answer = client.get(path, headers=headers)
                spent.append((time.perf_counter() - began) * 1000)
                assert answer.status_code == 200, (path, answer.status_code)
            print(f"{label:<20} median {statistics.median(spent):8.1f} ms   "
                  f"worst {max(spent):8.1f} ms")
        engine.close()


if __name__ == "__main__":
    main()
