"""`synthbox serve`: waitress + the Flask app + the embedded workers, in one process.

The process owns its signals: SIGTERM or Ctrl-C stops the workers (running jobs finish
within the shutdown timeout or are handed back), then the HTTP server. A second
signal exits at once; jobs still active are then recovered by upkeep as stalled.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any

from synthbox import __version__
from synthbox.config import Settings
from synthbox.jobs.engine import Engine
from synthbox.secrets import ADMIN_TOKEN_FILE

log = logging.getLogger("synthbox.serve")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()), stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level != "debug":
        logging.getLogger("huey").setLevel(logging.WARNING)


def start_block(settings: Settings, engine: Engine, url: str | None) -> str:
    backends = engine.backends()
    lines = [f"SynthBox {__version__} is running (pid {os.getpid()})"]
    if url:
        lines.append(f"  URL:        {url}")
    lines += [
        f"  Data:       {engine.data_path}",
        f"  Records:    {backends['records']}",
        f"  Transport:  {backends['transport']}",
        f"  Workers:    {'on' if settings.workers else 'off (--no-workers)'}",
        f"  API token:  in {engine.data_path / ADMIN_TOKEN_FILE} "
        "(send it as 'Authorization: Bearer <token>')",
    ]
    return "\n".join(lines)


def serve(settings: Settings) -> int:
    configure_logging(settings.log_level)
    engine = Engine(settings)
    stop = threading.Event()
    signals_seen = []

    def on_signal(signum: int, _frame: Any) -> None:
        signals_seen.append(signum)
        if len(signals_seen) > 1:
            log.warning("second signal: exiting now")
            os._exit(1)
        log.info("received %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    server = None
    url = None
    if settings.web:
        from waitress import create_server

        from synthbox.web import create_app

        server = create_server(create_app(engine), host=settings.host, port=settings.port,
                               threads=settings.http_threads, ident="synthbox",
                               clear_untrusted_proxy_headers=True)
        host = settings.host if ":" not in settings.host else f"[{settings.host}]"
        url = f"http://{host}:{server.effective_port}/"  # type: ignore[union-attr]
    if settings.workers:
        engine.start_workers()
    http_thread = None
    if server is not None:
        http_thread = threading.Thread(target=server.run, name="http", daemon=True)
        http_thread.start()
    print(start_block(settings, engine, url), file=sys.stderr, flush=True)

    while not stop.wait(1.0):
        pass
    engine.stop()
    if server is not None:
        server.close()
        server.task_dispatcher.shutdown(timeout=5)  # type: ignore[union-attr]
        if http_thread is not None:
            http_thread.join(5)
    engine.close()
    log.info("stopped")
    return 0
