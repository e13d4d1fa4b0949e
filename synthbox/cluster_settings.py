"""The `[cluster]` table of the settings (what a pm2.config.js holds), parsed when the
settings load: a bad entry stops `synthbox serve` and `start` alike, naming it."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]?)B?\s*$", re.I)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


@dataclass(frozen=True)
class Autoscale:
    min: int
    max: int
    target: float = 50.0  # waiting jobs per instance (the seed's HPA)
    up_after: float = 10.0  # seconds above the target before adding one
    down_after: float = 60.0  # quiet seconds before removing one
    cooldown: float = 30.0  # seconds between two decisions
    check_every: float = 2.0


@dataclass(frozen=True)
class ClusterOptions:
    instances: int = 2
    max_memory_restart: int = 0  # bytes; 0: never
    min_uptime: float = 1.0  # a child that lived less crashed at start
    max_restarts: int = 10  # such crashes in a row before the slot is "errored"
    restart_delay: float = 0.1  # first backoff; doubles, up to 30 s
    heartbeat_timeout: float = 30.0
    env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None  # None: `logs` in the data directory
    log_max_bytes: int = 10 * 1024 * 1024
    log_backups: int = 5
    autoscale: Autoscale | None = None

    def log_path(self, data_path: Path) -> Path:
        return self.log_dir or data_path / "logs"


def size(value: Any, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"cluster.{name}: must be a size such as 300M or 1G")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def instance_count(value: Any, name: str = "instances") -> int:
    """A number of instances: 1 or more, or "max" (one per CPU core)."""
    if value == "max":
        return os.cpu_count() or 1
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64:
        raise ValueError(f"cluster.{name}: must be 1 to 64, or max")
    return value


def _number(table: dict[str, Any], key: str, default: float, least: float = 0.0) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < least:
        raise ValueError(f"cluster.{key}: must be a number of at least {least:g}")
    return float(value)


KNOWN = {"instances", "max_memory_restart", "min_uptime", "max_restarts", "restart_delay",
         "heartbeat_timeout", "env", "log_dir", "log_max_bytes", "log_backups", "autoscale"}


def parse_cluster(raw: Any) -> ClusterOptions:
    """The `cluster` setting: a `[cluster]` table (a JSON object in the environment)."""
    try:
        table = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        raise ValueError("must be a JSON object") from None
    if isinstance(table, ClusterOptions):
        return table
    if not isinstance(table, dict):
        raise ValueError("must be a table (a JSON object in the environment)")
    for key in table:
        if key not in KNOWN:
            raise ValueError(f"cluster.{key}: unknown; one of {', '.join(sorted(KNOWN))}")
    env = table.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(v, str | int | float) for v in
                                             env.values()):
        raise ValueError("cluster.env: must be a table of strings")
    scale = table.get("autoscale")
    autoscale = None
    if scale is not None:
        if not isinstance(scale, dict):
            raise ValueError("cluster.autoscale: must be a table (min, max, target...)")
        low = instance_count(scale.get("min", 1), "autoscale.min")
        high = instance_count(scale.get("max", os.cpu_count() or 1), "autoscale.max")
        if high < low:
            raise ValueError("cluster.autoscale.max: must be at least autoscale.min")
        autoscale = Autoscale(low, high, *(
            _number(scale, key, default, least) for key, default, least in (
                ("target", 50.0, 1.0), ("up_after", 10.0, 0.0), ("down_after", 60.0, 0.0),
                ("cooldown", 30.0, 0.0), ("check_every", 2.0, 0.1))))
    restarts = table.get("max_restarts", 10)
    if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 0:
        raise ValueError("cluster.max_restarts: must be a whole number, 0 or more")
    return ClusterOptions(
        instances=instance_count(table.get("instances", 2)),
        max_memory_restart=size(table.get("max_memory_restart", 0), "max_memory_restart"),
        min_uptime=_number(table, "min_uptime", 1.0),
        max_restarts=restarts,
        restart_delay=_number(table, "restart_delay", 0.1, 0.01),
        heartbeat_timeout=_number(table, "heartbeat_timeout", 30.0, 2.0),
        env={k: str(v) for k, v in env.items()},
        log_dir=Path(table["log_dir"]) if table.get("log_dir") else None,
        log_max_bytes=size(table.get("log_max_bytes", 10 * 1024 * 1024), "log_max_bytes"),
        log_backups=int(_number(table, "log_backups", 5, 1)),
        autoscale=autoscale)
