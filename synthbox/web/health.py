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
    checks = current_app.config["SYNTHBOX_ENGINE"].readiness()
    ready = all(value == "ok" for value in checks.values())
    response = jsonify({"status": "ready" if ready else "unavailable", "checks": checks})
    response.status_code = 200 if ready else 503
    return response
