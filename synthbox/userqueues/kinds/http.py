"""The `http` kind: each job is a signed JSON POST to the queue's URL.

Body `{"id", "queue", "name", "data", "attempt"}`; headers `X-SynthBox-Timestamp` and
`X-SynthBox-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` (the scheme
of the inbound webhooks). 2xx completes (a JSON body is the result); 429 or 503 with
Retry-After waits that long without using an attempt; any other status, a refused
address or no answer in time fails the attempt, whose error keeps the reply's first 2 KB.

Connections are kept alive in a pool per queue. A new connection goes only to an address
the outbound guard (synthbox/outbound.py) passed after DNS; redirects are not followed.

A queue's `timeout` stops a delivery from outside: the runner raises JobTimeout in the
job's thread at its next Python call, which, as the socket's own timeout fires at the same
moment, is http.client's `response.close()` in getresponse's cleanup. The response's file
then keeps an io-reference on the socket, so `HTTPConnection.close()` only marks it closed
and its descriptor is left to the garbage collector. So a connection that leaves the pool
is discarded by `_discard`, which closes the descriptor itself (a socket still connecting
included) and finishes even when the stop request cuts it short (a job gets one).
"""

from __future__ import annotations

import email.utils
import http.client
import ipaddress
import json
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from synthbox.jobs.context import JobContext
from synthbox.jobs.errors import JobTimeout, RetryLater
from synthbox.outbound import Network, OutboundRefused, resolve
from synthbox.signatures import sign
from synthbox.userqueues.environment import DeliveryFailed, expand_env

DEFAULT_TIMEOUT = 30.0  # seconds for one delivery when the queue sets no timeout
EXCERPT = 2048
MAX_REPLY = 1_000_000
MAX_RETRY_AFTER = 3600.0
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from now (a number of seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return min(max(when - now, 0.0), MAX_RETRY_AFTER)


def _open(connection: http.client.HTTPConnection, address: str, port: int,
          timeout: float | None) -> socket.socket:
    """A socket connected to `address`, known to the connection (as `opened`) before it
    connects, so `_discard` closes it even when the job's timeout cuts the connect short."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    connection.opened = sock  # type: ignore[attr-defined]
    sock.settimeout(timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.connect((address, port))
    return sock


class _Pinned(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = _open(self, self._address, self.port, self.timeout)


class _PinnedTLS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        sock = _open(self, self._address, self.port, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]
        self.opened = self.sock


def _close_now(connection: http.client.HTTPConnection) -> None:
    sock: socket.socket | None = getattr(connection, "opened", None)
    connection.close()
    if sock is not None and sock.fileno() != -1:  # a response's file still holds it
        os.close(sock.detach())


def _discard(connection: http.client.HTTPConnection) -> None:
    """Close a connection for good, its socket's descriptor included."""
    try:
        _close_now(connection)
    except JobTimeout:  # the job's one stop request cut the close short: finish it
        _close_now(connection)
        raise


class HttpDelivery:
    """The handler of one `http` queue, with its pool of kept-alive connections."""

    def __init__(self, queue: str, url: str, headers: Mapping[str, str], secret: str,
                 allow: Sequence[Network]):
        self.queue = queue
        self.url = url
        parts = urllib.parse.urlsplit(url)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.tls else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.headers = dict(headers)
        self.secret = secret
        self.allow = tuple(allow)
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def __call__(self, job: JobContext) -> Any:
        body = json.dumps({"id": str(job.id), "queue": job.queue, "name": job.name,
                           "data": job.data, "attempt": job.attempt}).encode()
        stamp = str(int(time.time()))
        headers = {name: expand_env(value, f"headers.{name}")
                   for name, value in self.headers.items()}
        headers.update({"Content-Type": "application/json", "User-Agent": "SynthBox",
                        "X-SynthBox-Timestamp": stamp,
                        "X-SynthBox-Signature": sign(expand_env(self.secret, "secret"),
                                                          stamp, body),
                        "X-SynthBox-Delivery": f"{job.id}-{job.attempt}"})
        timeout = job.timeout or DEFAULT_TIMEOUT
        status, reply, retry_after = self._post(body, headers, timeout)
        text = reply[:EXCERPT].decode("utf-8", errors="replace")
        if 200 <= status < 300:
            try:
                return json.loads(reply) if reply.strip() else None
            except ValueError:
                return None
        if status in (429, 503):
            wait = retry_after_seconds(retry_after, time.time())
            if wait is not None:  # no attempt is used: the reply goes in the job's log
                reason = f"HTTP {status} from {self.url}, Retry-After {wait:g} s: {text}"
                job.log(reason)
                raise RetryLater(wait, reason)
        if 300 <= status < 400:
            raise DeliveryFailed(f"HTTP {status} from {self.url} (redirects are not "
                                 f"followed): {text}")
        raise DeliveryFailed(f"HTTP {status} from {self.url}: {text}")

    def _post(self, body: bytes, headers: dict[str, str],
              timeout: float) -> tuple[int, bytes, str | None]:
        for reused in (True, False):
            connection, was_idle = self._connection(timeout, reuse=reused)
            kept = False
            try:  # closed in `finally` on every way out but the pool (a timeout included)
                try:
                    connection.request("POST", self.path, body=body, headers=headers)
                    response = connection.getresponse()
                    reply = response.read(MAX_REPLY + 1)
                except (http.client.RemoteDisconnected, BrokenPipeError,
                        ConnectionResetError) as exc:
                    if was_idle:
                        continue  # the receiver closed a kept-alive connection: again, fresh
                    raise DeliveryFailed(f"{self.url}: the connection broke ({exc})") from None
                except TimeoutError:
                    raise DeliveryFailed(f"{self.url}: timed out, no answer within "
                                         f"{timeout:g} s") from None
                except OSError as exc:
                    raise DeliveryFailed(f"{self.url}: cannot connect "
                                         f"({exc.strerror or exc})") from None
                if not response.will_close and len(reply) <= MAX_REPLY:
                    with self._lock:
                        self._idle.append(connection)
                    kept = True
                return response.status, reply, response.getheader("Retry-After")
            finally:
                if not kept:
                    _discard(connection)
        raise DeliveryFailed(f"{self.url}: the connection broke")

    def _connection(self, timeout: float,
                    reuse: bool) -> tuple[http.client.HTTPConnection, bool]:
        if reuse:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is not None:
                connection.timeout = timeout
                if connection.sock is not None:
                    connection.sock.settimeout(timeout)
                return connection, True
        try:
            address = resolve(self.host, self.port, self.allow)
        except OutboundRefused as exc:
            raise DeliveryFailed(str(exc)) from None
        kind = _PinnedTLS if self.tls else _Pinned
        return kind(self.host, self.port, address, timeout), False

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def http_handler(queue: str, config: Mapping[str, Any], secret: str,
                 allow: Sequence[Network]) -> HttpDelivery:
    """The handler of an `http` queue; `allow_loopback` adds loopback to the allow-list."""
    networks = (*allow, *LOOPBACK) if config.get("allow_loopback") else tuple(allow)
    return HttpDelivery(queue, config["url"], config.get("headers") or {}, secret, networks)
