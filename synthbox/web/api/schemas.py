"""The component schemas of the OpenAPI document (synthbox/web/openapi.py), as data.

They say what the validation accepts, so that a request valid here is not refused there
(schemathesis checks both ways: tests/web/test_openapi.py)."""

from __future__ import annotations

from typing import Any

from synthbox.records.models import COUNTED
from synthbox.records.models import STATES as MODEL_STATES
from synthbox.web.api.bodies import EMAIL as EMAIL_ADDRESS
from synthbox.web.api.bodies import SLUG, TEXT
from synthbox.web.requests import LARGEST_ID, PAGE_LIMIT

NULLABLE_INT = {"type": ["integer", "null"]}
NULLABLE_STR = {"type": ["string", "null"]}
STATES = list(MODEL_STATES)
# what the validation accepts, so that a request valid here is not refused there
USER_NAME = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"}
RULE_NAME = {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_-]{0,62}$"}
LIMIT = {"type": "integer", "minimum": 1, "maximum": PAGE_LIMIT}
CURSOR = {"type": "integer", "minimum": 0, "maximum": LARGEST_ID}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["success", "error"],
        "properties": {
            "success": {"const": False},
            "error": {"type": "object", "required": ["code", "message"],
                      "properties": {"code": {"type": "string"},
                                     "message": {"type": "string"},
                                     "field": {"type": "string"}}}}},
    "Stats": {"type": "object", "required": list(COUNTED),
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
    "ProjectChange": {"type": "object", "additionalProperties": False, "properties": {
        "name": TEXT,
        # a remote URL (a local path must be under the repository_roots setting)
        "repository": {"type": "string", "maxLength": 2000, "pattern":
                       r"^(?:(?:https?|ssh|git)://[A-Za-z0-9._~%!$&'()*+,;=:@-]*(?:[/?#]|$)"
                       r"|[A-Za-z0-9._][A-Za-z0-9._-]*@[A-Za-z0-9.-]+:)[^\x00-\x1f\x7f]*$"},
        "settings": {"type": "object"}}},
    "Agent": {"type": "object", "required": ["id", "slug", "kind", "config", "enabled"],
              "properties": {"id": {"type": "string"}, "slug": {"type": "string"},
                             "name": {"type": "string"},
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
    "Hook": {"type": "object", "required": ["id", "slug", "jobType", "path"],
             "properties": {"id": {"type": "string"}, "slug": {"type": "string"},
                            "jobType": {"type": "string"}, "agentSlug": NULLABLE_STR,
                            "enabled": {"type": "boolean"}, "path": {"type": "string"},
                            "secret": {"type": "string"}}},
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
    "AlertChange": {"type": "object", "additionalProperties": False, "properties": {
        "name": RULE_NAME,
        "kind": {"enum": ["failures", "waiting", "oldest_waiting", "stalled",
                          "instance_silent"]},
        "queue": {"type": "string"}, "threshold": {"type": "number", "minimum": 0},
        "window": {"type": "number", "minimum": 1, "maximum": 604800},
        "webhook": {"type": "string", "format": "uri", "pattern": "^https?://[^/?#\\s]+"},
        "emails": {"type": "array", "maxItems": 20, "items": EMAIL_ADDRESS},
        "enabled": {"type": "boolean"}},
        # silent instances are forgotten after 300 s
        "if": {"properties": {"kind": {"const": "instance_silent"}}, "required": ["kind"]},
        "then": {"properties": {"threshold": {"maximum": 240}}}},
    "SeedQueue": {"type": "object", "required": ["stats", "failedJobs"],
                  "properties": {"stats": {"type": "object",
                                           "required": [*STATES, "total"]},
                      "failedJobs": {"type": "array"}}},
}
SCHEMAS["NewAlert"] = {**SCHEMAS["AlertChange"], "required": ["name", "kind"]}
SCHEMAS["NewProject"] = {**SCHEMAS["ProjectChange"], "required": ["slug"], "properties": {
    "slug": SLUG, **SCHEMAS["ProjectChange"]["properties"]}}

SCHEMAS["QueueDefinition"] = {
    "type": "object", "required": ["name", "source", "readOnly"], "properties": {
        "name": {"type": "string"}, "source": {"enum": ["built-in", "synthbox.toml", "api"]},
        "readOnly": {"type": "boolean"}, "paused": {"type": "boolean"},
        "handler": {"type": "string"}, "definition": {"type": "object"},
        "version": {"type": "integer"}, "runningVersion": NULLABLE_INT,
        "signingSecret": {"type": "string"}}}

# Remote workers (synthbox/web/api/workers.py): a worker names itself with these, optionally
_WORKER = {"wid": {"type": "string", "minLength": 1, "maxLength": 255},
           "hostname": {"type": "string", "maxLength": 255},
           "pid": {"type": "integer", "minimum": 0, "maximum": 2**31},
           "labels": {"type": "array", "items": {"type": "string"}}}
SCHEMAS["WorkerFetch"] = {"type": "object", "properties": {
    "wait": {"type": "number", "minimum": 0, "maximum": 30},
    "count": {"type": "integer", "minimum": 1, "maximum": 100}, **_WORKER}}
SCHEMAS["WorkerAck"] = {"type": "object", "properties": {"result": {}}}
SCHEMAS["WorkerFail"] = {"type": "object", "properties": {
    "message": {"type": "string", "maxLength": 10000},
    "errtype": {"type": "string", "maxLength": 255},
    "backtrace": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    "retryIn": {"type": "number", "minimum": 0, "maximum": 365 * 86400}}}
SCHEMAS["WorkerBeat"] = {"type": "object", "properties": {
    "extendBy": {"type": "number", "exclusiveMinimum": 0, "maximum": 86400}, **_WORKER}}
SCHEMAS["RemoteJob"] = {
    "type": "object", "required": ["jid", "queue", "jobtype", "args", "reserve_for"],
    "properties": {"jid": {"type": "string"}, "queue": {"type": "string"},
                   "jobtype": {"type": "string"}, "args": {"type": "array"},
                   "custom": {"type": "object"}, "retry": {"type": "integer"},
                   "reserve_for": {"type": "integer"}, "leaseUntil": {"type": "integer"},
                   "failure": {"type": "object"}}}
SCHEMAS["Worker"] = {
    "type": "object", "required": ["wid", "protocol", "jobs", "lastBeat", "state"],
    "properties": {"wid": {"type": "string"}, "hostname": {"type": "string"},
                   "pid": {"type": "integer"}, "labels": {"type": "array"},
                   "protocol": {"enum": ["faktory", "http"]}, "address": {"type": "string"},
                   "jobs": {"type": "array", "items": {"type": "string"}},
                   "instances": {"type": "array", "items": {"type": "string"}},
                   "startedAt": {"type": "integer"}, "lastBeat": {"type": "integer"},
                   "secondsSinceBeat": {"type": "number"}, "rssKb": NULLABLE_INT,
                   "state": {"enum": ["running", "quiet", "terminate"]}}}
