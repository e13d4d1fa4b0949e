"""Huey as the doorbell: one Huey instance per queue, carrying wake-ups and never jobs.

A doorbell message says "there is work in this queue"; the records database says
which work. Messages hold plain JSON values only (Huey's default is pickle, which
would let anyone who can write to the broker run code here).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from huey import Huey
from huey.registry import Message
from huey.serializer import Serializer
from huey.storage import SCHEDULE_POP_LUA, RedisStorage, SqliteStorage

from synthbox.config import SettingsError
from synthbox.jobs.waker import Waker
from synthbox.logs import event

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


class LocalBell:
    """Rings between threads of this process: each ring wakes one idle worker and hands it
    the turn to drain (a shared Event could be cleared by one worker before another saw
    it, leaving a ready worker asleep). Unclaimed turns are capped. It also knows whether
    a worker is idle, so the broker is read only when someone here can answer."""

    def __init__(self, cap: int = 64):
        lock = threading.Lock()
        self._cond = threading.Condition(lock)
        self._idle = threading.Condition(lock)
        self._turns = 0
        self._waiting = 0
        self._cap = cap

    def ring(self) -> bool:
        """hand_over(), else set(), under one lock: True when a worker waiting with no
        turn took this one, False when it waits for the next worker to look."""
        with self._cond:
            waiting, turns = self._waiting, self._turns
            handed = waiting > turns
            self._turns = turns + 1 if handed else min(turns + 1, self._cap)
            if waiting:  # only wait() waits on _cond, counted in _waiting
                self._cond.notify()
            return handed

    def set(self) -> None:
        with self._cond:
            self._turns = min(self._turns + 1, self._cap)
            self._cond.notify()

    def take(self) -> bool:
        """A turn if one is waiting (without waiting)."""
        with self._cond:
            if self._turns:
                self._turns -= 1
                return True
            return False

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` for a turn; True if one was taken."""
        with self._cond:
            if not self._turns:
                self._waiting += 1
                self._idle.notify()
                try:
                    self._cond.wait(timeout)
                finally:
                    self._waiting -= 1
            if self._turns:
                self._turns -= 1
                return True
            return False

    def hand_over(self) -> bool:
        """A turn for a worker that waits with none handed to it yet; False (and no turn)
        when there is no such worker."""
        with self._cond:
            if self._waiting <= self._turns:
                return False
            self._turns += 1
            self._cond.notify()
            return True

    def has_idle(self) -> bool:
        """A worker waits with no turn handed to it yet."""
        with self._cond:
            return self._waiting > self._turns

    def wait_for_idle(self, timeout: float, stop: threading.Event) -> bool:
        """Wait up to `timeout` until a worker waits with no turn handed to it yet, or
        `stop` is set (and `wake_all()` called)."""
        with self._cond:
            return self._idle.wait_for(
                lambda: self._waiting > self._turns or stop.is_set(), timeout)

    def wake_all(self) -> None:
        """Wake every waiting thread without a turn (they are stopping)."""
        with self._cond:
            self._cond.notify_all()
            self._idle.notify_all()


class Doorbell:
    """Rings a queue's doorbell: in this process at once, and through the broker for others.

    Producers that add one job at a time are coalesced: at most one broker message per
    `window` seconds or per `burst` rings, and the last ring of a window is never lost.
    A ring held back goes out when the window since the last message ends (benchmarks/
    README.md says why).
    """

    def __init__(self, queue: str, huey: Huey, waker: Waker, window: float = 0.005,
                 burst: int = 100):
        self.queue = queue
        self.huey = huey
        self.waker = waker
        self.local = LocalBell()
        self.window = window
        self.burst = burst
        self._task = huey._registry.string_to_task(f"{_wake.__module__}.{WAKE_TASK}")
        self._wake_message = huey.serialize_task(self._task((), {}))  # its id unread: _wake
        self._lock = threading.Lock()
        self._pending = 0
        self._last = 0.0
        self._flusher: threading.Thread | None = None
        self._flush_wanted = threading.Event()
        self._down_until = 0.0
        self.healthy = True

    def ring(self) -> None:
        """Wake a worker for new work: an idle one here if there is one (it drains the
        queue, so no other instance needs waking), else through the broker."""
        if self.local.ring():
            return
        now = time.monotonic()
        with self._lock:
            self._pending += 1
            due = self._pending >= self.burst or now - self._last >= self.window
            if due:
                self._pending = 0
                self._last = now
        if due:
            self.publish()
        else:
            self._defer_flush()

    def ring_at(self, when: float, here: bool = False) -> None:
        """Ring at Unix time `when`: through the broker's schedule, so any instance answers
        even if this one dies; and with `here`, precisely in this process too."""
        if here:
            self.waker.call_at(when, self.ring)
        if time.monotonic() < self._down_until:
            return
        try:
            eta = datetime.datetime.fromtimestamp(when, datetime.UTC).replace(tzinfo=None)
            self.huey.add_schedule(self._task((), {}, eta=eta))
            self.mark_reachable(True)
        except Exception as exc:
            self.mark_reachable(False, exc)

    def publish(self) -> bool:
        """Put one wake-up message in the broker. False when the broker is unreachable."""
        if time.monotonic() < self._down_until:
            return False
        try:
            self.huey.storage.enqueue(self._wake_message)
        except Exception as exc:
            self.mark_reachable(False, exc)
            return False
        self.mark_reachable(True)
        return True

    def pending_in_broker(self) -> int:
        return int(self.huey.storage.queue_size())

    def mark_reachable(self, ok: bool, exc: Exception | None = None) -> None:
        if ok:
            if not self.healthy:
                log.info("queue %s: broker reachable again", self.queue,
                         extra=event("backend back", queue=self.queue, backend="transport"))
            self.healthy = True
            self._down_until = 0.0
        else:
            if self.healthy:
                log.warning("queue %s: broker unreachable (%s); jobs stay recorded and are "
                            "processed from the records database", self.queue, exc,
                            extra=event("backend lost", queue=self.queue, backend="transport",
                                        error=str(exc)))
            self.healthy = False
            self._down_until = time.monotonic() + 1.0

    def _defer_flush(self) -> None:
        # Set, it stays set until the flusher clears it, and after clearing the flusher
        # reads _pending (raised before this call): most rings of a window stop here.
        if self._flush_wanted.is_set():
            return
        with self._lock:
            self._flush_wanted.set()
            if self._flusher is None:
                self._flusher = threading.Thread(
                    target=self._flush_loop, name=f"doorbell-{self.queue}", daemon=True)
                self._flusher.start()

    def _flush_loop(self) -> None:
        """Publish the rings a window held back; the thread ends after 5 idle seconds."""
        while True:
            if not self._flush_wanted.wait(5.0):
                with self._lock:  # a ring may have come in just now: check under the lock
                    if not self._flush_wanted.is_set():
                        self._flusher = None
                        return
            self._flush_wanted.clear()
            with self._lock:
                wait = self._last + self.window - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            with self._lock:
                if not self._pending:
                    continue
                self._pending = 0
                self._last = time.monotonic()
            self.publish()
