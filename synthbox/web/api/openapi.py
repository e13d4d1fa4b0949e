"""The OpenAPI 3.1 document of /api/v1, served at /api/v1/openapi.json.

Declared as data, one entry per route; a test compares it with the app's routes and
schemathesis checks the answers against it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from synthbox import __version__
from synthbox.records.models import COUNTED
from synthbox.records.models import STATES as MODEL_STATES
from synthbox.web.api.auth import authenticate_api_request, needs

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")
bp.before_request(authenticate_api_request)

NULLABLE_INT = {"type": ["integer", "null"]}
NULLABLE_STR = {"type": ["string", "null"]}
STATES = list(MODEL_STATES)

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["success", "error"],
        "properties": {
            "success": {"const": False},
            "error": {"type": "object", "required": ["code", "message"],
                      "properties": {"code": {"type": "string"},
                                     "message": {"type": "string"},
                                     "field": {"type": "string"}}}}},
    "Stats": {"type": "object",
              "required": list(COUNTED),
              "properties": {k: {"type": "integer", "minimum": 0} for k in COUNTED}},
    "Queue": {"type": "object", "required": ["name", "paused", "stats"],
              "properties": {"name": {"type": "string"}, "paused": {"type": "boolean"},
                             "stats": {"$ref": "#/components/schemas/Stats"}}},
    "Job": {
        "type": "object",
        "required": ["id", "queue", "name", "data", "state", "priority", "attemptsMade",
                     "attempts", "timestamp", "runAt"],
        "properties": {
            "id": {"type": "string"}, "queue": {"type": "string"}, "name": {"type": "string"},
            "data": {}, "state": {"enum": STATES}, "priority": {"type": "integer"},
            "attemptsMade": {"type": "integer"}, "attempts": {"type": "integer"},
            "backoff": {"type": "object"}, "timeout": NULLABLE_INT, "jobId": NULLABLE_STR,
            "stalledCount": {"type": "integer"}, "progress": {"type": "integer"},
            "returnvalue": {}, "failedReason": NULLABLE_STR, "timestamp": {"type": "integer"},
            "runAt": {"type": "integer"}, "processedOn": NULLABLE_INT,
            "finishedOn": NULLABLE_INT, "errors": {"type": "array"},
            "stacktrace": {"type": "array"}, "logs": {"type": "array"}}},
    "JobPage": {"type": "object", "required": ["jobs", "nextCursor"],
                "properties": {"jobs": {"type": "array",
                                        "items": {"$ref": "#/components/schemas/Job"}},
                               "nextCursor": NULLABLE_STR}},
    "NewJob": {"type": "object", "required": ["name"],
               "properties": {"name": {"type": "string"}, "data": {},
                              "opts": {"type": "object", "properties": {
                                  "priority": {"type": "integer", "minimum": 0, "maximum": 10},
                                  "delay": {"type": "number", "minimum": 0},
                                  "runAt": {"type": "number", "minimum": 0},
                                  "attempts": {"type": "integer", "minimum": 1},
                                  "backoff": {"type": "object"},
                                  "timeout": {"type": "number", "exclusiveMinimum": 0},
                                  "jobId": {"type": "string", "description":
                                            "deduplication key: adding it again answers "
                                            "the job it added"},
                                  "key": {"type": "string",
                                          "description": "another name for jobId"}}}}},
    "TokenPair": {"type": "object",
                  "required": ["accessToken", "refreshToken", "tokenType", "expiresIn"],
                  "properties": {"accessToken": {"type": "string"},
                                 "refreshToken": {"type": "string"},
                                 "tokenType": {"const": "Bearer"},
                                 "expiresIn": {"type": "integer"},
                                 "user": {"$ref": "#/components/schemas/User"}}},
    "User": {"type": "object", "required": ["id", "name", "role", "disabled"],
             "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                            "role": {"enum": ["admin", "operator", "viewer"]},
                            "disabled": {"type": "boolean"}, "createdAt": {"type": "integer"},
                            "lastLoginAt": NULLABLE_INT}},
    "Token": {"type": "object", "required": ["id", "name", "scopes"],
              "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                             "scopes": {"type": "array", "items": {"type": "string"}},
                             "createdBy": {"type": "string"}, "createdAt": {"type": "integer"},
                             "lastUsedAt": NULLABLE_INT, "revokedAt": NULLABLE_INT,
                             "token": {"type": "string"}}},
    "NewEmail": {"type": "object", "properties": {
        "from": {"type": "string"}, "to": {}, "cc": {}, "bcc": {},
        "replyTo": {"type": "string"}, "subject": {"type": "string"},
        "text": {"type": "string"}, "html": {"type": "string"}, "headers": {"type": "object"},
        "tags": {"type": "array"}, "userId": {"type": "string"},
        "priority": {"type": "integer", "minimum": 0, "maximum": 10},
        "sendAt": {"type": "number"}, "idempotencyKey": {"type": "string"},
        "template": {"type": "string"}, "variables": {"type": "object"}}},
    "Email": {"type": "object",
              "required": ["id", "messageId", "from", "to", "subject", "state", "attemptsMade",
                           "attempts"],
              "properties": {"id": {"type": "string"}, "messageId": {"type": "string"},
                             "from": {"type": "string"}, "to": {"type": "array"},
                             "subject": {"type": "string"},
                             "state": {"enum": ["queued", "sending", "sent", "failed",
                                                "suppressed", "uncertain"]},
                             "attemptsMade": {"type": "integer"},
                             "attempts": {"type": "integer", "deprecated": True,
                                          "description": "the same as attemptsMade"},
                             "lastError": NULLABLE_STR,
                             "serverReply": NULLABLE_STR, "jobId": NULLABLE_STR}},
    "Project": {"type": "object", "required": ["id", "slug", "name"],
                "properties": {"id": {"type": "string"}, "slug": {"type": "string"},
                               "name": {"type": "string"}, "repository": NULLABLE_STR,
                               "settings": {"type": "object"}}},
    "NewProject": {"type": "object", "properties": {
        "slug": {"type": "string"}, "name": {"type": "string"},
        "repository": {"type": "string"}, "settings": {"type": "object"}}},
    "Agent": {"type": "object", "required": ["id", "slug", "kind", "config", "enabled"],
              "properties": {"id": {"type": "string"}, "slug": {"type": "string"},
                             "name": {"type": "string"},
                             "kind": {"enum": ["http", "command", "python", "repo-scan"]},
                             "config": {"type": "object"}, "enabled": {"type": "boolean"},
                             "timeout": {"type": "number"}}},
    "NewAgent": {"type": "object", "properties": {
        "slug": {"type": "string"}, "name": {"type": "string"},
        "kind": {"enum": ["http", "command", "python", "repo-scan"]},
        "config": {"type": "object"}, "enabled": {"type": "boolean"},
        "timeout": {"type": "number"}}},
    "Schedule": {"type": "object", "required": ["id", "cron", "timezone", "jobType",
                                                "nextRunAt"],
                 "properties": {"id": {"type": "string"}, "cron": {"type": "string"},
                                "timezone": {"type": "string"}, "jobType": {"type": "string"},
                                "agentSlug": NULLABLE_STR, "context": {"type": "object"},
                                "enabled": {"type": "boolean"},
                                "nextRunAt": {"type": "integer"}, "lastRunAt": NULLABLE_INT}},
    "NewSchedule": {"type": "object", "properties": {
        "cron": {"type": "string"}, "timezone": {"type": "string"},
        "jobType": {"type": "string"}, "agentSlug": {"type": "string"},
        "context": {"type": "object"}, "enabled": {"type": "boolean"}}},
    "Hook": {"type": "object", "required": ["id", "slug", "jobType", "path"],
             "properties": {"id": {"type": "string"}, "slug": {"type": "string"},
                            "jobType": {"type": "string"}, "agentSlug": NULLABLE_STR,
                            "enabled": {"type": "boolean"}, "path": {"type": "string"},
                            "secret": {"type": "string"}}},
    "NewHook": {"type": "object", "properties": {
        "slug": {"type": "string"}, "jobType": {"type": "string"},
        "agentSlug": {"type": "string"}, "enabled": {"type": "boolean"}}},
    "Run": {"type": "object", "required": ["id", "jobId", "projectId", "triggeredBy",
                                           "jobType", "state"],
            "properties": {"id": {"type": "string"}, "jobId": {"type": "string"},
                           "projectId": {"type": "string"},
                           "triggeredBy": {"enum": ["cron", "webhook", "manual", "api",
                                                    "system"]},
                           "jobType": {"type": "string"}, "agentSlug": NULLABLE_STR,
                           "state": {"enum": ["queued", "running", "succeeded", "failed"]},
                           "result": {"type": ["object", "null"]}, "error": NULLABLE_STR,
                           "agentRuns": {"type": "array"}, "tasks": {"type": "array"},
                           "suggestions": {"type": "array"}}},
    "NewRun": {"type": "object", "properties": {
        "jobType": {"enum": ["batch", "single_agent", "github_analysis", "retry"]},
        "agentSlug": {"type": "string"}, "context": {"type": "object"},
        "priority": {"type": "integer", "minimum": 0, "maximum": 10},
        "userId": {"type": "string"}}},
    "Item": {"type": "object", "required": ["id", "runId", "agentSlug", "title"],
             "properties": {"id": {"type": "string"}, "runId": {"type": "string"},
                            "agentSlug": {"type": "string"}, "title": {"type": "string"},
                            "detail": {"type": "object"}}},
    "Alert": {"type": "object", "required": ["name", "kind", "threshold", "firing"],
              "properties": {"name": {"type": "string"}, "kind": {"type": "string"},
                             "queue": NULLABLE_STR, "threshold": {"type": "number"},
                             "window": {"type": "number"}, "webhook": NULLABLE_STR,
                             "emails": {"type": "array"}, "enabled": {"type": "boolean"},
                             "source": {"enum": ["api", "config"]},
                             "firing": {"type": "boolean"},
                             "value": {"type": ["number", "null"]}}},
    "NewAlert": {"type": "object", "properties": {
        "name": {"type": "string"},
        "kind": {"enum": ["failures", "waiting", "oldest_waiting", "stalled",
                          "instance_silent"]},
        "queue": {"type": "string"}, "threshold": {"type": "number"},
        "window": {"type": "number"}, "webhook": {"type": "string"},
        "emails": {"type": "array"}, "enabled": {"type": "boolean"}}},
    "SeedQueue": {"type": "object", "required": ["stats", "failedJobs"],
                  "properties": {"stats": {"type": "object",
                                           "required": [*STATES, "total"]},
                      "failedJobs": {"type": "array"}}},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _array(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


def _object(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


# (method, path, summary, permission or None for public, request body, answer data)
ROUTES: list[tuple[str, str, str, str | None, Any, Any]] = [
    ("post", "/auth/login", "Sign in for a JWT pair", None,
     _object(name={"type": "string"}, password={"type": "string"}), _ref("TokenPair")),
    ("post", "/auth/refresh", "A new JWT pair for a refresh token (each works once)", None,
     _object(refreshToken={"type": "string"}), _ref("TokenPair")),
    ("post", "/auth/logout", "Revoke this access token (and a refresh token)", "read",
     _object(refreshToken={"type": "string"}), _object(signedOut={"type": "boolean"})),
    ("post", "/auth/password", "Change your password; every sign-in ends", "signed in",
     _object(currentPassword={"type": "string"}, newPassword={"type": "string"}),
     _object(changed={"type": "boolean"})),
    ("get", "/auth/me", "Who is calling, and what they may do", "signed in", None,
     _object(name={"type": "string"}, kind={"type": "string"},
             permissions={"type": "array"})),
    ("get", "/openapi.json", "This document (not in the envelope)", "read", None, None),
    ("get", "/queues", "Every queue with its counts", "read", None, _array("Queue")),
    ("get", "/queues/{name}/stats", "A queue's counts", "read", None, _ref("Stats")),
    ("post", "/queues/{name}/jobs", "Add a job", "jobs:write", _ref("NewJob"), _ref("Job")),
    ("post", "/queues/{name}/jobs/bulk", "Add jobs, all or none", "jobs:write",
     _object(jobs=_array("NewJob")), _array("Job")),
    ("get", "/queues/{name}/jobs", "Jobs in a state, newest first", "read", None,
     _ref("JobPage")),
    ("get", "/queues/{name}/jobs/{job_id}", "A job by id or jobId", "read", None, _ref("Job")),
    ("get", "/admin/{name}/queue", "The seed's view: stats and failed jobs", "read", None,
     _ref("SeedQueue")),
    ("get", "/admin/queues", "Every queue with its counts", "read", None, _array("Queue")),
    ("get", "/admin/queues/{name}/jobs", "Search a queue's jobs", "read", None,
     _ref("JobPage")),
    ("post", "/admin/queues/{name}/jobs/retry", "Retry matching failed jobs", "operate",
     _object(search={"type": "string"}, dryRun={"type": "boolean"}),
     _object(count={"type": "integer"}, dryRun={"type": "boolean"})),
    ("post", "/admin/queues/{name}/jobs/delete", "Delete matching jobs", "operate",
     _object(state={"type": "string"}, search={"type": "string"},
             dryRun={"type": "boolean"}),
     _object(count={"type": "integer"}, dryRun={"type": "boolean"})),
    ("get", "/admin/jobs/{job_id}", "A job with its attempts", "read", None, _ref("Job")),
    ("post", "/admin/jobs/{job_id}/retry", "Retry a failed job", "operate", None, _ref("Job")),
    ("post", "/admin/jobs/{job_id}/promote", "Run a delayed job now", "operate", None,
     _ref("Job")),
    ("delete", "/admin/jobs/{job_id}", "Remove a job that is not running", "operate", None,
     _object(removed={"type": "boolean"})),
    ("post", "/admin/queues/{name}/retry-failed", "Retry every failed job", "operate", None,
     _object(retried={"type": "integer"})),
    ("post", "/admin/queues/{name}/clean", "Delete old jobs in a state", "operate",
     _object(state={"type": "string"}, grace={"type": "number"}),
     _object(removed={"type": "integer"})),
    ("post", "/admin/queues/{name}/pause", "Stop claims", "operate", None,
     _object(paused={"type": "boolean"})),
    ("post", "/admin/queues/{name}/resume", "Restart claims", "operate", None,
     _object(paused={"type": "boolean"})),
    ("get", "/admin/users", "Users, oldest first", "admin", None,
     _object(users=_array("User"), nextCursor=NULLABLE_INT)),
    ("post", "/admin/users", "Create a user", "admin",
     _object(name={"type": "string"}, password={"type": "string"},
             role={"enum": ["admin", "operator", "viewer"]}), _ref("User")),
    ("patch", "/admin/users/{name}", "Disable, enable, or set a password", "admin",
     _object(disabled={"type": "boolean"}, password={"type": "string"}), _ref("User")),
    ("get", "/admin/tokens", "API tokens (never their values), oldest first", "admin", None,
     _object(tokens=_array("Token"), nextCursor=NULLABLE_INT)),
    ("post", "/admin/tokens", "Create an API token (shown once)", "admin",
     _object(name={"type": "string"}, scopes={"type": "array"}), _ref("Token")),
    ("delete", "/admin/tokens/{name}", "Revoke an API token", "admin", None,
     _object(revoked={"type": "boolean"})),
    ("post", "/emails", "Record and queue an email", "email:send", _ref("NewEmail"),
     _ref("Email")),
    ("post", "/emails/bulk", "Record and queue emails, all or none", "email:send",
     _object(emails=_array("NewEmail")), _array("Email")),
    ("get", "/emails", "Emails, newest first", "email:read", None,
     _object(emails=_array("Email"), nextCursor=NULLABLE_STR)),
    ("get", "/emails/templates", "Email templates", "email:read", None,
     {"type": "array"}),
    ("put", "/emails/templates/{name}", "Create or replace a template", "operate",
     _object(subject={"type": "string"}, text={"type": "string"}, html={"type": "string"}),
     {"type": "object"}),
    ("delete", "/emails/templates/{name}", "Delete a template", "operate", None,
     _object(deleted={"type": "boolean"})),
    ("get", "/emails/{email_id}", "An email and its delivery state", "email:read", None,
     _ref("Email")),
    ("post", "/emails/{email_id}/resend", "Send a failed or uncertain email again", "operate",
     None, _ref("Email")),
    ("get", "/admin/audit", "The audit log, newest first", "admin", None,
     _object(entries={"type": "array"}, nextCursor=NULLABLE_INT)),
    ("get", "/admin/alerts", "Alert rules and whether each is firing", "admin", None,
     _array("Alert")),
    ("post", "/admin/alerts", "Add an alert rule", "admin", _ref("NewAlert"), _ref("Alert")),
    ("patch", "/admin/alerts/{name}", "Change an alert rule", "admin", _ref("NewAlert"),
     _ref("Alert")),
    ("delete", "/admin/alerts/{name}", "Remove an alert rule", "admin", None,
     _object(deleted={"type": "boolean"})),
    ("get", "/admin/alerts/events", "When rules fired and cleared, newest first", "admin",
     None, _object(events={"type": "array"}, nextCursor=NULLABLE_INT)),
    ("get", "/projects", "Projects, by slug", "read", None, _array("Project")),
    ("post", "/projects", "Create a project", "admin", _ref("NewProject"), _ref("Project")),
    ("get", "/projects/{project}", "A project (by slug or id)", "read", None,
     _ref("Project")),
    ("patch", "/projects/{project}", "Change a project's name, repository or settings",
     "admin", _ref("NewProject"), _ref("Project")),
    ("delete", "/projects/{project}", "Delete a project and everything it holds", "admin",
     None, _object(deleted={"type": "boolean"})),
    ("get", "/projects/{project}/agents", "A project's agents", "read", None,
     _array("Agent")),
    ("post", "/projects/{project}/agents", "Add an agent", "admin", _ref("NewAgent"),
     _ref("Agent")),
    ("patch", "/projects/{project}/agents/{slug}", "Change an agent", "admin",
     _ref("NewAgent"), _ref("Agent")),
    ("delete", "/projects/{project}/agents/{slug}", "Remove an agent", "admin", None,
     _object(deleted={"type": "boolean"})),
    ("get", "/projects/{project}/schedules", "A project's cron schedules", "read", None,
     _array("Schedule")),
    ("post", "/projects/{project}/schedules", "Add a cron schedule", "admin",
     _ref("NewSchedule"), _ref("Schedule")),
    ("patch", "/projects/{project}/schedules/{schedule_id}",
     "Change a schedule (takes effect at once)", "admin", _ref("NewSchedule"),
     _ref("Schedule")),
    ("delete", "/projects/{project}/schedules/{schedule_id}", "Remove a schedule", "admin",
     None, _object(deleted={"type": "boolean"})),
    ("get", "/projects/{project}/hooks", "A project's webhooks (never their secrets)", "read",
     None, _array("Hook")),
    ("post", "/projects/{project}/hooks", "Add a webhook; its secret is shown once", "admin",
     _ref("NewHook"), _ref("Hook")),
    ("patch", "/projects/{project}/hooks/{slug}", "Change a webhook", "admin",
     _ref("NewHook"), _ref("Hook")),
    ("delete", "/projects/{project}/hooks/{slug}", "Remove a webhook", "admin", None,
     _object(deleted={"type": "boolean"})),
    ("post", "/projects/{project}/orchestrations", "Queue a run of the project's agents",
     "orchestration:trigger", _ref("NewRun"), _ref("Run")),
    ("get", "/projects/{project}/runs", "Runs, newest first", "read", None,
     _object(runs=_array("Run"), nextCursor=NULLABLE_STR)),
    ("get", "/projects/{project}/runs/{run_id}",
     "A run with its agent runs, tasks and suggestions", "read", None, _ref("Run")),
    ("get", "/projects/{project}/tasks", "Tasks agents reported, newest first", "read", None,
     _object(tasks=_array("Item"), nextCursor=NULLABLE_STR)),
    ("get", "/projects/{project}/suggestions", "Suggestions agents reported, newest first",
     "read", None, _object(suggestions=_array("Item"), nextCursor=NULLABLE_STR)),
    ("post", "/hooks/{project}/{hook}", "A webhook delivery, signed with the hook's secret "
     "(X-Hub-Signature-256, or X-SynthBox-Timestamp and X-SynthBox-Signature)", None,
     {}, _object(jobId=NULLABLE_STR, duplicate={"type": "boolean"})),
]

_QUERY: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "/queues/{name}/jobs": [("state", {"enum": STATES}), ("limit", {"type": "integer"}),
                            ("cursor", {"type": "integer"}), ("before", {"type": "integer"})],
    "/admin/queues/{name}/jobs": [("state", {"enum": STATES}), ("search", {"type": "string"}),
                                  ("limit", {"type": "integer"}),
                                  ("cursor", {"type": "integer"})],
    "/admin/audit": [("limit", {"type": "integer"}), ("cursor", {"type": "integer"})],
    "/admin/alerts/events": [("limit", {"type": "integer"}), ("cursor", {"type": "integer"})],
    "/emails": [("state", {"type": "string"}), ("limit", {"type": "integer"}),
                ("cursor", {"type": "integer"}), ("before", {"type": "integer"})],
    "/admin/users": [("limit", {"type": "integer"}), ("cursor", {"type": "integer"})],
    **{f"/projects/{{project}}/{kind}": [("limit", {"type": "integer"}),
                                          ("cursor", {"type": "integer"})]
       for kind in ("runs", "tasks", "suggestions")},
    "/admin/tokens": [("limit", {"type": "integer"}), ("cursor", {"type": "integer"})],
}
_CREATED = {("post", "/queues/{name}/jobs"), ("post", "/queues/{name}/jobs/bulk"),
            ("post", "/admin/users"), ("post", "/admin/tokens"), ("post", "/emails"),
            ("post", "/emails/bulk"), ("post", "/projects"), ("post", "/admin/alerts"),
            *(("post", f"/projects/{{project}}/{kind}") for kind in (
                "agents", "schedules", "hooks", "orchestrations"))}


def _operation(method: str, path: str, summary: str, permission: str | None, body: Any,
               answer: Any) -> dict[str, Any]:
    error = {"description": "the error envelope",
             "content": {"application/json": {"schema": _ref("Error")}}}
    success = {"type": "object", "required": ["success", "data"],
               "properties": {"success": {"const": True}, "data": answer}}
    if path == "/openapi.json":  # the document itself, as tools expect it
        success = {"type": "object", "required": ["openapi", "paths"]}
    status = "201" if (method, path) in _CREATED else "200"
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {status: {"description": "done",
                               "content": {"application/json": {"schema": success}}},
                      "default": error},
    }
    if permission is None:
        operation["security"] = []
    else:
        operation["description"] = f"Needs: {permission}."
    parameters: list[dict[str, Any]] = [{"name": part[1:-1], "in": "path", "required": True,
                   "schema": {"type": "string"}}
                  for part in path.split("/") if part.startswith("{")]
    parameters += [{"name": name, "in": "query", "required": False, "schema": schema}
                   for name, schema in _QUERY.get(path, [])]
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": False,
                                    "content": {"application/json": {"schema": body}}}
    return operation


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, permission, body, answer in ROUTES:
        paths.setdefault(path, {})[method] = _operation(method, path, summary, permission,
                                                        body, answer)
    return {
        "openapi": "3.1.0",
        "info": {"title": "SynthBox API", "version": __version__,
                 "description": "Durations in milliseconds, BullMQ's field names. Send a JWT "
                                "(POST /auth/login) or an API token as a Bearer token."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


@bp.get("/openapi.json")
@needs("read")
def openapi_json() -> Any:
    return jsonify(document())
