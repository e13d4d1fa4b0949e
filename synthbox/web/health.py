"""`/healthz` (the process answers) and `/readyz` (its backends answer)."""

from __future__ import annotations

import os
from typing import Any

from flask import Blueprint, current_app, jsonify

from synthbox import __version__

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify({"status": "ok", "version": __version__, "pid": os.getpid()})


@bp.get("/readyz")
def readyz() -> Any:
    """503 naming the failing part when the records cannot be written; 200 with the
    broker listed as degraded when only it is away (jobs still flow through the records)."""
    checks = current_app.config["SYNTHBOX_ENGINE"].readiness()
    ready = checks["records"] == "ok"
    body: dict[str, Any] = {"status": "ready" if ready else "unavailable", "checks": checks,
                            "degraded": [] if checks["transport"] == "ok" else ["broker"]}
    if not ready:
        body["failing"] = "records"
        body["reason"] = f"records database {checks['records']}"
    response = jsonify(body)
    response.status_code = 200 if ready else 503
    return response
