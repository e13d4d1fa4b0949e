"""The JSON error envelope `{"success": false, "error": {"code", "message"}}`; no traceback."""

from __future__ import annotations

import logging
import sys
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError

from synthbox.errors import SynthBoxError, Throttled

log = logging.getLogger("synthbox.web")


def envelope(status: int, code: str, message: str, field: str | None = None) -> Any:
    error = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    response = jsonify({"success": False, "error": error})
    response.status_code = status
    return response


def ok(data: Any, status: int = 200) -> Any:
    response = jsonify({"success": True, "data": data})
    response.status_code = status
    return response


def _is_unavailable(exc: Exception) -> bool:
    """Errors that mean a backend cannot be reached right now (answered 503, not 500)."""
    import peewee

    if isinstance(exc, peewee.OperationalError | peewee.InterfaceError):
        return True
    redis = sys.modules.get("redis")  # loaded only when a Redis is configured
    return redis is not None and isinstance(
        exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError)


def init_app(app: Flask) -> None:
    @app.errorhandler(SynthBoxError)
    def known(exc: SynthBoxError) -> Any:
        if not _wants_json() and not isinstance(exc, Throttled):
            return _page_error(exc.status, str(exc))
        response = envelope(exc.status, exc.code, str(exc), getattr(exc, "field", None))
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="synthbox"'
        if isinstance(exc, Throttled):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        if not _wants_json():
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        response = envelope(exc.code or 500, code, exc.description or exc.name)
        for name, value in exc.get_headers():  # Allow on a 405, as RFC 9110 requires
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        if _is_unavailable(exc):
            log.warning("backend unavailable: %s", exc)
            if not _wants_json():
                return "A backend is unreachable right now; retry shortly.", 503
            return envelope(503, "unavailable", "a backend is unreachable right now; "
                            "retry shortly")
        log.exception("unexpected error")
        if not _wants_json():
            return InternalServerError()
        return envelope(500, "internal_error", "unexpected error; see the server log")


def _page_error(status: int, message: str) -> Any:
    from markupsafe import escape

    return (f"<!doctype html><title>SynthBox</title><p>{escape(message)}</p>"
            '<p><a href="/">Back</a></p>', status)


def _wants_json() -> bool:
    """The API and the health checks answer JSON; pages answer HTML."""
    return request.path.startswith(("/api/", "/healthz", "/readyz"))
