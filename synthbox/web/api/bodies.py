"""The request bodies of the OpenAPI document whose checks live in the domains: jobs,
emails, agents, schedules, hooks and runs. Built from the domains' own constants, so
that what the document calls valid is what the checks accept (schemathesis checks it:
tests/web/test_openapi.py). What only the records can tell (that an agent, a template or
an earlier run exists) is answered 404 naming the field, a clash with a record's state
409 naming it: both declared in the operations."""

from __future__ import annotations

from typing import Any

from synthbox.checks import MAX_JSON_CHARS
from synthbox.jobs.options import HIGH_PRIORITY, LATEST_RUN_AT
from synthbox.jobs.service import JOB_ID
from synthbox.jobs.spec import BACKOFF_TYPES
from synthbox.mail.addresses import ADDRESS, MAX_RECIPIENTS
from synthbox.mail.fields import HEADER_NAME, MAX_BODY_CHARS, RESERVED_HEADERS
from synthbox.orchestration.models import AGENT_KINDS, JOB_TYPES
from synthbox.orchestration.projects import MOST_AGENT_TIMEOUT

SLUG = {"type": "string", "pattern": r"^(?![0-9]+$)[a-z0-9][a-z0-9-]{0,62}$"}
# one line, not blank once trimmed (str.strip's whitespace is \s)
TEXT = {"type": "string", "minLength": 1, "maxLength": 200,
        "pattern": r"^[^\x00-\x1f]*[^\s\x00-\x1f][^\x00-\x1f]*$"}
NAME = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"}
JSON_OBJECT = {"type": "object", "description": f"at most {MAX_JSON_CHARS:,} characters "
                                                "as JSON"}

# -- jobs ----------------------------------------------------------------------------------

JOB_ID_VALUE = {"type": "string", "minLength": 1, "maxLength": 255}
JOB_OPTIONS = {
    "type": "object", "additionalProperties": False, "properties": {
        "priority": {"type": "integer", "minimum": 0, "maximum": HIGH_PRIORITY},
        "delay": {"type": "number", "minimum": 0, "maximum": 2.5e14,
                  "description": "milliseconds from now"},
        "runAt": {"type": "number", "minimum": 0, "maximum": LATEST_RUN_AT * 1000,
                  "description": "Unix milliseconds"},
        "attempts": {"type": "integer", "minimum": 1, "maximum": 1000},
        "backoff": {"type": "object", "properties": {
            "type": {"enum": list(BACKOFF_TYPES)},
            "delay": {"type": "number", "minimum": 0, "description": "milliseconds"}}},
        "timeout": {"type": "number", "minimum": 0.001, "description": "milliseconds"},
        "jobId": {**JOB_ID_VALUE, "description": "deduplication key: adding it again "
                                                 "answers the job it added"},
        "key": {**JOB_ID_VALUE, "description": "another name for jobId"}}}


def new_job(job_names: list[str] | None) -> dict[str, Any]:
    """A job; `job_names`, the names the served queues handle (None: any name). A name
    that another queue handles, not the one addressed, is a 404 naming `name`."""
    name: dict[str, Any] = {"type": "string", "minLength": 1}
    if job_names is not None:
        name = {"enum": job_names}
    return {"type": "object", "required": ["name"], "additionalProperties": False,
            "properties": {"name": name, "data": {}, "opts": JOB_OPTIONS}}


# -- emails --------------------------------------------------------------------------------

# no CR, LF, NUL or other control character, nor a line break str.splitlines() sees;
# an encoded word (=?...?=) is decoded and must hold none of them either
HEADER_VALUE = {"type": "string", "maxLength": 998,
                "pattern": "^[^\\x00-\\x1f\\x7f\\x85\\u2028\\u2029]*$"}
EMAIL = {"type": "string", "maxLength": 320,
         "pattern": rf"^(?!.*=\?){ADDRESS.pattern}$"}
RECIPIENTS = {"anyOf": [EMAIL, {"type": "array", "maxItems": MAX_RECIPIENTS, "items": EMAIL}]}
SOME_RECIPIENTS = {"anyOf": [EMAIL, {"type": "array", "minItems": 1,
                                     "maxItems": MAX_RECIPIENTS, "items": EMAIL}]}


def _reserved_header() -> str:
    """A regex for the header names an email may not set, whatever their case."""
    names = sorted(RESERVED_HEADERS)
    return "|".join("".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in name)
                    for name in names)


def new_email(mail_from: str | None) -> dict[str, Any]:
    """An email; `from` is required when the served instance has no mail_from setting
    (`mail_from` None: not known here, so not required)."""
    body = {"type": "string", "maxLength": MAX_BODY_CHARS}
    schema: dict[str, Any] = {
        "type": "object", "additionalProperties": False, "properties": {
            "from": EMAIL, "to": RECIPIENTS, "cc": RECIPIENTS, "bcc": RECIPIENTS,
            "replyTo": EMAIL, "subject": HEADER_VALUE, "text": body, "html": body,
            "headers": {"type": "object", "maxProperties": 50,
                        "propertyNames": {"pattern": f"^(?!(?:{_reserved_header()})$)"
                                                     f"{HEADER_NAME.pattern}$"},
                        "additionalProperties": HEADER_VALUE},
            "tags": {"type": "array", "maxItems": 20,
                     "items": {"type": "string", "maxLength": 64}},
            "userId": {"type": "string"},
            "priority": {"type": "integer", "minimum": 0, "maximum": HIGH_PRIORITY},
            "sendAt": {"type": "number", "minimum": 0, "maximum": LATEST_RUN_AT * 1000,
                       "description": "Unix milliseconds"},
            "idempotencyKey": {"type": "string", "minLength": 1, "maxLength": 255},
            "template": {**NAME, "description": "a saved template (404 when there is "
                                                "none): it brings subject, text and html"},
            "variables": {"type": "object"}},
        "allOf": [
            {"anyOf": [{"required": [part], "properties": {part: SOME_RECIPIENTS}}
                       for part in ("to", "cc", "bcc")]},
            # a template brings its own subject, text and HTML; without one, text or html
            {"if": {"required": ["template"]},
             "then": {"not": {"anyOf": [{"required": [part]}
                                        for part in ("subject", "text", "html")]}},
             "else": {"anyOf": [{"required": ["text"]}, {"required": ["html"]}]}}]}
    if mail_from == "":
        schema["required"] = ["from"]
    return schema


# -- agents --------------------------------------------------------------------------------

LINE_MAP = {"type": "object", "maxProperties": 50,
            "propertyNames": {"minLength": 1, "maxLength": 64, "pattern": "^[^\\n]*$"},
            "additionalProperties": {"type": "string", "maxLength": 200,
                                     "pattern": "^[^\\n]*$"}}
_PORT = r"(?::(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
HTTP_URL = {"type": "string", "maxLength": 2000, "pattern":
            rf"^https?://[A-Za-z0-9._~%!$&'()*+,;=-]+{_PORT}(?:[/?#][^\x00-\x20\x7f]*)?$"}
ARGUMENTS = {"type": "array", "minItems": 1, "maxItems": 200,
             "items": {"type": "string", "minLength": 1, "maxLength": 100,
                       "pattern": "^[^\\x00]*$"}}
COMMAND_LINE = {**TEXT, "maxLength": 10000}


def agent_configs(entry_points: list[str]) -> dict[str, dict[str, Any]]:
    """Each agent kind's config; python only where an entry point is installed."""
    def config(required: list[str], **properties: Any) -> dict[str, Any]:
        return {"type": "object", "required": required, "additionalProperties": False,
                "properties": properties}

    command = {"cwd": {"type": "string", "maxLength": 1000, "pattern": "^/"}, "env": LINE_MAP}
    configs = {
        "http": config(["url"], url=HTTP_URL, headers=LINE_MAP),
        "command": {"oneOf": [
            config(["command"], command=ARGUMENTS, shell={"const": False}, **command),
            config(["command", "shell"], command=COMMAND_LINE, shell={"const": True},
                   **command)]},
        "python": config(["entryPoint"], entryPoint={"enum": entry_points}),
        "repo-scan": config([], largeFileBytes={"type": "integer", "minimum": 1}),
    }
    return {kind: configs[kind] for kind in AGENT_KINDS if kind != "python" or entry_points}


def _agent_fields(kind: Any, config: Any) -> dict[str, Any]:
    return {"name": TEXT, "kind": kind, "config": config, "enabled": {"type": "boolean"},
            "timeout": {"type": "number", "exclusiveMinimum": 0,
                        "maximum": MOST_AGENT_TIMEOUT, "description": "seconds"}}


def new_agent(entry_points: list[str]) -> dict[str, Any]:
    return {"oneOf": [
        {"type": "object", "additionalProperties": False,
         "required": ["slug", "kind", "config"] if kind != "repo-scan" else ["slug", "kind"],
         "properties": {"slug": SLUG, **_agent_fields({"const": kind}, config)}}
        for kind, config in agent_configs(entry_points).items()]}


def agent_change(entry_points: list[str]) -> dict[str, Any]:
    """A change; a kind or a config for a kind other than the agent's is a 409."""
    return {"type": "object", "additionalProperties": False, "properties": _agent_fields(
        {"enum": list(AGENT_KINDS)}, {"anyOf": list(agent_configs(entry_points).values())})}


# -- runs and their triggers -----------------------------------------------------------------

# the fields' numbers; a day above 28 only with every month (`*` or `*/n`), so that the
# expression matches some date (croniter refuses one that never does, like 31 February)
_NUMBERS = {"minute": "[0-5]?[0-9]", "hour": "[01]?[0-9]|2[0-3]",
            "day": "[1-9]|[12][0-9]|3[01]", "day28": "[1-9]|1[0-9]|2[0-8]",
            "month": "[1-9]|1[0-2]", "weekday": "[0-7]"}


def _cron_field(first: str, rest: str) -> str:
    def item(numbers: str) -> str:
        return rf"(?:\*|(?:{numbers})(?:-(?:{_NUMBERS[rest]}))?)(?:/[1-9][0-9]?)?"
    return f"{item(first)}(?:,{item(_NUMBERS[rest])})*"


CRON = {"type": "string", "maxLength": 120, "description": "5 fields: minute hour "
        "day-of-month month day-of-week, e.g. '*/15 * * * *'", "pattern": (
            "^" + " ".join(_cron_field(_NUMBERS[f], f) for f in ("minute", "hour")) + " (?:"
            + _cron_field(_NUMBERS["day28"], "day") + " " + _cron_field(_NUMBERS["month"],
                                                                        "month")
            + "|" + _cron_field(_NUMBERS["day"], "day") + r" \*(?:/[1-9][0-9]?)?) "
            + _cron_field(_NUMBERS["weekday"], "weekday") + "$")}
EARLIER_JOB = {"type": "string", "pattern": rf"^{JOB_ID.pattern}$"}
RUN_CONTEXT = {**JSON_OBJECT, "properties": {"jobId": EARLIER_JOB}}


def run_fields(job_types: tuple[str, ...] = JOB_TYPES) -> tuple[dict[str, Any], list[Any]]:
    """jobType, agentSlug and context as properties, and the rules between them: an agent
    only for single_agent (404 when the project has none of that slug), an earlier job's
    id for retry (404 when there is none), a repository for github_analysis (409)."""
    properties = {"jobType": {"enum": list(job_types)}, "agentSlug": SLUG,
                  "context": RUN_CONTEXT}
    rules = [{"if": {"properties": {"jobType": {"const": "single_agent"}},
                     "required": ["jobType"]},
              "then": {"required": ["agentSlug"]},
              "else": {"not": {"required": ["agentSlug"]}}}]
    if "retry" in job_types:
        rules.append({"if": {"properties": {"jobType": {"const": "retry"}},
                             "required": ["jobType"]},
                      "then": {"required": ["context"], "properties": {
                          "context": {"required": ["jobId"]}}}})
    return properties, rules


def trigger_body(required: list[str], job_types: tuple[str, ...] = JOB_TYPES,
                 **extra: Any) -> dict[str, Any]:
    properties, rules = run_fields(job_types)
    if "context" not in extra and "retry" not in job_types:
        properties.pop("context")
    return {"type": "object", "additionalProperties": False, "required": required,
            "properties": {**extra, **properties}, "allOf": rules}


def request_bodies(timezones: list[str]) -> dict[str, Any]:
    schedule: dict[str, Any] = {"cron": CRON, "timezone": {"enum": timezones},
                                "enabled": {"type": "boolean"}}
    hook_types = tuple(t for t in JOB_TYPES if t != "retry")  # a hook has no context
    return {
        "NewSchedule": trigger_body(["cron"], context=RUN_CONTEXT, **schedule),
        "ScheduleChange": trigger_body([], context=RUN_CONTEXT, **schedule),
        "NewHook": trigger_body(["slug"], hook_types, slug=SLUG,
                                enabled={"type": "boolean"}),
        "HookChange": trigger_body([], hook_types, enabled={"type": "boolean"}),
        "NewRun": trigger_body([], priority={"type": "integer", "minimum": 0,
                                             "maximum": HIGH_PRIORITY},
                               userId={"type": "string"}, context=RUN_CONTEXT),
    }


def needs_body(schema: dict[str, Any]) -> bool:
    """Whether an empty object fails `schema`: required fields, one of several shapes, or
    a rule that asks for one of several fields."""
    return bool(schema.get("required")) or "oneOf" in schema or any(
        "anyOf" in rule and all("required" in choice for choice in rule["anyOf"])
        for rule in schema.get("allOf", []))
