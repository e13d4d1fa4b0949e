"""SMTP delivery: a pool of servers tried in order, one reused connection per worker thread.

Errors are sorted by what to do next: a 5xx reply is permanent (fail now, no retries);
a 4xx reply or a connection failure is temporary (retry with the queue's backoff).
"""

from __future__ import annotations

import smtplib
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

from synthbox.config import SettingsError

SCHEMES = {"smtp": "none", "smtp+starttls": "starttls", "smtps": "tls"}
IDLE_CHECK_AFTER = 5.0  # seconds
DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}


class PermanentSmtpError(Exception):
    """The server refused for good (5xx)."""


class TemporarySmtpError(Exception):
    """Worth trying again later (4xx, or no server could be reached)."""


class UncertainSmtpError(Exception):
    """The connection broke while the message was being handed over: it may have arrived."""


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    security: str  # none | starttls | tls
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:  # never the password
        return f"{self.host}:{self.port} ({self.security})"


def parse_servers(urls: str) -> list[SmtpServer]:
    servers = []
    for url in filter(None, (part.strip() for part in urls.split(","))):
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise SettingsError("smtp_url: each server must look like smtp://host:25, "
                                "smtp+starttls://user:pass@host:587 or smtps://host:465")
        security = SCHEMES[parts.scheme]
        servers.append(SmtpServer(parts.hostname, parts.port or DEFAULT_PORTS[security],
                                  security, unquote(parts.username) if parts.username else None,
                                  unquote(parts.password) if parts.password else None))
    return servers


class _Smtp(smtplib.SMTP):
    """Keeps the server's reply to DATA (queued as ...), which smtplib drops, and knows
    when the message itself was on its way (a break then leaves delivery uncertain)."""

    last_data_reply = ""
    in_data = False
    last_used = 0.0

    def data(self, msg: Any) -> tuple[int, bytes]:
        self.in_data = True
        code, reply = super().data(msg)
        self.in_data = False
        self.last_data_reply = f"{code} {reply.decode(errors='replace')}"
        return code, reply


class _SmtpSsl(smtplib.SMTP_SSL, _Smtp):
    pass


class SmtpPool:
    def __init__(self, servers: list[SmtpServer], timeout: float, ca_file: str = ""):
        self.servers = servers
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=ca_file or None)
        self._local = threading.local()
        self._open: set[_Smtp] = set()  # every thread's connections, to close at stop
        self._open_lock = threading.Lock()

    def _connect(self, server: SmtpServer) -> _Smtp:
        if server.security == "tls":
            conn: _Smtp = _SmtpSsl(server.host, server.port, timeout=self.timeout,
                                   context=self.context)
        else:
            conn = _Smtp(server.host, server.port, timeout=self.timeout)
            if server.security == "starttls":
                conn.starttls(context=self.context)
        if server.username:
            conn.login(server.username, server.password or "")
        return conn

    def _connection(self, server: SmtpServer) -> _Smtp:
        cache: dict[SmtpServer, _Smtp] = self._local.__dict__.setdefault("conns", {})
        conn = cache.get(server)
        if conn is not None:
            # a connection used a moment ago is taken as it is (a NOOP per message costs a
            # round trip); one idle for a while is checked first, servers close idle ones
            if time.monotonic() - conn.last_used < IDLE_CHECK_AFTER:
                conn.last_used = time.monotonic()
                return conn
            try:
                if conn.noop()[0] == 250:
                    conn.last_used = time.monotonic()
                    return conn
            except (smtplib.SMTPException, OSError):
                pass
            self._drop(server)
        conn = self._connect(server)
        conn.last_used = time.monotonic()
        cache[server] = conn
        with self._open_lock:
            self._open.add(conn)
        return conn

    def _drop(self, server: SmtpServer) -> None:
        conn = self._local.__dict__.get("conns", {}).pop(server, None)
        if conn is not None:
            self._close(conn)

    def _close(self, conn: _Smtp) -> None:
        with self._open_lock:
            self._open.discard(conn)
        try:
            conn.close()
        except OSError:
            pass

    def close_all(self) -> None:
        """Close every connection of every thread (the queue is stopping)."""
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            self._close(conn)

    def send(self, message: EmailMessage, recipients: list[str]) -> tuple[str, str]:
        """Deliver to the first server that takes it: (its reply to DATA, the recipients it
        refused while taking the rest, if any).

        Connecting, greeting, STARTTLS and AUTH failures move on to the next server. A 5xx to
        the sender, the recipients or the message is permanent; 4xx is temporary; a break
        while the message is on its way is uncertain."""
        if not self.servers:
            raise TemporarySmtpError("no SMTP server configured (set smtp_url)")
        last = "no server tried"
        attempts = [s for server in self.servers for s in (server, server)]  # 2 per server
        done: set[SmtpServer] = set()
        for server in attempts:
            if server in done:
                continue
            try:
                conn = self._connection(server)
            except (smtplib.SMTPException, OSError) as exc:
                last = f"{server}: {type(exc).__name__}: {exc}"
                done.add(server)
                continue
            try:
                refused = conn.send_message(message, to_addrs=recipients)
                partly = "; ".join(f"{r}: {c} {m.decode(errors='replace')}"
                                   for r, (c, m) in refused.items())
                return conn.last_data_reply, partly
            except smtplib.SMTPRecipientsRefused as exc:
                codes = {code for code, _ in exc.recipients.values()}
                detail = "; ".join(f"{r}: {c} {m.decode(errors='replace')}"
                                   for r, (c, m) in exc.recipients.items())
                if all(500 <= code < 600 for code in codes):
                    raise PermanentSmtpError(f"{server}: recipients refused: {detail}") from None
                last = f"{server}: recipients refused: {detail}"
            except smtplib.SMTPResponseException as exc:
                error = exc.smtp_error
                said = error.decode(errors="replace") if isinstance(error, bytes) else error
                text = f"{server}: {exc.smtp_code} {said}"
                if 500 <= exc.smtp_code < 600:
                    raise PermanentSmtpError(text) from None
                last = text
                self._drop(server)
            except (smtplib.SMTPException, OSError) as exc:
                text = f"{server}: {type(exc).__name__}: {exc}"
                if conn.in_data:
                    self._drop(server)
                    raise UncertainSmtpError(text) from None
                last = text
                self._drop(server)
                continue  # the connection broke before the message: once more, afresh
            done.add(server)
        raise TemporarySmtpError(last)

    def describe(self) -> list[str]:
        """What each server offers (for `synthbox emails test-smtp`)."""
        lines = []
        for server in self.servers:
            try:
                conn = self._connect(server)
                conn.ehlo_or_helo_if_needed()
                features = ", ".join(sorted(conn.esmtp_features)) or "(none)"
                lines.append(f"{server}: ok; offers {features}")
                conn.quit()
            except (smtplib.SMTPException, OSError) as exc:
                lines.append(f"{server}: FAILED: {type(exc).__name__}: {exc}")
        return lines
