"""Retention of jobs pushed by Faktory clients: completed jobs past the queue's `keep_completed`
are deleted as any others, and the upkeep task serve runs for the listener drops their
Faktory extras (jid, custom, reserve_for), so the jid is free again. In process, with the
real listener on a free port: retention and the extras task are called rather than waited
for (they run every minute in serve)."""

from __future__ import annotations

import json

from synthbox.app import faktory_listener
from tests.conftest import free_port
from tests.faktory.helpers import Raw


def test_retention_deletes_pushed_jobs_and_the_extras_task_drops_theirs(engine_builder):
    port = free_port()
    engine = engine_builder({"faktory_address": f"127.0.0.1:{port}"},
                            {"kept": {"handler": "remote", "keep_completed": {"count": 1}}})
    listener = faktory_listener(engine)
    assert listener is not None
    listener.start()
    raw = Raw(port, {"v": 2, "wid": "w-kept"})
    try:
        for n in range(3):
            job = {"jid": f"kept-{n}", "jobtype": "work", "args": [n], "queue": "kept",
                   "custom": {"trace": f"t{n}"}}
            assert raw.command("PUSH " + json.dumps(job)) == "OK"
            assert raw.command("FETCH kept")["jid"] == f"kept-{n}"
            assert raw.command(f'ACK {{"jid": "kept-{n}"}}') == "OK"

        def extras() -> list[str]:
            return sorted(row[0] for row in engine.store.execute(
                "SELECT jid FROM faktory_job WHERE jid LIKE 'kept-%'"))

        assert extras() == ["kept-0", "kept-1", "kept-2"]
        engine.upkeep.apply_retention(engine.queues["kept"].runner)
        service = engine.service("kept")
        assert [job["jobId"] for job in service.list_jobs(None)[0]] == ["kept-2"]
        assert service.get_job("kept-0") is None
        listener.periodic().fn()  # the task serve runs every minute
        assert extras() == ["kept-2"]
        again = {"jid": "kept-0", "jobtype": "work", "args": ["again"], "queue": "kept"}
        assert raw.command("PUSH " + json.dumps(again)) == "OK"  # the jid is free again
        fetched = raw.command("FETCH kept")
        assert (fetched["jid"], fetched["args"], "custom" in fetched) == (
            "kept-0", ["again"], False)  # none of the deleted job's extras
        assert raw.command('ACK {"jid": "kept-0"}') == "OK"
    finally:
        raw.close()
        listener.stop()
