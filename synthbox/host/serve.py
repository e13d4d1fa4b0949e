"""`synthbox serve`: waitress + the Flask app + the embedded workers, in one process.

The process owns its signals: SIGTERM or Ctrl-C stops the workers (running jobs finish
within the shutdown timeout or are handed back), then the HTTP server. A second
signal exits at once; jobs still active are then recovered by upkeep as stalled.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from synthbox import __version__
from synthbox.accounts.setup import SETUP_FILE, setup_token
from synthbox.config import Settings
from synthbox.errors import SynthBoxError
from synthbox.host.notify import notify, start_watchdog
from synthbox.jobs.engine import Engine
from synthbox.logs import configure as configure_logging
from synthbox.logs import event
from synthbox.secrets import ADMIN_TOKEN_FILE
from synthbox.threads import start_thread

log = logging.getLogger("synthbox.serve")

START_LOG = "synthbox.log"


class StartError(SynthBoxError, RuntimeError):
    """SynthBox cannot start; the message says why in one line."""


def start_block(settings: Settings, engine: Engine, url: str | None,
                setup_link: str | None = None) -> str:
    """What a person needs at start. `setup_link` is a secret: shown only when given."""
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
    if url and setup_link is not None:
        lines.append(f"  Sign in:    no user yet; create the first admin at {setup_link}")
    elif url and engine.data_path.joinpath(SETUP_FILE).exists():
        lines.append("  Sign in:    no user yet; the one-time setup link is in "
                     f"{engine.data_path / START_LOG} (or run: synthbox users create NAME "
                     "--role admin)")
    return "\n".join(lines)


def show_start_block(settings: Settings, engine: Engine, url: str | None) -> None:
    """Print the start block; also into the data directory when nobody watches a terminal
    (started from a file manager, or by systemd). The setup link is a secret: it goes to a
    terminal or to that file (mode 0600, in the 0700 data directory), never to a log."""
    token = setup_token(engine.data_path) if url else None
    link = f"{url}setup/{token}" if url and token else None
    terminal = sys.stderr.isatty()
    if settings.log_format == "json":  # every line of the log is JSON: the block is an event
        backends = engine.backends()
        log.info("started", extra=event("start", url=url, data=str(engine.data_path),
                                        records=backends["records"],
                                        transport=backends["transport"],
                                        instance=engine.instance_id))
    else:
        print(start_block(settings, engine, url, link if terminal else None),
              file=sys.stderr, flush=True)
    if not sys.stdout.isatty() or (link and not terminal):
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        path = engine.data_path / START_LOG
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as handle:
            handle.write(f"--- {stamp}\n{start_block(settings, engine, url, link)}\n")


def _json_error_channel() -> Any:
    """waitress's own refusals (a body over the limit, a malformed request) in the API's
    JSON envelope rather than its plain-text page."""

    from waitress.channel import HTTPChannel
    from waitress.task import ErrorTask

    class JsonErrorTask(ErrorTask):  # type: ignore[misc]
        def execute(self) -> None:
            error = self.request.error
            field = "body" if error.code == 413 else "request"
            message = (f"body: larger than {self.channel.adj.max_request_body_size} bytes"
                       if error.code == 413 else f"request: {error.body}")
            body = json.dumps({"success": False, "error": {
                "code": error.reason.lower().replace(" ", "_"), "message": message,
                "field": field}}).encode()
            self.status = f"{error.code} {error.reason}"
            self.response_headers.extend([("Content-Type", "application/json"),
                                          ("Content-Length", str(len(body)))])
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)

    class JsonErrorChannel(HTTPChannel):  # type: ignore[misc]
        error_task_class = JsonErrorTask

    return JsonErrorChannel


def in_http_loop(server: Any, fn: Any, timeout: float = 5.0) -> None:
    """`fn()` run by waitress's loop thread, between two of its select() calls. A socket
    closed from another thread can vanish between the loop's listing of descriptors and
    its select(), which then fails with EBADF and ends the HTTP thread (seen at stop,
    right after a request). Run here when that thread is gone."""
    done = threading.Event()

    def run() -> None:
        try:
            fn()
        finally:
            done.set()

    server.trigger.pull_trigger(run)
    if not done.wait(timeout):
        with server.trigger.lock:  # not run, and now never will be
            if run in server.trigger.thunks:
                server.trigger.thunks.remove(run)
                fn()


def drain_http(server: Any, timeout: float = 10.0) -> None:
    """Stop accepting connections (in cluster mode the other instances keep the shared
    port open), then let the requests already accepted finish before going on."""
    from waitress import wasyncore
    from waitress.channel import HTTPChannel

    def busy(channel: Any) -> bool:  # an idle keep-alive connection holds nothing up
        return isinstance(channel, HTTPChannel) and bool(
            channel.requests or channel.request is not None or channel.total_outbufs_len)

    # the listener only; the loop and its trigger go on
    in_http_loop(server, lambda: wasyncore.dispatcher.close(server))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(busy(c) for c in list(server._map.values())):
        time.sleep(0.05)


def report_state(state_dir: Path, engine: Engine, stop: threading.Event) -> None:
    """For the supervisor of `synthbox start`: every second, that this child is up, and
    how many jobs it has done (a child that stops writing is replaced)."""
    path = state_dir / f"{os.getpid()}.json"
    supervisor = os.getppid()
    while not stop.is_set():
        if os.getppid() != supervisor:  # the supervisor died (kill -9): no orphans
            log.warning("the supervisor is gone; stopping", extra=event("stopping"))
            stop.set()
            return
        done = sum(h.runner.jobs_done for h in engine.queues.values() if h.runner)
        temporary = path.with_suffix(".tmp")
        try:
            temporary.write_text(json.dumps({"pid": os.getpid(),
                                             "instance": engine.instance_id, "ready": True,
                                             "jobsDone": done, "at": time.time()}))
            temporary.replace(path)
        except OSError as exc:  # a full disk: said, and tried again
            log.warning("could not write the state file for the supervisor: %s", exc)
        stop.wait(1.0)


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else starts so a busy port fails fast."""
    where = f"port {port} on {host}"
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(info[0], socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
        sock.listen(1024)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise StartError(f"{where} is already in use (is SynthBox already running?); "
                             "choose another with --port") from None
        raise StartError(f"cannot listen on {where}: {exc.strerror}") from None
    return sock


def serve(settings: Settings) -> int:
    """Serve until SIGTERM or Ctrl-C, then stop: HTTP drained, jobs finished or handed back."""
    configure_logging(settings)
    sock = _socket(settings)
    from synthbox.app import (  # the domains: not in the supervisor
        alert_evaluator,
        build_engine,
        definitions_sync,
        faktory_listener,
    )

    engine = build_engine(settings)
    stop = threading.Event()
    _stop_on_signals(stop)
    server, url = (None, None) if sock is None else _http_server(settings, engine, sock)
    definitions = definitions_sync(engine)
    faktory = faktory_listener(engine)
    if settings.workers:
        engine.add_periodic(alert_evaluator(engine).periodic())
        engine.add_periodic(definitions)
        if faktory is not None:
            engine.add_periodic(faktory.periodic())
        engine.start_workers()
    if faktory is not None:
        faktory.start()
    http_thread = None if server is None else start_thread("http", server.run)
    show_start_block(settings, engine, url)
    notify("READY=1")
    state_dir = os.environ.get("SYNTHBOX_STATE_DIR")
    if state_dir:
        start_thread("state", report_state, Path(state_dir), engine, stop)
    # liveness, not readiness: the records database going away needs no restart of this
    # process (it reconnects), so it must not stop the watchdog's pings
    start_watchdog(stop, lambda: http_thread is None or http_thread.is_alive())

    while not stop.wait(1.0):
        if not settings.workers:  # no upkeep loop here: the API still sees queue changes
            definitions.run(time.monotonic())
    notify("STOPPING=1")
    if faktory is not None:
        faktory.stop()
    if server is not None:
        drain_http(server)
    engine.stop()
    if server is not None:
        in_http_loop(server, server.close)
        server.task_dispatcher.shutdown(timeout=5)
        if http_thread is not None:
            http_thread.join(5)
    engine.close()
    log.info("stopped", extra=event("stop", instance=engine.instance_id))
    return 0


def _socket(settings: Settings) -> socket.socket | None:
    """The HTTP socket: none without the web, the supervisor's when a child of `synthbox
    start`, else a new one."""
    inherited = os.environ.get("SYNTHBOX_LISTEN_FD")
    if not settings.web:
        return None
    if inherited:
        return socket.socket(fileno=int(inherited))
    return listen(settings.host, settings.port)


def _stop_on_signals(stop: threading.Event) -> None:
    first_signal_at: list[float] = []

    def on_signal(signum: int, _frame: Any) -> None:
        # A signal repeated within a second is the same request arriving twice (systemd
        # signals the whole cgroup; the one-file binary's launcher forwards it too).
        if first_signal_at and time.monotonic() - first_signal_at[0] > 1.0:
            log.warning("second signal: exiting now; active jobs will be recovered as stalled")
            os._exit(1)
        if not first_signal_at:
            first_signal_at.append(time.monotonic())
            log.info("received %s: stopping", signal.Signals(signum).name,
                     extra=event("stopping"))
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def _http_server(settings: Settings, engine: Engine, sock: socket.socket) -> tuple[Any, str]:
    """waitress over the Flask app, on `sock`; and the URL it answers on."""
    from waitress import create_server

    from synthbox.web import create_app  # Flask: not in a --workers-only instance

    # waitress answers an over-long Content-Length with 413 before reading the body,
    # and applies X-Forwarded-* (client address, https) only when told to trust them
    proxy = ({"trusted_proxy": "*", "trusted_proxy_headers":
              "x-forwarded-for x-forwarded-proto x-forwarded-host"}
             if settings.trust_proxy else {})
    server = create_server(create_app(engine), sockets=[sock],
                           threads=settings.http_threads, ident="synthbox",
                           clear_untrusted_proxy_headers=True,
                           max_request_body_size=settings.max_body_bytes, **proxy)
    server.channel_class = _json_error_channel()  # type: ignore[union-attr]
    host = settings.host if ":" not in settings.host else f"[{settings.host}]"
    return server, f"http://{host}:{server.effective_port}/"  # type: ignore[union-attr]
