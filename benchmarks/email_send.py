"""Emails per second to a local SMTP server (aiosmtpd in its own process), rate limit
off, and RSS meanwhile.

Usage: python benchmarks/email_send.py [emails]
Records in a temporary SQLite file; 5 workers (the seed's concurrency) unless
SYNTHBOX_BENCH_CONCURRENCY says otherwise.
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import tempfile
import time

from synthbox.app import build_engine, email_service
from synthbox.config import load_settings


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    concurrency = int(os.environ.get("SYNTHBOX_BENCH_CONCURRENCY", "5"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l",
                               f"127.0.0.1:{port}", "-c", "aiosmtpd.handlers.Sink"])
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        with tempfile.TemporaryDirectory() as data:
            settings = load_settings({
                "data_dir": data, "smtp_url": f"smtp://127.0.0.1:{port}",
                "mail_from": "bench@synthbox.test",
                "queues": {"email": {"rate_limit_max": 0, "concurrency": concurrency}}},
                env={})
            engine = build_engine(settings)
            emails = email_service(engine)
            started = time.perf_counter()
            for start in range(0, count, 500):
                emails.send_bulk([{"to": f"u{i}@example.com", "subject": f"bench {i}",
                                   "text": "hello " * 50}
                                  for i in range(start, min(count, start + 500))])
            queued = time.perf_counter() - started
            started = time.perf_counter()
            engine.start_workers(["email"])
            runner = engine.queues["email"].runner
            assert runner is not None
            while runner.jobs_done < count:
                time.sleep(0.01)
            sent = time.perf_counter() - started
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            engine.stop(timeout=10)
            engine.close()
    finally:
        server.terminate()
        server.wait(10)
    print(f"{count} emails: recorded and queued {count / queued:,.0f}/s; "
          f"sent {count / sent:,.0f}/s over SMTP with {concurrency} workers; "
          f"peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
