"""A clock step of +1 h under `synthbox serve` (tests/faults/shifted_clock.py shifts the
process's wall clock, not the machine's): delayed jobs that became due run at once, later
ones keep waiting, and a cron schedule fires once as a catch-up, with a log line for the
due times it skipped, never twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT, Records, Serve, wait_for
from tests.faults.load import FIGURES, add_job
from tests.orchestration.conftest import FAST, call, created

LAUNCHER = Path(__file__).with_name("shifted_clock.py")


class ShiftedServe(Serve):
    """Serve, through the launcher, with the clock offset in `offset_file`."""

    def __init__(self, data_dir: Path, env: dict[str, str], offset_file: Path):
        super().__init__(data_dir, env)
        self.offset_file = offset_file

    def start(self, wait: bool = True) -> Serve:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("SYNTHBOX_") and k not in ("REDIS_URL", "DATABASE_URL")}
        env.update({"SYNTHBOX_DATA_DIR": str(self.data_dir), "SYNTHBOX_PORT": str(self.port),
                    "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT), **self.env})
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(LAUNCHER), str(self.offset_file), "serve"],
                env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self.healthy, 30, message=f"serve on {self.port}\n{self.output()}")
        return self


def test_clock_step_plus_1_h_for_delayed_jobs_and_cron(tmp_path):
    offset = tmp_path / "offset"
    offset.write_text("0")
    data = tmp_path / "data"
    server = ShiftedServe(data, {"SYNTHBOX_QUEUES": json.dumps(FAST)}, offset).start()
    try:
        records = Records(data)
        soon = [int(add_job(server, {"name": "noop", "opts": {"delay": 30 * 60 * 1000}})[1]
                    ["data"]["id"]) for _ in range(10)]
        later = [int(add_job(server, {"name": "noop", "opts": {"delay": 2 * 3600 * 1000}})[1]
                     ["data"]["id"]) for _ in range(10)]
        created(server, "/projects", {"slug": "clock"})
        created(server, "/projects/clock/agents", {"slug": "tick", "kind": "command",
                                                   "config": {"command": ["true"]}})
        created(server, "/projects/clock/schedules", {"cron": "*/5 * * * *"})
        time.sleep(2.0)
        every = ",".join(map(str, soon + later))
        assert records.query(f"SELECT COUNT(*) FROM job WHERE id IN ({every}) "
                             "AND status='completed'")[0][0] == 0, "nothing runs before the step"

        offset.write_text("3600")  # the step
        stepped = time.monotonic()
        marks = ",".join(map(str, soon))
        wait_for(lambda: records.query(f"SELECT COUNT(*) FROM job WHERE id IN ({marks}) "
                                       "AND status='completed'")[0][0] == 10, 30,
                 message="the jobs the step made due completed")
        ran_after = time.monotonic() - stepped
        marks_later = ",".join(map(str, later))
        assert records.query(f"SELECT COUNT(*) FROM job WHERE id IN ({marks_later}) "
                             "AND status='completed'")[0][0] == 0, "2 h jobs still wait"

        def runs():
            return call(server, "GET", "/projects/clock/runs")[1]["data"]["runs"]

        wait_for(runs, 30, message="the schedule fired after the step")
        fired_after = time.monotonic() - stepped
        time.sleep(4.0)  # upkeep has looked several times since
        assert len(runs()) == 1, "one catch-up run, not one per due time skipped"
        [run] = runs()
        assert run["triggeredBy"] == "system"  # a catch-up (cron for one on time)
        log = server.output()
        line = [x for x in log.splitlines() if "fired" in x and "catch-up" in x]
        assert len(line) == 1 and "were skipped" in line[0], log[-3000:]
        skipped = int(line[0].split("; ")[1].split()[0])
        assert 10 <= skipped <= 12, line[0]
        FIGURES["clock step +1 h"] = {"delayedDueRunWithinSeconds": round(ran_after, 2),
                                      "cronCatchUpWithinSeconds": round(fired_after, 2),
                                      "cronRuns": 1, "cronSkippedLogged": skipped,
                                      "runTwice": 0}
        print(f"\nFAULT clock step +1 h: {json.dumps(FIGURES['clock step +1 h'])}")
    finally:
        server.stop()
