"""Signed inbound deliveries: HMAC-SHA256 over the raw body with a shared secret, in
GitHub's form (`X-Hub-Signature-256: sha256=<hex>`) or the timestamped form
(`X-SynthBox-Timestamp: <unix s>`, `X-SynthBox-Signature: v1=<hex of HMAC(secret,
"<timestamp>.<body>")>`, refused when 5 minutes off). Project webhooks and queue webhooks
check them the same way, and take a delivery once (accept_once); the `http` queues sign
their deliveries in the second form."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from peewee import IntegrityError, Model

from synthbox.errors import NotAllowed

SIGNATURE_WINDOW = 300.0
DELIVERIES_KEPT = 7 * 86400.0  # seconds a delivery is remembered (replays within are refused)
STAMP = re.compile(r"[0-9]{1,12}")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The value of X-SynthBox-Signature for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + digest.hexdigest()


def verify_signature(secret: str, headers: Mapping[str, str], body: bytes,
                     now: float | None = None) -> str:
    """A digest of the verified signature, which names the delivery for replay checks
    (delivery-id headers are not signed, so they cannot be trusted for that); NotAllowed
    (401) when the signature does not hold. Header names in `headers` are lowercase."""
    key = secret.encode()
    github = headers.get("x-hub-signature-256")
    signed = headers.get("x-synthbox-signature")
    if github:
        expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, github.strip()):
            raise NotAllowed("signature: X-Hub-Signature-256 does not match the body", 401)
        signature = github
    elif signed:
        stamp = headers.get("x-synthbox-timestamp", "")
        now = time.time() if now is None else now
        if not STAMP.fullmatch(stamp) or abs(now - int(stamp)) > SIGNATURE_WINDOW:
            raise NotAllowed("signature: X-SynthBox-Timestamp is missing or more than "
                             "5 minutes off", 401)
        expected = "v1=" + hmac.new(key, stamp.encode() + b"." + body,
                                    hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signed.strip()):
            raise NotAllowed("signature: X-SynthBox-Signature does not match", 401)
        signature = signed
    else:
        raise NotAllowed("signature: send X-Hub-Signature-256 or X-SynthBox-Signature", 401)
    return hashlib.sha256(signature.strip().encode()).hexdigest()


def accept_once(model: type[Model], key: Mapping[str, Any], now: float,
                add_job: Callable[[], str]) -> dict[str, Any]:
    """Add a delivery's job once: {"jobId", "duplicate"}. The delivery's row (`model`, whose
    `key` fields are unique together, with job_id and received_at) is made in the job's
    transaction, so a replay, even one racing this delivery from another instance, adds
    nothing and answers the earlier job. Rows past DELIVERIES_KEPT are deleted."""
    table: Any = model  # its job_id and received_at fields, which Model does not declare
    db = model._meta.database
    with db.atomic():
        try:
            with db.atomic():  # a savepoint: only the duplicate's insert is undone
                seen = table.create(**key, received_at=now)
        except IntegrityError:
            earlier = table.get(*[getattr(table, name) == value for name, value in key.items()])
            return {"jobId": None if earlier.job_id is None else str(earlier.job_id),
                    "duplicate": True}
        job_id = add_job()
        seen.job_id = int(job_id)
        seen.save()
        table.delete().where(table.received_at < now - DELIVERIES_KEPT).execute()
    return {"jobId": job_id, "duplicate": False}
