"""Cold start of the one-file binary to a healthy /healthz, and its idle memory.

Usage: python benchmarks/startup.py [dist/synthbox] [runs]
Each run uses a fresh data directory (first start: migrations, secrets). Prints the
median and every run, plus idle RSS 3 s after start: the server (the Python process, the
figure per instance) and the one-file launcher that unpacked it.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import psutil


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_run(binary: str) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as data:
        port = free_port()
        env = {"PATH": os.environ["PATH"], "HOME": data, "SYNTHBOX_DATA_DIR": data,
               "SYNTHBOX_PORT": str(port)}
        started = time.perf_counter()
        process = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.01)
        ready = time.perf_counter() - started
        time.sleep(3)
        launcher = psutil.Process(process.pid)
        server = sum(p.memory_info().rss for p in launcher.children(recursive=True))
        own = launcher.memory_info().rss
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        return ready, server / (1 << 20), own / (1 << 20)


def main() -> None:
    binary = sys.argv[1] if len(sys.argv) > 1 else "dist/synthbox"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    results = [one_run(binary) for _ in range(runs)]
    starts = [r[0] for r in results]
    print(f"binary {binary}: {os.path.getsize(binary) / (1 << 20):.1f} MB")
    print(f"cold start to /healthz: median {statistics.median(starts):.2f} s "
          f"(runs: {', '.join(f'{s:.2f}' for s in starts)})")
    print(f"idle RSS: server median {statistics.median(r[1] for r in results):.1f} MB, "
          f"launcher {statistics.median(r[2] for r in results):.1f} MB")


if __name__ == "__main__":
    main()
