"""Server-rendered pages (the admin UI grows here)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from synthbox import __version__

bp = Blueprint("pages", __name__)


@bp.get("/")
def home() -> Any:
    return render_template("pages/home.html", version=__version__)
