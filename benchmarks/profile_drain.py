"""Where a drain's time goes: `synthbox bench` under py-spy, summarised.

py-spy samples every thread that is not idle (running Python, or inside SQLite or a
socket call), 500 times a second, while the bench enqueues and drains. The samples of
the worker threads (those under the queue runner's drain) are summarised by function:
the share of the workers' busy time spent in each, with what it calls and on its own.
A second run with `--gil` shows the share of the one interpreter lock instead.

Usage: python benchmarks/profile_drain.py [sqlite|redis] [jobs, default 40000]
                                          [--records-url URL] [--gil]
"""

from __future__ import annotations

import collections
import subprocess
import sys
import tempfile
from pathlib import Path

TOP = 25


def function(frame: str) -> str:
    """`name (path/file.py:123)` without the line: one entry per function."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def summarise(raw: Path, under: str) -> tuple[int, collections.Counter, collections.Counter]:
    """Samples whose stack passes through `under`, by function."""
    total: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [function(frame) for frame in stack.split(";") if frame]
        if not count.isdigit() or not any(under in frame for frame in frames):
            continue
        frames = frames[next(i for i, f in enumerate(frames) if under in f):]
        samples += int(count)
        for frame in set(frames):
            total[frame] += int(count)
        own[frames[-1]] += int(count)
    return samples, total, own


def main() -> None:
    args = sys.argv[1:]
    gil = ["--gil"] if "--gil" in args else []
    args = [arg for arg in args if arg != "--gil"]
    records = []
    if "--records-url" in args:
        at = args.index("--records-url")
        records = args[at:at + 2]
        del args[at:at + 2]
    backend = args[0] if args else "sqlite"
    jobs = args[1] if len(args) > 1 else "40000"
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "drain.txt"
        result = subprocess.run(
            ["py-spy", "record", *gil, "--rate", "500", "--format", "raw", "--output",
             str(raw), "--", sys.executable, "-m", "synthbox", "bench", "--backend", backend,
             "--jobs", jobs, *records], capture_output=True, text=True, timeout=1800)
        if result.returncode != 0 or not raw.exists():
            raise SystemExit(f"py-spy failed:\n{result.stderr[-2000:]}")
        print(result.stdout.strip())
        for title, under in (("drain (worker threads)", "QueueRunner.drain"),
                             ("enqueue (add and add_bulk)", "QueueService.add_bulk")):
            samples, total, own = summarise(raw, under)
            print(f"\n## {title}: {samples:,} samples"
                  f"{' holding the GIL' if gil else ''}\n")
            print("total %  (with callees)")
            for frame, count in total.most_common(TOP):
                print(f"{100 * count / max(samples, 1):6.1f}  {frame}")
            print("\nown %")
            for frame, count in own.most_common(TOP):
                print(f"{100 * count / max(samples, 1):6.1f}  {frame}")


if __name__ == "__main__":
    main()
