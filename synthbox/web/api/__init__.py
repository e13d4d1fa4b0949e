"""The JSON API under /api/v1, a blueprint per resource: jobs and queues, admin, emails,
projects and hooks, alerts, sign-in and tokens (auth), and its OpenAPI document."""

from __future__ import annotations

from flask import Flask

from synthbox.web.api import (
    admin,
    alerts,
    auth,
    emails,
    jobs,
    openapi,
    projects,
    userqueues,
    workers,
)


def init_app(app: Flask) -> None:
    for blueprint in (auth.bp, jobs.bp, admin.bp, openapi.bp, alerts.bp, emails.bp,
                      projects.bp, projects.hooks_bp, userqueues.bp, userqueues.hooks_bp,
                      workers.bp):
        app.register_blueprint(blueprint)
