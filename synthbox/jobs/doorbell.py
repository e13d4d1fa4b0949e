"""The doorbell: rings between the threads of this process, and through the broker (Huey,
`broker.py`) to the other instances.

A ring says "there is work in this queue" after the jobs are committed; a worker that
answers it drains the queue from the records database. A claim that finds nothing
answers every ring before it (`Doorbell.answered`).
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
import uuid
from typing import Any

from huey import Huey

from synthbox.jobs.broker import wake_task
from synthbox.jobs.waker import Waker
from synthbox.logs import event

log = logging.getLogger("synthbox.broker")

PLENTY = 16  # doorbells of one queue waiting in the broker: a ring adds none beyond
# Tags this process's doorbell messages, stamped with time.monotonic() (Doorbell.answered)
_PROCESS = uuid.uuid4().hex[:12]


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
        self._last_turn = 0.0  # time.monotonic() of the latest turn given

    def ring(self) -> bool:
        """hand_over(), else set(), under one lock: True when a worker waiting with no
        turn took this one, False when it waits for the next worker to look."""
        with self._cond:
            waiting, turns = self._waiting, self._turns
            handed = waiting > turns
            self._turns = turns + 1 if handed else min(turns + 1, self._cap)
            self._last_turn = time.monotonic()
            if waiting:  # only wait() waits on _cond, counted in _waiting
                self._cond.notify()
            return handed

    def set(self) -> None:
        with self._cond:
            self._turns = min(self._turns + 1, self._cap)
            self._last_turn = time.monotonic()
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
            self._last_turn = time.monotonic()
            self._cond.notify()
            return True

    def drop_turns_before(self, moment: float) -> None:
        """Forget the turns if all were given before `moment` (time.monotonic())."""
        with self._cond:
            if self._last_turn < moment:
                self._turns = 0

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
        self._task = wake_task(huey)
        self._lock = threading.Lock()
        self._pending = 0
        self._last = 0.0
        self._flusher: threading.Thread | None = None
        self._flush_wanted = threading.Event()
        self._down_until = 0.0
        self.healthy = True
        self._answered_at = 0.0  # time.monotonic() when the latest claim that found none began

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
            self._publish_unless_plenty()
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
            message = self._task((_PROCESS, time.monotonic()), {})
            self.huey.storage.enqueue(self.huey.serialize_task(message))
        except Exception as exc:
            self.mark_reachable(False, exc)
            return False
        self.mark_reachable(True)
        return True

    def _publish_unless_plenty(self) -> None:
        """A ring's message, unless the broker holds PLENTY of this queue's already: each
        wakes a worker that drains the whole queue, so more wake no one new. (Adds while
        no worker was idle left one every 5 ms: 1,000 after 20,000 adds, read after the
        drain by workers that fought over the broker's lock for 100 ms.)"""
        if time.monotonic() < self._down_until:  # known down: not asked again for 1 s
            return
        try:
            plenty = self.pending_in_broker() >= PLENTY
        except Exception as exc:
            self.mark_reachable(False, exc)
            return
        if not plenty:
            self.publish()

    def answered(self, asked_at: float) -> None:
        """A claim begun at `asked_at` (time.monotonic()) found nothing due: every ring
        before then is answered, since each rang after its jobs were committed. The local
        turns given before then are dropped, and so are this process's broker messages
        published before then when they are read (`is_answered`): after a burst of adds
        to busy workers, hundreds of them each cost an empty claim, and a job added then
        waited behind that storm."""
        self._answered_at = max(self._answered_at, asked_at)
        self.local.drop_turns_before(asked_at)

    def is_answered(self, message: Any) -> bool:
        """A doorbell (a Huey task or message) this process published before a claim that
        found nothing due.
        Messages of other processes, and scheduled ones, are always answered with a claim
        (another host's clock says nothing here; a delayed job was not due then)."""
        args = message.args
        return (len(args) == 2 and args[0] == _PROCESS and message.eta is None
                and isinstance(args[1], float) and args[1] < self._answered_at)

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
            self._publish_unless_plenty()
