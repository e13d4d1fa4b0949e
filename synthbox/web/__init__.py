"""The web layer: `create_app()` builds the Flask app over an Engine."""

from __future__ import annotations

from flask import Flask

from synthbox.accounts.jwts import TokenIssuer
from synthbox.accounts.tokens import adopt_bootstrap_token
from synthbox.jobs.engine import Engine
from synthbox.paths import resource_root
from synthbox.services import get_email_queue_service, get_orchestration_queue_service
from synthbox.web import api, errors, health, metrics, security, ui


def create_app(engine: Engine) -> Flask:
    settings = engine.settings
    root = resource_root()
    app = Flask("synthbox", template_folder=str(root / "templates"),
                static_folder=str(root / "static"))
    app.config["SYNTHBOX_ENGINE"] = engine
    app.config["SYNTHBOX_ISSUER"] = TokenIssuer(engine.data_path)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    adopt_bootstrap_token(engine.data_path)

    app.config["SYNTHBOX_EMAILS"] = get_email_queue_service(engine)
    app.config["SYNTHBOX_ORCHESTRATION"] = get_orchestration_queue_service(engine)

    errors.init_app(app)
    security.init_app(app, settings.max_body_bytes)
    app.register_blueprint(health.bp)
    api.init_app(app)
    app.register_blueprint(metrics.bp)
    ui.init_app(app, engine.data_path)
    return app
