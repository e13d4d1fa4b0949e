"""Faktory's wire format: a command is one line (`VERB payload\r\n`); a reply is a RESP
simple string (`+OK`), error (`-ERR why`), bulk string (`$n\r\n...`) or null (`$-1`)."""

from __future__ import annotations

import hashlib
import json
from typing import Any, BinaryIO

MAX_LINE = 8 * 1024 * 1024  # a longer command is refused (Faktory's clients stay far below)
OK = b"+OK\r\n"
NULL = b"$-1\r\n"


class LineTooLong(Exception):
    pass


def read_line(stream: BinaryIO) -> bytes | None:
    """The next command line without its CRLF; None at the end of the stream. A line over
    MAX_LINE is read to its end and dropped (LineTooLong), so the next one is whole."""
    line = stream.readline(MAX_LINE + 1)
    if not line:
        return None
    if len(line) > MAX_LINE and not line.endswith(b"\n"):
        while True:
            rest = stream.readline(65536)
            if not rest or rest.endswith(b"\n"):
                break
        raise LineTooLong()
    return line.rstrip(b"\r\n")


def simple(text: str) -> bytes:
    return b"+" + text.encode() + b"\r\n"


def error(code: str, message: str) -> bytes:
    """An error reply on one line: `-CODE message`."""
    flat = " ".join(message.split())
    return f"-{code} {flat}\r\n".encode()


def bulk(value: Any) -> bytes:
    """`value` as a bulk string: JSON unless it is bytes or text already."""
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode()
    else:  # compact, as Go writes it
        data = json.dumps(value, separators=(",", ":")).encode()
    return b"$" + str(len(data)).encode() + b"\r\n" + data + b"\r\n"


def password_hash(password: str, salt: str, iterations: int) -> str:
    """Faktory's pwdhash: SHA-256 of password+salt, hashed again `iterations`-1 times."""
    digest = hashlib.sha256((password + salt).encode()).digest()
    for _ in range(iterations - 1):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()
