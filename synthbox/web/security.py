"""Safe by default: security headers on every response, bodies over the limit refused
before they are read, and unsafe methods on pages only from our own origin with the
form's CSRF token."""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, abort, request

from synthbox.errors import NotAllowed

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def init_app(app: Flask, max_body_bytes: int) -> None:
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes

    @app.before_request
    def refuse_large_bodies() -> None:
        length = request.content_length
        if length is not None and length > max_body_bytes:
            abort(413, f"body: larger than {max_body_bytes} bytes")

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("X-Frame-Options", "DENY")  # an email body: SAMEORIGIN
        response.headers["Referrer-Policy"] = "same-origin"
        response.vary.add("Cookie")
        if request.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        return response


def same_origin_request() -> bool:
    """Unsafe requests to pages must come from our own pages (browsers say where from)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is not None and origin != "null":
        return urlsplit(origin).netloc == request.host
    return True


def check_form(expected_csrf: str | None) -> None:
    """A POST from one of our forms: same origin, and the CSRF token it was given."""
    if not same_origin_request():
        raise NotAllowed("request: cross-site form posts are refused")
    sent = request.form.get("csrf_token", "")
    if not expected_csrf or not hmac.compare_digest(sent.encode(), expected_csrf.encode()):
        raise NotAllowed("request: the form has expired; reload the page and try again")


def safe_next(target: Any) -> str:
    """A redirect target after sign-in: a path on this site, never another site."""
    if (not isinstance(target, str) or not target.startswith("/") or target.startswith("//")
            or "\\" in target or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in target)):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target
