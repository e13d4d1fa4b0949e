"""The OpenAPI 3.1 document of /api/v1, served at /api/v1/openapi.json.

Declared as data, one entry per route; a test compares it with the app's routes and
schemathesis checks the answers against it.
"""

from __future__ import annotations

import importlib.metadata
import zoneinfo
from typing import Any

from flask import Blueprint, jsonify

from synthbox import __version__
from synthbox.orchestration.agents.base import ENTRY_POINT_GROUP
from synthbox.web.api.auth import authenticate_api_request, needs
from synthbox.web.api.bodies import (
    HEADER_VALUE,
    NAME,
    agent_change,
    needs_body,
    new_agent,
    new_email,
    new_job,
    request_bodies,
)
from synthbox.web.api.queuebodies import QUEUE_ANSWERS, queue_bodies
from synthbox.web.api.schemas import (
    CURSOR,
    LIMIT,
    NULLABLE_INT,
    NULLABLE_STR,
    SCHEMAS,
    STATES,
    USER_NAME,
)

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")
bp.before_request(authenticate_api_request)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _array(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


def _object(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


def _required(schema: dict[str, Any], *names: str) -> dict[str, Any]:
    return {**schema, "required": list(names)}


# (method, path, summary, permission or None for public, request body, answer data)
ROUTES: list[tuple[str, str, str, str | None, Any, Any]] = [
    ("post", "/auth/login", "Sign in for a JWT pair", None,
     _required(_object(name={"type": "string", "minLength": 1},
                       password={"type": "string", "minLength": 1}), "name", "password"),
     _ref("TokenPair")),
    ("post", "/auth/refresh", "A new JWT pair for a refresh token (each works once)", None,
     _required(_object(refreshToken={"type": "string", "minLength": 1}), "refreshToken"),
     _ref("TokenPair")),
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
    ("post", "/queues", "Define a queue of your own (the fields of a [queues.NAME] table); "
     "an http queue's signing secret is shown once", "admin", _ref("NewQueueDefinition"),
     _ref("QueueDefinition")),
    ("get", "/queues/{name}", "A queue's definition and where it is defined", "read", None,
     _ref("QueueDefinition")),
    ("put", "/queues/{name}", "Replace a run-time queue's definition (every instance within "
     "2 s)", "admin", _ref("QueueDefinitionChange"), _ref("QueueDefinition")),
    ("post", "/queues/{name}/webhook", "A webhook delivery to a queue with a `webhook`, "
     "signed with its secret (X-Hub-Signature-256, or X-SynthBox-Timestamp and "
     "X-SynthBox-Signature); the body becomes the job's data", None, {},
     _object(jobId=NULLABLE_STR, duplicate={"type": "boolean"})),
    ("delete", "/queues/{name}", "Delete a run-time queue (refused while jobs wait, unless "
     "drain or discard)", "admin", None,
     _object(name={"type": "string"}, deleted={"type": "boolean"},
             discarded={"type": "integer"})),
    ("post", "/queues/{name}/jobs", "Add a job", "jobs:write", _ref("NewJob"), _ref("Job")),
    ("post", "/queues/{name}/jobs/bulk", "Add jobs, all or none", "jobs:write",
     _required(_object(jobs={**_array("NewJob"), "minItems": 1, "maxItems": 10000}),
               "jobs"), _array("Job")),
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
     _object(state={"enum": STATES}, search={"type": "string"},
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
     _object(state={"enum": ["completed", "failed", "waiting", "delayed"]},
             grace={"type": "number", "minimum": 0, "maximum": 10**11}),
     _object(removed={"type": "integer"})),
    ("post", "/admin/queues/{name}/pause", "Stop claims", "operate", None,
     _object(paused={"type": "boolean"})),
    ("post", "/admin/queues/{name}/resume", "Restart claims", "operate", None,
     _object(paused={"type": "boolean"})),
    ("get", "/admin/users", "Users, oldest first", "admin", None,
     _object(users=_array("User"), nextCursor=NULLABLE_INT)),
    ("post", "/admin/users", "Create a user", "admin",
     _required(_object(name=USER_NAME,
                       password={"type": "string", "minLength": 10, "maxLength": 1024},
                       role={"enum": ["admin", "operator", "viewer"]}),
               "name", "password", "role"), _ref("User")),
    ("patch", "/admin/users/{name}", "Disable, enable, or set a password", "admin",
     {**_object(disabled={"type": "boolean"},
                password={"type": "string", "minLength": 10, "maxLength": 1024}),
      "additionalProperties": False}, _ref("User")),
    ("get", "/admin/tokens", "API tokens (never their values), oldest first", "admin", None,
     _object(tokens=_array("Token"), nextCursor=NULLABLE_INT)),
    ("post", "/admin/tokens", "Create an API token (shown once)", "admin",
     _required(_object(name=USER_NAME, scopes={
         "type": "array", "minItems": 1,
         "items": {"enum": ["jobs:write", "email:send", "orchestration:trigger", "admin"]}}),
         "name", "scopes"), _ref("Token")),
    ("delete", "/admin/tokens/{name}", "Revoke an API token", "admin", None,
     _object(revoked={"type": "boolean"})),
    ("post", "/emails", "Record and queue an email", "email:send", _ref("NewEmail"),
     _ref("Email")),
    ("post", "/emails/bulk", "Record and queue emails, all or none", "email:send",
     _required(_object(emails={**_array("NewEmail"), "minItems": 1, "maxItems": 1000}),
               "emails"), _array("Email")),
    ("get", "/emails", "Emails, newest first", "email:read", None,
     _object(emails=_array("Email"), nextCursor=NULLABLE_STR)),
    ("get", "/emails/templates", "Email templates", "email:read", None,
     {"type": "array"}),
    ("put", "/emails/templates/{name}", "Create or replace a template", "operate",
     {**_required(_object(subject={**HEADER_VALUE, "minLength": 1},
                          text={"type": "string"}, html={"type": "string"}), "subject"),
      "anyOf": [{"required": ["text"]}, {"required": ["html"]}]},
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
    ("patch", "/admin/alerts/{name}", "Change an alert rule", "admin", _ref("AlertChange"),
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
     "admin", _ref("ProjectChange"), _ref("Project")),
    ("delete", "/projects/{project}", "Delete a project and everything it holds", "admin",
     None, _object(deleted={"type": "boolean"})),
    ("get", "/projects/{project}/agents", "A project's agents", "read", None,
     _array("Agent")),
    ("post", "/projects/{project}/agents", "Add an agent", "admin", _ref("NewAgent"),
     _ref("Agent")),
    ("patch", "/projects/{project}/agents/{slug}", "Change an agent", "admin",
     _ref("AgentChange"), _ref("Agent")),
    ("delete", "/projects/{project}/agents/{slug}", "Remove an agent", "admin", None,
     _object(deleted={"type": "boolean"})),
    ("get", "/projects/{project}/schedules", "A project's cron schedules", "read", None,
     _array("Schedule")),
    ("post", "/projects/{project}/schedules", "Add a cron schedule", "admin",
     _ref("NewSchedule"), _ref("Schedule")),
    ("patch", "/projects/{project}/schedules/{schedule_id}",
     "Change a schedule (takes effect at once)", "admin", _ref("ScheduleChange"),
     _ref("Schedule")),
    ("delete", "/projects/{project}/schedules/{schedule_id}", "Remove a schedule", "admin",
     None, _object(deleted={"type": "boolean"})),
    ("get", "/projects/{project}/hooks", "A project's webhooks (never their secrets)", "read",
     None, _array("Hook")),
    ("post", "/projects/{project}/hooks", "Add a webhook; its secret is shown once", "admin",
     _ref("NewHook"), _ref("Hook")),
    ("patch", "/projects/{project}/hooks/{slug}", "Change a webhook", "admin",
     _ref("HookChange"), _ref("Hook")),
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
    ("post", "/queues/{name}/fetch", "Remote workers: up to `count` due jobs of a remote "
     "queue, each with its lease; waits up to `wait` seconds for one", "worker",
     _ref("WorkerFetch"), _object(jobs=_array("RemoteJob"), state={"type": "string"})),
    ("post", "/jobs/{jid}/ack", "Remote workers: a fetched job is done (optional result)",
     "worker", _ref("WorkerAck"), _object(jid={"type": "string"}, state={"type": "string"})),
    ("post", "/jobs/{jid}/fail", "Remote workers: a fetched job's attempt failed; retried "
     "after the queue's backoff or `retryIn` seconds while attempts are left", "worker",
     _ref("WorkerFail"), _object(jid={"type": "string"}, state={"type": "string"})),
    ("post", "/jobs/{jid}/beat", "Remote workers: extend a fetched job's lease (by its "
     "reserve_for, or `extendBy` seconds); says whether the worker should go quiet or stop",
     "worker", _ref("WorkerBeat"),
     _object(jid={"type": "string"}, leaseUntil={"type": "integer"},
             state={"type": "string"})),
    ("get", "/workers", "The worker processes connected (Faktory clients, HTTP workers)",
     "read", None, _array("Worker")),
    ("post", "/workers/{wid}/{state}", "Ask a worker to go quiet or to stop (state: quiet "
     "or stop), told at its next beat; audited", "operate", None,
     _object(wid={"type": "string"}, state={"type": "string"})),
    ("post", "/hooks/{project}/{hook}", "A webhook delivery, signed with the hook's secret "
     "(X-Hub-Signature-256, or X-SynthBox-Timestamp and X-SynthBox-Signature)", None,
     {}, _object(jobId=NULLABLE_STR, duplicate={"type": "boolean"})),
]

_QUERY: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "/queues/{name}": [("drain", {"enum": ["true", "false"]}),
                       ("discard", {"enum": ["true", "false"]})],
    "/queues/{name}/jobs": [("state", {"enum": STATES}),
                            ("limit", LIMIT), ("cursor", CURSOR), ("before", CURSOR)],
    "/admin/queues/{name}/jobs": [("state", {"enum": STATES}), ("search", {"type": "string"}),
                                  ("limit", LIMIT),
                                  ("cursor", CURSOR)],
    "/admin/audit": [("limit", LIMIT), ("cursor", CURSOR)],
    "/admin/alerts/events": [("limit", LIMIT), ("cursor", CURSOR)],
    "/emails": [("state", {"enum": ["queued", "sending", "sent", "failed", "suppressed",
                                     "uncertain"]}), ("limit", LIMIT),
                ("cursor", CURSOR), ("before", CURSOR)],
    "/admin/users": [("limit", LIMIT), ("cursor", CURSOR)],
    **{f"/projects/{{project}}/{kind}": [("limit", LIMIT),
                                          ("cursor", CURSOR)]
       for kind in ("runs", "tasks", "suggestions")},
    "/admin/tokens": [("limit", LIMIT), ("cursor", CURSOR)],
}
_CREATED = {("post", "/queues/{name}/jobs"), ("post", "/queues/{name}/jobs/bulk"),
            ("post", "/admin/users"), ("post", "/admin/tokens"), ("post", "/emails"),
            ("post", "/emails/bulk"), ("post", "/projects"), ("post", "/admin/alerts"),
            ("post", "/queues"),
            *(("post", f"/projects/{{project}}/{kind}") for kind in (
                "agents", "schedules", "hooks", "orchestrations"))}


# answers that depend on records, declared where an operation gives them
_MISSING = "the {} does not exist, or a record the body names does not ({})"
_RECORDS: dict[tuple[str, str], dict[str, str]] = {
    ("post", "/queues/{name}/jobs"): {"404": _MISSING.format("queue", "a job name another "
                                                          "queue handles")},
    ("post", "/emails"): {"404": "the template named does not exist"},
    ("post", "/projects/{project}/agents"): {"409": "the project has an agent of that slug"},
    ("patch", "/projects/{project}/agents/{slug}"): {
        "404": "the project or the agent does not exist",
        "409": "a kind, or a config for a kind, other than the agent's"},
    ("post", "/projects/{project}/schedules"): {
        "404": _MISSING.format("project", "agentSlug, context.jobId"),
        "409": "jobType github_analysis and the project has no repository"},
    ("post", "/projects/{project}/hooks"): {
        "404": _MISSING.format("project", "agentSlug"),
        "409": "the project has a hook of that slug, or jobType github_analysis and the "
               "project has no repository"},
    ("post", "/projects/{project}/orchestrations"): {
        "404": _MISSING.format("project", "agentSlug, context.jobId"),
        "409": "jobType github_analysis and the project has no repository"},
}
_RECORDS.update(QUEUE_ANSWERS)
_RECORDS[("post", "/queues/{name}/fetch")] = {
    "404": "the queue does not exist", "409": "the queue is not a remote queue"}
_RECORDS[("post", "/queues/{name}/jobs/bulk")] = _RECORDS[("post", "/queues/{name}/jobs")]
_RECORDS[("post", "/emails/bulk")] = _RECORDS[("post", "/emails")]
_RECORDS[("patch", "/projects/{project}/schedules/{schedule_id}")] = {
    **_RECORDS[("post", "/projects/{project}/schedules")],
    "404": _MISSING.format("project or schedule", "agentSlug, context.jobId")}
_RECORDS[("patch", "/projects/{project}/hooks/{slug}")] = {
    "404": _MISSING.format("project or hook", "agentSlug"),
    "409": "jobType github_analysis and the project has no repository"}


def _operation(method: str, path: str, summary: str, permission: str | None, body: Any,
               answer: Any, schemas: dict[str, Any]) -> dict[str, Any]:
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
                      **{code: {**error, "description": said} for code, said in
                         _RECORDS.get((method, path), {}).items()},
                      "default": error},
    }
    if permission is None:
        operation["security"] = []
    else:
        operation["description"] = f"Needs: {permission}."
    parameters: list[dict[str, Any]] = [{"name": part[1:-1], "in": "path", "required": True,
                   "schema": NAME if path.startswith("/emails/templates/") else
                   {"type": "string"}} for part in path.split("/") if part.startswith("{")]
    parameters += [{"name": name, "in": "query", "required": False, "schema": schema}
                   for name, schema in _QUERY.get(path, [])]
    if parameters:
        operation["parameters"] = parameters
    if body is not None:  # a body that an empty object does not satisfy must be sent
        resolved = schemas[body["$ref"].rsplit("/", 1)[1]] if "$ref" in body else body
        operation["requestBody"] = {"required": needs_body(resolved),
                                    "content": {"application/json": {"schema": body}}}
    return operation


def document(served: dict[str, Any] | None = None) -> dict[str, Any]:
    """The document; `served` (served_facts()) makes it the running instance's: its queues'
    job names, whether an email needs a `from`, the queues an alert rule may watch."""
    schemas = component_schemas(served or {})
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, permission, body, answer in ROUTES:
        paths.setdefault(path, {})[method] = _operation(method, path, summary, permission,
                                                        body, answer, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "SynthBox API", "version": __version__,
                 "description": "Durations in milliseconds, BullMQ's field names. Send a JWT "
                                "(POST /auth/login) or an API token as a Bearer token."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def served_facts(engine: Any) -> dict[str, Any]:
    """What the document says of a running instance: its queues, the job names its
    writable queues handle (None when one takes any name), its mail_from setting."""
    specs = [engine.service(name).spec for name in engine.queues]
    names = {name for spec in specs if not spec.internal for name in spec.handlers}
    return {"queues": sorted(engine.queues), "mail_from": engine.settings.mail_from,
            "job_names": None if "*" in names else sorted(names)}


def component_schemas(served: dict[str, Any]) -> dict[str, Any]:
    entry_points = sorted({ep.name for ep in importlib.metadata.entry_points(
        group=ENTRY_POINT_GROUP)})
    zones = sorted(zoneinfo.available_timezones())
    schemas = {**SCHEMAS, **request_bodies(zones), **queue_bodies(zones),
               "NewJob": new_job(served.get("job_names")),
               "NewEmail": new_email(served.get("mail_from")),
               "NewAgent": new_agent(entry_points), "AgentChange": agent_change(entry_points)}
    if "queues" in served:
        for name in ("AlertChange", "NewAlert"):
            schemas[name] = {**schemas[name], "properties": {
                **schemas[name]["properties"], "queue": {"enum": served["queues"]}}}
    return schemas


@bp.get("/openapi.json")
@needs("read")
def openapi_json() -> Any:
    from flask import current_app

    return jsonify(document(served_facts(current_app.config["SYNTHBOX_ENGINE"])))
