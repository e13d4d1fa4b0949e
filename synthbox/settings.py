"""The settings as one typed, frozen object, filled by `config.load_settings`: a field per
entry of `config.SETTINGS`, in its order (tests/test_config.py keeps the two equal; the
type is the default's). Change one with `dataclasses.replace`."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from synthbox.cluster_settings import ClusterOptions
from synthbox.paths import data_dir


@dataclass(frozen=True)
class Settings:
    data_dir: str
    host: str
    port: int
    redis_url: str
    redis_sentinel_name: str
    redis_cluster_mode: bool
    redis_prefix: str
    database_url: str
    workers: bool
    web: bool
    queues: dict[str, Any]
    smtp_url: str
    smtp_ca_file: str
    smtp_timeout: float
    mail_from: str
    email_domain_limits: dict[str, Any]
    outbound_allow: tuple[Any, ...]
    agent_http_allow: tuple[Any, ...]
    repository_roots: tuple[Any, ...]
    shutdown_timeout: float
    http_threads: int
    max_body_bytes: int
    trust_proxy: bool
    log_level: str
    log_format: str
    log_file: str
    log_file_max_bytes: int
    log_file_backups: int
    cluster: ClusterOptions
    alerts: tuple[Any, ...]
    metrics_token: str
    faktory_address: str
    faktory_password: str
    faktory_tls_cert: str
    faktory_tls_key: str
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    config_file: Path | None = field(default=None, compare=False)

    @property
    def values(self) -> dict[str, Any]:
        """Every setting by name (a copy: change one with dataclasses.replace)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("sources", "config_file")}

    @property
    def data_path(self) -> Path:
        return data_dir(self.data_dir)
