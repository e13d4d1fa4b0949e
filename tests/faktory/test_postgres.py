"""The Faktory listener over PostgreSQL records (what several hosts share): the commands
whose SQL differs from SQLite's, against a real server and a throwaway database."""

from __future__ import annotations

import json

import pytest

from tests.faktory.helpers import Raw, faktory_serve


@pytest.fixture
def server(tmp_path, pg_url):
    serve, port = faktory_serve(tmp_path, env={"DATABASE_URL": pg_url})
    yield serve, port
    serve.stop()


def test_push_fetch_ack_fail_and_bulk_on_postgresql(server):
    serve, port = server
    raw = Raw(port, {"v": 2, "wid": "pg-worker"})
    jobs = [{"jid": f"pg{n}", "jobtype": "work", "args": [n], "queue": "pg"} for n in range(5)]
    assert raw.command("PUSHB " + json.dumps(jobs)) == {}
    code, message = raw.command("PUSH " + json.dumps(jobs[0]))
    assert code == "error" and message.startswith("NOTUNIQUE")
    fetched = [raw.command("FETCH pg")["jid"] for _ in range(5)]
    assert fetched == [f"pg{n}" for n in range(5)]  # FIFO within a priority
    for jid in fetched[:4]:
        assert raw.command(f'ACK {{"jid": "{jid}"}}') == "OK"
    failure = {"jid": "pg4", "errtype": "E", "message": "no", "backtrace": ["a", "b"]}
    assert raw.command("FAIL " + json.dumps(failure)) == "OK"
    stats = serve.request("GET", "/api/v1/queues/pg/stats")[1]["data"]
    assert stats["completed"] == 4 and stats["delayed"] == 1
    job = serve.request("GET", "/api/v1/queues/pg/jobs/pg4")[1]["data"]
    assert job["errors"][0]["stacktrace"] == "a\nb"
    assert raw.command('MUTATE {"cmd": "discard", "target": "retries"}') == "OK"
    assert serve.request("GET", "/api/v1/queues/pg/jobs/pg4")[0] == 404
    assert raw.command("PUSH " + json.dumps({**jobs[0], "jid": "pg-again"})) == "OK"
    assert raw.command("FLUSH") == "OK"
    assert serve.request("GET", "/api/v1/queues/pg/stats")[1]["data"]["waiting"] == 0
    raw.close()
