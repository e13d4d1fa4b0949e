"""Every setting SynthBox reads, declared once.

Precedence, lowest first: the defaults below < the config file (`synthbox.toml`)
< environment variables < command-line flags. The README's settings table is
checked against `SETTINGS` by a test.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthbox.alerting.fields import parse_settings_rules
from synthbox.cluster_settings import ClusterOptions, parse_cluster
from synthbox.errors import SynthBoxError
from synthbox.settings import Settings


class SettingsError(SynthBoxError, ValueError):
    """A setting has a value that breaks its rule; the message names both."""

    status, code, exit_code = 400, "invalid_setting", 2


def _parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _whole_number(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError("must be a whole number")
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ValueError("must be a whole number") from None


def _number(raw: Any) -> float:
    if isinstance(raw, bool):
        raise ValueError("must be a number")
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise ValueError("must be a number") from None


def _parse_port(raw: Any) -> int:
    port = _whole_number(raw)
    if not 0 <= port <= 65535:
        raise ValueError("must be a port number from 0 to 65535")
    return port


def _parse_address(raw: Any) -> str:
    """`host:port` (`[v6]:port`), or empty."""
    text = str(raw).strip()
    if not text:
        return ""
    host, colon, port = text.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be host:port, e.g. 127.0.0.1:7419")
    return text


def _positive_float(raw: Any) -> float:
    value = _number(raw)
    if value <= 0:
        raise ValueError("must be a number greater than 0")
    return value


def _positive_int(raw: Any) -> int:
    value = _whole_number(raw)
    if value < 1:
        raise ValueError("must be a whole number of at least 1")
    return value


def _parse_table(raw: Any) -> dict[str, Any]:
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        raise ValueError("must be a JSON object") from None
    if not isinstance(value, dict):
        raise ValueError("must be a table (a JSON object in the environment)")
    return value


def _parse_domain_limits(raw: Any) -> dict[str, list[float]]:
    table = _parse_table(raw)
    for domain, rule in table.items():
        if (not isinstance(rule, list) or len(rule) != 2
                or isinstance(rule[0], bool) or not isinstance(rule[0], int) or rule[0] < 1
                or isinstance(rule[1], bool) or not isinstance(rule[1], int | float)
                or rule[1] <= 0):
            raise ValueError(f"{domain}: must be [sends, seconds], e.g. [20, 60]")
    return {domain.lower(): rule for domain, rule in table.items()}


def _parse_networks(raw: Any) -> tuple[Any, ...]:
    import ipaddress

    items = [part.strip() for part in raw.split(",")] if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple):
        raise ValueError("must be a list of addresses or networks, e.g. 10.0.0.0/8")
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in items if item)
    except (TypeError, ValueError):
        raise ValueError("must be a list of addresses or networks, e.g. 10.0.0.0/8, "
                         "127.0.0.1") from None


def _parse_paths(raw: Any) -> tuple[Path, ...]:
    items = [part.strip() for part in raw.split(",")] if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValueError("must be a list of directories, e.g. /srv/git")
    paths = tuple(Path(item).expanduser() for item in items if item)
    if any(not path.is_absolute() for path in paths):
        raise ValueError("must be absolute directories, e.g. /srv/git")
    return paths


def _parse_log_format(raw: Any) -> str:
    value = str(raw).strip().lower()
    if value not in ("text", "json"):
        raise ValueError("must be text or json")
    return value


def _parse_redis_prefix(raw: Any) -> str:
    value = str(raw).strip()
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", value):
        raise ValueError("must be 1 to 64 letters, digits or _ . : -")
    return value


def _parse_log_level(raw: Any) -> str:
    level = str(raw).strip().lower()
    if level not in ("debug", "info", "warning", "error"):
        raise ValueError("must be one of debug, info, warning, error")
    return level


_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]+@")


MASK = "********"  # what is shown in place of a secret


def masked(value: Any) -> str:
    """A setting's value as it may be shown: passwords inside URLs replaced by MASK."""
    return _URL_PASSWORD.sub(rf"\1{MASK}@", str(value))


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    parse: Callable[[Any], Any] = str
    env: tuple[str, ...] = ()
    flag: str | None = None  # the CLI flag, when the setting has one
    secret: bool = False  # never shown: pages and logs print ******** instead

    @property
    def env_names(self) -> tuple[str, ...]:
        return self.env or ("SYNTHBOX_" + self.name.upper(),)


SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", "", "Directory for every file SynthBox writes (records, queue, "
            "secrets, logs). Default: $XDG_DATA_HOME/synthbox or ~/.local/share/synthbox.",
            flag="--data-dir"),
    Setting("host", "127.0.0.1", "Address the HTTP server binds.", flag="--host"),
    Setting("port", 3003, "HTTP port.", _parse_port, flag="--port"),
    Setting("redis_url", "", "Redis for the queue transport. Empty: SQLite in the data "
            "directory. Several hosts (`redis://a:26379,b:26379`) with "
            "REDIS_SENTINEL_NAME mean Sentinel.",
            env=("REDIS_URL", "SYNTHBOX_REDIS_URL"), flag="--redis-url"),
    Setting("redis_sentinel_name", "", "Sentinel master name; REDIS_URL then lists sentinels.",
            env=("REDIS_SENTINEL_NAME", "SYNTHBOX_REDIS_SENTINEL_NAME")),
    Setting("redis_cluster_mode", False, "REDIS_URL lists Redis Cluster nodes.", _parse_bool,
            env=("REDIS_CLUSTER_MODE", "SYNTHBOX_REDIS_CLUSTER_MODE")),
    Setting("redis_prefix", "synthbox", "Prefix of SynthBox's Redis keys. Instances with "
            "the same prefix share the queues; deployments sharing one Redis need different "
            "ones.", _parse_redis_prefix),
    Setting("database_url", "", "Job records database. Empty: SQLite `synthbox.db` in the "
            "data directory; `postgresql://...` for PostgreSQL.",
            env=("DATABASE_URL", "SYNTHBOX_DATABASE_URL"), flag="--database-url"),
    Setting("workers", True, "Run the queue workers in this process.", _parse_bool,
            flag="--workers/--no-workers"),
    Setting("web", True, "Serve HTTP in this process (`--workers-only` turns it off).",
            _parse_bool),
    Setting("queues", {}, "Per-queue option overrides, e.g. "
            '`{"email": {"concurrency": 10}}` (a `[queues.NAME]` table in the file), and '
            "queues of your own: a table with a `handler` (see Your own queues).",
            _parse_table),
    Setting("smtp_url", "", "SMTP server(s) for the email queue, tried in order: "
            "`smtp://host:25`, `smtp+starttls://user:pass@host:587`, `smtps://host:465` "
            "(comma-separated for failover).", flag="--smtp-url"),
    Setting("smtp_ca_file", "", "CA certificate file to trust for the SMTP server's TLS "
            "(for self-signed servers)."),
    Setting("smtp_timeout", 30.0, "Seconds before an SMTP connection or command gives up.",
            _positive_float),
    Setting("mail_from", "", "Default sender address of emails that name none."),
    Setting("email_domain_limits", {}, "Sends per recipient domain across every instance, "
            'e.g. `{"gmail.com": [20, 60]}` (20 per 60 s); an email over it waits, no attempt '
            "is used.", _parse_domain_limits),
    Setting("outbound_allow", (), "Addresses or networks SynthBox may call although they are "
            "loopback, private or link-local (comma-separated), e.g. `10.0.0.0/8`: one list "
            "for every outbound request (`http` agents, alert webhooks, `http` queues), "
            "checked after DNS "
            "and on every redirect.", _parse_networks),
    Setting("agent_http_allow", (), "Former name of `outbound_allow`, still read: its "
            "entries are added to that list.", _parse_networks),
    Setting("repository_roots", (), "Directories a project's repository may be a local path "
            "(or `file://` URL) under, comma-separated, e.g. `/srv/git`; empty: only remote "
            "URLs (https, ssh, git).", _parse_paths),
    Setting("shutdown_timeout", 25.0, "Seconds a stop waits for running jobs before "
            "handing them back to the queue.", _positive_float),
    Setting("http_threads", 8, "Threads serving HTTP requests.", _positive_int),
    Setting("max_body_bytes", 16 * 1024 * 1024, "Largest request body accepted; larger ones "
            "get 413 before they are read.", _positive_int),
    Setting("trust_proxy", False, "Trust X-Forwarded-For/-Proto from a reverse proxy in front "
            "(client addresses, HTTPS-only cookies).", _parse_bool),
    Setting("log_level", "info", "debug, info, warning or error.", _parse_log_level,
            flag="--log-level"),
    Setting("log_format", "text", "`text` (one readable line per event) or `json` (one JSON "
            "object per line).", _parse_log_format, flag="--log-format"),
    Setting("log_file", "", "Also write the log to this file, rotated by size (empty: "
            "standard error only; under systemd that is the journal).", flag="--log-file"),
    Setting("log_file_max_bytes", 10 * 1024 * 1024, "Size at which the log file is rotated.",
            _positive_int),
    Setting("log_file_backups", 5, "Rotated log files kept.", _positive_int),
    Setting("cluster", ClusterOptions(), "Cluster mode (`synthbox start`), a `[cluster]` table: "
            "`instances`, `max_memory_restart`, `min_uptime`, `max_restarts`, `env`, "
            "`log_dir`, `autoscale` (see Cluster mode).", parse_cluster),
    Setting("alerts", (), "Alert rules, `[[alerts]]` tables in the file: `name`, `kind` "
            "(failures, waiting, oldest_waiting, stalled, instance_silent), `queue`, "
            "`threshold`, `window`, `webhook`, `emails` (see Operations).",
            parse_settings_rules),
    Setting("metrics_token", "", "Bearer token that GET /metrics requires; empty: /metrics "
            "answers loopback clients only.", secret=True),
    Setting("faktory_address", "", "Where the Faktory work protocol listener binds, e.g. "
            "`127.0.0.1:7419` (see Workers in other languages); empty: off.",
            _parse_address),
    Setting("faktory_password", "", "Password Faktory clients must give; required when "
            "`faktory_address` is not a loopback address.", secret=True),
    Setting("faktory_tls_cert", "", "TLS certificate (PEM) for the Faktory listener; "
            "with `faktory_tls_key`, clients connect with `tcp+tls://`."),
    Setting("faktory_tls_key", "", "TLS private key (PEM) for the Faktory listener."),
)

SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}


def _apply(setting: Setting, raw: Any, source: str) -> Any:
    try:
        return setting.parse(raw)
    except ValueError as exc:
        # a table's parser names the entry (`cluster.instances: ...`): keep its name
        field, colon, rule = str(exc).partition(": ")
        if colon and field.startswith((f"{setting.name}.", f"{setting.name}[")):
            raise SettingsError(f"{field} (from {source}): {rule}") from None
        raise SettingsError(f"{setting.name} (from {source}): {exc}") from None


def find_config_file(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    path = explicit or env.get("SYNTHBOX_CONFIG")
    if path:
        if not Path(path).is_file():
            raise SettingsError(f"config: file not found: {path}")
        return Path(path)
    local = Path("synthbox.toml")
    return local if local.is_file() else None


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config: {path} is not valid TOML ({exc})") from None
    flat: dict[str, Any] = {}
    for key, value in document.items():
        name = key.replace("-", "_")
        if name not in SETTINGS_BY_NAME and not isinstance(value, dict):
            raise SettingsError(f"config: {path}: unknown setting {key!r}")
        if name in SETTINGS_BY_NAME:
            flat[name] = value
    return flat


def load_settings(
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_path: str | None = None,
) -> Settings:
    """Resolve every setting: defaults < config file < environment < CLI flags."""
    env = os.environ if env is None else env
    config_file = find_config_file(config_path, env)
    from_file = read_config_file(config_file) if config_file else {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        value, source = setting.default, "default"
        if setting.name in from_file:
            source = f"config file {config_file}"
            value = _apply(setting, from_file[setting.name], source)
        for var in setting.env_names:
            if var in env and env[var] != "":
                source = f"environment {var}"
                value = _apply(setting, env[var], source)
                break
        if cli and cli.get(setting.name) is not None:
            source = "command line"
            value = _apply(setting, cli[setting.name], source)
        values[setting.name] = value
        sources[setting.name] = source
    return Settings(**values, sources=sources, config_file=config_file)
