"""Checking what goes into an email's headers: addresses (RFC 5322 addr-spec, as senders use
it) and header values (no CR, LF or NUL, written or encoded: that is header injection)."""

from __future__ import annotations

import re
from typing import Any

from synthbox.errors import InputError
from synthbox.mail.headers import breaks_out

# dot-atom local part and a domain of labels: the practical RFC 5322 addr-spec
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+")
MAX_RECIPIENTS = 100


def header_value(value: Any, field: str, most: int = 998) -> str:
    if not isinstance(value, str):
        raise InputError(field, "must be a string")
    if len(value.splitlines()) > 1 or "\r" in value or "\n" in value:
        raise InputError(field, "must not contain line breaks (CR or LF)")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise InputError(field, "must not contain control characters")
    if len(value) > most:
        raise InputError(field, f"must be at most {most} characters")
    if breaks_out(value):
        raise InputError(field, "must not contain line breaks or NUL (CR, LF or NUL), "
                                "also not inside an encoded word (=?...?=)")
    return value


def address(value: Any, field: str) -> str:
    text = header_value(value, field, 320)
    if not ADDRESS.fullmatch(text) or "=?" in text:  # no encoded words in an addr-spec
        raise InputError(field, f"{text!r} is not an email address")
    return text


def address_list(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or len(items) > MAX_RECIPIENTS:
        raise InputError(field, f"must be an address or a list of at most {MAX_RECIPIENTS}")
    return [address(item, f"{field}[{i}]") for i, item in enumerate(items)]


def domain_of(addr: str) -> str:
    return addr.rsplit("@", 1)[1].lower()
