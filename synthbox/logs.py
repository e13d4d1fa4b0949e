"""The log: one line per event, readable text by default or one JSON object per line.

Events carry their name and fields (passed as `extra=event(...)`): for jobs the queue,
jobId, attempt and priority. Secrets are scrubbed from every line: passwords inside URLs,
API tokens, JWTs and Bearer values, and the secret settings' values.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import sys
import time
from pathlib import Path
from typing import Any

from synthbox.config import MASK, SETTINGS, Settings, masked
from synthbox.secrets import ADMIN_TOKEN_FILE

# what a LogRecord holds of its own; anything else on a record came from `extra=`
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message",
                                                                          "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and k != "event"}
_TOKENS = re.compile(r"(sbx_[A-Za-z0-9_-]{8,}|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_.-]+|"
                     r"(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}|"
                     r"\$argon2(?:id|i|d)\$[A-Za-z0-9+/=$,.-]+)")  # a password hash
# the values of a URL's query (`?key=...&sig=...`): keys and signatures travel there
_QUERY_VALUE = re.compile(r"(?<=[?&])([^=\s&#'\"]+)=[^\s&#'\"]+")
_URL_QUERY = re.compile(r"(?i:https?://)[^\s?#'\"]+\?[^\s#'\"]*")


def _sql_without_values(record: logging.LogRecord) -> str | None:
    """peewee logs each query as `(sql, params)` at debug: the SQL and how many values,
    never the values (webhook secrets, agent env, password hashes are among them)."""
    if record.name.startswith("peewee") and isinstance(record.msg, tuple) and \
            len(record.msg) == 2 and isinstance(record.msg[0], str):
        params = record.msg[1]
        count = len(params) if isinstance(params, list | tuple | dict) else 0
        return f"{record.msg[0]} [{count} values not logged]"
    return None


def event(name: str, **fields: Any) -> dict[str, Any]:
    """`extra=` for a named event: log.info("...", extra=event("job failed", queue=...))."""
    return {"event": name, **{k: v for k, v in fields.items() if v is not None}}


class ScrubSecrets(logging.Filter):
    def __init__(self, secrets: list[str], secret_files: tuple[Path, ...] = ()):
        super().__init__()
        self.secrets = [s for s in secrets if s]
        self.pending = list(secret_files)  # read once they exist (made at first start)

    def scrub(self, text: str) -> str:
        for path in list(self.pending):
            try:
                self.secrets.append(path.read_text().strip())
                self.pending.remove(path)
            except OSError:
                pass
        text = _TOKENS.sub(MASK, masked(text))
        text = _URL_QUERY.sub(lambda url: _QUERY_VALUE.sub(rf"\1={MASK}", url.group(0)), text)
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = _sql_without_values(record) or record.getMessage()
        except Exception:  # a bad format string: the line says so, the caller goes on
            message = f"{record.msg!r} (could not be formatted with its arguments)"
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = self.scrub(message), None
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        for name, value in _extras(record).items():
            if isinstance(value, str):
                setattr(record, name, self.scrub(value))
            elif isinstance(value, dict | list | tuple):
                setattr(record, name, json.loads(self.scrub(json.dumps(value, default=str))))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name,
            "event": getattr(record, "event", None) or "message",
            "message": record.getMessage()}
        line.update(_extras(record))
        if record.exc_text:
            line["traceback"] = record.exc_text
        return json.dumps(line, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(settings: Settings) -> None:
    """Handlers for standard error (the journal under systemd) and, with `log_file`, a
    file rotated by size; the format and level from the settings."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    formatter: logging.Formatter = (JsonFormatter() if settings.log_format == "json"
                                    else logging.Formatter(TEXT_FORMAT))
    # the admin token has no telling prefix: masked by its value
    scrub = ScrubSecrets([settings.values[s.name] for s in SETTINGS if s.secret],
                         (settings.data_path / ADMIN_TOKEN_FILE,))
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if settings.log_file:
        handlers.append(logging.handlers.RotatingFileHandler(
            settings.log_file, maxBytes=settings.log_file_max_bytes,
            backupCount=settings.log_file_backups, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(scrub)
        root.addHandler(handler)
    root.setLevel(getattr(logging, settings.log_level.upper()))
    if settings.log_level != "debug":
        logging.getLogger("huey").setLevel(logging.WARNING)
