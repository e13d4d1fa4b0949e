"""A real SMTP server for the tests (aiosmtpd): records what it receives, and can refuse,
stall, demand STARTTLS and AUTH, or be stopped and started again."""

from __future__ import annotations

import email
import email.policy
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.conftest import free_port


class Recorder:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.delay = 0.0
        self.refuse_prefix = "reject"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address.startswith(self.refuse_prefix):
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.delay:
            import asyncio

            await asyncio.sleep(self.delay)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append({"from": envelope.mail_from, "rcpt": list(envelope.rcpt_tos),
                                  "message": parsed, "at": time.time(),
                                  "peer": tuple(session.peer)})
        return "250 2.0.0 queued as T3ST"


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


class _Controller(Controller):
    """aiosmtpd's Controller that remembers its sessions: stopping it closes the server but
    not the connections still open (Python 3.11), whose transports, collected later, warned
    `unclosed transport` during whatever test ran then."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.sessions: list[Any] = []

    def factory(self):  # noqa: ANN201
        session = super().factory()
        self.sessions.append(session)
        return session

    def close_sessions(self) -> None:
        """Close every session's connection on the server's loop, and wait for it."""
        closed = threading.Event()

        def close_all() -> None:
            for session in self.sessions:
                transport = session.transport
                if transport is not None and not transport.is_closing():
                    transport.close()
            self.sessions.clear()
            self.loop.call_soon(closed.set)  # after the closes' own callbacks

        self.loop.call_soon_threadsafe(close_all)
        closed.wait(5)


class SmtpServer:
    def __init__(self, tls_dir: Path | None = None, users: dict[str, str] | None = None,
                 port: int | None = None):
        self.recorder = Recorder()
        self.port = port or free_port()
        self.users = users or {}
        self.cert: Path | None = None
        kwargs: dict[str, Any] = {}
        if tls_dir is not None:
            self.cert, key = self_signed(tls_dir)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.cert, key)
            kwargs.update(tls_context=context, require_starttls=True)
        if self.users:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=tls_dir is not None)
        self.controller = _Controller(self.recorder, hostname="localhost", port=self.port,
                                     **kwargs)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and self.users.get(
            auth_data.login.decode()) == auth_data.password.decode()
        return AuthResult(success=ok)

    @property
    def messages(self) -> list[dict[str, Any]]:
        with self.recorder.lock:
            return list(self.recorder.messages)

    def start(self) -> SmtpServer:
        self.controller.start()
        self.running = True
        return self

    def stop(self) -> None:
        if getattr(self, "running", False):
            self.controller.close_sessions()
            self.controller.stop()
            self.running = False
