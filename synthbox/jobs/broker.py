"""Huey as the doorbell's broker: one Huey instance per queue, carrying wake-ups and
never jobs (the ringing itself: `doorbell.py`).

A doorbell message says "there is work in this queue"; the records database says
which work. Messages hold plain JSON values only (Huey's default is pickle, which
would let anyone who can write to the broker run code here).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from huey import Huey
from huey.registry import Message
from huey.serializer import Serializer
from huey.storage import SCHEDULE_POP_LUA, RedisStorage, SqliteStorage

from synthbox.config import SettingsError

log = logging.getLogger("synthbox.broker")

WAKE_TASK = "synthbox.wake"
_PLAIN = (str, int, float, bool, type(None))


class JsonSerializer(Serializer):
    """Huey messages as JSON; anything but plain values is refused both ways."""

    def _serialize(self, message: Message) -> bytes:
        fields = message._asdict()
        for nested in ("on_complete", "on_error", "chord_config"):
            if fields[nested] is not None:
                raise ValueError(f"doorbell messages carry no {nested}")
        eta = fields["eta"]
        fields["eta"] = eta.isoformat() if eta is not None else None
        fields["args"] = list(fields["args"] or ())
        fields["kwargs"] = dict(fields["kwargs"] or {})
        for key in ("expires", "expires_resolved"):
            fields[key] = None
        _check_plain(fields)
        return json.dumps(fields, separators=(",", ":")).encode()

    def _deserialize(self, data: bytes) -> Message:
        fields = json.loads(data)
        if not isinstance(fields, dict) or not isinstance(fields.get("name"), str):
            raise ValueError("not a doorbell message")
        _check_plain(fields)
        unknown = set(fields) - set(Message._fields)
        if unknown:
            raise ValueError(f"unexpected message fields: {sorted(unknown)}")
        eta = fields.get("eta")
        fields["eta"] = datetime.datetime.fromisoformat(eta) if eta else None
        fields["args"] = tuple(fields.get("args") or ())
        return Message(**fields)


def _check_plain(value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError("message keys must be strings")
            _check_plain(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_plain(item)
    elif not isinstance(value, _PLAIN):
        raise ValueError(f"message values must be plain JSON, not {type(value).__name__}")


class ClientRedisStorage(RedisStorage):
    """Huey's Redis storage over a client we built (plain, Sentinel or Cluster)."""

    def __init__(self, name: str, client: Any, read_timeout: float = 1.0) -> None:
        self.pool = getattr(client, "connection_pool", None)
        self.conn = client
        self.connection_params: dict[str, Any] = {}
        self._pop = client.register_script(SCHEDULE_POP_LUA)
        self.name = name
        self.queue_key = f"huey.redis.{name}"
        self.schedule_key = f"huey.schedule.{name}"
        self.result_key = f"huey.results.{name}"
        self.counter_key = f"huey.counters.{name}"
        self.notify_prefix = f"huey.notify.{name}."
        self.notify_result = False
        self.notify_result_ttl = 60
        self.blocking = True
        self.read_timeout = read_timeout


def _hosts(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """`redis://[user:pass@]h1:p1,h2:p2/db` as a host list and connection options."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    hosts = []
    for item in netloc.split(","):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "6379")
        hosts.append((host.strip("[]") or "localhost", int(port or 6379)))
    options: dict[str, Any] = {}
    if parts.password:
        options["password"] = unquote(parts.password)
    if parts.username:
        options["username"] = unquote(parts.username)
    if parts.path.strip("/"):
        options["db"] = int(parts.path.strip("/"))
    return hosts, options


CONNECT: dict[str, Any] = {"socket_connect_timeout": 2.0, "socket_timeout": 5.0}


def connect_redis(url: str, sentinel_name: str = "", cluster: bool = False) -> Any:
    """A Redis client for REDIS_URL: plain, Sentinel (with a master name) or Cluster."""
    if not url.startswith(("redis://", "rediss://")):
        raise SettingsError("redis_url: must start with redis:// or rediss://")
    _give_huey_redis()
    hosts, options = _hosts(url)
    if cluster:
        from redis.cluster import ClusterNode, RedisCluster

        options.pop("db", None)
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in hosts],
                            **options, **CONNECT)
    if sentinel_name:
        from redis.backoff import NoBackoff
        from redis.retry import Retry
        from redis.sentinel import Sentinel

        # One try per sentinel: Sentinel itself moves on to the next one. With redis-py's
        # default retries (10, with backoff) a single dead sentinel in the list cost ~3 s per
        # master lookup, so starting took ~10 s and every doorbell was marked unreachable.
        asked = {**CONNECT, "retry": Retry(NoBackoff(), 0)}
        sentinel = Sentinel(hosts, sentinel_kwargs=asked, **CONNECT)
        return sentinel.master_for(sentinel_name, **options, **CONNECT)
    from redis import Redis

    return Redis.from_url(url, **CONNECT)


def _give_huey_redis() -> None:
    """launch.main hides redis from Huey when no setting names Redis. Should one be used
    all the same, Huey's storage gets here the names it would have imported from redis
    (its dequeue catches redis's TimeoutError by that name)."""
    import huey.storage

    if huey.storage.Redis is None:
        import redis

        huey.storage.ConnectionPool, huey.storage.Redis = redis.ConnectionPool, redis.Redis
        huey.storage.ConnectionError = redis.exceptions.ConnectionError
        huey.storage.TimeoutError = redis.exceptions.TimeoutError


def warn_if_exposed(url: str) -> None:
    """Warn loudly when Redis is reached without a password on a non-loopback address."""
    hosts, options = _hosts(url)
    if options.get("password"):
        return
    for host, _port in hosts:
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            log.warning("SECURITY: Redis at %s is used without a password; anyone who can "
                        "reach it can read and disturb the queue transport", host)
            return


def build_huey(queue: str, redis_client: Any | None, data_path: Path,
               namespace: str = "synthbox") -> Huey:
    """The Huey instance that carries doorbells for `queue`."""
    serializer = JsonSerializer()
    if redis_client is not None:
        # Hash-tagged, so every key of this queue lands in one Redis Cluster slot.
        name = f"{{{namespace}.{queue}}}"
        huey = Huey(name, results=False, serializer=serializer, utc=True,
                    storage_class=ClientRedisStorage, client=redis_client)
    else:
        huey = Huey(f"{namespace}.{queue}", results=False, serializer=serializer, utc=True,
                    storage_class=SqliteStorage, filename=str(data_path / "queue.db"),
                    timeout=10, fsync=False)  # wake-ups need no fsync: the records are the truth
    huey.task(name=WAKE_TASK)(_wake)
    return huey


def _wake(*hint: Any) -> None:
    """Never run by Huey: SynthBox's worker reads the doorbell and drains the queue."""


def wake_task(huey: Huey) -> Any:
    """The doorbell's task (its class) on a Huey from build_huey."""
    return huey._registry.string_to_task(f"{_wake.__module__}.{WAKE_TASK}")
