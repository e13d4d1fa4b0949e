"""The engine: records database, one doorbell per queue, workers and upkeep.

`Engine(settings, registry)` opens the backends and gives out a QueueService for each
queue it was given (synthbox/app.py assembles them); `start_workers()` runs the embedded
consumers; `stop()` ends them so that no job is left active.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from synthbox.actors import Recorder, unrecorded
from synthbox.config import Settings
from synthbox.jobs.broker import build_huey, connect_redis, warn_if_exposed
from synthbox.jobs.consumer import EmbeddedConsumer
from synthbox.jobs.doorbell import Doorbell
from synthbox.jobs.errors import UnknownQueue
from synthbox.jobs.periodic import Periodic
from synthbox.jobs.pgbell import Notifier, NotifyListener, channel_for
from synthbox.jobs.ratelimit import RedisRateLimiter
from synthbox.jobs.rows import ClaimedJob
from synthbox.jobs.runner import QueueRunner
from synthbox.jobs.service import QueueService
from synthbox.jobs.spec import QueueRegistry, QueueSpec
from synthbox.jobs.store import JobStore
from synthbox.jobs.upkeep import Upkeep
from synthbox.jobs.waker import Waker
from synthbox.logs import event
from synthbox.records.database import Migration, describe, migrate, open_database
from synthbox.records.outage import health_of, records_problem
from synthbox.threads import start_thread

log = logging.getLogger("synthbox.engine")


@dataclass
class QueueHandle:
    service: QueueService
    doorbell: Doorbell
    runner: QueueRunner | None = None
    consumer: EmbeddedConsumer | None = None


class Engine:
    def __init__(self, settings: Settings, registry: QueueRegistry,
                 migrations: Iterable[Migration] = (), namespace: str | None = None,
                 record: Recorder = unrecorded):
        """`migrations`: the schema steps of the domains beside the engine's own; `record`:
        where operations (jobs/operations.py) report who did what.
        `namespace` (default: the redis_prefix setting) prefixes the broker's keys:
        instances cooperate only within one."""
        namespace = namespace or settings.redis_prefix
        self.settings = settings
        self.data_path = settings.data_path
        self.registry = registry
        self.record = record
        self.namespace = namespace
        self.db = open_database(settings.database_url, self.data_path)
        migrate(self.db, migrations)
        self.store = JobStore(self.db)
        health_of(self.db).waiting = self.unrecorded
        self.instance_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.redis: Any = None
        if settings.redis_url:
            self.redis = connect_redis(settings.redis_url, settings.redis_sentinel_name,
                                       settings.redis_cluster_mode)
            warn_if_exposed(settings.redis_url)
        self.limiter = (RedisRateLimiter(self.redis, namespace)
                        if self.redis is not None else None)
        self.listener: NotifyListener | None = None
        if self.store.postgres and self.redis is None:  # PostgreSQL rings the others
            self.store.notifier = Notifier(channel_for(namespace), self.instance_id,
                                           self._others_needed)
        self.waker = Waker()
        self.queues: dict[str, QueueHandle] = {}
        for spec in self.registry:
            self._open(spec)
        self.upkeep: Upkeep | None = None
        self.periodic: list[Periodic] = []  # the process's upkeep tasks (add_periodic)
        self._workers_for: set[str] | None = None  # queues start_workers was asked for
        self._changes = threading.Lock()

    def _open(self, spec: QueueSpec) -> QueueHandle:
        bell = Doorbell(spec.name, build_huey(spec.name, self.redis, self.data_path,
                                              self.namespace), self.waker)
        handle = QueueHandle(QueueService(spec, self.store, bell), bell)
        self.queues[spec.name] = handle
        return handle

    # -- lookup -------------------------------------------------------------------------

    def service(self, queue: str) -> QueueService:
        handle = self.queues.get(queue)
        if handle is None:
            raise UnknownQueue(queue)
        return handle.service

    def overview(self) -> list[dict[str, Any]]:
        """Every queue with its paused flag and counts."""
        return [{"name": name, "paused": handle.service.is_paused(),
                 "stats": handle.service.get_stats()} for name, handle in self.queues.items()]

    def find_job(self, job_id: int) -> dict[str, Any] | None:
        """A job by id, whichever queue it is in."""
        row = self.store.execute("SELECT queue FROM job WHERE id=?", (job_id,)).fetchone()
        if row is None or row[0] not in self.queues:
            return None
        return self.queues[row[0]].service.get_job(job_id)

    def history(self, span_minutes: int, bucket_minutes: int,
                now: float | None = None) -> dict[str, list[float]]:
        """Every queue's finished jobs in buckets over the last `span_minutes`, oldest
        first: completed, failed, and the average wait before pickup (ms)."""
        now = time.time() if now is None else now
        current = int(now // 60)
        count = span_minutes // bucket_minutes
        first = current - count * bucket_minutes + 1
        completed, failed = [0.0] * count, [0.0] * count
        waited, picked = [0.0] * count, [0] * count
        for row in self.store.tallies.minutes(first):
            index = (row.minute - first) // bucket_minutes
            if 0 <= index < count:
                completed[index] += row.completed
                failed[index] += row.failed
                waited[index] += row.wait_ms
                picked[index] += row.picked
        return {"completed": completed, "failed": failed,
                "waitMs": [round(w / p, 1) if p else 0.0 for w, p in zip(waited, picked,
                                                                         strict=True)]}

    def instances(self) -> list[dict[str, Any]]:
        """The instances whose heartbeat the records hold, with the jobs each has done."""
        now = time.time()
        rows = self.store.execute("SELECT id, host, pid, version, queues, started_at, "
                                  "last_seen FROM instance ORDER BY started_at").fetchall()
        return [{"id": row[0], "host": row[1], "pid": row[2], "version": row[3],
                 "jobsDone": sum(json.loads(row[4] or "{}").values()),
                 "startedAt": int(row[5] * 1000), "secondsSinceSeen": max(now - row[6], 0.0)}
                for row in rows]

    def backends(self) -> dict[str, str]:
        """Which backends are in use, and why (printed at start)."""
        s = self.settings
        if s.database_url:
            records = f"{describe(self.db)} (DATABASE_URL is set)"
        else:
            records = f"{describe(self.db)} (embedded default: DATABASE_URL is not set)"
        if not s.redis_url:
            transport = f"SQLite {self.data_path / 'queue.db'} (embedded default: " \
                        "REDIS_URL is not set)"
            if self.store.notifier is not None:
                transport += ", and PostgreSQL LISTEN/NOTIFY between instances"
        elif s.redis_cluster_mode:
            transport = "Redis Cluster (REDIS_CLUSTER_MODE=true)"
        elif s.redis_sentinel_name:
            transport = f"Redis Sentinel, master {s.redis_sentinel_name!r} " \
                        "(REDIS_SENTINEL_NAME is set)"
        else:
            transport = "Redis (REDIS_URL is set)"
        return {"records": records, "transport": transport}

    def unrecorded(self) -> int:
        """Job outcomes held in memory until the records database takes them again."""
        return sum(h.runner.unrecorded() for h in self.queues.values() if h.runner)

    def records_state(self) -> dict[str, Any]:
        """What this process last saw of the records database (no query: for the UI's
        banner and /metrics, which must answer while it is away)."""
        health = health_of(self.db)
        return {"up": health.up, "cause": health.cause, "since": health.down_since,
                "unrecorded": self.unrecorded()}

    def readiness(self) -> dict[str, Any]:
        """Can the records be written, and the broker reached, right now?"""
        checks: dict[str, Any] = {"records": records_problem(self.db) or "ok"}
        try:
            if self.redis is not None:
                self.redis.ping()
            else:
                next(iter(self.queues.values())).doorbell.pending_in_broker()
            # answering PING is not taking writes (maxmemory, a replica): the last publish says
            refusing = [h.doorbell for h in self.queues.values() if not h.doorbell.healthy]
            checks["transport"] = "ok" if not refusing else "refusing writes"
        except Exception as exc:
            checks["transport"] = f"unreachable: {type(exc).__name__}"
        return checks

    # -- workers ------------------------------------------------------------------------

    def add_periodic(self, task: Periodic) -> None:
        """A task for every instance's upkeep loop to run (before start_workers)."""
        self.periodic.append(task)

    def periodic_tasks(self) -> list[Periodic]:
        """The upkeep tasks this process runs, with their runs, errors and time."""
        return [] if self.upkeep is None else list(self.upkeep.tasks)

    def start_workers(self, queues: Iterable[str] | None = None) -> None:
        """Run the embedded consumers of every queue, or of the ones named."""
        wanted = set(self.queues if queues is None else queues)
        self._workers_for = None if queues is None else wanted
        for spec in self.registry:
            if spec.name in wanted:
                self._start_queue(spec)
        periodic = [task.bound(self.queues[spec.name].service) for spec in self.registry
                    if spec.name in wanted for task in spec.periodic]
        self.upkeep = Upkeep(self.store, [h.runner for h in self.queues.values() if h.runner],
                             self.instance_id, [*periodic, *self.periodic])
        self.upkeep.start()
        if self.store.notifier is not None:
            self.listener = NotifyListener(self._listening_connection, self.store.notifier,
                                           self._wake_here, self._wake_all_here)
            self.listener.start()
        for handle in self.queues.values():
            handle.doorbell.ring()  # work that arrived while no instance was running

    def _listening_connection(self) -> Any:
        import psycopg2

        params = {"connect_timeout": 5, **self.db.connect_params}
        return psycopg2.connect(dbname=self.db.database, **params)

    def _others_needed(self, queue: str) -> bool:
        """An add to `queue` notifies the other instances unless a worker here is idle (or
        no instance's workers take its jobs: a queue of remote workers)."""
        handle = self.queues.get(queue)
        if handle is None or handle.consumer is None:
            return handle is None or handle.service.spec.local_consumer
        return not handle.doorbell.local.has_idle()

    def _wake_here(self, queue: str) -> None:
        """Another instance added due jobs to `queue`: an idle worker here takes them."""
        handle = self.queues.get(queue)
        if handle is not None and handle.consumer is not None:
            handle.doorbell.local.set()

    def _wake_all_here(self) -> None:
        for name in list(self.queues):
            self._wake_here(name)

    def _start_queue(self, spec: QueueSpec) -> QueueRunner:
        """The queue's runner (stalled jobs, retention), and its consumer threads unless
        its jobs are claimed elsewhere (`spec.local_consumer` False)."""
        handle = self.queues[spec.name]
        runner = QueueRunner(spec, self.store, handle.doorbell, self.instance_id,
                             self.limiter)
        handle.runner = runner
        if not spec.local_consumer:
            return runner
        handle.service.local_workers = True
        handle.consumer = EmbeddedConsumer(runner)
        handle.consumer.start_in_thread()
        log.info("%s queue initialized: concurrency %d", spec.name, spec.concurrency,
                 extra=event("queue initialized", queue=spec.name,
                             concurrency=spec.concurrency))
        return runner

    def _runs_workers_for(self, name: str) -> bool:
        return self.upkeep is not None and (self._workers_for is None
                                            or name in self._workers_for)

    # -- queues defined at run time ------------------------------------------------------

    def add_queue(self, spec: QueueSpec) -> None:
        """A queue from now on: its service, and its workers when this engine runs them."""
        with self._changes:
            if spec.name in self.queues:
                raise ValueError(f"queue {spec.name!r} is already registered")
            self.registry.register(spec)
            self._open(spec)
            if self._runs_workers_for(spec.name):
                self._start_upkept(spec)

    def replace_queue(self, spec: QueueSpec) -> None:
        """New handlers and options for a queue: new claims use them at once; jobs the old
        workers are running finish (or are handed back) in the background."""
        with self._changes:
            handle = self.queues[spec.name]
            old = self.registry.get(spec.name)
            self.registry.replace(spec)
            handle.service.spec = spec
            self._retire(handle, old)
            if self._runs_workers_for(spec.name):
                self._start_upkept(spec)

    def remove_queue(self, name: str) -> None:
        """Stop running a queue and forget it (its job records stay)."""
        with self._changes:
            handle = self.queues.pop(name, None)
            if handle is None:
                raise UnknownQueue(name)
            old = self.registry.get(name)
            self.registry.remove(name)
            self._retire(handle, old)

    def _start_upkept(self, spec: QueueSpec) -> None:
        runner = self._start_queue(spec)
        assert self.upkeep is not None
        self.upkeep.add_runner(runner, [task.bound(self.queues[spec.name].service)
                                        for task in spec.periodic])
        self.queues[spec.name].doorbell.ring()

    def _retire(self, handle: QueueHandle, old: QueueSpec | None) -> None:
        """Stop a queue's consumer now; its running jobs finish within shutdown_timeout
        (their leases renewed meanwhile), then what still runs is handed back."""
        runner, consumer = handle.runner, handle.consumer
        handle.runner = handle.consumer = None
        handle.service.local_workers = False
        if consumer is not None:
            consumer.request_stop()

        def finish() -> None:
            if consumer is not None:
                consumer.stop_and_wait(time.monotonic() + self.settings.shutdown_timeout)
            if runner is not None:
                # only what the old workers still hold: the new ones' jobs are their own
                self.store.release(self.instance_id, runner.held_ids())
                if self.upkeep is not None:
                    self.upkeep.remove_runner(runner)
            if old is not None and old.on_stop is not None:
                old.on_stop()

        start_thread(f"retire-{handle.service.name}", finish)

    def claim(self, queue: str, limit: int, owner: str, lease: float) -> list[ClaimedJob]:
        """Due jobs of `queue` for a worker outside this process (a queue whose jobs no
        local consumer takes); the caller finishes them through the store."""
        self.service(queue)
        return self.store.claim(queue, limit, owner, lease)

    def drain(self, queue: str) -> int:
        """Run `queue`'s due jobs in this thread until none is left; how many ran. A run
        with no worker threads, for tests and scripts that want it to be deterministic."""
        handle = self.queues.get(queue)
        if handle is None:
            raise UnknownQueue(queue)
        runner = handle.runner or QueueRunner(handle.service.spec, self.store,
                                              handle.doorbell, self.instance_id, self.limiter)
        return runner.drain()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the workers: running jobs get `timeout` seconds to finish, then are handed
        back to waiting. Afterwards no job of this instance is active."""
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        consumers = [h.consumer for h in self.queues.values() if h.consumer]
        for consumer in consumers:  # every queue stops claiming at once, then we wait
            consumer.request_stop()
        idle = all([consumer.stop_and_wait(deadline) for consumer in consumers])
        if self.listener is not None:
            self.listener.stop()
        if self.upkeep is not None:
            self.upkeep.stop()
        for consumer in consumers:
            # Still running past the deadline: handed back as a stall, so a job that never
            # fits in a shutdown cannot come back forever (maxStalledCount applies).
            spec = consumer.runner.spec
            requeued, failed = self.store.recover_stalled(
                spec.name, spec.max_stalled_count, owner=self.instance_id)
            if requeued or failed:
                log.warning("%s: handed %d running job(s) back to the queue, failed %d "
                            "stalled too often", spec.name, len(requeued), len(failed))
        if not idle:
            log.warning("some worker threads did not stop in %.0f s", timeout)
        for spec in list(self.registry):
            if spec.on_stop is not None:
                spec.on_stop()
        if self.upkeep is not None:
            self.upkeep.forget_instance()
        self.waker.stop()

    def close(self) -> None:
        self.db.close()
