"""GET /metrics: Prometheus text. With `metrics_token` set, a Bearer token must match it
(401 otherwise); without one, only loopback clients that come through no proxy."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from flask import Blueprint, Response, current_app, request

bp = Blueprint("metrics", __name__)


def _loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False


@bp.get("/metrics")
def metrics() -> Any:
    engine = current_app.config["SYNTHBOX_ENGINE"]
    expected = engine.settings.metrics_token
    if expected:
        scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(),
                                                                 expected.encode()):
            return Response("metrics: send 'Authorization: Bearer <metrics_token>'\n", 401,
                            {"WWW-Authenticate": 'Bearer realm="metrics"'},
                            mimetype="text/plain")
    elif (engine.settings.trust_proxy or "X-Forwarded-For" in request.headers
          or "Forwarded" in request.headers or not _loopback(request.remote_addr)):
        # behind a proxy every client may look like loopback: only a token will do
        return Response("metrics: set metrics_token to scrape from another host or "
                        "through a proxy\n", 403, mimetype="text/plain")
    from synthbox.metrics import render  # prometheus_client loads at the first scrape

    return Response(render(engine), mimetype="text/plain; version=0.0.4")
