"""The web layer: `create_app()` builds the Flask app over an Engine."""

from __future__ import annotations

from flask import Flask

from synthbox.jobs.engine import Engine
from synthbox.paths import resource_root
from synthbox.secrets import admin_token


def create_app(engine: Engine) -> Flask:
    root = resource_root()
    app = Flask("synthbox", template_folder=str(root / "templates"),
                static_folder=str(root / "static"))
    app.config["SYNTHBOX_ENGINE"] = engine
    app.config["SYNTHBOX_ADMIN_TOKEN"] = admin_token(engine.data_path)
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024 * 1024
    app.json.sort_keys = False  # type: ignore[attr-defined]

    from synthbox.web import api, errors, health, pages

    errors.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    return app
