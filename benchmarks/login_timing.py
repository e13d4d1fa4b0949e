"""Sign-in time for a known name with a wrong password against an unknown name (they
should match: an unknown name is checked against a dummy argon2id hash).

Usage: python benchmarks/login_timing.py [runs]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time

from synthbox.accounts import users
from synthbox.accounts.users import MAX_FAILURES
from synthbox.app import build_engine
from synthbox.config import load_settings
from synthbox.errors import NotAllowed


def timed(name: str, runs: int) -> list[float]:
    spent = []
    for i in range(runs):
        started = time.perf_counter()
        try:
            users.authenticate(name, "wrong password 123", address=f"10.0.0.{i}")
        except NotAllowed:
            pass
        spent.append((time.perf_counter() - started) * 1000)
    return spent


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    MAX_FAILURES["user"] = 10**6  # measure the check, not the throttle
    with tempfile.TemporaryDirectory() as data:
        engine = build_engine(load_settings({"data_dir": data}, env={}))
        users.create_user("known", "a real password 1", "viewer")
        known, unknown = timed("known", runs), timed("nobody", runs)
        engine.close()
    print(f"wrong password, known name: median {statistics.median(known):.1f} ms; "
          f"unknown name: median {statistics.median(unknown):.1f} ms ({runs} runs each)")


if __name__ == "__main__":
    main()
