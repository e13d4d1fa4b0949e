"""PostgreSQL's LISTEN/NOTIFY as the doorbell between instances when there is no Redis.

Without Redis each instance's Huey lives in a SQLite file of its own, so a job added
through one instance reached the others' workers only through the upkeep sweep (a
second or more). With the records in PostgreSQL, an add sends NOTIFY in its own
transaction (it arrives once the job is committed, and never if it rolls back) on one
channel per records database and namespace, and each instance keeps one connection
LISTENing that hands every notification from another instance to an idle worker of
the queue. An instance ignores its own: its local bell rang already.

A notification lost while the listener reconnects (PostgreSQL restarted, the
connection terminated) costs latency, never a job: the upkeep sweep finds due work in
the records, and the listener rings every queue once it is back.
"""

from __future__ import annotations

import logging
import os
import select
import threading
from collections.abc import Callable, Iterable
from typing import Any

from synthbox.logs import event
from synthbox.records.outage import BACKOFF_FIRST, BACKOFF_MAX
from synthbox.threads import start_thread

log = logging.getLogger("synthbox.broker")

PING_EVERY = 10.0  # seconds of silence after which the listener checks its connection


def channel_for(namespace: str) -> str:
    """The channel of a namespace: instances cooperate within one (PostgreSQL's own
    channels are per database already). Names are at most 63 bytes."""
    return f"{namespace}.jobs"[:63]


class Notifier:
    """What an add sends: one NOTIFY per queue, put before the INSERT in the same
    statement string (one round trip, one transaction).

    As with Redis, an add that an idle worker of this process will take (its ring hands
    it the turn, and it drains the queue) tells no other instance: `needed(queue)` says
    whether one does. An add from a process with no idle worker of the queue (all
    busy, or none: the CLI, `--no-workers`) always notifies."""

    def __init__(self, channel: str, instance_id: str,
                 needed: Callable[[str], bool] = lambda queue: True):
        self.channel = channel
        self.instance_id = instance_id
        self.needed = needed
        # the namespace is [A-Za-z0-9_.:-] (settings), so the quoted name needs no escape;
        # psycopg2's placeholder, as the statement it goes before may be written for it
        self._notify = f'NOTIFY "{channel}", %s; '

    def prefix(self, queues: Iterable[str]) -> tuple[str, list[str]]:
        """SQL to put before the adding statement, and its parameters (none when no
        other instance needs telling)."""
        payloads = [f"{queue} {self.instance_id}" for queue in sorted(set(queues))
                    if self.needed(queue)]
        return self._notify * len(payloads), payloads


def parse(payload: str) -> tuple[str, str]:
    """(queue, instance that sent it) of a notification's payload."""
    queue, _, sender = payload.rpartition(" ")
    return queue, sender


class NotifyListener:
    """One thread and one connection that LISTEN for the adds of the other instances.

    `wake(queue)` is called for each notification from elsewhere; `wake_all()` after each
    (re)connection, for the adds whose notifications were missed meanwhile."""

    def __init__(self, connect: Callable[[], Any], notifier: Notifier,
                 wake: Callable[[str], None], wake_all: Callable[[], None]):
        self._connect = connect
        self.channel = notifier.channel
        self.instance_id = notifier.instance_id
        self.wake = wake
        self.wake_all = wake_all
        self.stopped = threading.Event()
        self.connected = threading.Event()
        self.connections = 0  # made so far (1 + reconnections)
        self.backend_pid: int | None = None  # of the listening connection, while connected
        self.notifications: dict[str, int] = {}  # from other instances, per queue
        self._stop_r, self._stop_w = os.pipe()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = start_thread("pg-listener", self._run)

    def stop(self) -> None:
        self.stopped.set()
        os.write(self._stop_w, b"x")
        if self._thread is not None:
            self._thread.join(5)
            if self._thread.is_alive():  # still connecting: it ends on its own, pipe and all
                return
        os.close(self._stop_r)
        os.close(self._stop_w)

    def _run(self) -> None:
        backoff, lost = BACKOFF_FIRST, False
        while not self.stopped.is_set():
            conn = None
            try:
                conn = self._open()
                if lost:
                    log.info("doorbell listener reconnected to PostgreSQL",
                             extra=event("backend back", backend="doorbell listener"))
                backoff, lost = BACKOFF_FIRST, False
                self.wake_all()
                self._listen(conn)
            except Exception as exc:  # psycopg2's errors, or the socket's
                if self.stopped.is_set():
                    break
                if not lost:
                    log.warning("doorbell listener lost PostgreSQL (%s); reconnecting, and "
                                "the upkeep sweep finds new jobs meanwhile",
                                " ".join(str(exc).split()) or type(exc).__name__,
                                extra=event("backend lost", backend="doorbell listener",
                                            error=str(exc)))
                lost = True
                self.stopped.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            finally:
                self.connected.clear()
                self.backend_pid = None
                if conn is not None:
                    try:
                        conn.close()
                    except Exception as exc:  # already gone
                        log.debug("closing the listener's connection: %s", exc)

    def _open(self) -> Any:
        import psycopg2.extensions

        conn = self._connect()
        conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
        with conn.cursor() as cursor:
            cursor.execute(f'LISTEN "{self.channel}"')
            cursor.execute("SELECT pg_backend_pid()")
            self.backend_pid = int(cursor.fetchone()[0])
        self.connections += 1
        self.connected.set()
        return conn

    def _listen(self, conn: Any) -> None:
        """Hand notifications over until stopped; raises when the connection fails."""
        while not self.stopped.is_set():
            readable, _, _ = select.select([conn, self._stop_r], [], [], PING_EVERY)
            if self._stop_r in readable:
                return
            if not readable:  # quiet for a while: is the server still there?
                with conn.cursor() as cursor:
                    cursor.execute("SELECT 1")
            conn.poll()
            notifies, conn.notifies = conn.notifies, []
            for notify in notifies:
                queue, sender = parse(notify.payload)
                if sender != self.instance_id:
                    self.notifications[queue] = self.notifications.get(queue, 0) + 1
                    self.wake(queue)
