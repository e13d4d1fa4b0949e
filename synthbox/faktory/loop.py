"""The Faktory listener's loop: one thread serves every connection, in rounds.

Each round takes the next command line of every connection that has one and answers them
together: the pushes of all connections stored in one transaction, their ACKs recorded in
one, their FETCHes claimed in one. A FETCH with nothing to claim waits (up to FETCH_WAIT)
while the loop goes on; a push here serves it in the same round, jobs that came another
way are looked for every POLL seconds. Slow commands (INFO, FLUSH, QUEUE, MUTATE) run on a
thread aside and their reply comes back through the loop. Before a round, the loop waits
up to GATHER for the clients it just answered, most of which send their next command at
once: a round with all of them commits once for more jobs.

One thread rather than one per connection: threads of one Python process take turns on
its interpreter lock, and eight connection threads spent more time handing it over (tens
of futex calls a job) than doing the work; one thread batches by itself, with no waiting.
"""

from __future__ import annotations

import logging
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from synthbox.faktory import wire
from synthbox.faktory.connection import TOO_LONG, Connection
from synthbox.faktory.jobs import POLL, RemoteJobs
from synthbox.faktory.session import FETCH_WAIT, Ack, Close, Fetch, Push, Refused, Session, Slow
from synthbox.threads import start_thread

log = logging.getLogger("synthbox.faktory")

READ_SIZE = 256 * 1024
GATHER = 0.0006  # seconds a round may wait for the commands of clients just answered


class Loop:
    def __init__(self, listening: socket.socket, jobs: RemoteJobs,
                 make_session: Callable[[str], Session], tls: ssl.SSLContext | None):
        self.listening, self.jobs, self.make_session, self.tls = (
            listening, jobs, make_session, tls)
        self.selector = selectors.DefaultSelector()
        self._wake_in, self._wake_out = socket.socketpair()
        for sock in (self.listening, self._wake_in, self._wake_out):
            sock.setblocking(False)
        self.selector.register(self.listening, selectors.EVENT_READ, "accept")
        self.selector.register(self._wake_in, selectors.EVENT_READ, "wake")
        self.connections: set[Connection] = set()
        self.has_lines: set[Connection] = set()  # may hold a whole line not yet answered
        self.fetching: dict[Connection, tuple[Fetch, float]] = {}  # FETCH, its deadline
        self.next_look = 0.0  # when the waiting FETCHes look for jobs again
        self.came_back: deque[tuple[Any, Any]] = deque()  # slow replies, TLS connections
        self.aside = ThreadPoolExecutor(2, thread_name_prefix="faktory-aside")
        self.stopped = threading.Event()
        self.answered: set[Connection] = set()  # answered in the last round

    # -- the loop -----------------------------------------------------------------------

    def run(self) -> None:
        try:
            while not self.stopped.is_set():
                self._handle(self.selector.select(self._timeout()))
                self._gather()
                self._take_back()
                self._serve()
        finally:
            self._close_all()

    def _handle(self, ready: list[tuple[selectors.SelectorKey, int]]) -> None:
        for key, events in ready:
            if key.data == "accept":
                self._accept()
            elif key.data == "wake":
                self._drain_wake()
            else:
                if events & selectors.EVENT_WRITE:
                    self._flush(key.data)
                if events & selectors.EVENT_READ:
                    self._read(key.data)

    def _gather(self) -> None:
        """Wait a moment (GATHER at most) for the next command of the clients answered in
        the last round, which most send at once (a worker told OK fetches again; one
        handed a short job acknowledges it): a round that has them all commits once for
        all (eight busy workers: four jobs a commit rather than three). A worker whose
        last job took longer is not waited for."""
        until = time.monotonic() + GATHER
        while self.answered:
            self.answered = {conn for conn in self.answered if not (
                conn.ended or conn.broken or conn.has_line())}
            left = until - time.monotonic()
            if not self.answered or left <= 0:
                break
            self._handle(self.selector.select(left))
        self.answered.clear()

    def wake(self) -> None:
        try:
            self._wake_out.send(b"\0")
        except OSError:  # the pipe is full (the loop wakes anyway) or closed (stopping)
            pass

    def stop(self) -> None:
        self.stopped.set()
        self.wake()

    def _timeout(self) -> float:
        if not self.fetching:
            return 1.0
        soonest = min(deadline for _, deadline in self.fetching.values())
        return max(0.0, min(soonest, self.next_look) - time.monotonic())

    def _drain_wake(self) -> None:
        try:
            while self._wake_in.recv(4096):
                pass
        except OSError:
            pass

    # -- connections --------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                sock, peer = self.listening.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # too many open files, say: the others go on
                log.warning("faktory accept failed: %s", exc)
                self.stopped.wait(0.1)  # the listener stays readable: no spinning meanwhile
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
            if self.tls is None:
                self._open(sock, address)
            else:  # the handshake blocks: done aside, the connection comes back after
                start_thread("faktory-tls", self._handshake, sock, address)

    def _handshake(self, sock: socket.socket, address: str) -> None:
        assert self.tls is not None
        try:
            sock.setblocking(True)
            sock.settimeout(10)
            wrapped = self.tls.wrap_socket(sock, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            log.warning("faktory TLS handshake with %s failed: %s", address, exc)
            sock.close()
            return
        self.came_back.append(("open", (wrapped, address)))
        self.wake()

    def _open(self, sock: socket.socket, address: str) -> None:
        sock.setblocking(False)
        conn = Connection(sock, self.make_session(address))
        self.connections.add(conn)
        self.selector.register(sock, selectors.EVENT_READ, conn)
        self._reply(conn, conn.session.greeting())

    def _read(self, conn: Connection) -> None:
        try:
            while True:
                data = conn.sock.recv(READ_SIZE)
                if not data:  # the client closed its end: nothing more to read
                    conn.ended = True
                    self.selector.unregister(conn.sock)
                    break
                conn.inbox += data
                conn.heard()
                pending = getattr(conn.sock, "pending", None)
                if len(data) < READ_SIZE and not (pending and pending()):
                    break
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError,
                ssl.SSLWantWriteError):
            pass
        except OSError as exc:
            log.debug("faktory connection from %s ended: %s", conn.session.address, exc)
            conn.broken = True
        self.has_lines.add(conn)

    def _reply(self, conn: Connection, data: bytes, job: bool = False) -> bool:
        """Send `data` (what the socket does not take now is sent when it can); False
        when the connection is broken. The client is awaited by the next round's gather,
        unless `data` hands it a `job` and its last job took longer than LONG_JOB."""
        if conn.replied(job):
            self.answered.add(conn)
        if not conn.outbox:
            data = data[self._send(conn, data):]
            if not data or conn.ended:  # an ended client is no longer watched nor read
                return not conn.broken
            self.selector.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)
        conn.outbox += data
        return not conn.broken

    def _flush(self, conn: Connection) -> None:
        del conn.outbox[:self._send(conn, conn.outbox)]
        if not conn.outbox and not conn.broken:
            self.selector.modify(conn.sock, selectors.EVENT_READ, conn)

    def _send(self, conn: Connection, data: bytes | bytearray) -> int:
        """What the socket takes of `data` now (a failure marks the connection broken)."""
        if conn.broken:
            return 0
        try:
            return conn.sock.send(data)
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError,
                ssl.SSLWantReadError):
            return 0
        except OSError as exc:
            log.debug("faktory reply to %s failed: %s", conn.session.address, exc)
            conn.broken = True
            return 0

    def _close(self, conn: Connection) -> None:
        self.connections.discard(conn)
        self.has_lines.discard(conn)
        self.fetching.pop(conn, None)
        try:
            self.selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()
        conn.session.closed()

    def _close_all(self) -> None:
        for conn in list(self.connections):
            self._close(conn)
        self.aside.shutdown(wait=False, cancel_futures=True)
        self.selector.close()
        for sock in (self.listening, self._wake_in, self._wake_out):
            sock.close()

    # -- rounds -------------------------------------------------------------------------

    def _serve(self) -> None:
        """Rounds until no connection has a whole command line waiting; then the waiting
        FETCHes look for jobs when it is time, and ended connections close."""
        while True:
            lines = []
            for conn in list(self.has_lines):
                line = None if conn.busy or conn.broken else conn.next_line()
                if line is None:
                    self.has_lines.discard(conn)
                else:
                    lines.append((conn, line))
            if not lines:
                break
            self._round(lines)
        if self.fetching and time.monotonic() >= self.next_look:
            self._look_for_jobs()
        for conn in [c for c in self.connections if c.broken or (
                c.ended and (not c.busy or c in self.fetching))]:
            self._close(conn)

    def _round(self, lines: list[tuple[Connection, Any]]) -> None:
        pushes: list[tuple[Connection, Push]] = []
        acks: list[tuple[Connection, Ack]] = []
        fetched = False
        for conn, line in lines:
            answer = (conn.session.answer(line) if line is not TOO_LONG else
                      conn.session.refuse(Refused("ERR", f"command line longer than "
                                                         f"{wire.MAX_LINE} bytes"), "?"))
            if isinstance(answer, Push):
                pushes.append((conn, answer))
            elif isinstance(answer, Ack):
                acks.append((conn, answer))
            elif isinstance(answer, Fetch):
                conn.busy, fetched = True, True
                self.fetching[conn] = (answer, time.monotonic() + FETCH_WAIT)
            elif isinstance(answer, Slow):
                conn.busy = True
                self.aside.submit(self._aside, conn, answer)
            else:
                self._answer(conn, answer)
        for conn, push in pushes:
            if not push.ready:  # every job refused already
                self._answer(conn, conn.session.pushed(push, push.refused))
        pushes = [(conn, push) for conn, push in pushes if push.ready]
        if pushes:
            self._store(pushes)
        if acks or pushes or fetched:
            self._look_for_jobs(acks)

    def _answer(self, conn: Connection, answer: bytes | Close) -> None:
        if isinstance(answer, Close):
            self._reply(conn, answer.reply)
            conn.ended = True
        else:
            self._reply(conn, answer)

    def _store(self, pushes: list[tuple[Connection, Push]]) -> None:
        try:
            outcomes: list[Any] = self.jobs.store_batches([push.ready for _, push in pushes])
        except Exception as exc:  # the records cannot take them: every pusher hears why
            outcomes = [exc] * len(pushes)
        for (conn, push), outcome in zip(pushes, outcomes, strict=True):
            if isinstance(outcome, Exception):
                self._answer(conn, conn.session.failed("PUSHB" if push.bulk else "PUSH",
                                                       outcome))
            else:
                self._answer(conn, conn.session.pushed(push, {**push.refused, **outcome}))

    def _look_for_jobs(self, acks: list[tuple[Connection, Ack]] | None = None) -> None:
        """Record the round's ACKs and claim jobs for the waiting FETCHes, in one
        transaction; answer the FETCHes whose wait is up."""
        now = time.monotonic()
        self.next_look = now + POLL
        claiming = [(conn, fetch) for conn, (fetch, _) in self.fetching.items()
                    if fetch.claims and not conn.ended and not conn.broken
                    and not conn.session.told_to_stop_fetching()]
        queues = [fetch.queues for _, fetch in claiming]
        held: list[Any]
        jobs: list[Any]
        try:
            if acks:
                held, jobs = self.jobs.settle([ack for _, ack in acks], queues)
            else:
                held, jobs = [], self.jobs.claim_for(queues) if queues else []
        except Exception as exc:  # the records cannot take them: each hears why
            held, jobs = [exc] * len(acks or ()), [exc] * len(claiming)
        for (conn, ack), outcome in zip(acks or (), held, strict=True):
            self._answer(conn, conn.session.failed("ACK", outcome)
                         if isinstance(outcome, Exception) else conn.session.acked(ack, outcome))
        for (conn, _), job in zip(claiming, jobs, strict=True):
            if job is None:
                continue
            self._waited(conn)
            if isinstance(job, Exception):
                self._answer(conn, conn.session.failed("FETCH", job))
            elif self._reply(conn, wire.bulk(job), job=True):
                conn.session.handed(job)
            else:  # the client left while it waited: the job is not lost with it
                self.jobs.give_back(job["jid"])
        for conn, (_, deadline) in list(self.fetching.items()):
            if deadline <= now or conn.ended or conn.broken:
                self._waited(conn)
                self._reply(conn, wire.NULL)

    def _waited(self, conn: Connection) -> None:
        """Its FETCH or slow command is being answered: its next commands are read again."""
        self.fetching.pop(conn, None)
        conn.busy = False
        self.has_lines.add(conn)

    # -- slow commands ------------------------------------------------------------------

    def _aside(self, conn: Connection, slow: Slow) -> None:
        try:
            answer: bytes | Close = slow.call()
        except Exception as exc:
            answer = conn.session.failed(slow.verb, exc)
        self.came_back.append(("reply", (conn, answer)))
        self.wake()

    def _take_back(self) -> None:
        while self.came_back:
            kind, value = self.came_back.popleft()
            if kind == "open":
                self._open(*value)
            else:
                conn, answer = value
                self._waited(conn)
                if conn in self.connections:
                    self._answer(conn, answer)

