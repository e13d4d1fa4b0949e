"""Upgrades: the records file of the previous release opens, migrates once, loses no job.

tests/fixtures/records-v0.1.0.db.gz was written by release 0.1.0 (commit cdbb9c0) with
tests/fixtures/make_records.py: diagnostics jobs completed, failed, active when the server
was killed, waiting in a paused queue, and delayed. The installed wheel and the .deb are
upgraded over the same file in test_packaging.py and test_deb.py.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from synthbox.app import DOMAIN_MIGRATIONS
from synthbox.records.database import JOB_MIGRATIONS
from tests.conftest import Records, Serve, wait_for

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "records-v0.1.0.db.gz"
PREVIOUS = {"completed-0": "completed", "completed-1": "completed", "completed-2": "completed",
            "failed-0": "failed", "failed-1": "failed", "active-0": "active",
            "waiting-0": "waiting", "waiting-1": "waiting", "waiting-2": "waiting",
            "delayed-0": "delayed", "delayed-1": "delayed"}
STEPS = {step.name for step in (*JOB_MIGRATIONS, *DOMAIN_MIGRATIONS)}  # every migration
# Recover the job that was active when 0.1.0 was killed within a second, not 30.
FAST_STALL_CONFIG = "[queues.diagnostics]\nstalled_interval = 1\n"


def restore_previous_records(data_dir: Path) -> None:
    """The data directory as release 0.1.0 left it (the wake-up file need not be kept)."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (data_dir / "synthbox.db").write_bytes(gzip.decompress(FIXTURE.read_bytes()))


def schema_versions(data_dir: Path) -> list[int]:
    """The numbered steps (every step is numbered too, for an older instance's sake)."""
    return [row[0] for row in Records(data_dir).query(
        "SELECT version FROM schema_version ORDER BY version")]


def schema_steps(data_dir: Path) -> set[str]:
    return {row[0] for row in Records(data_dir).query("SELECT name FROM schema_migration")}


def assert_upgraded(server: Serve) -> None:
    """Every job of 0.1.0 is there, each migration ran once, and every unfinished job
    completes once the queue is resumed."""
    ids = {}
    for job_key, state in PREVIOUS.items():
        status, reply = server.request("GET", f"/api/v1/queues/diagnostics/jobs/{job_key}")
        assert status == 200, (job_key, reply)
        ids[job_key] = reply["data"]["id"]
        if state in ("completed", "failed"):
            assert reply["data"]["state"] == state, (job_key, reply["data"])
    assert schema_versions(server.data_dir) == list(range(1, len(STEPS) + 1))
    assert schema_steps(server.data_dir) == STEPS

    status, reply = server.request("POST", "/api/v1/admin/queues/diagnostics/resume")
    assert status == 200, reply
    unfinished = [key for key, state in PREVIOUS.items() if state not in ("completed", "failed")]
    for key in unfinished:  # the delayed ones were due long ago
        path = f"/api/v1/queues/diagnostics/jobs/{ids[key]}"
        wait_for(lambda path=path: server.request("GET", path)[1]["data"]["state"]
                 == "completed", 60, message=f"{key} after the upgrade\n{server.output()}")
    status, stats = server.request("GET", "/api/v1/queues/diagnostics/stats")
    assert status == 200
    assert stats["data"]["completed"] == 3 + len(unfinished)
    assert stats["data"]["failed"] == 2 and stats["data"]["total"] == len(PREVIOUS)


def test_the_previous_release_records_open_migrate_once_and_lose_no_job(tmp_path):
    data = tmp_path / "data"
    restore_previous_records(data)
    config = tmp_path / "synthbox.toml"
    config.write_text(FAST_STALL_CONFIG)
    server = Serve(data, {"SYNTHBOX_CONFIG": str(config)}).start()
    try:
        assert_upgraded(server)
        assert server.stop() == 0
        server.start()  # a second start migrates nothing more
        assert schema_versions(data) == list(range(1, len(STEPS) + 1))
        assert schema_steps(data) == STEPS
        status, stats = server.request("GET", "/api/v1/queues/diagnostics/stats")
        assert stats["data"]["total"] == len(PREVIOUS)
    finally:
        server.stop()
