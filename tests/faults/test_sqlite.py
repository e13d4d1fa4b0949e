"""The embedded SQLite records in trouble: the disk full, then freed (a tmpfs of its own,
mounted for the test: this needs root, as CI has), and the file locked by another process
for 10 s."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import Records, wait_for
from tests.faults.load import Load, metric, page

QUEUES = {"SYNTHBOX_QUEUES": json.dumps({"diagnostics": {"concurrency": 4}})}


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MB tmpfs: the records' file system, filled and freed by the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], check=True)
    yield mount
    for name in ("synthbox.log",):  # kept for a look after the test
        if (mount / name).exists():
            (tmp_path / name).write_bytes((mount / name).read_bytes())
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the file system says it is full."""
    ballast = directory / "ballast"
    block = b"\0" * (64 * 1024)
    with ballast.open("wb", buffering=0) as out:  # nothing left to flush at close
        try:
            while True:
                out.write(block)
        except OSError:
            pass
    return ballast


def test_disk_full_then_freed(small_disk, serve_factory):
    data = small_disk  # the serve log goes beside it, off the full disk
    server = serve_factory(QUEUES, data)
    records = Records(data)
    load = Load(server, pause=0.01).start()
    time.sleep(1.0)
    ballast = fill(small_disk)
    full = time.monotonic()
    wait_for(lambda: load.statuses[503] >= 5, 30, message="adds refused while the disk is full")
    status, ready = server.request("GET", "/readyz", token=None)
    assert status == 503, ready
    assert ready["failing"] == "records" and "full" in ready["checks"]["records"], ready
    # the pages carry a banner, the metrics say so
    wait_for(lambda: metric(server, "synthbox_records_up") == 0, 10, message="records_up 0")
    # A write that fits in space the files already hold (SQLite's WAL, once checkpointed,
    # is written again from its start) can succeed on the full disk and mark the records
    # writable until the next one fails: the banner is looked for until it shows.
    wait_for(lambda: "Records database" in (shown := page(server))
             and "database or disk is full" in shown, 10, message="the banner")
    time.sleep(1.0)
    ballast.unlink()
    freed = time.monotonic()
    wait_for(lambda: [t for t in load.successes if t > freed], 20, message="an add after")
    time.sleep(1.0)
    load.stop()
    load.check(refusals_expected=True)
    assert any("full" in message for message in load.messages), load.messages
    wait_for(lambda: server.request("GET", "/readyz", token=None)[0] == 200, 20,
             message="/readyz 200 again")
    assert metric(server, "synthbox_records_up") == 1
    assert "Records database" not in page(server)
    load.settled(records)
    wait_for(lambda: "records database unreachable: database or disk is full"
             in server.output(), 10, message=f"the cause logged\n{server.output()[-3000:]}")
    assert "cannot rollback" not in server.output(), "a failed rollback hid the real cause"
    load.report("sqlite disk full", records, load.recovered_after(freed),
                fullForSeconds=round(freed - full, 1))


LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


def test_file_locked_by_another_process_for_10_s(serve_factory, tmp_path):
    import sys

    data = tmp_path / "data"
    server = serve_factory(QUEUES, data)
    records = Records(data)
    load = Load(server, pause=0.02).start()
    time.sleep(1.0)
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(data / "synthbox.db"), "10"],
                              stdout=subprocess.PIPE, text=True)
    assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
    locked = time.monotonic()
    # a background reader meanwhile: /metrics waits for the lock rather than failing
    scraped: list[object] = []

    def scrape() -> None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics",
                                        timeout=40) as response:
                scraped.append(response.status)
        except Exception as exc:
            scraped.append(exc)

    threading.Thread(target=scrape, daemon=True).start()
    assert locker.wait(30) == 0
    locker.stdout.close()
    released = time.monotonic()
    wait_for(lambda: [t for t in load.successes if t > released], 20, message="an add after")
    time.sleep(1.0)
    load.stop()
    load.check()
    load.settled(records)
    wait_for(lambda: scraped, 40, message="the scrape during the lock answered")
    assert scraped == [200]
    log = server.output()
    assert "periodic task" not in log or "failed" not in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    load.report("sqlite locked 10 s", records, load.recovered_after(released),
                lockedForSeconds=round(released - locked, 1))




def test_read_only_file_system_is_not_ready(small_disk, engine_builder):
    """A file system remounted read-only cannot be remounted under a process that holds
    files open for writing, as SynthBox does: the kernel does that on disk errors. Here
    the engine closes its files, the file system goes read-only, and /readyz's check
    (Engine.readiness) must say so rather than "ok" from a read that still works."""
    engine = engine_builder({}, workers=False, data_dir=small_disk)
    engine.service("diagnostics").add("noop")
    assert engine.readiness()["records"] == "ok"
    engine.close()
    for handle in engine.queues.values():
        handle.doorbell.huey.storage.close()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        state = engine.readiness()["records"]
        assert state.startswith(("unwritable: read-only file system", "unreachable")), state
        assert "read-only" in state or "readonly" in state or "unable to open" in state, state
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    # the failed open is retried after its backoff (0.1 s, doubling to 2 s)
    wait_for(lambda: engine.readiness()["records"] == "ok", 10, message="ready again")
