"""One client of the Faktory loop: its socket and session, the bytes it sent that are not
answered yet, the bytes waiting to be written, and how quickly it answers."""

from __future__ import annotations

import socket
import time

from synthbox.faktory import wire
from synthbox.faktory.session import Session

LONG_JOB = 0.005  # seconds: a worker whose last job took longer is not waited for
TOO_LONG = object()  # stands for a command line over wire.MAX_LINE (dropped as it came)


class Connection:
    """One client: its socket, what it sent that is not answered yet, what waits to be
    written, and whether it waits for an answer (a FETCH, a slow command)."""

    def __init__(self, sock: socket.socket, session: Session):
        self.sock, self.session = sock, session
        self.inbox = bytearray()
        self.searched = 0  # inbox bytes known to hold no line end
        self.skipping = False  # inside a line over MAX_LINE: dropped up to its end
        self.outbox = bytearray()
        self.busy = False
        self.ended = False  # the client closed its end, or END was answered
        self.broken = False  # a read or write failed: closed at once
        self.answered_at = 0.0  # time.monotonic() of the last reply
        self.handed_job = False  # the last reply was a job, not answered yet
        self.slow_with_jobs = False  # its last job took longer than LONG_JOB

    def replied(self, job: bool) -> bool:
        """A reply went out (handing it a `job`, or not): whether its next command is
        expected at once (not after a job when its last job took long)."""
        self.answered_at, self.handed_job = time.monotonic(), job
        return not (job and self.slow_with_jobs)

    def heard(self) -> None:
        """The client sent something: after a job, how long the job took."""
        if self.handed_job:
            self.slow_with_jobs = time.monotonic() - self.answered_at > LONG_JOB
            self.handed_job = False

    def has_line(self) -> bool:
        return self.inbox.find(b"\n", self.searched) >= 0

    def next_line(self) -> bytes | object | None:
        """The next command line without its CRLF (TOO_LONG for an overlong one), or
        None until a whole line is in."""
        end = self.inbox.find(b"\n", self.searched)
        if end < 0:
            self.searched = len(self.inbox)
            if len(self.inbox) > wire.MAX_LINE:
                self.inbox.clear()
                self.searched, self.skipping = 0, True
            return None
        line = bytes(self.inbox[:end]).rstrip(b"\r")
        del self.inbox[:end + 1]
        self.searched = 0
        if self.skipping or len(line) > wire.MAX_LINE:
            self.skipping = False
            return TOO_LONG
        return line
