"""Signed inbound deliveries: HMAC-SHA256 over the raw body with a shared secret, in
GitHub's form (`X-Hub-Signature-256: sha256=<hex>`) or the timestamped form
(`X-SynthBox-Timestamp: <unix s>`, `X-SynthBox-Signature: v1=<hex of HMAC(secret,
"<timestamp>.<body>")>`, refused when 5 minutes off). Project webhooks and queue webhooks
check them the same way; the `http` queues sign their deliveries in the second form."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping

from synthbox.errors import NotAllowed

SIGNATURE_WINDOW = 300.0
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
