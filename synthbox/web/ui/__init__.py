"""The browser admin UI: server-rendered pages over the same services as the API.

Every page needs a signed-in user (a server-side session); every action is a POST form
with the session's CSRF token that redirects back, so the core works without
JavaScript. `static/synthbox.js` only refreshes live figures and shows local times.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from flask import Flask

from synthbox.accounts.jwts import SECRET_FILE
from synthbox.secrets import read_or_create_secret
from synthbox.web.ui import (
    admin,
    alerts,
    base,
    emails,
    projects,
    queues,
    signin,
    userqueues,
    workers,
)


def init_app(app: Flask, data_path: Path) -> None:
    """The UI's pages, and the signed cookie that carries a message across a redirect."""
    key = read_or_create_secret(data_path, SECRET_FILE)[0]
    app.secret_key = hmac.new(key.encode(), b"synthbox ui messages", hashlib.sha256).digest()
    app.config.update(SESSION_COOKIE_NAME="synthbox_messages", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax")
    app.jinja_env.globals["when"] = base.when
    for module in (signin, userqueues, queues, emails, projects, admin, alerts, workers):
        app.register_blueprint(module.bp)
