"""`python tests/faults/shifted_clock.py OFFSET_FILE serve`: `synthbox serve` whose wall
clock is the machine's plus the seconds written in OFFSET_FILE (read every 0.1 s). Writing
3600 there is, for this process, a clock step of +1 h, as `date -s` or an NTP step would
make it, without touching the machine's clock (other engineers' processes share it).

time.time and time.time_ns are shifted; time.monotonic is not, as with a real step.
libfaketime was tried first: Debian's 0.9.10 either shifts the monotonic clock too or,
with FAKETIME_DONT_FAKE_MONOTONIC, makes Python's time.sleep fail with EINVAL. Huey's
scheduler reads datetime.now(), not shifted here: its doorbells are only wake-ups, and the
upkeep sweep, on time.time(), finds the due jobs either way."""

from __future__ import annotations

import runpy
import sys
import threading
import time
from pathlib import Path

offset = [0.0]
real_time, real_time_ns = time.time, time.time_ns


def _follow(path: Path) -> None:
    while True:
        try:
            offset[0] = float(path.read_text().strip() or 0)
        except (OSError, ValueError):
            pass
        time.sleep(0.1)


def main() -> None:
    path = Path(sys.argv[1])
    offset[0] = float(path.read_text().strip() or 0)
    time.time = lambda: real_time() + offset[0]
    time.time_ns = lambda: real_time_ns() + int(offset[0] * 1e9)
    threading.Thread(target=_follow, args=(path,), daemon=True).start()
    sys.argv = ["synthbox", *sys.argv[2:]]
    runpy.run_module("synthbox", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
