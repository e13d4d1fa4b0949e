"""Every outbound HTTP request SynthBox makes (`http` agents, alert webhooks, `http` queues),
refused to addresses inside the host's networks: one guard, one allow-list (`outbound_allow`).

A URL's host is resolved once, every address is checked, and the connection goes to the
checked address (so DNS cannot answer differently a moment later); each redirect is
checked the same way. Loopback, private, link-local (the cloud metadata service at
169.254.169.254 among them), shared, multicast and reserved addresses are refused unless
an allow-list entry (`outbound_allow`, or its former name `agent_http_allow`) covers
them.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import ssl
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_REDIRECTS = 5
MAX_REPLY_BYTES = 1_000_000


class OutboundRefused(Exception):
    """The address is not one SynthBox may call; the message says which and why."""


def allowed_networks(settings: Any) -> tuple[Network, ...]:
    """The one allow-list every outbound request is checked against."""
    return (*settings.outbound_allow, *settings.agent_http_allow)


def _kind(ip: IPAddress) -> str | None:
    """Why `ip` is not a public address, or None when it is."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return _kind(ip.ipv4_mapped)
    for label, flag in (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
                        ("private", ip.is_private), ("multicast", ip.is_multicast),
                        ("unspecified", ip.is_unspecified), ("reserved", ip.is_reserved)):
        if flag:
            return label
    return None if ip.is_global else "non-public"


def check_address(ip: IPAddress, allow: Sequence[Network]) -> None:
    if any(ip.version == net.version and ip in net for net in allow):
        return
    kind = _kind(ip)
    if kind is not None:
        raise OutboundRefused(f"url: {ip} is a {kind} address; SynthBox calls it only "
                              "when outbound_allow lists it")


def resolve(host: str, port: int, allow: Sequence[Network]) -> str:
    """The address to connect to; every address the name has must pass."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OutboundRefused(f"url: cannot resolve {host!r} ({exc.strerror})") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    for ip in addresses:
        check_address(ip, allow)
    return str(addresses[0])


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def post_json(url: str, body: Any, headers: dict[str, str], deadline: float,
              allow: Sequence[Network], user_agent: str = "SynthBox-agent"
              ) -> tuple[int, str]:
    """POST `body` as JSON; (status, reply text up to 1 MB). Redirects are followed
    (307/308 keep the POST, others become a GET), each one checked again."""
    payload: bytes | None = json.dumps(body).encode()
    method = "POST"
    origin: tuple[str, str, int] | None = None
    for _ in range(MAX_REDIRECTS + 1):
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise OutboundRefused(f"url: {url!r} is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OutboundRefused(f"url: {url!r} must be an http:// or https:// URL")
        here = (parts.scheme, parts.hostname, port)
        if origin is None:
            origin = here
        elif here != origin:
            if origin[0] == "https" and parts.scheme != "https":
                raise OutboundRefused(f"url: refused a redirect from https to {url!r}")
            headers = {}  # the agent's headers (credentials) are for its own origin only
        address = resolve(parts.hostname, port, allow)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the time to answer ran out")
        kind = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
        connection = kind(parts.hostname, port, address, remaining)
        try:
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            sent_headers = {"User-Agent": user_agent, **headers}
            if payload is not None:
                sent_headers["Content-Type"] = "application/json"
            connection.request(method, path, body=payload, headers=sent_headers)
            response = connection.getresponse()
            location = response.getheader("Location")
            if response.status in (301, 302, 303, 307, 308) and location:
                url = urllib.parse.urljoin(url, location)
                if response.status not in (307, 308):
                    method, payload = "GET", None
                continue
            return response.status, _read(connection, response, deadline)
        finally:
            connection.close()
    raise OutboundRefused(f"url: more than {MAX_REDIRECTS} redirects")


def _read(connection: http.client.HTTPConnection, response: http.client.HTTPResponse,
          deadline: float) -> str:
    """The reply body, up to MAX_REPLY_BYTES, given up when the deadline passes (however
    slowly the server trickles it)."""
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_REPLY_BYTES:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the time to answer ran out")
        if connection.sock is not None:
            connection.sock.settimeout(remaining)
        chunk = response.read1(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)[:MAX_REPLY_BYTES].decode("utf-8", errors="replace")
