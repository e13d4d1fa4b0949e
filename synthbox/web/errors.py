"""The JSON error envelope `{"success": false, "error": {"code", "message"}}`; no traceback."""

from __future__ import annotations

import logging
import sys
from typing import Any

from flask import Flask, current_app, jsonify, request
from markupsafe import Markup
from werkzeug.exceptions import HTTPException, InternalServerError

from synthbox.errors import SynthBoxError, Throttled
from synthbox.records.outage import is_busy, outage_cause

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


RETRY_AFTER = 5  # seconds, on a 503 for a backend away

# The banner every page shows while the records database is away (base.html includes it,
# and the page answered in place of one that could not be built).
BANNER = """<p class="error records-down" role="alert"><strong>Records database
unreachable</strong>: {{ state.cause }}. Adding jobs answers 503 until it is back; jobs
already running keep running{% if state.unrecorded %}, and {{ state.unrecorded }} outcome(s)
wait in memory to be written{% endif %}. SynthBox reconnects by itself.</p>"""
UNAVAILABLE_PAGE = ("<!doctype html><title>SynthBox: unavailable</title><link "
                    "rel=\"stylesheet\" href=\"/static/synthbox.css\"><main>" + BANNER +
                    '<p><a href="">Retry</a></p></main>')


def records_state() -> dict[str, Any] | None:
    engine = current_app.config.get("SYNTHBOX_ENGINE")
    return None if engine is None else engine.records_state()


def _render(template: str, state: dict[str, Any]) -> str:
    # not render_template_string: that runs the context processors, the banner's own too
    return str(current_app.jinja_env.from_string(template).render(state=state))


def _unavailable_message(exc: Exception) -> str:
    """What a 503 says: the records' own cause when they are the part that failed."""
    if is_busy(exc):
        return f"records database busy: {' '.join(str(exc).split())}; retry shortly"
    cause = outage_cause(exc)
    if cause is not None:
        return f"records database unreachable: {cause}"
    import peewee

    if isinstance(exc, peewee.OperationalError | peewee.InterfaceError):
        return f"records database error: {' '.join(str(exc).split())}; retry shortly"
    return f"broker unreachable: {' '.join(str(exc).split())}; retry shortly"


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

    @app.context_processor
    def banner() -> dict[str, Any]:
        state = records_state()
        return {"records_banner": None if state is None or state["up"] else
                Markup(_render(BANNER, state))}

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        if _is_unavailable(exc):
            message = _unavailable_message(exc)
            if outage_cause(exc) is None or is_busy(exc):
                log.warning("answered 503: %s", message)
            else:  # an outage is logged once, when it begins, by the records database
                log.debug("answered 503: %s", message)
            if not _wants_json():
                state = records_state() or {"cause": message, "unrecorded": 0}
                if state.get("up", False):
                    state = {**state, "cause": message}
                response = current_app.response_class(
                    _render(UNAVAILABLE_PAGE, state), 503,
                    mimetype="text/html")
            else:
                response = envelope(503, "unavailable", message)
            response.headers["Retry-After"] = str(RETRY_AFTER)
            return response
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
