"""What an email request may hold, declared as a table of fields (the API's names), and the
few rules that depend on more than one field."""

from __future__ import annotations

import json
import re
from typing import Any

from synthbox.checks import Field, check_payload, is_number, string, whole
from synthbox.errors import InputError
from synthbox.jobs.options import HIGH_PRIORITY, LATEST_RUN_AT
from synthbox.mail.addresses import address, address_list, header_value

MAX_BODY_CHARS = 5_000_000
HEADER_NAME = re.compile(r"[A-Za-z0-9-]{1,76}")
RESERVED_HEADERS = {"from", "to", "cc", "bcc", "reply-to", "subject", "message-id", "date",
                    "mime-version", "content-type", "content-transfer-encoding"}
TEMPLATE_FIELDS = ("template", "variables")  # rendered into subject, text and html first


def _body(value: Any, field: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_BODY_CHARS:
        raise InputError(field, f"must be a string of at most {MAX_BODY_CHARS} characters")
    return value


def _headers(value: Any, field: str) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > 50:
        raise InputError(field, "must be an object of at most 50 headers")
    for name, text in value.items():
        if not HEADER_NAME.fullmatch(name) or name.lower() in RESERVED_HEADERS:
            raise InputError(f"{field}.{name}", "is not a header you may set")
        header_value(text, f"{field}.{name}")
    return value


def _tags(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or len(value) > 20 or not all(
            isinstance(t, str) and len(t) <= 64 for t in value):
        raise InputError(field, "must be a list of at most 20 short strings")
    return value


def _time_ms(value: Any, field: str) -> float:
    """Unix milliseconds as seconds."""
    if not is_number(value) or not 0 <= value / 1000 <= LATEST_RUN_AT:
        raise InputError(field, "must be a time in Unix milliseconds")
    return float(value) / 1000


def _user_id(value: Any, field: str) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise InputError(field, "must be a string")
    return str(value)


EMAIL_FIELDS = (  # the API's names; `flag`: `synthbox emails send --<flag>`
    Field("from", address, flag="from"), Field("to", address_list, flag="to"),
    Field("cc", address_list), Field("bcc", address_list), Field("replyTo", address),
    Field("subject", header_value, nullable=False, flag="subject"),
    Field("text", _body, flag="text"), Field("html", _body, flag="html-file"),
    Field("headers", _headers), Field("tags", _tags), Field("userId", _user_id),
    Field("priority", whole(0, HIGH_PRIORITY), nullable=False, flag="priority"),
    Field("sendAt", _time_ms, flag="at"), Field("idempotencyKey", string(1, 255)),
)


def check_email(payload: Any, prefix: str, now: float, default_from: str) -> dict[str, Any]:
    """An email request (its template already rendered) as the Email record's fields."""
    fields = check_payload(payload, EMAIL_FIELDS, prefix, extra=TEMPLATE_FIELDS)
    to, cc, bcc = (fields.get(name) or [] for name in ("to", "cc", "bcc"))
    if not (to or cc or bcc):
        raise InputError(prefix + "to", "at least one recipient is required")
    if fields.get("text") is None and fields.get("html") is None:
        raise InputError(prefix + "text", "text or html is required")
    sender = fields.get("from") or (default_from and address(default_from, prefix + "from"))
    if not sender:
        raise InputError(prefix + "from", "is required (or set mail_from)")
    return {"from_addr": sender, "to": to, "cc": cc, "bcc": bcc,
            "reply_to": fields.get("replyTo"), "subject": fields.get("subject", ""),
            "text": fields.get("text"), "html": fields.get("html"),
            "headers": json.dumps(fields.get("headers") or {}),
            "tags": json.dumps(fields.get("tags") or []), "user_id": fields.get("userId"),
            "priority": fields.get("priority", 0), "send_at": fields.get("sendAt") or now,
            "idempotency_key": fields.get("idempotencyKey")}
