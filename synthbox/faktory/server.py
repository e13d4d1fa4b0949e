"""The Faktory protocol listener of `synthbox serve` (setting `faktory_address`): one
thread runs the loop that serves every connection (faktory/loop.py), each connection a
Session. Off by default; refuses to start on an address other than loopback without
`faktory_password`."""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import threading

from synthbox.config import Settings, SettingsError
from synthbox.faktory.jobs import remote_jobs
from synthbox.faktory.loop import Loop
from synthbox.faktory.session import Session
from synthbox.faktory.workers import worker_registry
from synthbox.jobs.engine import Engine
from synthbox.jobs.periodic import Periodic
from synthbox.logs import event
from synthbox.threads import start_thread

log = logging.getLogger("synthbox.faktory")


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_settings(settings: Settings) -> None:
    """The listener's settings make sense together (else a SettingsError naming one)."""
    host, _ = split_address(settings.faktory_address)
    if not settings.faktory_password and not is_loopback(host):
        raise SettingsError(f"faktory_password: required when faktory_address "
                            f"({settings.faktory_address}) is not a loopback address")
    if bool(settings.faktory_tls_cert) != bool(settings.faktory_tls_key):
        raise SettingsError("faktory_tls_key: give both faktory_tls_cert and faktory_tls_key")


class FaktoryListener:
    def __init__(self, engine: Engine, settings: Settings):
        check_settings(settings)
        self.engine = engine
        self.password = settings.faktory_password
        self.jobs = remote_jobs(engine)
        self.workers = worker_registry(engine)
        self.tls: ssl.SSLContext | None = None
        if settings.faktory_tls_cert:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            try:
                self.tls.load_cert_chain(settings.faktory_tls_cert, settings.faktory_tls_key)
            except (OSError, ssl.SSLError) as exc:
                raise SettingsError(f"faktory_tls_cert: cannot be loaded ({exc})") from None
        host, port = split_address(settings.faktory_address)
        try:
            info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
            self.sock = socket.socket(info[0], socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):  # cluster mode: every instance listens
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            self.sock.bind(info[4])
            self.sock.listen(256)
        except OSError as exc:
            raise SettingsError(f"faktory_address: cannot listen on "
                                f"{settings.faktory_address} ({exc.strerror})") from None
        self.port = self.sock.getsockname()[1]
        self.loop = Loop(self.sock, self.jobs, self._session, self.tls)
        self._thread: threading.Thread | None = None

    def _session(self, address: str) -> Session:
        return Session(self.engine, self.jobs, self.workers, self.password, address)

    def start(self) -> None:
        self._thread = start_thread("faktory-listener", self.loop.run)
        log.info("faktory protocol listening on port %d%s", self.port,
                 " (TLS)" if self.tls else "",
                 extra=event("faktory listening", port=self.port, tls=bool(self.tls)))

    def periodic(self) -> Periodic:
        """Drop the extras of jobs deleted since (every instance may run it)."""
        return Periodic("faktory-extras", 60.0, self.jobs.forget_gone, first_after=60.0)

    def stop(self) -> None:
        """Stop listening and end every connection (their held jobs come back by lease)."""
        self.loop.stop()
        if self._thread is not None:
            self._thread.join(5)
