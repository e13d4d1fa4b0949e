"""Emails per second to a local SMTP server (aiosmtpd), rate limit off, and RSS meanwhile.

Usage: python benchmarks/email_send.py [emails]
Records in a temporary SQLite file; 5 workers (the seed's concurrency) unless
SYNTHBOX_BENCH_CONCURRENCY says otherwise.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time

from aiosmtpd.controller import Controller

from synthbox.config import load_settings
from synthbox.jobs.engine import Engine
from synthbox.mail.service import EmailService


class Sink:
    received = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        Sink.received += 1
        return "250 OK"


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    concurrency = int(os.environ.get("SYNTHBOX_BENCH_CONCURRENCY", "5"))
    controller = Controller(Sink(), hostname="127.0.0.1", port=0)
    controller.start()
    port = controller.server.sockets[0].getsockname()[1]
    with tempfile.TemporaryDirectory() as data:
        settings = load_settings({"data_dir": data, "smtp_url": f"smtp://127.0.0.1:{port}",
                                  "mail_from": "bench@synthbox.test",
                                  "queues": {"email": {"rate_limit_max": 0,
                                                       "concurrency": concurrency}}}, env={})
        engine = Engine(settings)
        emails = EmailService(engine)
        started = time.perf_counter()
        for start in range(0, count, 500):
            emails.send_bulk([{"to": f"u{i}@example.com", "subject": f"bench {i}",
                               "text": "hello " * 50} for i in range(start,
                                                                     min(count, start + 500))])
        queued = time.perf_counter() - started
        started = time.perf_counter()
        engine.start_workers(["email"])
        while Sink.received < count:
            time.sleep(0.01)
        sent = time.perf_counter() - started
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        engine.stop(timeout=10)
        engine.close()
    controller.stop()
    print(f"{count} emails: recorded and queued {count / queued:,.0f}/s; "
          f"sent {count / sent:,.0f}/s over SMTP with {concurrency} workers; "
          f"peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
